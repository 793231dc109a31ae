"""The timeline of everything: a real workflow run on the engine (DBOS, in this process) acts on a case
through the ``cases.*`` actions with an approval; the case's timeline then shows the alerts with their
reasons and enrichment, the run's steps, the approval requested and decided, and the changes the run made,
in time order."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

import bastion.connectors.cases  # noqa: F401  (registers the cases.* actions in this process)
from bastion.cases import service as cases
from bastion.cases.timeline import case_timeline
from bastion.connectors import ActionDef, get_action
from bastion.model import CaseStatus, Role, Severity
from bastion.respond import service
from bastion.respond.runtime import Executor
from bastion.store import Database, TenantScope
from bastion.store.workflows import workflow_runs
from bastion.tenancy.service import add_user, create_tenant
from tests.cases.helpers import alert

CONTAIN = """
id: contain-case
inputs:
  case_id: {type: string}
  alert_id: {type: string, default: ""}
steps:
  - id: note
    action: cases.comment
    approval: {roles: [approver]}
    with: {case_id: "${{ inputs.case_id }}", body: "Containment approved, isolating"}
  - id: ioc
    action: cases.add_observable
    with: {case_id: "${{ inputs.case_id }}", type: ipv4, value: "198.51.100.23"}
  - id: contain
    action: cases.set_status
    with: {case_id: "${{ inputs.case_id }}", status: contained, reason: "host isolated by workflow"}
"""

OPEN = """
id: open-case
inputs:
  alert_id: {type: string}
steps:
  - id: case
    action: cases.create
    with: {title: "Opened by a workflow", severity: high, description: "from a run"}
