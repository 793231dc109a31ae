"""The first six shipped workflows run end to end in this process (a real SQLite store, DBOS, the engine)
against the local doubles the connector tests built: Defender for Endpoint, CrowdStrike Falcon, Entra ID,
Slack and PagerDuty over real sockets, a real slapd, a real aiosmtpd, the EDL store and the DNS block
files. Alert-triggered workflows are started the way the pipeline starts them (``fire_hooks`` with an
alert payload, every library workflow installed, so each test also shows that the other workflows'
conditions do not fire); approvals are decided through the approvals service. Each test asserts what the
vendor received and what Bastion recorded (case, comments, observables, changes, audit)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from email import message_from_bytes
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiosmtpd.controller import Controller

from bastion.config import Settings
from bastion.connectors import settings as connector_settings
from bastion.connectors.dns import read_blocks
from bastion.connectors.edl import create_list, list_entries
from bastion.connectors.vendor_http import clear_token_cache
from bastion.content.library import install, shipped_names
from bastion.model import Role
from bastion.respond import service
from bastion.respond.approvals import decide, list_approvals
from bastion.respond.runtime import Executor
from bastion.store import Database, TenantScope
from bastion.store.workflows import now_ms
from bastion.tenancy.connections import set_connection
from bastion.tenancy.secrets import set_secret
from bastion.tenancy.service import add_user, create_tenant
from tests.conftest import free_port
from tests.connectors import edr_servers, saas_servers, vendor_servers
from tests.connectors.ldap_server import (
    ADMIN,
    ADMIN_PASSWORD,
    PASSWORDS,
    SUFFIX,
    can_bind,
    ppolicy_slapd,
    seed_people,
)
from tests.connectors.recorded import changes as recorded_changes

MACHINE = "1e5bc9d7e413ddd7902c2932e418702b84d0cc07"
FALCON_HOST = "fin-ws-07"
FALCON_DEVICE = "4f9a1c2e8b7d4e6f9a0b1c2d3e4f5a6b"
BOB = f"uid=bob,ou=people,{SUFFIX}"
FINISHED = ("succeeded", "failed", "cancelled")


class Inbox:
    """An aiosmtpd handler keeping every message it is given."""

    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


def _store_ldap_connection(db: Database, tenant_id: str, url: str) -> None:
    """``set_connection`` accepts ldap:// base URLs; written through it like any other connection."""
    set_connection(
        db,
        tenant_id,
        "ldap",
        {
            "base_url": url,
            "allow_private": True,
            "settings": {"base_dn": f"ou=people,{SUFFIX}", "group_base": f"ou=groups,{SUFFIX}"},
        },
        actor="test",
    )
    set_secret(db, tenant_id, "ldap_bind_dn", ADMIN, actor="test")
    set_secret(db, tenant_id, "ldap_bind_password", ADMIN_PASSWORD, actor="test")


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp: Path = tmp_path_factory.mktemp("scenarios-a")
    defender = edr_servers.DefenderDouble()
    defender.add(MACHINE, "ws-042.contoso.com")
    falcon = edr_servers.CrowdStrikeDouble()
    falcon.add(FALCON_DEVICE, FALCON_HOST)
    falcon.add("77aa00bb11cc22dd33ee44ff55aa66bb", "srv-web-01")
    entra = vendor_servers.EntraDouble()
    slack = saas_servers.SlackDouble()
    pagerduty = saas_servers.PagerDutyDouble()
    inbox = Inbox()
    smtp = Controller(inbox, hostname="127.0.0.1", port=free_port())
    smtp.start()
    dns_dir = tmp / "dns"
    dns_dir.mkdir()
    connector_settings.configure(
        Settings.model_validate(
            {
                "database_url": "sqlite://",
                "smtp_host": "127.0.0.1",
                "smtp_port": smtp.port,
                "smtp_from": "soc@acme.example",
                "dns_blocks_dir": str(dns_dir),
            }
        )
    )
    clear_token_cache()
    with (
        edr_servers.serve(defender),
        edr_servers.serve(falcon),
        vendor_servers.serve(entra),
        saas_servers.serve(slack),
        saas_servers.serve(pagerduty),
        ppolicy_slapd(tmp) as ldap_url,
    ):
        seed_people(ldap_url, ppolicy=True)
        db = Database(f"sqlite:///{tmp / 'bastion.db'}")
        db.migrate()
        tenant, _ = create_tenant(db, "acme", actor="test")
        tid = tenant.id
        add_user(db, "acme", "alice", Role.APPROVER)
        private = {"allow_private": True}
        set_connection(
            db,
            tid,
            "defender",
            {
                "base_url": defender.base,
                **private,
                "settings": {"azure_tenant_id": defender.azure_tenant, "login_url": defender.base},
            },
            actor="test",
        )
        set_connection(db, tid, "crowdstrike", {"base_url": falcon.base, **private}, actor="test")
        set_connection(
            db,
            tid,
            "entra",
            {
                "base_url": entra.url,
                **private,
                "settings": {"tenant": entra.tenant, "client_id": entra.client_id, "login_url": entra.url},
            },
            actor="test",
        )
        set_connection(db, tid, "slack", {"base_url": f"{slack.url}/api", **private}, actor="test")
        set_connection(db, tid, "pagerduty", {"base_url": pagerduty.url, **private}, actor="test")
        set_connection(db, tid, "dns", {"settings": {"response": "always_nxdomain"}}, actor="test")
        _store_ldap_connection(db, tid, ldap_url)
        for name, value in {
            "defender_client_id": defender.client_id,
            "defender_client_secret": defender.client_secret,
            "crowdstrike_client_id": falcon.client_id,
            "crowdstrike_client_secret": falcon.client_secret,
            "entra_client_secret": entra.client_secret,
            "slack_bot_token": slack.token,
            "pagerduty_routing_key": pagerduty.routing_key,
        }.items():
            set_secret(db, tid, name, value, actor="test")
        for name in ("phishing", "blocklist"):
            create_list(db, tid, name, actor="test")
        installed = install(db, tid, shipped_names(), actor="test")
        executor = Executor(db)
        executor.launch()
        yield {
            "db": db,
            "tenant": tid,
            "defender": defender,
            "falcon": falcon,
            "entra": entra,
            "slack": slack,
            "pagerduty": pagerduty,
            "inbox": inbox,
            "ldap": ldap_url,
            "dns": dns_dir,
            "installed": installed,
        }
        executor.shutdown()
        db.dispose()
    smtp.stop()
    connector_settings.configure(None)


