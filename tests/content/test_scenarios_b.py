"""Scenario tests for six shipped response workflows (suspicious OAuth consent, exposed vulnerable asset,
lookalike domain, data exfiltration, insider offboarding, password spray).

Each workflow file is validated and stored as shipped, started the way the product starts it (an alert
through ``fire_hooks`` with the pipeline's own alert payload, an intel feed through the preemptive
matcher and the binding ``connect_response`` installs, a webhook call with its token) and run by a DBOS
executor in this process against the connector tests' local vendor doubles (Entra ID, Okta, Jira,
ServiceNow, Slack, Teams, PagerDuty, SentinelOne over HTTP; a real slapd), the EDL store and the
DNS block files. Approvals are decided through the approvals service. The tests assert what each peer
received and what Bastion recorded: runs, cases, change records and audit entries.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from ldap3 import Connection, Server

from bastion.config import Settings
from bastion.connectors import settings as connector_settings
from bastion.connectors.edl import create_list, list_entries
from bastion.enrich.inventory import parse_assets, store_assets
from bastion.intel.feeds import parse_bytes
from bastion.intel.feeds.base import ParseResult, make_indicator
from bastion.intel.service import ingest_parsed, update_profile
from bastion.intel.triggers import unsubscribe
from bastion.model import Alert, Observable, ObservableType, Role, Severity
from bastion.model.intel import IndicatorType
from bastion.respond import engine, service
from bastion.respond.approvals import Approval, decide, list_approvals
from bastion.respond.runtime import Executor
from bastion.respond.validate import parse_workflow
from bastion.store import Database, TenantScope
from bastion.store.workflows import WorkflowRepository
from bastion.tenancy.connections import set_connection
from bastion.tenancy.secrets import set_secret
from bastion.tenancy.service import add_user, create_tenant
from tests.connectors import edr_servers, saas_servers, vendor_servers
from tests.connectors.edr_servers import SentinelOneDouble
from tests.connectors.ldap_server import ADMIN, ADMIN_PASSWORD, SUFFIX, can_bind, seed_people
from tests.connectors.ldap_server import PASSWORDS as LDAP_PASSWORDS
from tests.connectors.recorded import changes as recorded_changes
from tests.connectors.saas_servers import (
    JiraDouble,
    PagerDutyDouble,
    ServiceNowDouble,
    SlackDouble,
    TeamsDouble,
)
from tests.connectors.vendor_servers import EntraDouble, OktaDouble
from tests.enrich.slapd import slapd

WORKFLOWS = Path(__file__).resolve().parents[2] / "src" / "bastion" / "content" / "workflows"
MINE = (
    "suspicious-oauth-consent",
    "exposed-vulnerable-asset",
    "lookalike-domain",
    "data-exfiltration",
    "insider-offboarding",
    "password-spray",
)
AGENT = "1873645301928374650"
ADMINS = f"cn=admins,ou=groups,{SUFFIX}"


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    from bastion.pipeline import _RESPONDING, _intel_hooks, connect_response

    tmp = tmp_path_factory.mktemp("scenarios-b")
    with ExitStack() as stack:
        entra = EntraDouble()
        stack.enter_context(vendor_servers.serve(entra))
        okta = OktaDouble()
        stack.enter_context(vendor_servers.serve(okta))
        jira = JiraDouble()
        stack.enter_context(saas_servers.serve(jira))
        snow = ServiceNowDouble()
        stack.enter_context(saas_servers.serve(snow))
        slack = SlackDouble()
        stack.enter_context(saas_servers.serve(slack))
        teams = TeamsDouble()
        stack.enter_context(saas_servers.serve(teams))
        pager = PagerDutyDouble()
        stack.enter_context(saas_servers.serve(pager))
        s1 = SentinelOneDouble()
        s1.add(AGENT, "WS-042")
        stack.enter_context(edr_servers.serve(s1))
        ldap_url = stack.enter_context(slapd(tmp))
        seed_people(ldap_url, ppolicy=False)
        admins = Connection(Server(ldap_url), user=ADMIN, password=ADMIN_PASSWORD, auto_bind=True)
        try:  # a privileged group keeps other members when the leaver is removed
            assert admins.modify(ADMINS, {"member": [("MODIFY_ADD", [f"uid=bob,ou=people,{SUFFIX}"])]})
        finally:
            admins.unbind()

        db = Database(f"sqlite:///{tmp / 'bastion.db'}")
        db.migrate()
        tenant, _ = create_tenant(db, "acme", actor="test")
        tid = tenant.id
        add_user(db, "acme", "alice", Role.APPROVER)
        engine.configure(db)
        private = {"allow_private": True}
        connections: dict[str, dict[str, Any]] = {
            "entra": {
                "base_url": entra.url,
                **private,
                "settings": {"tenant": entra.tenant, "client_id": entra.client_id, "login_url": entra.url},
            },
            "okta": {"base_url": okta.url, **private},
            "jira": {"base_url": jira.url, **private},
            "servicenow": {"base_url": snow.url, **private},
            "slack": {"base_url": f"{slack.url}/api/", **private},
            "teams": dict(private),
            "pagerduty": {"base_url": pager.url, **private},
            "sentinelone": {"base_url": s1.base, **private},
            "ldap": {
                "base_url": ldap_url,
                **private,
                "settings": {"base_dn": f"ou=people,{SUFFIX}", "group_base": f"ou=groups,{SUFFIX}"},
            },
            "dns": {"settings": {"response": "always_nxdomain"}},
        }
        for name, config in connections.items():
            set_connection(db, tid, name, config, actor="test")
        secrets = {
            "entra_client_secret": entra.client_secret,
            "okta_api_token": okta.token,
            "jira_email": jira.email,
            "jira_api_token": jira.api_token,
            "servicenow_username": snow.username,
            "servicenow_password": snow.password,
            "slack_bot_token": slack.token,
            "teams_webhook_url": teams.url + teams.path,
            "pagerduty_routing_key": pager.routing_key,
            "sentinelone_api_token": s1.token,
            "ldap_bind_dn": ADMIN,
            "ldap_bind_password": ADMIN_PASSWORD,
        }
        for name, value in secrets.items():
            set_secret(db, tid, name, value, actor="test")
        for blocklist in ("blocked-ips", "blocked-domains"):
            create_list(db, tid, blocklist, actor="test")
        dns_dir = tmp / "dns-blocks"
        dns_dir.mkdir()
        # the operator's resolver integration, without a reload (no resolver runs here)
        connector_settings.configure(Settings(database_url="sqlite://", dns_blocks_dir=str(dns_dir)))
        tokens = {}
        for wid in MINE:
            added = service.add_workflow(db, tid, (WORKFLOWS / f"{wid}.yml").read_text(), actor="test")
            assert added["workflow_id"] == wid and added["version"] == 1
            if "webhook_token" in added:
                tokens[wid] = added["webhook_token"]
        connect_response(db)
        executor = Executor(db)
        executor.launch()
        try:
            yield {
                "db": db,
                "tenant": tid,
                "tokens": tokens,
                "entra": entra,
                "okta": okta,
                "jira": jira,
                "snow": snow,
                "slack": slack,
                "teams": teams,
                "pager": pager,
                "s1": s1,
                "ldap": ldap_url,
                "dns_dir": dns_dir,
            }
        finally:
            executor.shutdown()
            unsubscribe(_intel_hooks)
            _RESPONDING.discard(db)
            connector_settings.configure(None)
            db.dispose()


# ------------------------------------------------------------------------------------------ helpers


def drive(env: dict[str, Any], rid: str, deny: tuple[str, ...] = ()) -> tuple[dict[str, Any], list[Approval]]:
    """Run ``rid`` to its end, deciding every approval it asks for as alice would (deny the steps named
    in ``deny``, approve the rest). Returns the run's detail and the approvals, in the order asked."""
    db, tid = env["db"], env["tenant"]
    asked: list[Approval] = []
    for _ in range(400):
        run = service.wait_run(db, tid, rid, timeout_s=10)
        if run["status"] not in ("running", "waiting_approval"):
            return service.run_detail(db, tid, rid), asked
        pending = [a for a in list_approvals(db, tid) if a.run_id == rid]
        for a in pending:
            verdict = "deny" if a.step_id in deny else "approve"
            decide(db, tid, a.id, user="alice", decision=verdict, comment="scenario", channel="cli")
            asked.append(a)
        if not pending:
            threading.Event().wait(0.05)
    detail = service.run_detail(db, tid, rid)
    mine = [(a.step_id, a.status) for a in list_approvals(db, tid, status=None) if a.run_id == rid]
    keys = [(x["key"], x["status"]) for x in detail["steps"]]
    raise AssertionError(f"run {rid} did not finish: {detail['status']} {keys} {mine}")


