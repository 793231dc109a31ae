"""Schedule triggers: workers start the runs of workflows whose ``schedule`` cron came due.

Every live worker checks once a second. A due time gets the run id ``sha256(tenant, workflow, time)``,
so when several workers see the same due time exactly one run record is created (the others hit the
primary key) and only that one is queued. Times that came due while no worker was alive are not
back-filled: a schedule is "every N", not "catch up on every N missed".
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from croniter import croniter
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from bastion.respond.validate import WorkflowInvalid, parse_stored
from bastion.store import Database
from bastion.store.workflows import WorkflowRepository, workflow_defs

__all__ = ["due_runs", "fire_schedules"]


def due_runs(cron: str, after: float, until: float) -> list[float]:
    """Epoch seconds in (after, until] at which ``cron`` fires (at most 100)."""
    it = croniter(cron, datetime.fromtimestamp(after, UTC))
    found: list[float] = []
    while len(found) < 100:
        t = float(it.get_next(float))
        if t > until:
            break
        found.append(t)
    return found


def fire_schedules(db: Database, after: float, until: float) -> list[str]:
    """Start the scheduled runs due in (after, until]; returns the run ids this call created."""
    from bastion.respond.service import start_run

    with db.read() as conn:
        tenants = [r.tenant_id for r in conn.execute(select(workflow_defs.c.tenant_id).distinct())]
        definitions = []
        for tenant_id in tenants:
            for d in WorkflowRepository(conn, tenant_id).with_trigger("schedule"):
                definitions.append((tenant_id, d))
    started: list[str] = []
    for tenant_id, d in definitions:
        try:
            workflow = parse_stored(d["source"])
        except WorkflowInvalid:
            continue
        trig = workflow.trigger("schedule")
        if trig is None or trig.schedule is None:
            continue
        for due in due_runs(trig.schedule, after, until):
            rid = hashlib.sha256(f"{tenant_id}:{workflow.id}:{int(due)}".encode()).hexdigest()[:32]
            try:
                start_run(
                    db,
                    tenant_id,
                    workflow.id,
                    d["version"],
                    {},
                    trigger={"type": "schedule", "scheduled_at": int(due * 1000)},
                    actor="schedule",
                    run_id=rid,
                )
            except IntegrityError:
                continue  # another worker started this one
            except ValueError:
                continue  # required inputs without defaults: a scheduled run cannot supply them
            started.append(rid)
    return started