def drive(env: dict[str, Any], run_id: str, *, approve: bool = True) -> tuple[dict[str, Any], list[Any]]:
    """Wait for the run to finish; alice decides each approval request of it as soon as it is pending.
    Returns the finished run (with steps) and the approvals decided, in order."""
    db, tid = env["db"], env["tenant"]
    decided: list[Any] = []
    detail: dict[str, Any] = {}
    for _ in range(1200):
        detail = service.run_detail(db, tid, run_id)
        if detail["status"] in FINISHED:
            return detail, decided
        done = {a.id for a in decided}
        for request in list_approvals(db, tid):
            if request.run_id != run_id or request.id in done:
                continue
            decided.append(request)
            decide(
                db,
                tid,
                request.id,
                user="alice",
                decision="approve" if approve else "deny",
                comment="scenario test",
                channel="web",
            )
        threading.Event().wait(0.05)
    raise AssertionError(f"run {run_id} did not finish: {detail.get('status')} {detail.get('error')}")


def fire_alert(env: dict[str, Any], payload: dict[str, Any], expect: str) -> str:
    """Start the workflows bound to an alert as the pipeline does; exactly ``expect`` must start."""
    base = {"alert_id": "", "severity": "high", "source": "siem", "rule_id": "r1", "rule_name": "rule"}
    started = service.fire_hooks(env["db"], env["tenant"], "alert", {**base, **payload}, actor="pipeline")
    assert len(started) == 1, started
    run = service.run_detail(env["db"], env["tenant"], started[0])
    assert run["workflow_id"] == expect and run["trigger"]["type"] == "alert"
    return started[0]


def case_of(env: dict[str, Any], case_id: str) -> Any:
    with env["db"].read() as conn:
        case = TenantScope(conn, env["tenant"]).cases.get(case_id)
    assert case is not None
    return case


def audit(env: dict[str, Any], run_id: str) -> list[tuple[str, str | None, bool | None]]:
    """(audit action, action id, ok) of the run's entries and its approvals' decisions, in order."""
    with env["db"].read() as conn:
        entries = list(TenantScope(conn, env["tenant"]).audit.entries())
    return [
        (e.action, e.data.get("action"), e.data.get("ok"))
        for e in entries
        if e.target_id == run_id or str(e.target_id or "").startswith(run_id + ":")
    ]


def called(env: dict[str, Any], run_id: str) -> list[str]:
    return [str(a) for kind, a, ok in audit(env, run_id) if kind == "action.call" and ok]


def steps(detail: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["key"]: s for s in detail["steps"]}


# ------------------------------------------------------------------------------------------- tests


