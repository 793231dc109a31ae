"""The SLA breach path end to end: a real store, a real ``aiosmtpd`` SMTP server, the real CLI, and
case-triggered workflows started through the real hook machinery."""

from __future__ import annotations

import threading
from typing import Any

import orjson
from sqlalchemy import select, update

from bastion.cases.service import open_case
from bastion.config import Settings
from bastion.model import CaseStatus, Severity
from bastion.pipeline import connect_response
from bastion.respond import service as respond
from bastion.store import Database, TenantScope
from bastion.store.tables import cases
from bastion.store.workflows import WorkflowRepository
from bastion.tenancy.service import create_tenant
from bastion.triage.policy import save_policy
from bastion.triage.sla import check_slas
from tests.approvals.conftest import Smtp, smtp  # noqa: F401  (the real SMTP server fixture)
from tests.conftest import cli_json, free_port, run_cli

T0 = 1_700_000_000_000  # when the test cases were "created" (2023-11-14)
LEAD = "soc-lead@acme.example.org"
POLICY = {
    "sla": {
        "notify": [LEAD],
        "targets": {"high": {"acknowledge_s": 60, "contain_s": 600, "resolve_s": 86400}},
    }
}


def make_tenant(db: Database, name: str = "acme", policy: dict[str, Any] | None = None) -> str:
    tenant, _ = create_tenant(db, name)
    assert tenant.id is not None
    with db.write() as conn:
        save_policy(conn, tenant.id, policy if policy is not None else POLICY, "test")
    return tenant.id


def make_case(db: Database, tenant_id: str, title: str, severity: Severity = Severity.HIGH) -> str:
    with db.write() as conn:
        case = open_case(TenantScope(conn, tenant_id), "cli", title, severity)
        assert case.id is not None
        # Back-date the case so the SLA clock has run (the check takes ``now`` from the test).
        conn.execute(update(cases).where(cases.c.id == case.id).values(created=T0))
    return case.id


def case_row(db: Database, case_id: str) -> Any:
    with db.read() as conn:
        return conn.execute(select(cases).where(cases.c.id == case_id)).one()


def audit(db: Database, tenant_id: str, action: str) -> list[Any]:
    with db.read() as conn:
        return [e for e in TenantScope(conn, tenant_id).audit.entries() if e.action == action]


def timeline_kinds(db: Database, tenant_id: str, case_id: str) -> list[str]:
    with db.read() as conn:
        case = TenantScope(conn, tenant_id).cases.get(case_id)
    assert case is not None
    return [t.kind for t in case.timeline]


def settings_for(db: Database, smtp_port: int) -> Settings:
    return Settings(database_url=db.url, smtp_host="127.0.0.1", smtp_port=smtp_port)


def test_breach_escalates_notifies_once_and_again_on_the_next_kind(db: Database, smtp: Smtp) -> None:  # noqa: F811
    tid = make_tenant(db)
    cid = make_case(db, tid, "Ransomware on host-7")
    settings = settings_for(db, smtp.port)

    assert check_slas(db, settings, now=T0 + 59_000) == []  # within the acknowledge target
    [breach] = check_slas(db, settings, now=T0 + 120_000)
    assert breach["case_id"] == cid and breach["kind"] == "acknowledge" and breach["tenant"] == "acme"
    assert breach["to_queue"] == "tier2" and breach["tier"] == 2 and breach["notified"] is True
    row = case_row(db, cid)
    assert (row.queue, row.tier, row.escalations) == ("tier2", 2, 1)
    assert orjson.loads(row.sla_breaches) == ["acknowledge"]
    [escalated] = audit(db, tid, "case.escalated")
    assert escalated.actor == "sla" and escalated.target_id == cid
    assert escalated.data["kind"] == "acknowledge" and escalated.data["target_s"] == 60
    assert escalated.data["overdue_s"] == 60 and escalated.data["to_queue"] == "tier2"
    [notified] = audit(db, tid, "case.notified")
    assert notified.data["to"] == [LEAD] and notified.data["action"] == "notify.email"
    assert {"case.escalated", "case.notified"} <= set(timeline_kinds(db, tid, cid))
    [mail] = smtp.inbox.messages
    assert mail["To"] == LEAD and "#1" in mail["Subject"] and "Ransomware on host-7" in mail["Subject"]
    assert cid in mail.get_payload()

    # The same breach is never escalated or mailed twice.
    assert check_slas(db, settings, now=T0 + 300_000) == []
    assert case_row(db, cid).escalations == 1 and len(smtp.inbox.messages) == 1

    # Containment is late too: one more tier.
    [later] = check_slas(db, settings, now=T0 + 601_000)
    assert later["kind"] == "contain" and later["from_queue"] == "tier2" and later["to_queue"] == "tier3"
    row = case_row(db, cid)
    assert (row.queue, row.tier, row.escalations) == ("tier3", 3, 2)
    assert orjson.loads(row.sla_breaches) == ["acknowledge", "contain"]
    assert len(smtp.inbox.messages) == 2 and "contain" in smtp.inbox.messages[1]["Subject"]
    assert len(audit(db, tid, "case.escalated")) == 2


