"""The compromised-credential response end to end (issue 7, item 4), on real peers over real sockets: a
real ``slapd`` (identities synced from it), a leaked-credential feed file loaded with the intel loader,
the shipped ``compromised-credential`` workflow run by the engine (DBOS, in this process), the local Slack
API server of the approval tests, and the real API server receiving SIGNED Slack interactions.
Approve completes the revocation (password reset); deny restores the account in slapd. Then the demo
command through the real CLI, and the directory sync seeing the locks ``ldap.disable_user`` sets."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import orjson
import pytest
from ldap3 import Connection, Server

import bastion.connectors.cases
import bastion.connectors.ldap
import bastion.connectors.okta
import bastion.connectors.slack
from bastion.cases.timeline import case_timeline
from bastion.demo.credential_leak import (
    FIELD,
    WORKFLOW_ID,
    LocalDirectory,
    prepare_tenant,
    record_detection_to_containment,
)
from bastion.enrich.ldap_sync import LdapConfig, fetch_identities
from bastion.intel.service import load_file
from bastion.model import Role
from bastion.pipeline import connect_response
from bastion.respond import service as runs
from bastion.respond.approvals import map_slack_user, set_resolution_listener
from bastion.respond.approvals import service as approvals
from bastion.respond.runtime import Executor
from bastion.store import Database, TenantScope
from bastion.store.workflows import WorkflowRepository
from bastion.tenancy.connections import set_connection
from bastion.tenancy.secrets import set_secret
from bastion.tenancy.service import add_user, create_tenant
from tests.approvals.conftest import SIGNING_SECRET, SLACK_TOKEN, FakeSlack, fake_slack  # noqa: F401
from tests.approvals.test_approval_slack import signed
from tests.conftest import RunningServer, run_cli, start_server
from tests.connectors import vendor_servers
from tests.connectors.ldap_server import PASSWORDS, can_bind, ppolicy_slapd, seed_people
from tests.connectors.vendor_servers import OktaDouble
from tests.enrich.slapd import ADMIN, ADMIN_PASSWORD, SUFFIX, slapd

ENDPOINT = "/api/v1/approvals/slack/actions"
PEOPLE = f"ou=people,{SUFFIX}"


# the actions the workflow calls, registered in this process
ACTIONS = (
    bastion.connectors.cases,
    bastion.connectors.ldap,
    bastion.connectors.okta,
    bastion.connectors.slack,
)


def dn(uid: str) -> str:
    return f"uid={uid},{PEOPLE}"


def raw_passwords(url: str, uid: str) -> list[bytes]:
    conn = Connection(Server(url), user=ADMIN, password=ADMIN_PASSWORD, auto_bind=True)
    try:
        conn.search(dn(uid), "(objectClass=*)", search_scope="BASE", attributes=["userPassword"])
        return list(conn.entries[0].entry_raw_attributes.get("userPassword", []))
    finally:
        conn.unbind()


def synced_status(url: str, uid: str) -> str:
    cfg = LdapConfig(url=url, base_dn=PEOPLE, bind_dn=ADMIN, password=ADMIN_PASSWORD)
    return next(i.status for i in fetch_identities(cfg) if i.username == uid)


@pytest.fixture
def world(tmp_path: Path, fake_slack: FakeSlack) -> Iterator[dict[str, Any]]:  # noqa: F811
    """Store, API server (Slack-enabled), engine, tenant with an approver linked to a Slack user, a
    seeded slapd whose people are synced as identities, and an Okta (local double) holding alice, so the
    approved revocation also ends her IdP sessions."""
    db = Database(f"sqlite:///{tmp_path / 'bastion.db'}")
    db.migrate()
    running, srv, thread = start_server(
        db,
        approval_link_key="k",
        slack_bot_token=SLACK_TOKEN,
        slack_signing_secret=SIGNING_SECRET,
        slack_api_url=fake_slack.url,
        slack_channel="#soc-approvals",
    )
    approvals.configure(running.settings)  # what `bastion serve` does for the approvals the engine asks
    executor = Executor(db)
    try:
        with slapd(tmp_path) as url, vendor_servers.serve(OktaDouble()) as okta:
            seed_people(url, ppolicy=False)
            tenant, _ = create_tenant(db, "acme")
            add_user(db, "acme", "sam", Role.APPROVER, email="sam@acme.example.org")
            map_slack_user(db, tenant.id, "U0SAM", "sam", actor="test")
            directory = LocalDirectory(url, SUFFIX, ADMIN, ADMIN_PASSWORD)
            prepare_tenant(
                db, tenant.id, directory, slack_url=fake_slack.url, slack_token=SLACK_TOKEN, actor="t"
            )
            set_connection(db, tenant.id, "okta", {"base_url": okta.url, "allow_private": True}, actor="t")
            set_secret(db, tenant.id, "okta_api_token", okta.token, actor="t")
            executor.launch()
            connect_response(db)
            yield {
                "db": db,
                "tenant": tenant.id,
                "url": url,
                "server": running,
                "slack": fake_slack,
                "okta": okta,
            }
    finally:
        executor.shutdown()
        approvals.configure(None)
        set_resolution_listener(None)
        srv.should_exit = True
        thread.join(10)
        running.queue.close()
        db.dispose()


def wait(db: Database, tenant: str, run_id: str, wanted: str) -> dict[str, Any]:
    detail: dict[str, Any] = {}
    for _ in range(300):
        detail = runs.run_detail(db, tenant, run_id)
        if detail["status"] == wanted:
            return detail
        time.sleep(0.1)
    raise AssertionError(f"run {run_id} is {detail.get('status')}, not {wanted}: {detail}")


def leak(world: dict[str, Any], tmp_path: Path, email: str, breach: str) -> tuple[str, int]:
    """Load a one-record feed file; return the run it started and the load's wall-clock time (ms)."""
    feed = tmp_path / f"{breach}.csv"
    feed.write_text(f"email,source,breach_date,password\n{email},{breach},2026-10-01,hunter2\n")
    loaded = int(time.time() * 1000)
    summary = load_file(
        world["db"], world["tenant"], feed, "credential-leak", actor="test", source="leak-feed"
    )
    assert summary.triggers == 1
    with world["db"].read() as conn:
        found = [
            r
            for r in WorkflowRepository(conn, world["tenant"]).list_runs()
            if r["workflow_id"] == WORKFLOW_ID and r["inputs"]["email"] == email
        ]
    assert len(found) == 1 and found[0]["trigger"]["type"] == "intel"
    return str(found[0]["run_id"]), loaded