def test_the_library_installs_once(env: dict[str, Any]) -> None:
    assert [r["workflow_id"] for r in env["installed"]] == shipped_names()
    again = install(env["db"], env["tenant"], ["brute-force"], actor="test")
    assert again == [{"workflow_id": "brute-force", "version": 1, "created": False}]


RAW = (
    "Return-Path: <bounce@mailer.evil-payments.com>\r\n"
    'From: "Billing" <billing@evil-payments.com>\r\n'
    "To: dana@acme.example\r\n"
    "Subject: Invoice overdue - action required\r\n"
    "\r\n"
    "Your account is suspended. Pay at hxxps://pay.evil-payments[.]com/login?id=42 today.\r\n"
    "Questions? See https://support.microsoft.com/help from 198.51.100.23.\r\n"
)


def test_phishing_report_blocks_the_sender_opens_a_case_and_answers_the_reporter(env: dict[str, Any]) -> None:
    db, tid = env["db"], env["tenant"]
    rid = service.start_run(
        db,
        tid,
        "phishing-report",
        None,
        {"reporter": "dana@acme.example", "raw_message": RAW},
        trigger={"type": "manual"},
        actor="user:dana",
    )
    detail, approvals = drive(env, rid)
    assert detail["status"] == "succeeded", detail.get("error")
    # edl.add is high impact: the tenant's default policy asked an approver for each block.
    assert sorted(a.action for a in approvals) == ["edl.add", "edl.add"], detail["outputs"]
    blocked = sorted(detail["outputs"]["blocked"])
    assert blocked == ["evil-payments.com", "pay.evil-payments.com"]  # not microsoft.com (trusted)
    with db.read() as conn:
        served = [e["value"] for e in list_entries(conn, tid, "phishing")]
    assert served == blocked
    case = case_of(env, detail["outputs"]["case_id"])
    assert case.title == "Phishing reported by dana@acme.example: Invoice overdue - action required"
    observed = {(o.type.value, o.value) for o in case.observables}
    assert {
        ("email", "billing@evil-payments.com"),
        ("url", "https://pay.evil-payments.com/login?id=42"),
        ("ipv4", "198.51.100.23"),
    } <= observed
    [reply] = [m for m in env["inbox"].messages if m["To"] == "dana@acme.example"]
    assert reply["Subject"].startswith("Re: Invoice overdue - action required [case #")
    body = reply.get_payload(decode=True).decode()
    assert "Blocked: evil-payments[.]com, pay[.]evil-payments[.]com." in body
    assert called(env, rid).count("edl.add") == 2
    assert {"cases.create", "cases.add_observable", "email.send"} <= set(called(env, rid))


def test_malware_endpoint_isolates_after_approval_and_collects_the_package(env: dict[str, Any]) -> None:
    defender = env["defender"]
    defender.seen.clear()
    rid = fire_alert(
        env,
        {
            "title": "Emotet dropper executed",
            "tags": ["malware"],
            "techniques": ["T1204"],
            "observables": [
                {"type": "host", "value": "ws-042.contoso.com"},
                {"type": "user", "value": "bob"},
            ],
        },
        "malware-endpoint",
    )
    parked = service.wait_run(env["db"], env["tenant"], rid, timeout_s=30)
    assert parked["status"] == "waiting_approval"
    assert defender.paths("POST")[-1:] != [f"/api/machines/{MACHINE}/isolate"]  # nothing before approval
    detail, approvals = drive(env, rid)
    assert detail["status"] == "succeeded", detail.get("error")
    assert [a.action for a in approvals] == ["defender.isolate_machine"]
    posted = [
        (r["path"], orjson.loads(r["body"]))
        for r in defender.seen
        if r["method"] == "POST" and "/api/" in r["path"]
    ]
    assert [p for p, _ in posted] == [
        f"/api/machines/{MACHINE}/isolate",
        f"/api/machines/{MACHINE}/collectInvestigationPackage",
    ]
    assert posted[0][1]["IsolationType"] == "Full" and "Emotet dropper executed" in posted[0][1]["Comment"]
    package = [a for a in defender.actions if a["type"] == "CollectInvestigationPackage"]
    assert detail["outputs"]["package_action"] == package[0]["id"]
    changes = [
        c for c in recorded_changes(env["db"], env["tenant"]) if c["action"] == "defender.isolate_machine"
    ]
    assert [c["id"] for c in changes] == [detail["outputs"]["change_id"]]
    assert changes[0]["undo_action"] == "defender.release_machine"
    case = case_of(env, detail["outputs"]["case_id"])
    assert case.title == "Malware on ws-042.contoso.com: Emotet dropper executed"
    assert detail["outputs"]["machine_id"] == MACHINE  # found by its DNS name in Defender
    assert any(package[0]["id"] in c.body and detail["outputs"]["change_id"] in c.body for c in case.comments)
    kinds = [k for k, _, _ in audit(env, rid)]
    assert kinds[0] == "run.start" and "approval.decide" in kinds, kinds