def test_resolved_and_acknowledged_cases_are_not_escalated_for_what_is_done(
    sqlite_db: Database,
    smtp: Smtp,  # noqa: F811
) -> None:
    db = sqlite_db
    tid = make_tenant(db)
    resolved = make_case(db, tid, "Fixed already")
    acked = make_case(db, tid, "Someone is on it")
    low = make_case(db, tid, "Low severity: the default low targets", Severity.LOW)
    with db.write() as conn:
        TenantScope(conn, tid).cases.set_status(resolved, CaseStatus.RESOLVED)
        conn.execute(update(cases).where(cases.c.id == acked).values(acknowledged=T0 + 1000))
    settings = settings_for(db, smtp.port)
    assert check_slas(db, settings, now=T0 + 120_000) == []  # acknowledged in time; contain not due yet
    found = check_slas(db, settings, now=T0 + 4 * 86_400_000)
    by_case = {(b["case_id"], b["kind"]) for b in found}
    # high: contain 600 s and resolve 1 day are past; low: acknowledge 1 day and contain 3 days are past.
    assert by_case == {(acked, "contain"), (acked, "resolve"), (low, "acknowledge"), (low, "contain")}
    # Two breaches found at once escalate twice (tier1 -> tier3) but send one message per case.
    assert (case_row(db, low).tier, case_row(db, low).escalations) == (3, 2)
    assert (case_row(db, acked).queue, case_row(db, acked).escalations) == ("tier3", 2)
    assert case_row(db, resolved).escalations == 0 and orjson.loads(case_row(db, resolved).sla_breaches) == []
    assert len(smtp.inbox.messages) == 2


def test_failed_notification_still_escalates_once(sqlite_db: Database) -> None:
    db = sqlite_db
    tid = make_tenant(db)
    cid = make_case(db, tid, "Mail server is down")
    settings = settings_for(db, free_port())  # nothing listens there
    [breach] = check_slas(db, settings, now=T0 + 120_000)
    assert breach["notified"] is False and "SMTP" in breach["notify_error"]
    assert case_row(db, cid).escalations == 1 and case_row(db, cid).queue == "tier2"
    [failed] = audit(db, tid, "case.notify_failed")
    assert failed.target_id == cid and "SMTP 127.0.0.1" in failed.data["error"]
    assert audit(db, tid, "case.notified") == []
    assert "case.notify_failed" in timeline_kinds(db, tid, cid)
    # Not retried, not escalated again.
    assert check_slas(db, settings, now=T0 + 130_000) == []
    assert len(audit(db, tid, "case.notify_failed")) == 1 and case_row(db, cid).escalations == 1


def test_webhook_notification_goes_through_the_ssrf_guard(sqlite_db: Database) -> None:
    db = sqlite_db
    policy = {"sla": {**POLICY["sla"], "notify_action": "notify.webhook", "notify": ["http://127.0.0.1:9/x"]}}
    tid = make_tenant(db, policy=policy)
    cid = make_case(db, tid, "Webhook to an internal address")
    [breach] = check_slas(db, Settings(database_url=db.url), now=T0 + 120_000)
    assert breach["notified"] is False and "loopback/private" in breach["notify_error"]
    assert case_row(db, cid).escalations == 1
    [failed] = audit(db, tid, "case.notify_failed")
    assert failed.data["action"] == "notify.webhook"


