"""The workflow runs that acted on a case or on one of its alerts, with their steps and approvals: what a
case's timeline and its incident report show as "actions taken"."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, or_, select

from bastion.store.approvals import approval_decisions, approvals
from bastion.store.tables import case_alerts
from bastion.store.workflows import workflow_run_steps, workflow_runs

__all__ = ["linked_runs"]


def linked_runs(conn: Connection, tenant_id: str, case_id: str) -> list[dict[str, Any]]:
    """Runs that acted on the case or on one of its alerts, each with its steps and approvals (with
    their decisions), oldest first."""
    alert_sub = select(case_alerts.c.alert_id).where(
        (case_alerts.c.tenant_id == tenant_id) & (case_alerts.c.case_id == case_id)
    )
    runs = [
        {
            "run_id": r.id,
            "workflow_id": r.workflow_id,
            "status": r.status,
            "created": r.created,
            "finished": r.finished,
            "requested_by": r.requested_by,
            "alert_id": r.alert_id,
            "case_id": r.case_id,
            "steps": [],
            "approvals": [],
        }
        for r in conn.execute(
            select(workflow_runs)
            .where(
                workflow_runs.c.tenant_id == tenant_id,
                or_(workflow_runs.c.case_id == case_id, workflow_runs.c.alert_id.in_(alert_sub)),
            )
            .order_by(workflow_runs.c.created, workflow_runs.c.id)
        )
    ]
    if not runs:
        return runs
    by_id = {r["run_id"]: r for r in runs}
    for s in conn.execute(
        select(workflow_run_steps)
        .where(workflow_run_steps.c.tenant_id == tenant_id, workflow_run_steps.c.run_id.in_(list(by_id)))
        .order_by(workflow_run_steps.c.started, workflow_run_steps.c.key)
    ):
        by_id[s.run_id]["steps"].append(
            {
                "key": s.key,
                "step_id": s.step_id,
                "action": s.action,
                "status": s.status,
                "started": s.started,
                "finished": s.finished,
                "error": s.error,
            }
        )
    found: dict[str, dict[str, Any]] = {}
    for a in conn.execute(
        select(approvals)
        .where(approvals.c.tenant_id == tenant_id, approvals.c.run_id.in_(list(by_id)))
        .order_by(approvals.c.requested_at, approvals.c.id)
    ):
        doc = {
            "id": a.id,
            "step_id": a.step_id,
            "action": a.action,
            "summary": a.summary,
            "status": a.status,
            "requested_by": a.requested_by,
            "requested_at": a.requested_at,
            "resolved_at": a.resolved_at,
            "decisions": [],
        }
        found[a.id] = doc
        by_id[a.run_id]["approvals"].append(doc)
    if found:
        for d in conn.execute(
            select(approval_decisions)
            .where(
                approval_decisions.c.tenant_id == tenant_id,
                approval_decisions.c.approval_id.in_(list(found)),
            )
            .order_by(approval_decisions.c.id)
        ):
            found[d.approval_id]["decisions"].append(
                {
                    "user": d.user,
                    "decision": d.decision,
                    "channel": d.channel,
                    "comment": d.comment,
                    "time": d.time,
                }
            )
    return runs