def test_brute_force_blocks_the_source_for_a_day_and_tells_slack(env: dict[str, Any]) -> None:
    slack = env["slack"]
    slack.posted.clear()
    rid = fire_alert(
        env,
        {
            "title": "500 failed logins on vpn-gw",
            "severity": "medium",
            "tags": ["auth"],
            "techniques": ["T1110"],
            "observables": [{"type": "ipv4", "value": "203.0.113.77"}, {"type": "user", "value": "admin"}],
        },
        "brute-force",
    )
    detail, approvals = drive(env, rid)
    assert detail["status"] == "succeeded", detail.get("error")
    assert [a.action for a in approvals] == ["edl.add"]  # by the tenant's policy for high impact
    with env["db"].read() as conn:
        [entry] = [e for e in list_entries(conn, env["tenant"], "blocklist") if e["value"] == "203.0.113.77"]
    assert entry["expires"] is not None
    assert 23.9 * 3600_000 < entry["expires"] - now_ms() <= 24 * 3600_000
    [post] = slack.posted
    assert post["channel"] == "C024BE91L" and "203.0.113.77" in post["text"] and "case #" in post["text"]
    case = case_of(env, detail["outputs"]["case_id"])
    assert case.severity.name.lower() == "medium" and "203.0.113.77" in case.title
    assert called(env, rid) == ["core.set", "edl.add", "cases.create", "slack.post_message"]


def test_impossible_travel_revokes_sessions_after_approval(env: dict[str, Any]) -> None:
    entra, slack = env["entra"], env["slack"]
    user = entra.add_user("erin.fox@acme.example")
    entra.seen.clear()
    slack.posted.clear()
    rid = fire_alert(
        env,
        {
            "title": "Sign-ins from Oslo and Lagos 20 minutes apart",
            "tags": ["impossible-travel", "identity"],
            "techniques": ["T1078"],
            "observables": [
                {"type": "user", "value": "erin.fox@acme.example"},
                {"type": "ipv4", "value": "198.51.100.4"},
                {"type": "ipv4", "value": "203.0.113.9"},
            ],
        },
        "impossible-travel",
    )
    service.wait_run(env["db"], env["tenant"], rid, timeout_s=30)
    assert not [s for s in entra.seen if s.path.endswith("/revokeSignInSessions")]  # parked first
    detail, approvals = drive(env, rid)
    assert detail["status"] == "succeeded", detail.get("error")
    assert [a.action for a in approvals] == ["entra.revoke_sessions"]
    revoked = [s for s in entra.seen if s.method == "POST" and s.path.endswith("/revokeSignInSessions")]
    assert [s.path for s in revoked] == [f"/v1.0/users/{user['id']}/revokeSignInSessions"]
    assert detail["outputs"] == {
        "case_id": detail["outputs"]["case_id"],
        "user_id": user["id"],
        "revoked": True,
    }
    case = case_of(env, detail["outputs"]["case_id"])
    assert case.title == "Impossible travel for erin.fox@acme.example"
    assert "198.51.100.4, 203.0.113.9" in (case.description or "")
    assert any("erin.fox@acme.example" in c.body for c in case.comments)
    assert "erin.fox@acme.example" in slack.posted[0]["text"]


def test_impossible_travel_denied_leaves_the_sessions_alone(env: dict[str, Any]) -> None:
    entra = env["entra"]
    entra.add_user("finn.gale@acme.example")
    entra.seen.clear()
    rid = fire_alert(
        env,
        {
            "title": "travel",
            "tags": ["impossible-travel"],
            "techniques": [],
            "observables": [{"type": "email", "value": "finn.gale@acme.example"}],
        },
        "impossible-travel",
    )
    detail, approvals = drive(env, rid, approve=False)
    assert detail["status"] == "failed" and len(approvals) == 1
    assert not [s for s in entra.seen if s.path.endswith("/revokeSignInSessions")]
    assert steps(detail)["case"]["status"] == "succeeded"  # the case is there for the analyst


