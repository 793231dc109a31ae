"""Running an agent from a command: always through the durable runtime (recorded, audited, on the case
timeline), executed in this process when no ``bastion worker`` is alive."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from bastion.agents.spec import Task
from bastion.store import Database

__all__ = ["run_specialist"]


def run_specialist(
    db: Database, tenant_id: str, agent: str, task: Task, *, actor: str, wait_s: float = 180.0
) -> dict[str, Any]:
    """The run's public view: ``{"run_id", "agent", "status", "model", "output", "plan", "approvals",
    "error"}``."""
    from bastion.agents.runtime import run_agent
    from bastion.respond.runtime import unless_workers

    with unless_workers(db):
        result = run_agent(db, tenant_id, agent, task, actor=actor, wait_s=wait_s)
    return asdict(result)
