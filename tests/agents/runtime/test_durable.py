"""Durability: a run parked on an approval survives its executor going away (another executor recovers
it from DBOS's checkpoints, without running a finished tool call again); a run queued for a worker is
taken from the queue and runs there."""

from __future__ import annotations

from typing import Any

import pytest

from bastion.agents.runtime import get_agent_run, run_agent, start_agent_run, wait_agent_run
from bastion.agents.spec import Task
from bastion.respond.approvals import decide
from bastion.respond.runtime import Executor
from bastion.store import TenantScope
from tests.agents.runtime.conftest import AGENT, use_llm


def _tool_calls(world: dict[str, Any], run_id: str) -> list[str]:
    with world["db"].read() as conn:
        entries = list(TenantScope(conn, world["tenant"]).audit.entries())
    return [e.data["tool"] for e in entries if e.target_id == run_id and e.action == "agent.tool_call"]


def test_a_parked_run_resumes_on_another_executor_without_repeating_tool_calls(
    world: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The waiting run re-reads its approval every second (the backstop for a lost decision message), so
    # the thread of the executor that leaves notices promptly that its engine is gone.
    monkeypatch.setenv("BASTION_APPROVAL_RECHECK_S", "1")
    use_llm(world, None)
    task = Task(agent=AGENT, objective="check web-01", input={"host": "web-01", "ip": "198.51.100.77"})
    parked = run_agent(world["db"], world["tenant"], AGENT, task, actor="user:bob", wait_s=30)
    assert parked.status == "waiting_approval", parked
    assert _tool_calls(world, parked.run_id) == ["rt_lookup_host"]
    # the executor leaves with the run parked; a new one takes it over from the checkpoints
    world["executor"].shutdown()
    world["executor"] = Executor(world["db"])
    world["executor"].launch()
    decide(
        world["db"],
        world["tenant"],
        parked.approvals[0]["approval_id"],
        user="alice",
        decision="approve",
        comment=None,
        channel="cli",
    )
    done = wait_agent_run(world["db"], world["tenant"], parked.run_id, wait_s=30)
    assert done.status == "succeeded", done
    assert done.output is not None and done.output["summary"].endswith("block done")
    assert _tool_calls(world, parked.run_id) == ["rt_lookup_host", "edl.add"]
    run = get_agent_run(world["db"], world["tenant"], parked.run_id)
    assert run is not None and run["usage"]["tool_calls"] == 2


def test_a_queued_run_is_taken_by_a_worker(world: dict[str, Any]) -> None:
    use_llm(world, None)
    task = Task(agent=AGENT, objective="check db-02", input={"host": "db-02"})
    run_id = start_agent_run(world["db"], world["tenant"], AGENT, task, actor="user:bob", enqueue=True)
    done = wait_agent_run(world["db"], world["tenant"], run_id, wait_s=30)
    assert done.status == "succeeded", done
    assert done.plan[0]["tool"] == "rt_lookup_host"