def test_c2_beaconing_blocks_addresses_on_the_edl_and_domains_at_the_resolver(env: dict[str, Any]) -> None:
    rid = fire_alert(
        env,
        {
            "title": "Beacon every 60 s to a Cobalt Strike team server",
            "tags": ["c2"],
            "techniques": ["T1071.001"],
            "observables": [
                {"type": "host", "value": "ws-113"},
                {"type": "ipv4", "value": "192.0.2.200"},
                {"type": "ipv4", "value": "192.0.2.201"},
                {"type": "domain", "value": "Cdn-Update.Example.NET"},
            ],
        },
        "c2-beaconing",
    )
    detail, approvals = drive(env, rid)
    assert detail["status"] == "succeeded", detail.get("error")
    assert sorted(a.action for a in approvals) == ["dns.block_domain", "edl.add", "edl.add"]
    with env["db"].read() as conn:
        served = {e["value"]: e for e in list_entries(conn, env["tenant"], "blocklist")}
    assert {"192.0.2.200", "192.0.2.201"} <= set(served)
    assert 6.9 * 86400_000 < served["192.0.2.200"]["expires"] - now_ms() <= 7 * 86400_000
    zone = env["dns"] / f"{env['tenant']}.local-zone.conf"
    assert read_blocks({"local_zone_file": str(zone)}) == ["cdn-update.example.net"]
    assert 'local-zone: "cdn-update.example.net." always_nxdomain' in zone.read_text()
    recorded = sorted(c["action"] for c in recorded_changes(env["db"], env["tenant"]) if c["run_id"] == rid)
    assert recorded == ["dns.block_domain", "edl.add", "edl.add"]
    case = case_of(env, detail["outputs"]["case_id"])
    assert case.title == "C2 beaconing from ws-113: Beacon every 60 s to a Cobalt Strike team server"
    assert "cdn-update[.]example[.]net" in (case.description or "")


def test_ransomware_pages_contains_the_host_and_disables_the_user(env: dict[str, Any]) -> None:
    falcon, pagerduty = env["falcon"], env["pagerduty"]
    falcon.seen.clear()
    pagerduty.events.clear()
    assert can_bind(env["ldap"], BOB, PASSWORDS["bob"])
    rid = fire_alert(
        env,
        {
            "alert_id": "",
            "title": "Mass file encryption (.lockbit)",
            "severity": "critical",
            "tags": ["ransomware"],
            "techniques": ["T1486"],
            "observables": [{"type": "host", "value": FALCON_HOST}, {"type": "user", "value": "bob"}],
        },
        "ransomware-containment",
    )
    parked = service.wait_run(env["db"], env["tenant"], rid, timeout_s=30)
    assert parked["status"] == "waiting_approval"
    # Paged and the case opened before anyone decides; nothing contained yet.
    [event] = pagerduty.events
    assert event["event_action"] == "trigger" and event["payload"]["severity"] == "critical"
    assert event["payload"]["source"] == FALCON_HOST and event["dedup_key"] == f"bastion-{rid}"
    assert falcon.devices[FALCON_DEVICE]["status"] == "normal"
    detail, approvals = drive(env, rid)
    assert detail["status"] == "succeeded", detail.get("error")
    assert [a.action for a in approvals] == ["crowdstrike.contain_host", "ldap.disable_user"]
    assert all(a.escalate_to == ["admin"] for a in approvals)
    assert falcon.devices[FALCON_DEVICE]["status"] in ("containment_pending", "contained")
    assert falcon.devices["77aa00bb11cc22dd33ee44ff55aa66bb"]["status"] == "normal"
    contain = [r for r in falcon.seen if r["path"] == "/devices/entities/devices-actions/v2"]
    assert [r["query"]["action_name"] for r in contain] == [["contain"]]
    assert orjson.loads(contain[0]["body"]) == {"ids": [FALCON_DEVICE]}
    assert not can_bind(env["ldap"], BOB, PASSWORDS["bob"])
    recorded = {c["action"]: c for c in recorded_changes(env["db"], env["tenant"])}
    assert recorded["crowdstrike.contain_host"]["undo_action"] == "crowdstrike.lift_containment"
    assert recorded["ldap.disable_user"]["undo_action"] == "ldap.enable_user"
    case = case_of(env, detail["outputs"]["case_id"])
    assert case.severity.name.lower() == "critical"
    assert any(FALCON_DEVICE in c.body and "disabled: True" in c.body for c in case.comments)
    assert detail["outputs"]["dedup_key"] == f"bastion-{rid}"


def test_a_plain_alert_starts_none_of_them(env: dict[str, Any]) -> None:
    started = service.fire_hooks(
        env["db"],
        env["tenant"],
        "alert",
        {"title": "USB device connected", "tags": ["hygiene"], "techniques": ["T1200"], "observables": []},
    )
    assert started == []