def only_run(env: dict[str, Any], started: list[str], workflow_id: str) -> str:
    """The one run ``started`` holds, checked to be of ``workflow_id`` (no other workflow matched)."""
    with env["db"].read() as conn:
        repo = WorkflowRepository(conn, env["tenant"])
        found = [repo.get_run(r) for r in started]
    assert [r["workflow_id"] for r in found if r] == [workflow_id], found
    return started[0]


def store_alert(env: dict[str, Any], alert: Alert) -> dict[str, Any]:
    """Store ``alert`` and return the hook payload the pipeline builds for it."""
    from bastion.pipeline import _alert_payload

    with env["db"].write() as conn:
        stored, _ = TenantScope(conn, env["tenant"]).alerts.insert(alert)
    return _alert_payload(stored)


def fire_alert(env: dict[str, Any], alert: Alert) -> tuple[str, str]:
    payload = store_alert(env, alert)
    started = service.fire_hooks(env["db"], env["tenant"], "alert", payload, actor="pipeline")
    assert len(started) == 1, started
    return started[0], str(payload["alert_id"])


def case_of(env: dict[str, Any], case_id: str) -> dict[str, Any]:
    with env["db"].read() as conn:
        cases = TenantScope(conn, env["tenant"]).cases
        case = cases.get(case_id)
        assert case is not None
        return {
            "case": case,
            "alerts": cases.alert_ids(case_id),
            "observables": [(o.type.value, o.value) for o in cases.observables(case_id)],
        }