outputs: {case_id: "${{ steps.case.output.id }}", number: "${{ steps.case.output.number }}"}
"""


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp: Path = tmp_path_factory.mktemp("case-timeline")
    db = Database(f"sqlite:///{tmp / 'bastion.db'}")
    db.migrate()
    tenant, _ = create_tenant(db, "acme")
    add_user(db, "acme", "alice", Role.APPROVER)
    executor = Executor(db)
    executor.launch()
    yield {"db": db, "tenant": tenant.id}
    executor.shutdown()
    db.dispose()


def _action(action_id: str) -> ActionDef:
    found = get_action(action_id)
    assert found is not None, action_id
    return found


def _wait(env: dict[str, Any], rid: str, wanted: str) -> dict[str, Any]:
    detail: dict[str, Any] = {}
    for _ in range(600):
        detail = service.run_detail(env["db"], env["tenant"], rid)
        if detail["status"] == wanted:
            return detail
        threading.Event().wait(0.1)
    raise AssertionError(f"run {rid} is {detail.get('status')}, not {wanted}: {detail}")


def test_a_case_timeline_shows_alerts_enrichment_runs_steps_and_approvals(env: dict[str, Any]) -> None:
    from bastion.respond.approvals import decide, list_approvals

    db, tid = env["db"], env["tenant"]
    with db.write() as conn:
        scope = TenantScope(conn, tid)
        enriched = alert(
            scope,
            "Beacon to known C2",
            enrichment={
                "intel": [{"indicator": "198.51.100.23", "source": "abuse.ch", "confidence": 90}],
                "assets": [{"hostname": "ws-1", "criticality": 4, "owner": "finance"}],
                "identities": [{"username": "bob", "privileged": False}],
            },
        )
        other = alert(scope, "Second alert")
        case = cases.open_case(
            scope, "triage", "C2 beacon", Severity.HIGH, alert_ids=[enriched], reason="shares host ws-1"
        )
        cases.attach_alert(scope, "triage", case.id or "", other, reason="same user bob")
    service.add_workflow(db, tid, CONTAIN, actor="test")
    # the case named by its number: the run is linked to the case's id
    rid = service.start_run(db, tid, "contain-case", None, {"case_id": "#1"}, trigger={}, actor="user:bob")
    _wait(env, rid, "waiting_approval")
    pending = [a for a in list_approvals(db, tid) if a.run_id == rid]
    assert len(pending) == 1
    decide(db, tid, pending[0].id, user="alice", decision="approve", comment="go", channel="cli")
    _wait(env, rid, "succeeded")
    # a second run linked only through one of the case's alerts
    rid2 = service.start_run(
        db,
        tid,
        "contain-case",
        None,
        {"case_id": "#99", "alert_id": other},
        trigger={},
        actor="hook",
        enqueue=False,
    )
    with db.read() as conn:
        row = conn.execute(
            select(workflow_runs.c.id, workflow_runs.c.case_id, workflow_runs.c.alert_id).where(
                workflow_runs.c.id.in_([rid, rid2])
            )
        ).all()
        assert {r.id: (r.case_id, r.alert_id) for r in row} == {rid: (case.id, None), rid2: (None, other)}
        timeline = case_timeline(conn, tid, case.id or "")
        got = TenantScope(conn, tid).cases.get(case.id or "")
    assert got is not None and got.status == CaseStatus.CONTAINED and got.contained is not None
    assert [e.time for e in timeline] == sorted(e.time for e in timeline)
    kinds = [e.kind for e in timeline]
    for wanted in (
        "case.opened",
        "alert.added",
        "enrichment",
        "run.started",
        "run.step",
        "approval.requested",
        "approval.decided",
        "comment",
        "observable.added",
        "status",
    ):
        assert wanted in kinds, (wanted, kinds)
    added = [e for e in timeline if e.kind == "alert.added"]
    assert [e.data["reason"] for e in added if e.data] == ["shares host ws-1", "same user bob"]
    enrichment = next(e for e in timeline if e.kind == "enrichment")
    assert "198.51.100.23 (abuse.ch, 90)" in enrichment.summary and "assets ws-1" in enrichment.summary
    steps = [e for e in timeline if e.kind == "run.step" and e.data and e.data["run_id"] == rid]
    assert [(e.data["step_id"], e.data["action"], e.data["status"]) for e in steps if e.data] == [
        ("note", "cases.comment", "succeeded"),
        ("ioc", "cases.add_observable", "succeeded"),
        ("contain", "cases.set_status", "succeeded"),
    ]
    decided = next(e for e in timeline if e.kind == "approval.decided")
    assert decided.actor == "alice" and decided.summary.startswith("alice approved cases.comment")
    requested = next(e for e in timeline if e.kind == "approval.requested")
    assert requested.time <= decided.time <= next(e.time for e in timeline if e.kind == "comment")
    comment = next(e for e in timeline if e.kind == "comment")
    assert comment.actor == f"workflow:{rid}" and comment.summary == "Containment approved, isolating"
    status = next(e for e in timeline if e.kind == "status")
    assert status.actor == f"workflow:{rid}" and status.data and status.data["to"] == "contained"
    started = [e.data["run_id"] for e in timeline if e.kind == "run.started" and e.data]
    assert started == [rid, rid2]
    # an automated comment does not count as a person acknowledging; the status move does
    assert got.acknowledged is not None and got.acknowledged >= comment.time


def test_cases_create_from_a_workflow_links_the_run_and_is_idempotent(env: dict[str, Any]) -> None:
    from bastion.connectors import ActionContext
    from bastion.connectors.policy import invoke

    db, tid = env["db"], env["tenant"]
    service.add_workflow(db, tid, OPEN, actor="test")
    rid = service.start_run(db, tid, "open-case", None, {"alert_id": "a" * 32}, trigger={}, actor="user:bob")
    detail = _wait(env, rid, "succeeded")
    case_id = detail["outputs"]["case_id"]
    with db.read() as conn:
        scope = TenantScope(conn, tid)
        case = scope.cases.get(case_id)
        assert case is not None and case.title == "Opened by a workflow" and case.severity == Severity.HIGH
        assert case.timeline[0].actor == f"workflow:{rid}"
        run_case = conn.execute(select(workflow_runs.c.case_id).where(workflow_runs.c.id == rid)).scalar()
        assert run_case == case_id
        kinds = [e.kind for e in case_timeline(conn, tid, case_id)]
        assert "run.step" in kinds
    # a retried step (same idempotency key) finds the case it created
    defn = get_action("cases.create")
    assert defn is not None and defn.impact == "low"
    import asyncio

    again = asyncio.run(
        invoke(
            defn,
            {"title": "Opened by a workflow"},
            ActionContext(tenant_id=tid, run_id=rid, step_id="case", idempotency_key=f"{rid}:case"),
        )
    )
    assert again == {"id": case_id, "number": case.number, "created": False}
    from bastion.connectors import ActionError

    with pytest.raises(ActionError, match="no case #404"):
        asyncio.run(
            invoke(
                _action("cases.comment"),
                {"case_id": "#404", "body": "x"},
                ActionContext(tenant_id=tid, run_id=rid),
            )
        )
    with pytest.raises(ActionError, match="needs a verdict"):
        asyncio.run(
            invoke(
                _action("cases.set_status"),
                {"case_id": case_id, "status": "closed"},
                ActionContext(tenant_id=tid, run_id=rid),
            )
        )