def test_no_recipients_means_escalation_without_notification(sqlite_db: Database) -> None:
    db = sqlite_db
    tid = make_tenant(db, policy={"sla": {"targets": POLICY["sla"]["targets"]}})
    cid = make_case(db, tid, "Nobody to tell")
    [breach] = check_slas(db, Settings(database_url=db.url), now=T0 + 120_000, tenant_id=tid)
    assert breach["notified"] is None and case_row(db, cid).queue == "tier2"
    assert audit(db, tid, "case.notified") == audit(db, tid, "case.notify_failed") == []


def test_breach_starts_case_triggered_workflows(sqlite_db: Database, smtp: Smtp) -> None:  # noqa: F811
    db = sqlite_db
    tid = make_tenant(db)
    respond.add_workflow(
        db,
        tid,
        """
id: sla-page
trigger:
  case:
    event: sla_breach
    condition: "${{ trigger.kind == 'acknowledge' }}"
inputs:
  case_id: {type: string}
  to_queue: {type: string}
steps:
  - {id: a, action: core.log, with: {message: "${{ inputs.case_id }}"}}
""",
        actor="test",
    )
    cid = make_case(db, tid, "Page someone")
    connect_response(db)
    check_slas(db, settings_for(db, smtp.port), now=T0 + 120_000)
    with db.read() as conn:
        [run] = WorkflowRepository(conn, tid).list_runs()
    assert run["workflow_id"] == "sla-page" and run["trigger"]["type"] == "case"
    assert run["inputs"] == {"case_id": cid, "to_queue": "tier2"}
    assert run["trigger"]["payload"]["event"] == "sla_breach"
    # The contain breach does not match the condition: no second run.
    check_slas(db, settings_for(db, smtp.port), now=T0 + 700_000)
    with db.read() as conn:
        assert len(WorkflowRepository(conn, tid).list_runs()) == 1


def test_cli_sla_check(sqlite_db: Database, smtp: Smtp) -> None:  # noqa: F811
    db = sqlite_db
    tid = make_tenant(db)
    make_tenant(db, "other")
    cid = make_case(db, tid, "Seen from the command line")  # created long ago (T0): breaches everything
    env = {"BASTION_SMTP_HOST": "127.0.0.1", "BASTION_SMTP_PORT": str(smtp.port)}
    proc = run_cli("sla", "check", "--tenant", "acme", "--json", db_url=db.url, env=env)
    assert proc.returncode == 0, proc.stderr
    breaches = orjson.loads(proc.stdout)["breaches"]
    assert {b["kind"] for b in breaches} == {"acknowledge", "contain", "resolve"}
    assert {b["case_id"] for b in breaches} == {cid} and all(b["notified"] for b in breaches)
    assert [m["To"] for m in smtp.inbox.messages] == [LEAD]
    assert cli_json("sla", "check", db_url=db.url) == {"breaches": []}
    bad = run_cli("sla", "check", "--tenant", "nope", db_url=db.url)
    assert bad.returncode == 2 and bad.stderr.startswith("error:") and "nope" in bad.stderr
    text = run_cli("sla", "check", db_url=db.url, check=True)
    assert "no new SLA breaches" in text.stdout


def test_concurrent_checks_escalate_once(db: Database, smtp: Smtp) -> None:  # noqa: F811
    tid = make_tenant(db)
    cid = make_case(db, tid, "Two checkers at once")
    settings = settings_for(db, smtp.port)
    start = threading.Barrier(2)
    results: list[list[dict[str, Any]]] = []

    def checker() -> None:
        start.wait()
        results.append(check_slas(db, settings, now=T0 + 120_000))

    threads = [threading.Thread(target=checker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(len(r) for r in results) == [0, 1]
    assert case_row(db, cid).escalations == 1 and len(audit(db, tid, "case.escalated")) == 1
    assert len(smtp.inbox.messages) == 1