def click(fake: FakeSlack, approval_id: str, slack_user: str, action_id: str) -> bytes:
    """The form body Slack posts when ``slack_user`` clicks ``action_id`` on the approval's message."""
    element = next(
        e
        for post in fake.called("chat.postMessage")
        for block in post.get("blocks") or []
        for e in block.get("elements", [])
        if e.get("action_id") == action_id and orjson.loads(e["value"])["a"] == approval_id
    )
    payload = {
        "type": "block_actions",
        "user": {"id": slack_user, "username": slack_user.lower(), "team_id": "T0ACME"},
        "team": {"id": "T0ACME"},
        "channel": {"id": "C0APPROVALS", "name": "soc-approvals"},
        "container": {"type": "message", "message_ts": "1700000000.000001", "channel_id": "C0APPROVALS"},
        "actions": [{"type": "button", "action_id": action_id, "value": element["value"]}],
    }
    return urlencode({"payload": orjson.dumps(payload).decode()}).encode()


def post_click(world: dict[str, Any], approval_id: str, action_id: str) -> dict[str, Any]:
    body = click(world["slack"], approval_id, "U0SAM", action_id)
    server: RunningServer = world["server"]
    with httpx.Client(base_url=server.url, timeout=30) as c:
        bad = c.post(ENDPOINT, content=body, headers=signed(body, secret="not-the-secret"))
        assert bad.status_code in (401, 403)  # an unsigned click decides nothing
        r = c.post(ENDPOINT, content=body, headers=signed(body))
    assert r.status_code == 200, r.text
    return dict(r.json())


def step(detail: dict[str, Any], step_id: str) -> dict[str, Any]:
    return next(s for s in detail["steps"] if s["step_id"] == step_id)


