"""The effects catalogue: what each registered action *does*, what it needs and what it produces, so the
offline planner can chain actions from a plain-language objective without a model.

The registry knows an action's input schema and impact; it does not know that ``ldap.disable_user`` and
``okta.suspend_user`` both *suspend an account*, or that ``crowdstrike.contain_host`` needs a Falcon
device id that ``crowdstrike.find_device`` produces from a host name. This module says so, as data:

- :data:`EFFECTS`: the things a responder asks for ("suspend", "isolate", "block an IP", "open a case"),
  each with the verbs and objects that name it in plain language (synonyms), and the kind of entity it
  acts on (its *target*).
- :data:`ACTIONS`, keyed by action id: the effects the action has, the product (the tenant connection
  name) it belongs to, how to fill its inputs (``with``, where ``<<kind>>`` is an entity or setting the
  planner resolves: a workflow input, an earlier step's output, or a variable), what it produces for
  later steps, and a sample output shaped like the real one (for the dry-run).

A test checks that every id here is registered, that every ``with`` fills each required input and only
known ones, and that every ``high``-impact action of the registry is described here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ACTIONS",
    "EFFECTS",
    "ENTITY_INPUTS",
    "OBSERVABLE_QUERIES",
    "PRODUCERS",
    "SETTINGS",
    "VENDOR_WORDS",
    "ActionEntry",
    "Effect",
]


@dataclass(frozen=True)
class Effect:
    """Something a responder asks for. ``verbs`` and ``objects`` are regular-expression fragments matched
    at word starts (``suspend`` also matches "suspending"); an effect with ``needs_object`` is chosen only
    when one of its objects is named too. ``target`` is the entity kind it acts on (None: no entity)."""

    name: str
    verbs: tuple[str, ...]
    objects: tuple[str, ...] = ()
    needs_object: bool = False
    target: str | None = None
    why: str = ""
    bonus: float = 0.0  # for specific verbs that contain a general one ("unblock" holds "block")


@dataclass(frozen=True)
class ActionEntry:
    """What an action does for the planner. ``with_`` values may hold ``<<kind>>`` placeholders; a value
    that is exactly ``<<kind>>`` takes the resolved value's type (a list stays a list). ``produces`` maps
    an entity kind to (output path, is_list)."""

    effects: tuple[str, ...]
    vendor: str  # the tenant connection name of its product; "" for built-ins
    with_: dict[str, Any]
    sample: dict[str, Any]
    produces: dict[str, tuple[str, bool]] = field(default_factory=dict)
    default: bool = False  # the choice when no vendor is named and the tenant has none of the candidates


# ------------------------------------------------------------------------------------ effects
# fmt: off
# (data: one entry per line reads better than the formatter's one-word-per-line)

_USER_OBJECTS = (r"users?", r"accounts?", r"them\b", r"him\b", r"her\b", r"their\b", "login", "identit",
                 "employee", "person", "leaver", "victim", "credential", "mailbox")
_HOST_OBJECTS = ("hosts?", "machines?", "endpoints?", "devices?", "laptops?", "workstations?", "servers?",
                 "boxe?s?", "computers?", r"it\b", "agents?", "pcs?")

EFFECTS: dict[str, Effect] = {
    e.name: e
    for e in (
        Effect("extract-iocs", ("extract", "pull out", "parse", "harvest", "collect the indicators"),
               ("indicators?", "iocs?", "observables?", "urls", "links"), True, "text",
               "pull the indicators out of the reported content"),
        Effect("lookup-user", (r"look ?up", "find", "get", "read", "fetch", "check", "query", "identify"),
               (r"users?\b", r"accounts?\b", "identit", "profile", "who"), True, "user",
               "read the account first, so later steps and the case have its details"),
        Effect("lookup-host", (r"look ?up", "find", "locate", "get", "read", "fetch", "identify"),
               _HOST_OBJECTS[:-3], True, "host", "find the machine in the EDR"),
        Effect("ip-reputation", ("check", "enrich", r"look ?up", "score", "query"),
               ("reputation", "abuse", "abuseipdb", r"ip\b", "address"), True, "ip",
               "check the address's reputation before acting on it"),
        Effect("suspend-account",
               ("suspend", "disable", "lock", "deactivate", "freeze", "kill", r"revoke (?:\w+ ){0,2}access",
                r"cut (?:off )?(?:\w+ )?access", r"shut (?:\w+ )?(?:off|down)", "turn off", "block",
                r"remove (?:\w+ ){0,2}access"),
               _USER_OBJECTS, True, "user", "stop the account from signing in"),
        Effect("enable-account",
               ("re-?enable", "enable", "reactivate", "unsuspend", "unlock", r"restore (?:\w+ ){0,2}access",
                "reinstate"),
               _USER_OBJECTS, True, "user", "give the account its access back", 1.0),
        Effect("reset-password", ("reset", "rotate", "change", "force", "expire", "new"),
               ("password", "passphrase", "credentials?"), True, "user",
               "a forced password reset: the leaked or guessed password stops working"),
        Effect("reset-mfa", ("reset", "wipe", "clear", "re-?enrol", "remove", "revoke"),
               ("mfa", "factors?", "2fa", "authenticators?", "multi-factor", "otp"), True, "user",
               "reset the MFA factors, so a factor an attacker enrolled no longer works"),
        Effect("revoke-sessions",
               ("revoke", r"sign (?:\w+ )?out", r"log (?:\w+ )?out", "kill", "end", "terminate", "invalidate",
                "clear", "expire", "drop"),
               ("sessions?", "tokens?", "sign-?ins?", "logins?", "cookies?", "refresh", "everywhere",
                r"out\b", "all devices"), True, "user",
               "end the sessions and refresh tokens, so a stolen session stops working"),
        Effect("confirm-compromised", ("confirm", "mark", "flag", "tag", "label", "report"),
               ("compromis", "risky", "at risk", "identity protection"), True, "user",
               "tell Identity Protection the user is compromised (risk-based policies apply)"),
        Effect("remove-group", ("remove", "strip", "drop", "take away", "revoke", "pull"),
               ("groups?", "privileg", "admin", "rights", "roles?", "membership"), True, "user",
               "remove the user from the privileged group"),
        Effect("add-group", ("add", "put", "move", "place"), ("groups?",), True, "user",
               "add the user to a group"),
        Effect("isolate-host",
               ("isolat", "contain", "quarantin", r"network[- ]isolat", r"cut (?:\S+ ){0,3}off", "disconnect",
                "fence", r"take (?:\S+ ){0,3}off (?:the )?network", "segregat", r"pull (?:\S+ ){0,3}off"),
               _HOST_OBJECTS, False, "host", "cut the machine off the network (it keeps its EDR connection)"),
        Effect("release-host", ("release", "reconnect", "lift", "un-?isolat", "uncontain", "restore"),
               (*_HOST_OBJECTS, "containment", "isolation"), True, "host",
               "put the machine back on the network", 1.0),
        Effect("collect-forensics", ("collect", "gather", "acquire", "grab", "capture", "pull", "get"),
               ("forensic", "investigation package", "evidence", "triage package", "package", "artifacts?"),
               True, "host", "collect the forensic investigation package"),
        Effect("av-scan", (r"(?:run|start|launch|kick off|do) (?:\w+ ){0,3}scan", "scan", "sweep"),
               ("scan", "antivirus", "av", *_HOST_OBJECTS[:-3]), False, "host",
               "run an antivirus scan on the machine"),
        Effect("block-ip",
               ("block", "blacklist", "deny", "ban", "drop", "firewall", "blocklist", "null-?route", "stop"),
               (r"ips?\b", "addresse?s?", "source", "destination", "attacker", "sender ip", "c2 server",
                "traffic", "connections?", "egress", "ipv4", "ipv6"), False, "ip",
               "block the address on the blocklist the firewalls poll"),
        Effect("block-domain",
               ("block", "blacklist", "deny", "ban", "sinkhole", "blocklist", "nxdomain", "take down"),
               ("domains?", "dns", "sender", "site", "websites?", "lookalike", "typosquat", "resolver",
                "hostnames?", "fqdn"), True, "domain",
               "block the domain at the DNS resolver and/or on the blocklist"),
        Effect("block-url", ("block", "blacklist", "deny", "ban", "blocklist"), ("urls?", "links?"), True,
               "url", "block the URL on the blocklist the proxies poll"),
        Effect("unblock",
               ("unblock", "allow", "whitelist", r"remove (?:\S+ ){0,3}(?:block|edl|list)", "lift"),
               (r"ips?\b", "addresse?s?", "domains?", "block", "urls?"), False, "indicator",
               "lift a block", 3.0),
        Effect("open-case",
               ("open", "create", "raise", "file", "start", "log", "make", "record", "track", "spin up"),
               (r"(?:new|a|fresh) case", "case", "investigation", "incident record"), True, None,
               "open a case so the response is tracked and documented"),
        Effect("ticket", ("open", "create", "raise", "file", "log", "submit", "cut", "make"),
               ("tickets?", "issues?", "jira", "servicenow", "snow", r"incident\b", "thehive", "request",
                "task"), True, None, "open a ticket for the team that owns the follow-up"),
        Effect("comment-case",
               ("comment", "note", "annotate", "document", "write", "record", "log", "update", "add"),
               (r"case\b", "outcome", "result", "timeline", "what (?:was done|happened)"), True, "case_id",
               "record what was done on the case"),
        Effect("add-observable", ("add", "record", "attach", "store", "save", "put", "link", "list"),
               ("observables?", "indicators?", "iocs?", "artifacts?"), True, "iocs",
               "record the indicators on the case"),
        Effect("close-case", ("close", "resolve", "finish", "wrap up"),
               (r"case\b", r"it\b", "true positive", "false positive", "benign"), True, "case_id",
               "close the case with a verdict"),
        Effect("page", ("page", "wake", "escalate", "call out", "alert", "summon", "trigger"),
               ("on-?call", "pagerduty", "responder", "duty", "incident response", "ir team", "page"), False,
               None, "page the on-call responder"),
        Effect("email",
               ("e-?mail", "mail", "reply", "thank", "write to", "respond to", "answer", "acknowledge"),
               ("reporter", "reported", "whoever", "user", "sender", "manager", "e-?mail", "mail", "them",
                "back"), False, "reporter", "write to the person by e-mail"),
        Effect("notify",
               ("notify", "tell", "inform", "alert", r"let (?:\w+ ){0,3}know", "post", "message", "announce",
                "ping", "update", "warn", "send", "share", "broadcast", "heads up"),
               ("slack", "teams", "channel", "soc", "team", "analysts?", "chat", "everyone", "staff"), False,
               None, "tell the team in chat"),
    )
}

# Words that name a product, and the tenant connection name it maps to.
VENDOR_WORDS: dict[str, str] = {
    r"okta": "okta",
    r"entra": "entra",
    r"azure ?ad": "entra",
    r"azure": "entra",
    r"identity protection": "entra",
    r"microsoft 365": "entra",
    r"m365": "entra",
    r"ldap": "ldap",
    r"active directory": "ldap",
    r"\bad\b": "ldap",
    r"directory": "ldap",
    r"crowdstrike": "crowdstrike",
    r"falcon": "crowdstrike",
    r"defender": "defender",
    r"mde\b": "defender",
    r"sentinel ?one": "sentinelone",
    r"\bs1\b": "sentinelone",
    r"jira": "jira",
    r"servicenow": "servicenow",
    r"service now": "servicenow",
    r"snow\b": "servicenow",
    r"thehive": "thehive",
    r"the hive": "thehive",
    r"slack": "slack",
    r"teams": "teams",
    r"pagerduty": "pagerduty",
    r"e-?mail": "email",
    r"\bdns\b": "dns",
    r"resolver": "dns",
    r"sinkhole": "dns",
    r"firewall": "edl",
    r"\bedl\b": "edl",
    r"blocklist": "edl",
    r"abuseipdb": "abuseipdb",
}

# Settings the planner puts in the workflow's ``vars`` (editable after design), with their defaults.
SETTINGS: dict[str, Any] = {
    "blocklist": "blocklist",
    "block_for": "24h",
    "channel": "#soc",
    "jira_project": "SEC",
    "privileged_group": "admins",
    "verdict": "true_positive",
}

# Entity kind -> the workflow input it arrives in (names the intel and alert payloads already use).
ENTITY_INPUTS: dict[str, str] = {
    "user": "username",
    "email": "email",
    "host": "hostname",
    "ip": "ip",
    "domain": "domain",
    "url": "url",
    "hash": "file_hash",
    "cve": "indicator",
    "reporter": "reporter",
    "text": "body",
}

# Entity kind -> where it is in an alert's observables (JMESPath), for alert-triggered workflows.
OBSERVABLE_QUERIES: dict[str, str] = {
    "user": "[?type=='user' || type=='email'].value | [0]",
    "email": "[?type=='email'].value | [0]",
    "host": "[?type=='host'].value | [0]",
    "ip": "[?type=='ipv4' || type=='ipv6'].value | [0]",
    "domain": "[?type=='domain'].value | [0]",
    "url": "[?type=='url'].value | [0]",
    "hash": "[?type=='sha256' || type=='sha1' || type=='md5'].value | [0]",
}

_CHANGE = "chg_0001"
_DN = "uid=jdoe,ou=people,dc=example,dc=org"
_GROUP = "cn=admins,ou=groups,dc=example,dc=org"

ACTIONS: dict[str, ActionEntry] = {
    # ---- identity
    "ldap.find_user": ActionEntry(
        ("lookup-user",), "ldap", {"username": "<<user>>"},
        {"username": "jdoe", "dn": _DN, "status": "active", "found": True,
         "attributes": {"memberOf": ["cn=staff,ou=groups,dc=example,dc=org"]}},
        default=True),
    "okta.get_user": ActionEntry(
        ("lookup-user",), "okta", {"user": "<<user>>"},
        {"id": "00u1", "status": "ACTIVE", "login": "jdoe@example.org", "email": "jdoe@example.org"}),
    "entra.get_user": ActionEntry(
        ("lookup-user",), "entra", {"user": "<<user>>"},
        {"id": "6f1c-user", "user_principal_name": "jdoe@example.org", "display_name": "J Doe",
         "mail": "jdoe@example.org", "account_enabled": True}),
    "ldap.disable_user": ActionEntry(
        ("suspend-account",), "ldap", {"username": "<<user>>"},
        {"username": "jdoe", "dn": _DN, "disabled": True, "changed": True, "scheme": "ppolicy",
         "change_id": _CHANGE},
        default=True),
    "okta.suspend_user": ActionEntry(
        ("suspend-account",), "okta", {"user": "<<user>>"},
        {"user": "00u1", "login": "jdoe@example.org", "status": "SUSPENDED", "prior_status": "ACTIVE",
         "changed": True, "change_id": _CHANGE}),
    "entra.disable_user": ActionEntry(
        ("suspend-account",), "entra", {"user": "<<user>>"},
        {"id": "6f1c-user", "user_principal_name": "jdoe@example.org", "account_enabled": False,
         "changed": True, "change_id": _CHANGE}),
    "ldap.enable_user": ActionEntry(
        ("enable-account",), "ldap", {"username": "<<user>>"},
        {"username": "jdoe", "dn": _DN, "disabled": False, "changed": True}, default=True),
    "okta.unsuspend_user": ActionEntry(
        ("enable-account",), "okta", {"user": "<<user>>"},
        {"user": "00u1", "login": "jdoe@example.org", "status": "ACTIVE", "prior_status": "SUSPENDED",
         "changed": True}),
    "entra.enable_user": ActionEntry(
        ("enable-account",), "entra", {"user": "<<user>>"},
        {"id": "6f1c-user", "user_principal_name": "jdoe@example.org", "account_enabled": True,
         "changed": True}),
    "ldap.reset_password": ActionEntry(
        ("reset-password",), "ldap", {"username": "<<user>>", "must_change": True},
        {"username": "jdoe", "dn": _DN, "reset": True, "must_change": True}, default=True),
    "okta.reset_factors": ActionEntry(
        ("reset-mfa",), "okta", {"user": "<<user>>"}, {"user": "jdoe@example.org", "factors_reset": True},
        default=True),
    "okta.clear_sessions": ActionEntry(
        ("revoke-sessions",), "okta", {"user": "<<user>>", "revoke_oauth_tokens": True},
        {"user": "jdoe@example.org", "sessions_cleared": True, "oauth_tokens_revoked": True}),
    "entra.revoke_sessions": ActionEntry(
        ("revoke-sessions",), "entra", {"user": "<<user>>"}, {"user": "jdoe@example.org", "revoked": True},
        default=True),
    "entra.confirm_compromised": ActionEntry(
        ("confirm-compromised",), "entra", {"users": ["<<user>>"]},
        {"user_ids": ["6f1c-user"], "confirmed": True}, default=True),
    "ldap.remove_from_group": ActionEntry(
        ("remove-group",), "ldap", {"username": "<<user>>", "group": "<<privileged_group>>"},
        {"username": "jdoe", "dn": _DN, "group": _GROUP, "attribute": "member", "changed": True,
         "change_id": _CHANGE},
        default=True),
    "ldap.add_to_group": ActionEntry(
        ("add-group",), "ldap", {"username": "<<user>>", "group": "<<privileged_group>>"},
        {"username": "jdoe", "dn": _DN, "group": _GROUP, "added": True, "changed": True}, default=True),
    # ---- endpoints
    "crowdstrike.find_device": ActionEntry(
        ("lookup-host",), "crowdstrike", {"hostname": "<<host>>"},
        {"hostname": "ws-01", "device_ids": ["dev-1"], "found": True, "total": 1},
        produces={"cs_device": ("device_ids", True)}, default=True),
    "crowdstrike.get_device": ActionEntry(
        ("lookup-host",), "crowdstrike", {"device_id": "<<cs_device>>"},
        {"device_id": "dev-1", "hostname": "ws-01", "status": "normal", "device": {}}),
    "crowdstrike.contain_host": ActionEntry(
        ("isolate-host",), "crowdstrike", {"device_id": "<<cs_device>>"},
        {"device_id": "dev-1", "hostname": "ws-01", "contained": True, "already": False,
         "change_id": _CHANGE},
        default=True),
    "crowdstrike.lift_containment": ActionEntry(
        ("release-host",), "crowdstrike", {"device_id": "<<cs_device>>"},
        {"device_id": "dev-1", "status": "lift_containment_pending", "contained": False, "already": False},
        default=True),
    "defender.find_machine": ActionEntry(
        ("lookup-host",), "defender", {"hostname": "<<host>>"},
        {"hostname": "ws-01", "machine_ids": ["m-1"], "found": True, "total": 1},
        produces={"machine": ("machine_ids", True)}, default=True),
    "defender.get_machine": ActionEntry(
        ("lookup-host",), "defender", {"machine_id": "<<machine>>"},
        {"machine_id": "m-1", "computer_name": "ws-01", "health_status": "Active", "risk_score": "High",
         "machine": {}}),
    "defender.isolate_machine": ActionEntry(
        ("isolate-host",), "defender",
        {"machine_id": "<<machine>>", "comment": "Bastion: <<title>>", "isolation_type": "Full"},
        {"machine_id": "m-1", "action_id": "ma-1", "status": "Pending", "isolated": True, "already": False,
         "change_id": _CHANGE}),
    "defender.release_machine": ActionEntry(
        ("release-host",), "defender", {"machine_id": "<<machine>>", "comment": "Bastion: <<title>>"},
        {"machine_id": "m-1", "action_id": "ma-2", "status": "Pending", "isolated": False, "already": False}),
    "defender.collect_investigation_package": ActionEntry(
        ("collect-forensics",), "defender", {"machine_id": "<<machine>>", "comment": "Bastion: <<title>>"},
        {"machine_id": "m-1", "action_id": "ma-3", "status": "Pending"}, default=True),
    "defender.run_av_scan": ActionEntry(
        ("av-scan",), "defender",
        {"machine_id": "<<machine>>", "comment": "Bastion: <<title>>", "scan_type": "Full"},
        {"machine_id": "m-1", "action_id": "ma-4", "status": "Pending"}, default=True),
    "sentinelone.get_agent": ActionEntry(
        ("lookup-host",), "sentinelone", {"computer_name": "<<host>>"},
        {"agent_id": "s1-1", "computer_name": "ws-01", "network_status": "connected", "found": True,
         "count": 1, "agents": []},
        produces={"s1_agent": ("agent_id", False)}),
    "sentinelone.disconnect_agent": ActionEntry(
        ("isolate-host",), "sentinelone", {"agent_id": "<<s1_agent>>"},
        {"agent_id": "s1-1", "disconnected": True, "already": False, "change_id": _CHANGE}),
    "sentinelone.reconnect_agent": ActionEntry(
        ("release-host",), "sentinelone", {"agent_id": "<<s1_agent>>"},
        {"agent_id": "s1-1", "disconnected": False, "already": False}),
    # ---- network
    "edl.add": ActionEntry(
        ("block-ip", "block-domain", "block-url"), "edl",
        {"list": "<<blocklist>>", "value": "<<target>>", "reason": "<<title>>",
         "expires_in": "<<block_for>>"},
        {"value": "203.0.113.7", "kind": "ip", "list": "blocklist", "added": True, "change_id": _CHANGE},
        default=True),
    "edl.remove": ActionEntry(
        ("unblock",), "edl", {"list": "<<blocklist>>", "value": "<<target>>"},
        {"list": "blocklist", "value": "203.0.113.7", "removed": True}, default=True),
    "edl.list": ActionEntry(
        (), "edl", {"list": "<<blocklist>>"}, {"list": "blocklist", "count": 0, "entries": []}),
    "dns.block_domain": ActionEntry(
        ("block-domain",), "dns",
        {"domain": "<<target>>", "reason": "<<title>>", "expires_in": "<<block_for>>"},
        {"domain": "bad.example", "blocked": True, "changed": True, "change_id": _CHANGE}),
    "dns.unblock_domain": ActionEntry(
        ("unblock",), "dns", {"domain": "<<target>>"},
        {"domain": "bad.example", "blocked": False, "changed": True}),
    "abuseipdb.check_ip": ActionEntry(
        ("ip-reputation",), "abuseipdb", {"ip": "<<ip>>"},
        {"data": {"ipAddress": "203.0.113.7", "abuseConfidenceScore": 90}}, default=True),
    # ---- cases, tickets, people
    "cases.create": ActionEntry(
        ("open-case",), "",
        {"title": "<<title>>: <<subject>>", "severity": "<<severity>>", "description": "<<description>>",
         "alert_ids": "<<alert_ids>>"},
        {"id": "case_1", "number": 1, "created": True},
        produces={"case_id": ("id", False), "case_number": ("number", False)}, default=True),
    "cases.comment": ActionEntry(
        ("comment-case",), "", {"case_id": "<<case_id>>", "body": "<<outcome>>"}, {"comment_id": "cm_1"},
        default=True),
    "cases.add_observable": ActionEntry(
        ("add-observable",), "", {"case_id": "<<case_id>>", "type": "<<target_type>>", "value": "<<target>>"},
        {"added": True}, default=True),
    "cases.close": ActionEntry(
        ("close-case",), "", {"case_id": "<<case_id>>", "verdict": "<<verdict>>"},
        {"id": "case_1", "number": 1, "status": "closed"}, default=True),
    "jira.create_issue": ActionEntry(
        ("ticket",), "jira",
        {"project": "<<jira_project>>", "summary": "<<title>>: <<subject>>",
         "description": "<<description>>", "issue_type": "Task", "labels": ["bastion"]},
        {"id": "10001", "key": "SEC-1", "self": "https://jira.example/rest/api/3/issue/10001",
         "url": "https://jira.example/browse/SEC-1"},
        default=True),
    "servicenow.create_incident": ActionEntry(
        ("ticket",), "servicenow",
        {"short_description": "<<title>>: <<subject>>", "description": "<<description>>",
         "category": "security"},
        {"sys_id": "abc123", "number": "INC0010001", "url": "https://sn.example/incident.do?sys_id=abc123"}),
    "thehive.create_case": ActionEntry(
        ("ticket",), "thehive", {"title": "<<title>>: <<subject>>", "description": "<<description>>"},
        {"id": "~123", "number": 1, "status": "New"}),
    "slack.post_message": ActionEntry(
        ("notify",), "slack", {"channel": "<<channel>>", "text": "<<title>>: <<subject>><<case_ref>>"},
        {"ok": True, "channel": "C123", "ts": "1700000000.000100"}, default=True),
    "teams.post_card": ActionEntry(
        ("notify",), "teams", {"title": "<<title>>", "text": "<<subject>><<case_ref>>"},
        {"delivered": True, "status": 200}),
    "email.send": ActionEntry(
        ("email", "notify"), "email",
        {"to": "<<reporter>>", "subject": "<<title>>", "body": "<<title>>: <<subject>><<case_ref>>"},
        {"sent": True, "to": ["user@example.org"], "subject": "Bastion", "message_id": "<m1@example.org>"},
        default=True),
    "pagerduty.trigger": ActionEntry(
        ("page",), "pagerduty",
        {"summary": "<<title>>: <<subject>>", "source": "bastion", "severity": "critical"},
        {"status": "success", "dedup_key": "bastion-1", "message": "Event processed"}, default=True),
    # ---- built-ins the planner writes itself
    "core.set": ActionEntry((), "", {"values": {}}, {}),
}

# Entity kinds that are produced by a lookup action (the first listed matching the vendor wins).
PRODUCERS: dict[str, tuple[str, ...]] = {
    "cs_device": ("crowdstrike.find_device",),
    "machine": ("defender.find_machine",),
    "s1_agent": ("sentinelone.get_agent",),
    "case_id": ("cases.create",),
    "case_number": ("cases.create",),
}
# fmt: on
