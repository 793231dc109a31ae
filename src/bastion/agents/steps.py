"""The durable steps of an agent run: everything that touches the store, a model or an action.

The agent loop (:mod:`bastion.agents.runtime`) is a DBOS workflow; each model turn, each gate check,
each tool call and each status change is one of these steps, checkpointed by DBOS. A recovered run
replays them from their checkpoints, so a tool that ran is never run again and the model is not asked
again for a turn it already answered. Step bodies do their blocking store work off the event loop.

Secrets never enter a checkpoint: the model's key is read in the workflow, actions read theirs inside
``call_action``; tool outputs are masked with the tenant's secret values before they are recorded.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, TypeVar

import orjson
from dbos import DBOS
from pydantic_ai.messages import ModelMessage, ModelMessagesTypeAdapter, ModelResponse
from pydantic_ai.models import Model, ModelRequestParameters
from pydantic_ai.settings import ModelSettings

from bastion.agents.guard import approval_needed
from bastion.agents.ownership import check_owner
from bastion.agents.spec import AgentDeps, get_agent_tool
from bastion.agents.store import AgentRunRepository
from bastion.agents.transcript import clip, compact, plan_entries, with_outcomes
from bastion.connectors.policy import mask
from bastion.store import Database, TenantScope
from bastion.store._util import now_ms

__all__ = [
    "approval_request_step",
    "approval_resume_step",
    "approval_state_step",
    "finish_step",
    "gate_step",
    "load_step",
    "model_step",
    "refused_step",
    "status_step",
    "tool_step",
]

T = TypeVar("T")


def _db() -> Database:
    from bastion.respond.engine import configured_store

    return configured_store()


async def _off_loop(fn: Callable[..., T], *args: Any) -> T:
    try:
        return await asyncio.to_thread(fn, *args)
    except RuntimeError:
        check_owner()  # the executor's thread pool stopped under the step: leave it unrecorded
        raise


def _timeline(
    conn: Any, tenant_id: str, case_id: str | None, kind: str, summary: str, actor: str, data: dict[str, Any]
) -> None:
    if case_id:
        TenantScope(conn, tenant_id).cases.add_timeline(case_id, kind, summary, actor=actor, data=data)


def _json(value: Any) -> Any:
    """``value`` as plain JSON data (what a checkpoint and a tool result hold)."""
    return orjson.loads(orjson.dumps(value, default=str))


# ------------------------------------------------------------------------------------ run state


@DBOS.step(name="bastion.agent.load")
async def load_step(tenant_id: str, run_id: str) -> dict[str, Any]:
    """The run's row (the task, the agent, the actor) and the time the loop started."""

    def read() -> dict[str, Any] | None:
        with _db().read() as conn:
            return AgentRunRepository(conn, tenant_id).get(run_id)

    row = await _off_loop(read)
    if row is None:
        raise RuntimeError(f"agent run {run_id} has no record")
    return {"row": _json(row), "t0": time.time()}


@DBOS.step(name="bastion.agent.status")
async def status_step(tenant_id: str, run_id: str, status: str) -> float:
    def write() -> None:
        with _db().write() as conn:
            AgentRunRepository(conn, tenant_id).update(run_id, status=status)

    await _off_loop(write)
    return time.time()


@DBOS.step(name="bastion.agent.finish")
async def finish_step(
    tenant_id: str,
    run_id: str,
    status: str,
    output: Any,
    error: str | None,
    transcript: list[dict[str, Any]],
    usage: dict[str, Any],
) -> None:
    """End the run: its row, the audit entry with the whole transcript, and the case timeline."""

    def write() -> None:
        with _db().write() as conn:
            repo = AgentRunRepository(conn, tenant_id)
            run = repo.get(run_id)
            if run is None:
                return
            repo.update(
                run_id,
                status=status,
                plan=with_outcomes(run["plan"] or [], transcript),
                result=output,
                error=error,
                transcript=transcript,
                usage=usage,
                finished=now_ms(),
            )
            data = {
                "agent": run["agent"],
                "status": status,
                "model": run["model"],
                "error": error,
                "output": clip(output),
                "usage": usage,
                "transcript": transcript,
            }
            TenantScope(conn, tenant_id).audit.append(
                f"agent:{run_id}", "agent.run.finish", "agent_run", run_id, data
            )
            summary = f"Agent {run['agent']} {status}" + (f": {error}" if error else "")
            _timeline(
                conn,
                tenant_id,
                run["case_id"],
                "agent.finished",
                summary,
                f"agent:{run_id}",
                {"run_id": run_id, "agent": run["agent"], "status": status, "error": error},
            )

    await _off_loop(write)