def audited(env: dict[str, Any], action: str) -> list[dict[str, Any]]:
    with env["db"].read() as conn:
        entries = TenantScope(conn, env["tenant"]).audit.entries()
        return [{"target_id": e.target_id, "actor": e.actor, **e.data} for e in entries if e.action == action]


def calls_in(env: dict[str, Any], rid: str) -> list[str]:
    """The actions the audit log says this run called, in order."""
    return [e["action"] for e in audited(env, "action.call") if e["target_id"] == rid and e["ok"]]


def steps(detail: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["key"]: s for s in detail["steps"]}


# ---------------------------------------------------------------------------------------- the files


@pytest.mark.parametrize("wid", MINE)
def test_each_workflow_is_valid_typed_and_documented(wid: str) -> None:
    workflow = parse_workflow((WORKFLOWS / f"{wid}.yml").read_text())
    assert workflow.id == wid and workflow.description.strip() and workflow.outputs
    assert workflow.triggers and workflow.inputs
    assert all(spec.description for spec in workflow.inputs.values()), wid
    actions = {s.action for s in workflow.all_steps()}
    assert "cases.create" in actions


# --------------------------------------------------------------------------------------- scenarios


def test_suspicious_oauth_consent(env: dict[str, Any]) -> None:
    entra: EntraDouble = env["entra"]
    jira: JiraDouble = env["jira"]
    user = entra.add_user("dana.fox@acme.example.org")
    before = user["signInSessionsValidFromDateTime"]
    # a consent alert from another source, or a non-consent Microsoft alert, starts nothing here
    other = store_alert(
        env, Alert(title="Impossible travel", severity=Severity.HIGH, time=1, source="microsoft")
    )
    assert service.fire_hooks(env["db"], env["tenant"], "alert", other) == []
    rid, alert_id = fire_alert(
        env,
        Alert(
            title="Suspicious OAuth app consent: 'PDF Viewer Pro' granted Mail.ReadWrite",
            severity=Severity.HIGH,
            time=1_764_500_000_000,
            source="microsoft",
            observables=[Observable(ObservableType.EMAIL, "dana.fox@acme.example.org")],
        ),
    )
    detail, asked = drive(env, rid)
    assert detail["status"] == "succeeded", detail
    # the revocation asked its own approval; confirm-compromised (high) asked the tenant policy's
    assert [(a.step_id, a.action) for a in asked] == [
        ("revoke", "entra.revoke_sessions"),
        ("compromised", "entra.confirm_compromised"),
    ]
    assert user["signInSessionsValidFromDateTime"] != before
    assert entra.risky == {user["id"]: "high"}
    [issue] = [i for i in jira.issues.values() if "dana.fox" in i["fields"]["summary"]]
    assert issue["fields"]["project"] == {"key": "SEC"} and issue["fields"]["priority"] == {"name": "High"}
    assert issue["fields"]["labels"] == ["bastion", "oauth-consent"]
    out = detail["outputs"]
    assert out["user"] == "dana.fox@acme.example.org" and out["confirmed_compromised"] is True
    assert out["ticket"] == issue["key"] and out["sessions_revoked"] is True
    case = case_of(env, out["case_id"])
    assert case["alerts"] == [alert_id] and case["case"].severity == Severity.HIGH
    assert issue["key"] in (case["case"].description or "")
    assert {"entra.revoke_sessions", "entra.confirm_compromised", "jira.create_issue", "cases.create"} <= set(
        calls_in(env, rid)
    )


