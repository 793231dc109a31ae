"""The offline path: the agent's reasoner behind a pydantic-ai FunctionModel, through the same durable
loop, tools, approval gate and audit as an LLM."""

from __future__ import annotations

from typing import Any

from bastion.agents.runtime import AgentRunResult, get_agent_run, list_agent_runs, run_agent
from bastion.agents.spec import Task
from bastion.respond.approvals import decide
from bastion.store import TenantScope
from tests.agents.runtime.conftest import AGENT, use_llm


def _audit(world: dict[str, Any], run_id: str) -> list[Any]:
    with world["db"].read() as conn:
        entries = list(TenantScope(conn, world["tenant"]).audit.entries())
    return [e for e in entries if e.target_id == run_id or (e.data or {}).get("run_id") == run_id]


def test_offline_reasoner_plans_through_the_loop_and_the_transcript_is_audited(world: dict[str, Any]) -> None:
    use_llm(world, None)
    task = Task(agent=AGENT, objective="check db-02", input={"host": "db-02"}, case_id=world["case"])
    result = run_agent(world["db"], world["tenant"], AGENT, task, actor="user:bob", wait_s=30)
    assert isinstance(result, AgentRunResult)
    assert result.status == "succeeded", result
    assert result.model == "offline"
    assert result.output == {"verdict": "suspicious", "summary": "db-02 owned by bob; block not needed"}
    assert [(p["tool"], p["status"]) for p in result.plan] == [
        ("rt_lookup_host", "done"),
        ("cases.comment", "done"),
    ]
    assert result.plan[0]["why"] == "who owns the host and how critical is it"
    run = get_agent_run(world["db"], world["tenant"], result.run_id)
    assert run is not None and run["case_id"] == world["case"]
    kinds = [e["kind"] for e in run["transcript"]]
    assert kinds[:2] == ["instructions", "user"]
    assert "tool_call" in kinds and "tool_result" in kinds and kinds[-1] in ("output", "tool_result")
    assert run["usage"]["requests"] == 3 and run["usage"]["tool_calls"] == 2
    actions = [e.action for e in _audit(world, result.run_id)]
    assert actions[0] == "agent.run.start" and actions[-1] == "agent.run.finish"
    assert actions.count("agent.tool_call") == 2
    finish = next(e for e in _audit(world, result.run_id) if e.action == "agent.run.finish")
    assert any(t.get("tool") == "cases.comment" for t in finish.data["transcript"])
    with world["db"].read() as conn:
        timeline = TenantScope(conn, world["tenant"]).cases.timeline(world["case"])
        case = TenantScope(conn, world["tenant"]).cases.get(world["case"])
        assert case is not None
        comments = [c.body for c in case.comments]
    assert "owner bob" in comments
    assert {"agent.started", "agent.tool_call", "agent.finished"} <= {t.kind for t in timeline}
    assert result.run_id in [r["id"] for r in list_agent_runs(world["db"], world["tenant"], agent=AGENT)]


def test_offline_high_impact_call_waits_for_approval_then_runs(world: dict[str, Any]) -> None:
    from bastion.connectors.edl import list_entries

    use_llm(world, None)
    task = Task(agent=AGENT, objective="check web-01", input={"host": "web-01", "ip": "203.0.113.7"})
    parked = run_agent(world["db"], world["tenant"], AGENT, task, actor="user:bob", wait_s=30)
    assert parked.status == "waiting_approval", parked
    assert parked.approvals == [
        {
            "approval_id": f"{parked.run_id}:2",
            "tool": "edl.add",
            "args": {"list": "blocked", "value": "203.0.113.7", "reason": "agent"},
            "status": "pending",
        }
    ]
    with world["db"].read() as conn:
        assert not [e for e in list_entries(conn, world["tenant"], "blocked") if e["value"] == "203.0.113.7"]
    decide(
        world["db"],
        world["tenant"],
        f"{parked.run_id}:2",
        user="alice",
        decision="approve",
        comment="ok",
        channel="cli",
    )
    from bastion.agents.runtime import wait_agent_run

    done = wait_agent_run(world["db"], world["tenant"], parked.run_id, wait_s=30)
    assert done.status == "succeeded", done
    assert done.output is not None and done.output["summary"] == "web-01 owned by alice; block done"
    assert done.approvals[0]["status"] == "approved"
    with world["db"].read() as conn:
        assert [e for e in list_entries(conn, world["tenant"], "blocked") if e["value"] == "203.0.113.7"]
