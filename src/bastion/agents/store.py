"""The repository for ``agent_runs``: one row per agent run, read and written for one tenant only.

The runtime writes the row as the run goes (created ``running``, parked ``waiting_approval``, the plan and
transcript so far after each model turn, the result at the end), so a run that waits for a person, or one
that a crash interrupted, can be shown as far as it got. JSON columns are text written by orjson.
"""

from __future__ import annotations

import builtins
from typing import Any

import orjson
from sqlalchemy import Connection, insert, select, update

from bastion.store._util import new_id, now_ms
from bastion.store.agents import agent_runs
from bastion.store.approvals import approvals

__all__ = ["ACTIVE", "STATUSES", "AgentRunRepository"]

STATUSES = ("running", "waiting_approval", "succeeded", "failed", "stopped")
ACTIVE = ("running", "waiting_approval")
_JSON = ("input", "plan", "result", "transcript", "usage")


def _dump(value: Any) -> str:
    return orjson.dumps(value, default=str).decode()


def _row(r: Any) -> dict[str, Any]:
    doc = {str(k): v for k, v in r._mapping.items()}
    for key in _JSON:
        text = doc.get(key)
        doc[key] = orjson.loads(text) if text else None
    return doc


class AgentRunRepository:
    """``agent_runs`` of one tenant."""

    def __init__(self, conn: Connection, tenant_id: str) -> None:
        self.conn = conn
        self.tenant_id = tenant_id

    def create(
        self,
        *,
        agent: str,
        objective: str,
        model: str,
        actor: str,
        input: dict[str, Any],
        case_id: str | None = None,
        run_id: str | None = None,
    ) -> str:
        rid = run_id or new_id()
        self.conn.execute(
            insert(agent_runs).values(
                id=rid,
                tenant_id=self.tenant_id,
                agent=agent,
                objective=objective,
                status="running",
                model=model,
                actor=actor,
                case_id=case_id,
                input=_dump(input),
                plan=_dump([]),
                created=now_ms(),
            )
        )
        return rid

    def get(self, run_id: str) -> dict[str, Any] | None:
        r = self.conn.execute(
            select(agent_runs).where(agent_runs.c.tenant_id == self.tenant_id, agent_runs.c.id == run_id)
        ).first()
        return _row(r) if r is not None else None

    def list(
        self, *, agent: str | None = None, case_id: str | None = None, limit: int = 50
    ) -> builtins.list[dict[str, Any]]:
        q = select(agent_runs).where(agent_runs.c.tenant_id == self.tenant_id)
        if agent is not None:
            q = q.where(agent_runs.c.agent == agent)
        if case_id is not None:
            q = q.where(agent_runs.c.case_id == case_id)
        q = q.order_by(agent_runs.c.created.desc(), agent_runs.c.id).limit(max(1, min(limit, 1000)))
        return [_row(r) for r in self.conn.execute(q)]

    def update(self, run_id: str, **values: Any) -> bool:
        """Set columns of the run (JSON columns take Python values). Returns whether the run exists."""
        unknown = set(values) - {c.name for c in agent_runs.c} | ({"id", "tenant_id"} & set(values))
        if unknown:
            raise ValueError(f"agent_runs has no settable column(s) {', '.join(sorted(unknown))}")
        if "status" in values and values["status"] not in STATUSES:
            raise ValueError(f"unknown agent run status {values['status']!r}")
        row = {k: (_dump(v) if k in _JSON and v is not None else v) for k, v in values.items()}
        done = self.conn.execute(
            update(agent_runs)
            .where(agent_runs.c.tenant_id == self.tenant_id, agent_runs.c.id == run_id)
            .values(**row)
        ).rowcount
        return bool(done)

    def approvals(self, run_id: str) -> builtins.list[dict[str, Any]]:
        """The approvals this run asked for, oldest first: ``approval_id, tool, args, status``."""
        rows = self.conn.execute(
            select(approvals.c.id, approvals.c.action, approvals.c.target, approvals.c.status)
            .where(approvals.c.tenant_id == self.tenant_id, approvals.c.run_id == run_id)
            .order_by(approvals.c.requested_at, approvals.c.id)
        )
        return [
            {
                "approval_id": r.id,
                "tool": r.action,
                "args": orjson.loads(r.target) if r.target else {},
                "status": r.status,
            }
            for r in rows
        ]