def test_exposed_vulnerable_asset_from_a_cve_feed(env: dict[str, Any]) -> None:
    snow: ServiceNowDouble = env["snow"]
    teams: TeamsDouble = env["teams"]
    db, tid = env["db"], env["tenant"]
    assets, problems = parse_assets(
        b"hostname,ips,owner,criticality,software\nweb07,10.0.0.7,erin,critical,openssl@3.0.1;nginx@1.24.0\n"
    )
    assert not problems
    store_assets(db, tid, assets, actor="test")
    cve = make_indicator(IndicatorType.CVE, "CVE-2099-4242", "nvd", details={"affects": "openssl@3.0.1"})
    summary = ingest_parsed(db, tid, ParseResult(indicators=[cve]), actor="test")
    assert summary.triggers == 1
    with db.read() as conn:
        runs = [
            r
            for r in WorkflowRepository(conn, tid).list_runs()
            if r["workflow_id"] == "exposed-vulnerable-asset"
        ]
    assert len(runs) == 1 and runs[0]["trigger"]["type"] == "intel"
    assert runs[0]["inputs"]["hostname"] == "web07" and runs[0]["inputs"]["indicator"] == "CVE-2099-4242"
    detail, asked = drive(env, runs[0]["run_id"])
    assert detail["status"] == "succeeded", detail
    assert asked == []  # nothing high-impact: the owner patches
    [incident] = [i for i in snow.incidents.values() if "web07" in i["short_description"]]
    assert incident["short_description"].startswith("CVE-2099-4242 affects web07")
    assert incident["urgency"] == "2" and incident["assignment_group"] == "Infrastructure Operations"
    assert "openssl" in incident["description"]
    out = detail["outputs"]
    assert out["incident"] == incident["number"] and out["incident_sys_id"] == incident["sys_id"]
    case = case_of(env, out["case_id"])
    assert ("host", "web07") in case["observables"]
    assert incident["number"] in (case["case"].description or "")
    card = teams.cards[-1]
    assert "web07" in orjson_text(card) and incident["number"] in orjson_text(card)


def orjson_text(doc: Any) -> str:
    import orjson

    return orjson.dumps(doc).decode()


def test_lookalike_domain_from_a_domain_feed(env: dict[str, Any]) -> None:
    slack: SlackDouble = env["slack"]
    db, tid = env["db"], env["tenant"]
    update_profile(db, tid, {"owned_domains": ["acmebank.com"]}, actor="test")
    summary = ingest_parsed(
        db, tid, parse_bytes("list", b"acmebank-login.com\nwikipedia.org\n"), actor="test"
    )
    assert summary.triggers == 1
    with db.read() as conn:
        runs = [
            r for r in WorkflowRepository(conn, tid).list_runs() if r["workflow_id"] == "lookalike-domain"
        ]
    assert len(runs) == 1 and runs[0]["inputs"]["domain"] == "acmebank-login.com"
    rid = runs[0]["run_id"]
    detail, asked = drive(env, rid)
    assert detail["status"] == "succeeded", detail
    # both blocks are high impact: the default tenant policy asks an approver for each
    assert [a.action for a in asked] == ["dns.block_domain", "edl.add"]
    zone = (env["dns_dir"] / f"{tid}.local-zone.conf").read_text()
    assert 'local-zone: "acmebank-login.com." always_nxdomain' in zone
    with db.read() as conn:
        entries = list_entries(conn, tid, "blocked-domains")
    assert [e["value"] for e in entries] == ["acmebank-login.com"]
    assert entries[0]["expires"] is not None
    out = detail["outputs"]
    rows = {r["id"]: r for r in recorded_changes(db, tid)}
    assert rows[out["dns_change_id"]]["undo_action"] == "dns.unblock_domain"
    assert rows[out["edl_change_id"]]["undo_inputs"] == {
        "list": "blocked-domains",
        "value": "acmebank-login.com",
    }
    case = case_of(env, out["case_id"])
    assert ("domain", "acmebank-login.com") in case["observables"]
    assert "acmebank-login[.]com" in case["case"].title
    posted = slack.posted[-1]
    assert posted["channel"] == "C024BE91L" and "acmebank-login[.]com" in posted["text"]