def test_leak_suspends_opens_case_asks_slack_and_approve_revokes_deny_restores(
    world: dict[str, Any], tmp_path: Path
) -> None:
    db, tid, url, fake = world["db"], world["tenant"], world["url"], world["slack"]
    okta: OktaDouble = world["okta"]
    okta_alice = okta.add_user("alice@example.org")
    assert okta.sessions[okta_alice["id"]] > 0
    assert can_bind(url, dn("alice"), PASSWORDS["alice"])
    before = raw_passwords(url, "alice")

    # 1-3: feed record -> trigger -> run -> account suspended in slapd without a human
    run_id, loaded_ms = leak(world, tmp_path, "alice@example.org", "megabreach-2026")
    detail = wait(db, tid, run_id, "waiting_approval")
    assert step(detail, "suspend")["status"] == "succeeded"
    assert not can_bind(url, dn("alice"), PASSWORDS["alice"])
    assert synced_status(url, "alice") == "disabled"  # a re-sync sees the lock

    # 4: the case, with the intel source, breach, affected systems and next steps
    case_id = step(detail, "case")["output"]["id"]
    with db.read() as conn:
        case = TenantScope(conn, tid).cases.get(case_id)
    assert case is not None and case.severity.name.lower() == "high"
    text = case.description or ""
    for wanted in (
        "Intel source: leaked-credential feed",
        "breach megabreach-2026",
        f"Affected systems: directory account {dn('alice')}",
        "Recommended next steps",
        "suspended in the directory",
    ):
        assert wanted in text, (wanted, text)

    # 5: Slack got the message and the approval request with the two buttons
    posts = fake.called("chat.postMessage")
    told = [p for p in posts if p["channel"] == "#soc"]
    assert len(told) == 1 and "alice" in told[0]["text"] and "suspended" in told[0]["text"]
    approval_id = f"{run_id}:revoke"
    request = [p for p in posts if p["channel"] == "#soc-approvals"]
    assert len(request) == 1 and "ldap.reset_password" in request[0]["text"]
    actions = [b for b in request[0]["blocks"] if b["type"] == "actions"]
    assert [e["text"]["text"] for e in actions[0]["elements"]] == ["Approve", "Deny"]

    # the time from the feed record to the suspension, from recorded timestamps, into the case
    seconds = record_detection_to_containment(db, tid, run_id, actor="test")
    assert 0 <= seconds <= (step(detail, "suspend")["finished"] - loaded_ms) / 1000 + 1
    with db.read() as conn:
        case = TenantScope(conn, tid).cases.get(case_id)
    assert case is not None and case.custom_fields[FIELD] == seconds

    # 6a: a signed approve completes the revocation: password reset, old password dead, account enabled
    assert post_click(world, approval_id, "bastion_approve") == {
        "ok": True,
        "approval": approval_id,
        "status": "approved",
    }
    done = wait(db, tid, run_id, "succeeded")
    assert done["outputs"]["revoked"] is True and done["outputs"]["suspended"] is True
    assert step(done, "revoke")["status"] == "succeeded" and step(done, "reactivate")["status"] == "succeeded"
    after = raw_passwords(url, "alice")
    assert after and after != before and not any(v.startswith(b"{BASTION-LOCKED}") for v in after)
    assert not can_bind(url, dn("alice"), PASSWORDS["alice"])
    assert synced_status(url, "alice") == "active"
    # ... and her Okta sessions are gone (no second approval: the one click covered the revocation);
    # the tenant has no Entra ID connection, so that step is skipped, not failed
    assert okta.sessions[okta_alice["id"]] == 0 and done["outputs"]["sessions_revoked"] is True
    assert step(done, "okta_sessions")["status"] == "succeeded"
    assert step(done, "entra_sessions")["status"] == "skipped"

    # 7: the action log in the audit trail and the case timeline
    with db.read() as conn:
        audit = list(TenantScope(conn, tid).audit.entries())
        timeline = case_timeline(conn, tid, case_id)
    calls = [e.data["action"] for e in audit if e.action == "action.call" and e.target_id == run_id]
    assert calls == [
        "ldap.find_user",
        "ldap.disable_user",
        "cases.create",
        "slack.post_message",
        "ldap.reset_password",
        "okta.clear_sessions",
        "ldap.enable_user",
        "cases.comment",
    ]
    kinds = {e.action for e in audit}
    wanted_kinds = {"intel.load", "intel.trigger", "run.start", "approval.request", "approval.decide"}
    assert wanted_kinds | {"case.create", "case.field", "case.comment", "run.succeeded"} <= kinds, kinds
    timed = [e.kind for e in timeline]
    for wanted in ("case.opened", "run.step", "approval.requested", "approval.decided", "comment"):
        assert wanted in timed, (wanted, timed)
    decided = next(e for e in timeline if e.kind == "approval.decided")
    assert decided.actor == "sam"
    steps = [(e.data["step_id"], e.data["status"]) for e in timeline if e.kind == "run.step" and e.data]
    assert ("suspend", "succeeded") in steps and ("revoke", "succeeded") in steps
    comment = next(e for e in timeline if e.kind == "comment")
    assert comment.summary.startswith("Revocation completed") and "Okta sessions cleared" in comment.summary

    # 6b: a second leak, denied in Slack: the account is restored in slapd
    assert can_bind(url, dn("bob"), PASSWORDS["bob"])
    run2, _ = leak(world, tmp_path, "bob@example.org", "combo-list-7")
    wait(db, tid, run2, "waiting_approval")
    assert not can_bind(url, dn("bob"), PASSWORDS["bob"])
    assert post_click(world, f"{run2}:revoke", "bastion_deny")["status"] == "denied"
    done2 = wait(db, tid, run2, "succeeded")
    assert can_bind(url, dn("bob"), PASSWORDS["bob"])  # restored, with the user's own password
    assert done2["outputs"]["revoked"] is False and done2["outputs"]["sessions_revoked"] is False
    assert step(done2, "okta_sessions")["status"] == "skipped"
    assert step(done2, "revoke")["status"] == "denied"
    assert (
        step(done2, "restore")["status"] == "succeeded" and step(done2, "reactivate")["status"] == "skipped"
    )
    with db.read() as conn:
        calls2 = [
            e.data["action"]
            for e in list(TenantScope(conn, tid).audit.entries())
            if e.action == "action.call" and e.target_id == run2
        ]
        timeline2 = case_timeline(conn, tid, step(done2, "case")["output"]["id"])
    assert "ldap.reset_password" not in calls2 and calls2.count("ldap.enable_user") == 1
    assert any(e.kind == "comment" and e.summary.startswith("Revocation denied") for e in timeline2)


