"""``bastion demo credential-leak``: the compromised-credential response end to end, on the embedded store.

It starts what the scenario's peers would be in production, locally and only for the run: a directory
(a real OpenLDAP ``slapd``, as the tests do; ``scripts/test-services.sh`` installs it) and a chat server
(:class:`LocalSlack`, a minimal double of the Slack Web API methods Bastion calls). Then it plays the
scenario: identities synced from the directory, a leaked-credential feed file loaded with the intel
loader, the ``credential-leak`` trigger starting the shipped ``compromised-credential`` workflow, the
account suspended without a human (the tenant policy waives it, :data:`SCENARIO_POLICY`), a case, a
Slack message and an approval request with buttons; the demo analyst's click is a signed Slack
interaction taken through the same verification and decision path as the API endpoint. Everything it
started is stopped afterwards; what it stored (tenant, case, run, audit) stays.

:func:`record_detection_to_containment` is the measurement the tests and the demo share: from the
recorded intel trigger (the feed record matched at ingest) to the suspension step's recorded finish.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets as secrets_mod
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import orjson
from sqlalchemy import select

from bastion.demo.local_slack import LocalSlack
from bastion.demo.slapd import running_slapd
from bastion.store import Database, TenantScope

__all__ = [
    "SCENARIO_POLICY",
    "WORKFLOW_ID",
    "LocalDirectory",
    "LocalSlack",
    "local_directory",
    "prepare_tenant",
    "record_detection_to_containment",
    "run_demo",
    "signed_interaction",
]

WORKFLOW_ID = "compromised-credential"
FIELD = "detection_to_containment_s"
_WAIVED = "${{ run.workflow_id == 'compromised-credential' }}"
# Suspending, and (after the human's one approval of the revocation) ending the IdP sessions and
# re-enabling, run without a further approval in this workflow; every other high-impact action keeps the
# default: an approver must approve.
SCENARIO_POLICY: dict[str, Any] = {
    "waivers": [
        {"action": "ldap.disable_user", "condition": _WAIVED},
        {"action": "ldap.enable_user", "condition": _WAIVED},
        {"action": "okta.clear_sessions", "condition": _WAIVED},
        {"action": "entra.revoke_sessions", "condition": _WAIVED},
    ]
}


# ------------------------------------------------------------------------------------ local Slack


def signed_interaction(
    slack: LocalSlack, approval_id: str, slack_user: str, signing_secret: str, *, approve: bool = True
) -> tuple[bytes, dict[str, str]]:
    """The body and headers Slack sends when ``slack_user`` clicks a button of the approval message."""
    wanted = "bastion_approve" if approve else "bastion_deny"
    element = next(
        e
        for post in slack.called("chat.postMessage")
        for block in post.get("blocks") or []
        for e in block.get("elements", [])
        if e.get("action_id") == wanted and orjson.loads(e.get("value") or "{}").get("a") == approval_id
    )
    payload = {
        "type": "block_actions",
        "user": {"id": slack_user},
        "channel": {"id": "C0SOC"},
        "actions": [{"type": "button", "action_id": wanted, "value": element["value"]}],
    }
    body = urlencode({"payload": orjson.dumps(payload).decode()}).encode()
    stamp = str(int(time.time()))
    digest = hmac.new(signing_secret.encode(), b"v0:" + stamp.encode() + b":" + body, hashlib.sha256)
    return body, {
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": f"v0={digest.hexdigest()}",
        "Content-Type": "application/x-www-form-urlencoded",
    }


# ------------------------------------------------------------------------------------ local directory


@dataclass
class LocalDirectory:
    url: str
    suffix: str
    admin_dn: str
    admin_password: str

    @property
    def people(self) -> str:
        return f"ou=people,{self.suffix}"


@contextmanager
def local_directory(folder: Path) -> Iterator[LocalDirectory]:
    """A throwaway OpenLDAP ``slapd`` (no ppolicy overlay: ``ldap.disable_user`` locks with its password
    marker) on a free port under ``folder``; stopped on exit."""
    suffix = "dc=example,dc=org"
    d = LocalDirectory("", suffix, f"cn=admin,{suffix}", secrets_mod.token_urlsafe(12))
    with running_slapd(folder, suffix=suffix, admin_dn=d.admin_dn, admin_password=d.admin_password) as url:
        d.url = url
        yield d


def seed_directory(d: LocalDirectory, people: dict[str, str], mails: dict[str, str] | None = None) -> None:
    """The organisation, ``ou=people`` with each ``uid -> password`` (mail ``mails[uid]``, else
    ``<uid>@example.org``), and a ``finance`` group holding them all."""
    from ldap3 import Connection, Server

    conn = Connection(Server(d.url), user=d.admin_dn, password=d.admin_password, auto_bind=True)
    try:
        conn.add(d.suffix, ["dcObject", "organization"], {"o": "Example", "dc": "example"})
        conn.add(d.people, ["organizationalUnit"], {"ou": "people"})
        conn.add(f"ou=groups,{d.suffix}", ["organizationalUnit"], {"ou": "groups"})
        dns = []
        for uid, password in people.items():
            dn = f"uid={uid},{d.people}"
            attrs = {
                "uid": uid,
                "cn": uid.title(),
                "sn": uid.title(),
                "mail": (mails or {}).get(uid, f"{uid}@example.org"),
            }
            if not conn.add(dn, ["inetOrgPerson"], attrs):
                raise RuntimeError(f"seeding {dn}: {conn.result}")
            conn.extend.standard.modify_password(dn, new_password=password)
            dns.append(dn)
        conn.add(f"cn=finance,ou=groups,{d.suffix}", ["groupOfNames"], {"cn": "finance", "member": dns})
    finally:
        conn.unbind()


# ------------------------------------------------------------------------------------ tenant set-up


def prepare_tenant(
    db: Database,
    tenant_id: str,
    directory: LocalDirectory,
    *,
    slack_url: str,
    slack_token: str,
    actor: str,
) -> None:
    """The scenario's tenant configuration: respond policy, ``ldap`` and ``slack`` connections with their
    secrets, the shipped workflow, and the identities synced from the directory."""
    from bastion.connectors.policy import get_policy, set_policy
    from bastion.content.library import install
    from bastion.enrich.ldap_sync import LdapConfig, sync_ldap
    from bastion.tenancy.connections import set_connection
    from bastion.tenancy.secrets import set_secret

    with db.write() as conn:
        current = get_policy(conn, tenant_id)
        waivers = [w for w in current.get("waivers", []) if w not in SCENARIO_POLICY["waivers"]]
        set_policy(
            conn,
            tenant_id,
            {
                "require_approval": current["require_approval"],
                "default_approval": current["default_approval"],
                "waivers": [*waivers, *SCENARIO_POLICY["waivers"]],
            },
        )
    ldap_conn = {
        "base_url": directory.url,
        "allow_private": True,
        "secrets": ["ldap_bind_dn", "ldap_bind_password"],
        "settings": {"base_dn": directory.people, "group_base": f"ou=groups,{directory.suffix}"},
    }
    set_connection(db, tenant_id, "ldap", ldap_conn, actor=actor)
    set_connection(db, tenant_id, "slack", {"base_url": slack_url, "allow_private": True}, actor=actor)
    set_secret(db, tenant_id, "ldap_bind_dn", directory.admin_dn, actor=actor)
    set_secret(db, tenant_id, "ldap_bind_password", directory.admin_password, actor=actor)
    set_secret(db, tenant_id, "slack_bot_token", slack_token, actor=actor)
    install(db, tenant_id, [WORKFLOW_ID], actor)
    cfg = LdapConfig(
        url=directory.url,
        base_dn=directory.people,
        bind_dn=directory.admin_dn,
        password=directory.admin_password,
        group_base_dn=f"ou=groups,{directory.suffix}",
    )
    sync_ldap(db, tenant_id, cfg, actor=actor)


# ------------------------------------------------------------------------------------ measurement


def record_detection_to_containment(db: Database, tenant_id: str, run_id: str, *, actor: str) -> float:
    """Seconds from the feed record's match (the recorded ``credential-leak`` intel trigger of the run's
    user, raised while the record was ingested) to the suspension step's recorded finish; stored as the
    case's custom field ``detection_to_containment_s`` and returned. Raises ValueError when the run has
    not suspended anyone or has no case."""
    from bastion.cases.service import set_custom_field
    from bastion.respond.service import run_detail
    from bastion.store.intel import intel_triggers

    run = run_detail(db, tenant_id, run_id)
    suspend = next((s for s in run["steps"] if s["step_id"] == "suspend"), None)
    if suspend is None or suspend["status"] != "succeeded" or not suspend.get("finished"):
        raise ValueError(f"run {run_id} has no succeeded suspension step")
    username = str(run["inputs"]["username"])
    opened = next((s for s in run["steps"] if s["step_id"] == "case" and s["status"] == "succeeded"), None)
    case_id = ((opened or {}).get("output") or {}).get("id")
    if not case_id:
        raise ValueError(f"run {run_id} has no case")
    t = intel_triggers.c
    with db.read() as conn:
        detected = conn.execute(
            select(t.time)
            .where(
                t.tenant_id == tenant_id,
                t.key.like(f"credential-leak:{username}:%"),
                t.time <= int(suspend["finished"]),
            )
            .order_by(t.time.desc())
            .limit(1)
        ).scalar()
    if detected is None:
        raise ValueError(f"no credential-leak trigger recorded for {username}")
    seconds = round((int(suspend["finished"]) - int(detected)) / 1000, 3)
    with db.write() as conn:
        set_custom_field(TenantScope(conn, tenant_id), actor, case_id, FIELD, seconds)
    return seconds


# ------------------------------------------------------------------------------------ the demo


def _wait_status(db: Database, tenant_id: str, run_id: str, wanted: set[str], timeout_s: float) -> str:
    from bastion.respond.service import run_detail

    deadline = time.monotonic() + timeout_s
    status = ""
    while time.monotonic() < deadline:
        status = str(run_detail(db, tenant_id, run_id)["status"])
        if status in wanted:
            return status
        if status in ("succeeded", "failed", "cancelled"):
            break
        time.sleep(0.1)
    raise RuntimeError(f"run {run_id} is {status}, not {' or '.join(sorted(wanted))} (`bastion runs show`)")


def _tenant(db: Database, name: str) -> str:
    from bastion.model import Role
    from bastion.store import DuplicateError, TenantRepository
    from bastion.tenancy.service import TenancyError, add_user, create_tenant

    with db.read() as conn:
        tenant = TenantRepository(conn).by_name(name)
    if tenant is None:
        tenant, _ = create_tenant(db, name, actor="demo")
    with suppress(TenancyError, DuplicateError):  # already there from an earlier demo
        add_user(db, name, "soc-analyst", Role.APPROVER, email="soc-analyst@example.org", actor="demo")
    return str(tenant.id)


def run_demo(db: Database, tenant_name: str = "demo", *, timeout_s: float = 120) -> dict[str, Any]:
    """Play the scenario once and return ``{case_id, suspended, approval_id, detection_to_containment_s}``."""
    from bastion.config import load_settings
    from bastion.connectors.registry import _load_builtins
    from bastion.intel.service import load_file
    from bastion.pipeline import connect_response
    from bastion.respond.approvals import map_slack_user, set_resolution_listener
    from bastion.respond.approvals import service as approvals
    from bastion.respond.approvals.slack import parse_interaction, verify_signature
    from bastion.respond.runtime import Executor
    from bastion.store.workflows import WorkflowRepository

    _load_builtins()
    db.migrate()
    tenant_id = _tenant(db, tenant_name)
    token, signing = f"xoxb-demo-{secrets_mod.token_hex(8)}", secrets_mod.token_hex(16)
    victim = "dana"
    slack = LocalSlack(token).start()
    settings = load_settings(
        database_url=db.url,
        slack_bot_token=token,
        slack_signing_secret=signing,
        slack_api_url=slack.url,
        slack_channel="#soc-approvals",
    )
    executor: Executor | None = None
    run_id = ""
    try:
        with tempfile.TemporaryDirectory(prefix="bastion-demo-") as tmp, local_directory(Path(tmp)) as d:
            # A new address each demo: the intel loader raises triggers for indicators it has not seen.
            mail = f"{victim}.{secrets_mod.token_hex(3)}@example.org"
            people = {victim: secrets_mod.token_urlsafe(12), "erin": secrets_mod.token_urlsafe(12)}
            seed_directory(d, people, {victim: mail})
            prepare_tenant(db, tenant_id, d, slack_url=slack.url, slack_token=token, actor="demo")
            map_slack_user(db, tenant_id, "U0DEMOSOC", "soc-analyst", actor="demo")
            approvals.configure(settings)
            executor = Executor(db, kind="demo")
            executor.launch()
            connect_response(db)
            feed = Path(tmp) / "leak.csv"
            breach = f"combo-list-{int(time.time())}"  # a new breach each demo: each is a new trigger
            feed.write_text(f"email,source,breach_date\n{mail},{breach},2026-11-01\n")
            summary = load_file(db, tenant_id, feed, "credential-leak", actor="demo", source="demo-leak-feed")
            if summary.triggers != 1:
                raise RuntimeError(f"the leak record raised {summary.triggers} triggers, not 1")
            with db.read() as conn:
                runs = [
                    r
                    for r in WorkflowRepository(conn, tenant_id).list_runs()
                    if r["workflow_id"] == WORKFLOW_ID and (r["inputs"] or {}).get("username") == victim
                ]
            run_id = str(max(runs, key=lambda r: r["created"])["run_id"])
            _wait_status(db, tenant_id, run_id, {"waiting_approval"}, timeout_s)
            approval_id = f"{run_id}:revoke"
            seconds = record_detection_to_containment(db, tenant_id, run_id, actor="demo")
            body, headers = signed_interaction(slack, approval_id, "U0DEMOSOC", signing)
            verify_signature(
                settings, body, headers["X-Slack-Request-Timestamp"], headers["X-Slack-Signature"]
            )
            approvals.decide_from_slack(db, parse_interaction(body), settings=settings)
            _wait_status(db, tenant_id, run_id, {"succeeded", "failed"}, timeout_s)
            with db.read() as conn:
                run = WorkflowRepository(conn, tenant_id).get_run(run_id) or {}
    except BaseException:
        if run_id:  # a run parked on its approval would hold the executor's shutdown
            from bastion.respond.service import cancel_run

            with suppress(ValueError):
                cancel_run(db, tenant_id, run_id, actor="demo")
        raise
    finally:
        if executor is not None:
            executor.shutdown()
        approvals.configure(None)
        set_resolution_listener(None)
        slack.stop()
    outputs = run.get("outputs") or {}
    return {
        "case_id": outputs.get("case_id") or run.get("case_id"),
        "suspended": bool(outputs.get("suspended")),
        "approval_id": approval_id,
        "detection_to_containment_s": seconds,
    }