def test_data_exfiltration_blocks_isolates_and_pages(env: dict[str, Any]) -> None:
    s1: SentinelOneDouble = env["s1"]
    pager: PagerDutyDouble = env["pager"]
    db, tid = env["db"], env["tenant"]
    rid, alert_id = fire_alert(
        env,
        Alert(
            title="Large upload to rare external destination",
            severity=Severity.HIGH,
            time=1_764_500_100_000,
            source="zeek",
            techniques=["T1048"],
            observables=[
                Observable(ObservableType.HOST, "WS-042"),
                Observable(ObservableType.IPV4, "203.0.113.77"),
            ],
        ),
    )
    detail, asked = drive(env, rid)
    assert detail["status"] == "succeeded", detail
    assert [(a.step_id, a.action) for a in asked] == [
        ("block", "edl.add"),
        ("disconnect", "sentinelone.disconnect_agent"),
    ]
    assert asked[1].escalate_to == ["admin"]
    assert s1.agents[AGENT]["networkStatus"] in ("disconnecting", "disconnected")
    assert [r["path"] for r in s1.seen if r["method"] == "POST"] == [
        "/web/api/v2.1/agents/actions/disconnect"
    ]
    with db.read() as conn:
        assert [e["value"] for e in list_entries(conn, tid, "blocked-ips")] == ["203.0.113.77"]
    out = detail["outputs"]
    assert out["agent_id"] == AGENT and out["destination_ip"] == "203.0.113.77"
    rows = {r["id"]: r for r in recorded_changes(db, tid)}
    assert rows[out["disconnect_change_id"]]["undo_action"] == "sentinelone.reconnect_agent"
    assert rows[out["block_change_id"]]["action"] == "edl.add"
    case = case_of(env, out["case_id"])
    assert case["alerts"] == [alert_id]
    assert out["disconnect_change_id"] in (case["case"].description or "")
    [event] = [e for e in pager.events if e["payload"]["source"] == "WS-042"]
    assert event["event_action"] == "trigger" and event["payload"]["severity"] == "error"
    assert event["payload"]["custom_details"]["destination"] == "203.0.113.77"
    assert out["incident_key"] == event["dedup_key"] or event.get("dedup_key") is None


def test_data_exfiltration_denied_disconnect_still_opens_the_case(env: dict[str, Any]) -> None:
    s1: SentinelOneDouble = env["s1"]
    s1.add("99887766", "WS-099")
    rid, _ = fire_alert(
        env,
        Alert(
            title="Possible data exfiltration over DNS",
            severity=Severity.CRITICAL,
            time=1_764_500_200_000,
            source="zeek",
            observables=[
                Observable(ObservableType.HOST, "WS-099"),
                Observable(ObservableType.IPV4, "198.51.100.9"),
            ],
        ),
    )
    detail, asked = drive(env, rid, deny=("disconnect",))
    assert [a.step_id for a in asked] == ["block", "disconnect"]
    assert detail["status"] == "succeeded", detail
    assert steps(detail)["disconnect"]["status"] == "denied"
    assert s1.agents["99887766"]["networkStatus"] == "connected"
    out = detail["outputs"]
    assert out["disconnect_change_id"] is None and out["block_change_id"]
    assert "not done" in (case_of(env, out["case_id"])["case"].description or "")
    [page] = [e for e in env["pager"].events if e["payload"]["source"] == "WS-099"]
    assert page["payload"]["severity"] == "critical"