# ------------------------------------------------------------------------------------ the model


@DBOS.step(name="bastion.agent.model")
async def model_step(
    tenant_id: str,
    run_id: str,
    model: Model,
    messages: list[ModelMessage],
    sent: list[ModelMessage],
    settings: ModelSettings | None,
    params: ModelRequestParameters,
    timeout_s: float,
    check_url: str | None,
    allow_private: bool,
) -> dict[str, Any]:
    """One model turn: ask the model with ``sent`` (the history as the model reads it) within the time
    left, then record the transcript (from ``messages``) and the calls it asks for in the plan. Returns
    the response as JSON (or the error) and the time."""
    from bastion.connectors.core import check_url as ssrf_check

    outputs = {t.name for t in params.output_tools}
    try:
        if check_url:
            await ssrf_check(check_url, allow_private=allow_private)
        response = await asyncio.wait_for(
            model.request(sent, settings, params), timeout=max(0.001, timeout_s)
        )
    except TimeoutError:
        return {
            "error": f"the model did not answer within the {timeout_s:.0f}s left",
            "budget": "max_seconds",
            "t": time.time(),
        }
    except Exception as exc:  # a model error ends the run as failed, with the reason
        return {"error": f"{type(exc).__name__}: {exc}", "t": time.time()}
    entries = plan_entries(response, output_tools=outputs)
    transcript = compact([*messages, response], output_tools=outputs)

    def write() -> None:
        with _db().write() as conn:
            repo = AgentRunRepository(conn, tenant_id)
            run = repo.get(run_id)
            if run is not None:
                plan = with_outcomes([*(run["plan"] or []), *entries], transcript)
                repo.update(run_id, plan=plan, transcript=transcript)

    await _off_loop(write)
    dumped = ModelMessagesTypeAdapter.dump_python([response], mode="json")
    return {"response": dumped, "t": time.time()}


def response_of(step: dict[str, Any]) -> ModelResponse:
    message = ModelMessagesTypeAdapter.validate_python(step["response"])[0]
    assert isinstance(message, ModelResponse)
    return message


# ------------------------------------------------------------------------------------ tools


@DBOS.step(name="bastion.agent.gate")
async def gate_step(tenant_id: str, tool: str, impact: str, args: dict[str, Any]) -> dict[str, Any] | None:
    """The approval the call needs under the tenant's policy, or None."""
    return await _off_loop(approval_needed, _db(), tenant_id, tool, impact, args)


@DBOS.step(name="bastion.agent.refused")
async def refused_step(
    tenant_id: str, run_id: str, n: int, tool: str, args: dict[str, Any], actor: str, case_id: str | None
) -> None:
    def write() -> None:
        with _db().write() as conn:
            TenantScope(conn, tenant_id).audit.append(
                f"agent:{run_id}",
                "agent.refused",
                "agent_run",
                run_id,
                {
                    "call": n,
                    "tool": tool,
                    "args": clip(args, 2000),
                    "reason": "not on the agent's allow-list",
                    "requested_by": actor,
                },
            )
            _timeline(
                conn,
                tenant_id,
                case_id,
                "agent.refused",
                f"Agent call {tool} refused (not allowed)",
                f"agent:{run_id}",
                {"run_id": run_id, "tool": tool},
            )

    await _off_loop(write)


