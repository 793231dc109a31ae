"""The ``agent_runs`` repository on SQLite and PostgreSQL: rows are tenant-scoped, JSON columns round-trip,
and a run's approvals are found by its id."""

from __future__ import annotations

import pytest

from bastion.agents.store import AgentRunRepository
from bastion.respond.approvals import ApprovalSpec, request_approval
from bastion.store import Database
from bastion.tenancy.service import create_tenant


def test_agent_runs_are_tenant_scoped_and_round_trip(db: Database) -> None:
    acme, _ = create_tenant(db, "acme")
    other, _ = create_tenant(db, "other")
    with db.write() as conn:
        repo = AgentRunRepository(conn, acme.id)
        rid = repo.create(
            agent="intel",
            objective="look up 1.2.3.4",
            model="offline",
            actor="user:bob",
            input={"ip": "1.2.3.4"},
        )
        repo.create(agent="docs", objective="report", model="offline", actor="user:bob", input={})
        assert repo.update(rid, status="succeeded", result={"ok": True}, plan=[{"tool": "intel_lookup"}])
        with pytest.raises(ValueError, match="unknown agent run status"):
            repo.update(rid, status="paused")
        with pytest.raises(ValueError, match="no settable column"):
            repo.update(rid, tenant_id=other.id)
    with db.read() as conn:
        mine = AgentRunRepository(conn, acme.id)
        run = mine.get(rid)
        assert run is not None
        assert (run["status"], run["input"], run["result"], run["plan"]) == (
            "succeeded",
            {"ip": "1.2.3.4"},
            {"ok": True},
            [{"tool": "intel_lookup"}],
        )
        assert [r["agent"] for r in mine.list(agent="intel")] == ["intel"]
        assert len(mine.list()) == 2
        theirs = AgentRunRepository(conn, other.id)
        assert theirs.get(rid) is None and theirs.list() == []
    request_approval(
        db,
        acme.id,
        approval_id=f"{rid}:1",
        run_id=rid,
        step_id="call-1",
        action="edl.add",
        summary="s",
        target={"value": "1.2.3.4"},
        reason="r",
        requested_by="user:bob",
        spec=ApprovalSpec(roles=["approver"]),
    )
    with db.read() as conn:
        assert AgentRunRepository(conn, acme.id).approvals(rid) == [
            {"approval_id": f"{rid}:1", "tool": "edl.add", "args": {"value": "1.2.3.4"}, "status": "pending"}
        ]
        assert AgentRunRepository(conn, other.id).approvals(rid) == []