def test_insider_offboarding_from_the_webhook(env: dict[str, Any]) -> None:
    okta: OktaDouble = env["okta"]
    snow: ServiceNowDouble = env["snow"]
    db, tid = env["db"], env["tenant"]
    ok_user = okta.add_user("alice@example.org")
    assert can_bind(env["ldap"], f"uid=alice,ou=people,{SUFFIX}", LDAP_PASSWORDS["alice"])
    with pytest.raises(PermissionError):
        service.trigger_webhook(db, "insider-offboarding", "bwh_wrong", {"inputs": {"username": "alice"}})
    _, rid = service.trigger_webhook(
        db,
        "insider-offboarding",
        env["tokens"]["insider-offboarding"],
        {"inputs": {"username": "alice", "email": "alice@example.org", "reason": "dismissal, effective now"}},
    )
    detail, asked = drive(env, rid)
    assert detail["status"] == "succeeded", (detail["error"], detail["steps"])
    assert [a.step_id for a in asked] == ["disable_ldap", "suspend_okta", "sessions", "privileges"]
    assert not can_bind(env["ldap"], f"uid=alice,ou=people,{SUFFIX}", LDAP_PASSWORDS["alice"])
    assert ok_user["status"] == "SUSPENDED" and okta.sessions[ok_user["id"]] == 0
    deleted = [s for s in okta.seen if s.method == "DELETE"]
    assert [s.path for s in deleted] == ["/api/v1/users/alice@example.org/sessions"]
    assert deleted[0].query.get("oauthTokens") == ["true"]
    conn = Connection(Server(env["ldap"]), user=ADMIN, password=ADMIN_PASSWORD, auto_bind=True)
    try:
        conn.search(ADMINS, "(objectClass=*)", attributes=["member"])
        members = [str(m).lower() for m in conn.entries[0].entry_attributes_as_dict.get("member", [])]
    finally:
        conn.unbind()
    assert f"uid=alice,ou=people,{SUFFIX}".lower() not in members
    out = detail["outputs"]
    rows = {r["id"]: r for r in recorded_changes(db, tid)}
    assert rows[out["disable_change_id"]]["undo_action"] == "ldap.enable_user"
    assert rows[out["okta_change_id"]]["undo_action"] == "okta.unsuspend_user"
    assert rows[out["group_change_id"]]["undo_inputs"] == {"username": "alice", "group": ADMINS}
    [incident] = [i for i in snow.incidents.values() if "Offboarding: alice" in i["short_description"]]
    assert incident["urgency"] == "1" and "dismissal" in incident["description"]
    assert out["incident"] == incident["number"]
    case = case_of(env, out["case_id"])
    assert ("user", "alice") in case["observables"]
    started = [e for e in audited(env, "run.start") if e["target_id"] == rid]
    assert started and started[0]["actor"] == "webhook"


def test_password_spray_resets_each_users_factors(env: dict[str, Any]) -> None:
    okta: OktaDouble = env["okta"]
    db, tid = env["db"], env["tenant"]
    users = [okta.add_user(f"{n}@acme.example.org") for n in ("gus.hale", "ivy.lane")]
    rid, alert_id = fire_alert(
        env,
        Alert(
            title="Password spray against Okta",
            severity=Severity.MEDIUM,
            time=1_764_500_300_000,
            source="okta",
            techniques=["T1110.003"],
            observables=[
                Observable(ObservableType.IPV4, "192.0.2.200"),
                Observable(ObservableType.EMAIL, "gus.hale@acme.example.org"),
                Observable(ObservableType.EMAIL, "ivy.lane@acme.example.org"),
            ],
        ),
    )
    detail, asked = drive(env, rid)
    assert detail["status"] == "succeeded", detail
    assert sorted(a.action for a in asked) == ["edl.add", "okta.reset_factors", "okta.reset_factors"]
    assert all(okta.factors[u["id"]] == [] for u in users)
    resets = [s.path for s in okta.seen if s.path.endswith("/lifecycle/reset_factors")]
    assert sorted(resets) == [
        f"/api/v1/users/{login}/lifecycle/reset_factors"
        for login in ("gus.hale@acme.example.org", "ivy.lane@acme.example.org")
    ]
    with db.read() as conn:
        assert "192.0.2.200" in [e["value"] for e in list_entries(conn, tid, "blocked-ips")]
    out = detail["outputs"]
    assert sorted(out["reset"]) == ["gus.hale@acme.example.org", "ivy.lane@acme.example.org"]
    case = case_of(env, out["case_id"])
    assert case["alerts"] == [alert_id] and "2 account(s)" in case["case"].title
    assert "ivy.lane@acme.example.org" in (case["case"].description or "")