@DBOS.step(name="bastion.agent.tool")
async def tool_step(
    tenant_id: str,
    run_id: str,
    n: int,
    tool: str,
    kind: str,
    args: dict[str, Any],
    actor: str,
    case_id: str | None,
    timeout_s: float,
) -> dict[str, Any]:
    """Run one allowed tool call (its approval, if any, is already granted) and audit it. Errors come
    back as values, so the model sees them and the checkpoint holds them."""
    from bastion.connectors.call import call_action
    from bastion.tenancy.secrets import SecretsVault, load_key

    db = _db()
    started = now_ms()
    try:
        if kind == "action":
            output = await call_action(
                db,
                tenant_id,
                tool,
                dict(args),
                caller=run_id,
                key=f"{run_id}:{n}",
                timeout_s=max(1.0, timeout_s),
            )
        else:
            found = get_agent_tool(tool)
            if found is None:
                raise ValueError(f"unknown agent tool {tool!r}")
            deps = AgentDeps(db=db, tenant_id=tenant_id, actor=actor, run_id=run_id, case_id=case_id)
            output = await _off_loop(lambda: found.fn(deps, **args))
        result: dict[str, Any] = {"ok": True, "output": _json(output)}
    except Exception as exc:  # any failure is the model's to see and the run's to record
        check_owner()  # ...unless the executor went away under the call: then nothing is recorded
        result = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}

    def write() -> dict[str, Any]:
        with db.write() as conn:
            scope = TenantScope(conn, tenant_id)
            secret_values = list(SecretsVault(load_key(db)).get_many(scope).values())
            masked = mask(result, secret_values)
            scope.audit.append(
                f"agent:{run_id}",
                "agent.tool_call",
                "agent_run",
                run_id,
                {
                    "call": n,
                    "tool": tool,
                    "kind": kind,
                    "args": clip(mask(args, secret_values), 2000),
                    "ok": masked["ok"],
                    **({"error": masked["error"]} if not masked["ok"] else {}),
                    "requested_by": actor,
                    "duration_ms": now_ms() - started,
                },
            )
            _timeline(
                conn,
                tenant_id,
                case_id,
                "agent.tool_call",
                f"Agent called {tool}: {'ok' if masked['ok'] else 'failed'}",
                f"agent:{run_id}",
                {"run_id": run_id, "tool": tool, "ok": masked["ok"], "error": masked.get("error")},
            )
            return dict(masked)

    return await _off_loop(write)


# ------------------------------------------------------------------------------------ approvals


def _brief(approval: Any) -> dict[str, Any]:
    return {
        "id": approval.id,
        "status": approval.status,
        "deadline_ms": approval.deadline_ms,
        "topic": approval.topic,
        "by": [d.user for d in approval.decisions],
        "t": time.time(),
    }


@DBOS.step(name="bastion.agent.approval_request")
async def approval_request_step(
    tenant_id: str,
    run_id: str,
    n: int,
    agent: str,
    tool: str,
    args: dict[str, Any],
    spec: dict[str, Any],
    actor: str,
    case_id: str | None,
) -> dict[str, Any]:
    """Ask for the approval of call ``n`` (id ``<run>:<n>``) and park the run as ``waiting_approval``."""
    from bastion.respond.approvals import ApprovalSpec, request_approval

    def write() -> dict[str, Any]:
        db = _db()
        approval = request_approval(
            db,
            tenant_id,
            approval_id=f"{run_id}:{n}",
            run_id=run_id,
            step_id=f"call-{n}",
            action=tool,
            summary=f"Agent {agent} wants to run {tool}",
            target=_json(args),
            reason=str(spec.get("reason") or f"{tool} needs an approval under the tenant's policy"),
            requested_by=actor,
            spec=ApprovalSpec.from_block(spec),
        )
        with db.write() as conn:
            AgentRunRepository(conn, tenant_id).update(run_id, status="waiting_approval")
            _timeline(
                conn,
                tenant_id,
                case_id,
                "agent.approval",
                f"Agent asks approval to run {tool}",
                f"agent:{run_id}",
                {"run_id": run_id, "tool": tool, "approval_id": approval.id},
            )
        return _brief(approval)

    return await _off_loop(write)


@DBOS.step(name="bastion.agent.approval_state")
async def approval_state_step(tenant_id: str, approval_id: str, timed_out: bool) -> dict[str, Any]:
    """The approval as stored now (``timed_out``: apply its timeout rule first)."""
    from bastion.respond.approvals import get_approval, resolve_on_timeout

    def read() -> dict[str, Any]:
        if timed_out:
            return _brief(resolve_on_timeout(_db(), tenant_id, approval_id))
        return _brief(get_approval(_db(), tenant_id, approval_id))

    return await _off_loop(read)


@DBOS.step(name="bastion.agent.approval_resume")
async def approval_resume_step(tenant_id: str, run_id: str, approval_id: str) -> dict[str, Any]:
    """After the decision: the run is ``running`` again; returns the decision and who made it."""
    from bastion.respond.approvals import get_approval

    def write() -> dict[str, Any]:
        approval = get_approval(_db(), tenant_id, approval_id)
        with _db().write() as conn:
            AgentRunRepository(conn, tenant_id).update(run_id, status="running")
        return _brief(approval)

    return await _off_loop(write)