def test_demo_credential_leak_through_the_cli(tmp_path: Path) -> None:
    db_url = f"sqlite:///{tmp_path / 'demo.db'}"
    proc = run_cli("demo", "credential-leak", "--json", db_url=db_url)
    assert proc.returncode == 0, proc.stderr
    out = orjson.loads(proc.stdout)
    assert set(out) == {"case_id", "suspended", "approval_id", "detection_to_containment_s"}
    assert out["suspended"] is True and out["detection_to_containment_s"] >= 0
    db = Database(db_url)
    try:
        with db.read() as conn:
            from bastion.store import TenantRepository

            tenant = TenantRepository(conn).by_name("demo")
            assert tenant is not None
            case = TenantScope(conn, tenant.id).cases.get(out["case_id"])
            run = WorkflowRepository(conn, tenant.id).get_run(out["approval_id"].split(":")[0])
        assert case is not None and case.custom_fields[FIELD] == out["detection_to_containment_s"]
        assert run is not None and run["status"] == "succeeded" and run["outputs"]["revoked"] is True
    finally:
        db.dispose()
    bad = run_cli("demo", "no-such-scenario", db_url=db_url)
    assert bad.returncode != 0 and "credential-leak" in bad.stderr


def test_ldap_sync_sees_the_ppolicy_lock(tmp_path: Path) -> None:
    """The ppolicy scheme of ldap.disable_user (an operational attribute) shows as a disabled identity."""
    with ppolicy_slapd(tmp_path) as url:
        seed_people(url, ppolicy=True)
        assert synced_status(url, "alice") == "active"
        conn = Connection(Server(url), user=ADMIN, password=ADMIN_PASSWORD, auto_bind=True)
        try:
            lock = {"pwdAccountLockedTime": [("MODIFY_REPLACE", ["000001010000Z"])]}
            assert conn.modify(dn("alice"), lock), conn.result
        finally:
            conn.unbind()
        assert not can_bind(url, dn("alice"), PASSWORDS["alice"])
        assert synced_status(url, "alice") == "disabled"
