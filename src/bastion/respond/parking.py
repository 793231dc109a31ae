"""Parked runs: a run stopped at an approval gate holds nothing while it waits, and continues when the
approval resolves.

A top-level run that reaches an approval that is still pending ends its DBOS workflow there (the run
record says ``waiting_approval``). Waiting inside the workflow would hold a worker thread and a slot of
the run queue (and of the tenant's concurrency limit) for as long as the decision takes, hours or
days. When the approval resolves (any channel, or its timeout), :func:`continue_run` queues a
continuation: a new workflow, id ``<approval id>:resume``, that replays the run with the recorded
outcome of every finished step (nothing runs twice) and carries on from the gate.

Workers call :func:`sweep` every heartbeat: it applies the timeout rule of parked approvals past their
deadline, and queues the continuation of any parked run whose approval resolved without one being queued
(the process that recorded the decision stopped first, or could not reach the run queue). Queuing is
idempotent on the continuation's id, so a decision queued twice runs once.

Children of a run (``for_each`` items and ``parallel`` branches run concurrently, sub-workflow runs)
still wait inside their workflow: their parent waits on them.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import and_, select

from bastion.store import Database
from bastion.store.approvals import approvals
from bastion.store.workflows import WorkflowRepository, now_ms, workflow_runs

__all__ = ["continuation_id", "continue_run", "parks_here", "sweep"]

log = logging.getLogger(__name__)


def continuation_id(approval_id: str) -> str:
    """The DBOS workflow id of the continuation that a resolved approval starts."""
    return f"{approval_id}:resume"


def parks_here(db: Database, approval: Any) -> dict[str, Any] | None:
    """The run record when ``approval`` is the gate of a parked top-level workflow run (continued, not
    woken by a message); else None (a child workflow's, a sub-workflow run's or an agent's approval)."""
    if approval.waiter is not None:
        return None
    with db.read() as conn:
        run = WorkflowRepository(conn, approval.tenant_id).get_run(approval.run_id)
    if run is None or run["parent_run_id"] is not None:
        return None
    return run


def continue_run(db: Database, tenant_id: str, run_id: str, approval_id: str) -> None:
    """Queue the continuation of ``run_id`` after ``approval_id`` resolved (idempotent)."""
    from bastion.respond.runtime import APP_VERSION, RUN_QUEUE
    from bastion.respond.service import dbos_client

    client = dbos_client(db)
    try:
        client.enqueue(
            {
                "workflow_name": "bastion.run",
                "queue_name": RUN_QUEUE,
                "workflow_id": continuation_id(approval_id),
                "app_version": APP_VERSION,
                "queue_partition_key": tenant_id,
            },
            tenant_id,
            run_id,
            {},
            True,
        )
    finally:
        client.destroy()


def sweep(db: Database) -> list[str]:
    """Apply due timeouts of parked approvals and queue lost continuations; returns the run ids queued."""
    from bastion.respond.approvals import resolve_on_timeout

    parked = and_(
        workflow_runs.c.status == "waiting_approval",
        workflow_runs.c.parent_run_id.is_(None),
        approvals.c.waiter.is_(None),
    )
    joined = approvals.join(
        workflow_runs,
        and_(workflow_runs.c.tenant_id == approvals.c.tenant_id, workflow_runs.c.id == approvals.c.run_id),
    )
    with db.read() as conn:
        due = conn.execute(
            select(approvals.c.tenant_id, approvals.c.id)
            .select_from(joined)
            .where(parked, approvals.c.status == "pending", approvals.c.deadline <= now_ms())
        ).all()
    for tenant_id, approval_id in due:
        resolve_on_timeout(db, tenant_id, approval_id)  # its resolution, if any, continues the run
    with db.read() as conn:
        lost = conn.execute(
            select(approvals.c.tenant_id, approvals.c.run_id, approvals.c.id)
            .select_from(joined)
            .where(
                parked,
                approvals.c.status != "pending",
                approvals.c.id == workflow_runs.c.id + ":" + workflow_runs.c.waiting_step,
            )
        ).all()
    queued = []
    for tenant_id, run_id, approval_id in lost:
        try:
            continue_run(db, tenant_id, run_id, approval_id)
            queued.append(run_id)
        except Exception as exc:  # the next sweep tries again
            log.warning("run %s: could not queue its continuation: %s", run_id, exc)
    return queued
