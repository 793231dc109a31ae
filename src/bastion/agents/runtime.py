"""Running an agent: one durable DBOS workflow per run (workflow id = run id), in which a pydantic-ai
agent loop decides with the tenant's LLM or, offline, with the agent's deterministic reasoner.

Every model turn and every tool call is a durable step (:mod:`bastion.agents.steps`), so a run that a
crash interrupted resumes where it was, and a run that asked a person for an approval waits for the
decision durably (``DBOS.recv`` on the approval's topic, woken by the same listener as workflow runs).
The model is wrapped (:class:`DurableModel`) so that it only ever sees the allowed tools, every other
call it makes becomes a refusal, and the wall-clock budget is enforced.

Public API::

    run_agent(db, tenant_id, agent, task, *, actor, wait_s=60.0) -> AgentRunResult
    get_agent_run(db, tenant_id, run_id) -> dict | None
    list_agent_runs(db, tenant_id, *, agent=None, case_id=None, limit=50) -> list[dict]
    wait_agent_run(db, tenant_id, run_id, *, wait_s=60.0) -> AgentRunResult
    start_agent_run(db, tenant_id, agent, task, *, actor, enqueue=None) -> str   (no waiting)

``run_agent`` needs the engine's DBOS: in this process (an :class:`~bastion.respond.runtime.Executor`
launched) the run starts here; otherwise it is queued for a ``bastion worker``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import time
from dataclasses import dataclass, field
from typing import Any, cast

import orjson
from dbos import DBOS, SetWorkflowID
from dbos._error import DBOSException
from pydantic_ai import Agent, ToolReturn, capture_run_messages
from pydantic_ai.exceptions import UsageLimitExceeded
from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    ToolCallPart,
    ToolReturnPart,
)
from pydantic_ai.models import Model, ModelRequestParameters
from pydantic_ai.models.wrapper import WrapperModel
from pydantic_ai.settings import ModelSettings

from bastion.agents import steps
from bastion.agents.guard import BudgetExceeded, fence, instructions, usage_limits, user_prompt
from bastion.agents.models import LLMConfig, build_model, llm_config, model_label
from bastion.agents.offline import reasoner_model
from bastion.agents.ownership import check_owner
from bastion.agents.spec import AgentSpec, Task, get_agent, tool_name
from bastion.agents.store import ACTIVE, AgentRunRepository
from bastion.agents.toolset import REFUSED, ToolInfo, UnknownTool, build_tools, resolve_tools
from bastion.agents.transcript import clip, compact
from bastion.store import Database, TenantScope

__all__ = [
    "AGENT_WORKFLOW",
    "AgentRunError",
    "AgentRunResult",
    "UnknownAgent",
    "agent_run_workflow",
    "cancel_agent_run",
    "get_agent_run",
    "list_agent_runs",
    "run_agent",
    "start_agent_run",
    "wait_agent_run",
]

AGENT_WORKFLOW = "bastion.agent_run"
MAX_RESULT_CHARS = 20_000  # of one tool result, as an LLM reads it


class AgentRunError(ValueError):
    """A run that cannot be started as asked (unknown case, a broken allow-list); the message says why."""


class UnknownAgent(AgentRunError):
    """No agent is registered under that name."""


@dataclass
class AgentRunResult:
    run_id: str
    agent: str
    status: str  # succeeded | waiting_approval | failed | stopped (running: still going after wait_s)
    model: str  # "offline" or "<provider>:<model>"
    output: dict[str, Any] | None  # the validated typed output (model_dump(mode="json"))
    plan: list[dict[str, Any]] = field(default_factory=list)  # [{"tool", "args", "why"}] made or proposed
    approvals: list[dict[str, Any]] = field(
        default_factory=list
    )  # [{"approval_id", "tool", "args", "status"}]
    error: str | None = None


# ------------------------------------------------------------------------------------ public API


def run_agent(
    db: Database, tenant_id: str, agent: str, task: Task, *, actor: str, wait_s: float = 60.0
) -> AgentRunResult:
    """Start a durable run of ``agent`` on ``task`` for ``actor``; return when it finishes, parks on an
    approval, or ``wait_s`` passes (then status ``running``; see :func:`wait_agent_run`)."""
    run_id = start_agent_run(db, tenant_id, agent, task, actor=actor)
    return wait_agent_run(db, tenant_id, run_id, wait_s=wait_s)


def start_agent_run(
    db: Database, tenant_id: str, agent: str, task: Task, *, actor: str, enqueue: bool | None = None
) -> str:
    """Record the run (audited) and start its workflow; returns the run id at once. The workflow starts
    in this process when it is a DBOS executor, else (or with ``enqueue=True``) it is queued for a
    worker. Raises UnknownAgent / AgentRunError for a request that cannot run."""
    try:
        spec = get_agent(agent)
    except KeyError as exc:
        raise UnknownAgent(str(exc.args[0] if exc.args else exc)) from None
    try:
        resolve_tools(spec)
    except UnknownTool as exc:
        raise AgentRunError(str(exc)) from None
    label = model_label(llm_config(db, tenant_id))
    doc = {
        "objective": task.objective,
        "input": task.input,
        "untrusted": list(task.untrusted),
        "case_id": task.case_id,
    }
    with db.write() as conn:
        scope = TenantScope(conn, tenant_id)
        case_id = None
        if task.case_id:
            case_id = scope.cases.resolve(str(task.case_id))
            if case_id is None:
                raise AgentRunError(f"no case {task.case_id!r} in this tenant")
        repo = AgentRunRepository(conn, tenant_id)
        run_id = repo.create(
            agent=spec.name, objective=task.objective, model=label, actor=actor, input=doc, case_id=case_id
        )
        scope.audit.append(
            actor,
            "agent.run.start",
            "agent_run",
            run_id,
            {
                "agent": spec.name,
                "objective": task.objective,
                "model": label,
                "case_id": case_id,
                "input": clip(doc["input"], 2000),
                "untrusted": len(task.untrusted),
            },
        )
        if case_id:
            scope.cases.add_timeline(
                case_id,
                "agent.started",
                f"Agent {spec.name} started: {task.objective}",
                actor=actor,
                data={"run_id": run_id, "agent": spec.name, "model": label},
            )
    _start(db, tenant_id, run_id, enqueue=enqueue)
    return run_id


def wait_agent_run(db: Database, tenant_id: str, run_id: str, *, wait_s: float = 60.0) -> AgentRunResult:
    """The run once it leaves ``running`` (finished, or parked on an approval), else as it is after
    ``wait_s``."""
    deadline = time.monotonic() + max(0.0, wait_s)
    delay = 0.02
    while True:
        run = get_agent_run(db, tenant_id, run_id)
        if run is None:
            raise AgentRunError(f"no agent run {run_id} in this tenant")
        # Parked means waiting on a pending approval; right after a decision the status still says
        # waiting_approval until the run picks the decision up, so that is not parked.
        parked = run["status"] == "waiting_approval" and any(
            a["status"] == "pending" for a in run["approvals"]
        )
        if run["status"] not in ACTIVE or parked or time.monotonic() >= deadline:
            return _result(run)
        time.sleep(delay)
        delay = min(delay * 1.5, 0.25)


def get_agent_run(db: Database, tenant_id: str, run_id: str) -> dict[str, Any] | None:
    """The run's row (JSON columns decoded) with ``approvals``, or None."""
    with db.read() as conn:
        repo = AgentRunRepository(conn, tenant_id)
        run = repo.get(run_id)
        if run is not None:
            run["approvals"] = repo.approvals(run_id)
    return run


def cancel_agent_run(db: Database, tenant_id: str, run_id: str, *, actor: str) -> dict[str, Any]:
    """Stop a running or waiting agent run: it ends ``stopped`` ("cancelled by ..."), its workflow is
    cancelled (a parked wait ends), and its pending approvals close unanswered. Audited."""
    from bastion.respond.service import stop_workflow

    with db.write() as conn:
        repo = AgentRunRepository(conn, tenant_id)
        run = repo.get(run_id)
        if run is None:
            raise AgentRunError(f"no agent run {run_id} in this tenant")
        if run["status"] not in ACTIVE:
            raise AgentRunError(f"agent run {run_id} is {run['status']}; only running or waiting runs stop")
        repo.update(run_id, status="stopped", error=f"cancelled by {actor}", finished=int(time.time() * 1000))
        TenantScope(conn, tenant_id).audit.append(actor, "agent.run.cancel", "agent_run", run_id, {})
    stop_workflow(db, tenant_id, run_id, actor=actor)
    return {"run_id": run_id, "status": "stopped"}


def list_agent_runs(
    db: Database, tenant_id: str, *, agent: str | None = None, case_id: str | None = None, limit: int = 50
) -> list[dict[str, Any]]:
    """The tenant's runs, newest first."""
    with db.read() as conn:
        return AgentRunRepository(conn, tenant_id).list(agent=agent, case_id=case_id, limit=limit)


def _result(run: dict[str, Any]) -> AgentRunResult:
    return AgentRunResult(
        run_id=run["id"],
        agent=run["agent"],
        status=run["status"],
        model=run["model"],
        output=run["result"],
        plan=[{k: v for k, v in p.items() if k != "id"} for p in run["plan"] or []],
        approvals=run.get("approvals") or [],
        error=run["error"],
    )


def _start(db: Database, tenant_id: str, run_id: str, *, enqueue: bool | None = None) -> None:
    """Start the run's workflow here when this process is a DBOS executor, else queue it for a worker."""
    from bastion.respond.runtime import APP_VERSION, RUN_QUEUE, _executor_launched

    if not enqueue and _executor_launched():
        with SetWorkflowID(run_id):
            DBOS.start_workflow(agent_run_workflow, tenant_id, run_id)
        return
    from bastion.respond.service import dbos_client

    client = dbos_client(db)
    try:
        client.enqueue(
            {
                "workflow_name": AGENT_WORKFLOW,
                "queue_name": RUN_QUEUE,
                "workflow_id": run_id,
                "app_version": APP_VERSION,
                "queue_partition_key": tenant_id,
            },
            tenant_id,
            run_id,
        )
    finally:
        client.destroy()


# ------------------------------------------------------------------------------------ the run


class _Run:
    """What the workflow knows about the run while it goes: the tools, the call counter, the clock."""

    def __init__(
        self,
        tenant_id: str,
        run_id: str,
        row: dict[str, Any],
        spec: AgentSpec,
        t0: float,
        config: LLMConfig | None,
    ) -> None:
        self.tenant_id = tenant_id
        self.run_id = run_id
        self.spec = spec
        self.actor = str(row["actor"])
        self.case_id: str | None = row["case_id"]
        doc = row["input"] or {}
        self.task = Task(
            agent=spec.name,
            objective=str(row["objective"]),
            input=dict(doc.get("input") or {}),
            tenant_id=tenant_id,
            case_id=self.case_id,
            untrusted=tuple(doc.get("untrusted") or ()),
        )
        self.tools: dict[str, ToolInfo] = resolve_tools(spec)
        self.config = config
        self.t0 = t0
        self.now = t0
        self.waited = 0.0
        self.calls = 0
        self.usage = {
            "requests": 0,
            "input_tokens": 0,
            "output_tokens": 0,
            "total_tokens": 0,
            "tool_calls": 0,
        }

    def elapsed(self) -> float:
        return max(0.0, self.now - self.t0 - self.waited)

    def left(self) -> float:
        return self.spec.max_seconds - self.elapsed()

    def usage_doc(self) -> dict[str, Any]:
        return {
            **self.usage,
            "seconds": round(self.elapsed(), 3),
            "budgets": {
                "max_steps": self.spec.max_steps,
                "max_tokens": self.spec.max_tokens,
                "max_seconds": self.spec.max_seconds,
            },
        }

    # ---- tools

    async def call_tool(self, info: ToolInfo, args: dict[str, Any]) -> Any:
        check_owner()
        self.calls += 1
        self.usage["tool_calls"] += 1
        n = self.calls
        gate = await steps.gate_step(self.tenant_id, info.name, info.impact, args)
        if gate is not None:
            decision = await self._approval(n, info, args, gate)
            if decision["status"] != "approved":
                who = ", ".join(decision["by"]) or "its timeout rule"
                msg = (
                    f"denied: {info.name} was not run; approval {decision['id']} was {decision['status']} "
                    f"by {who}"
                )
                return ToolReturn(return_value=msg, metadata={"error": msg, "denied": True})
        result = await steps.tool_step(
            self.tenant_id,
            self.run_id,
            n,
            info.name,
            info.kind,
            args,
            self.actor,
            self.case_id,
            min(60.0, max(1.0, self.left())),
        )
        if result["ok"]:
            return result["output"]
        msg = f"error: {result['error']}"
        return ToolReturn(return_value=msg, metadata={"error": result["error"]})

    async def refuse(self, tool: str, args: dict[str, Any]) -> Any:
        check_owner()
        self.calls += 1
        name = tool_name(tool)
        await steps.refused_step(
            self.tenant_id, self.run_id, self.calls, name, args, self.actor, self.case_id
        )
        msg = f"refused: {name} is not one of this agent's tools; nothing was run"
        return ToolReturn(return_value=msg, metadata={"error": msg, "refused": True})

    async def _approval(
        self, n: int, info: ToolInfo, args: dict[str, Any], gate: dict[str, Any]
    ) -> dict[str, Any]:
        approval = await steps.approval_request_step(
            self.tenant_id, self.run_id, n, self.spec.name, info.name, args, gate, self.actor, self.case_id
        )
        asked = float(approval["t"])
        recheck = float(os.environ.get("BASTION_APPROVAL_RECHECK_S", "300"))
        while approval["status"] == "pending":
            deadline = approval.get("deadline_ms")
            remaining = max(0.0, (deadline - time.time() * 1000) / 1000) if deadline else float("inf")
            message = await DBOS.recv_async(approval["topic"], timeout_seconds=min(remaining, recheck))
            check_owner()
            if message is None:
                approval = await steps.approval_state_step(
                    self.tenant_id, approval["id"], remaining <= recheck
                )
            else:
                approval = {**approval, "status": message.get("status", "pending")}
        resumed = await steps.approval_resume_step(self.tenant_id, self.run_id, approval["id"])
        self.waited += max(0.0, float(resumed["t"]) - asked)
        self.now = float(resumed["t"])
        return resumed


def _public(messages: list[ModelMessage]) -> list[ModelMessage]:
    """``messages`` as the model saw them: refused calls under the name the model used."""
    renamed: dict[str, str] = {}
    out: list[ModelMessage] = []
    for msg in messages:
        if isinstance(msg, ModelResponse):
            parts: list[Any] = []
            for part in msg.parts:
                if isinstance(part, ToolCallPart) and part.tool_name == REFUSED:
                    args = part.args_as_dict()
                    original = str(args.get("tool") or "unknown")
                    renamed[part.tool_call_id] = original
                    part = dataclasses.replace(
                        cast(Any, part), tool_name=original, args=dict(args.get("args") or {})
                    )
                parts.append(part)
            out.append(dataclasses.replace(msg, parts=parts))
        elif isinstance(msg, ModelRequest):
            rparts: list[Any] = []
            for rpart in msg.parts:
                if isinstance(rpart, ToolReturnPart) and rpart.tool_name == REFUSED:
                    rpart = dataclasses.replace(
                        cast(Any, rpart), tool_name=renamed.get(rpart.tool_call_id, rpart.tool_name)
                    )
                rparts.append(rpart)
            out.append(dataclasses.replace(msg, parts=rparts))
        else:
            out.append(msg)
    return out


def _fence_results(messages: list[ModelMessage], nonce: str) -> list[ModelMessage]:
    """``messages`` with every successful tool result turned into fenced text, cut at
    ``MAX_RESULT_CHARS`` (refusals, denials and errors are the runtime's own words and stay as they are)."""
    out: list[ModelMessage] = []
    for msg in messages:
        if isinstance(msg, ModelRequest) and any(isinstance(p, ToolReturnPart) for p in msg.parts):
            parts: list[Any] = []
            for part in msg.parts:
                meta = part.metadata if isinstance(part, ToolReturnPart) else None
                if isinstance(part, ToolReturnPart) and not (isinstance(meta, dict) and meta.get("error")):
                    text = (
                        part.content
                        if isinstance(part.content, str)
                        else orjson.dumps(part.content, default=str).decode()
                    )
                    if len(text) > MAX_RESULT_CHARS:  # keep a big search result from filling the context
                        text = (
                            text[:MAX_RESULT_CHARS]
                            + f"... [cut: {len(text) - MAX_RESULT_CHARS} more characters]"
                        )
                    part = dataclasses.replace(
                        cast(Any, part), content=fence(text, f"{nonce}-{part.tool_call_id}")
                    )
                parts.append(part)
            out.append(dataclasses.replace(msg, parts=parts))
        else:
            out.append(msg)
    return out


def _args(part: ToolCallPart) -> dict[str, Any]:
    try:
        return part.args_as_dict()
    except Exception:  # arguments that are not a JSON object: kept as text for the record
        return {"_raw": str(part.args)}


class DurableModel(WrapperModel):
    """The run's model: each request is a durable step; only allowed tools are offered; any call the
    response makes outside them is rewritten into a call of the hidden refusal tool."""

    def __init__(self, wrapped: Model, run: _Run) -> None:
        super().__init__(wrapped)
        self.run = run

    async def request(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
    ) -> ModelResponse:
        check_owner()
        run = self.run
        if run.left() <= 0:
            raise BudgetExceeded(
                "max_seconds", f"the run used {run.elapsed():.1f}s of {run.spec.max_seconds:g}s"
            )
        visible = [t for t in model_request_parameters.function_tools if t.name != REFUSED]
        vis = model_request_parameters.tool_visibility
        params = dataclasses.replace(
            model_request_parameters,
            function_tools=visible,
            tool_visibility={k: v for k, v in vis.items() if k != REFUSED} if vis is not None else None,
        )
        cfg = run.config
        public = _public(messages)
        out = await steps.model_step(
            run.tenant_id,
            run.run_id,
            self.wrapped,
            public,
            # an LLM reads tool results (alert text, e-mails, events) fenced like the task's untrusted data;
            # the offline reasoner needs them as data structures
            _fence_results(public, run.run_id[:12]) if cfg is not None else public,
            model_settings,
            params,
            run.left(),
            cfg.base_url if cfg is not None else None,
            cfg.allow_private if cfg is not None else True,
        )
        run.now = float(out["t"])
        if "response" not in out:
            if out.get("budget"):
                raise BudgetExceeded(str(out["budget"]), str(out["error"]))
            raise _ModelFailed(str(out["error"]))
        response = steps.response_of(out)
        run.usage["requests"] += 1
        run.usage["input_tokens"] += response.usage.input_tokens or 0
        run.usage["output_tokens"] += response.usage.output_tokens or 0
        run.usage["total_tokens"] = run.usage["input_tokens"] + run.usage["output_tokens"]
        allowed = {t.name for t in visible} | {t.name for t in params.output_tools}
        parts: list[Any] = []
        for part in response.parts:
            if isinstance(part, ToolCallPart) and part.tool_name not in allowed:
                part = dataclasses.replace(
                    cast(Any, part), tool_name=REFUSED, args={"tool": part.tool_name, "args": _args(part)}
                )
            parts.append(part)
        return dataclasses.replace(response, parts=parts)


class _ModelFailed(Exception):
    """The model request failed (HTTP error, bad answer, reasoner error)."""


@DBOS.workflow(name=AGENT_WORKFLOW)
def agent_run_workflow(tenant_id: str, run_id: str) -> dict[str, Any]:
    """The durable run of one agent (the row was created by :func:`run_agent`).

    A sync workflow that runs the async agent loop on an event loop of its own, in the workflow's
    thread: DBOS cancels async workflows on its shared loop when an executor shuts down and records
    them as failed, while a sync one parked on an approval stays pending for another executor to
    recover (the same as workflow runs)."""
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(_agent_run(tenant_id, run_id))
    finally:
        loop.close()


async def _agent_run(tenant_id: str, run_id: str) -> dict[str, Any]:
    loaded = await steps.load_step(tenant_id, run_id)
    row = loaded["row"]
    messages: list[ModelMessage] = []
    run: _Run | None = None
    output: Any = None
    error: str | None = None
    status = "failed"
    try:
        spec = get_agent(row["agent"])
        config = llm_config(steps._db(), tenant_id)
        run = _Run(tenant_id, run_id, row, spec, float(loaded["t0"]), config)
        real = build_model(config) or reasoner_model(spec, run.task)
        model = DurableModel(real, run)
        agent: Agent[None, Any] = Agent(
            model,
            output_type=spec.output,
            instructions=instructions(spec),
            tools=build_tools(run.tools, run.call_tool, run.refuse),
            retries=2,
            name=f"bastion-{spec.name}",
        )
        with capture_run_messages() as captured:
            try:
                result = await agent.run(
                    user_prompt(run.task, run_id[:12]),
                    usage_limits=usage_limits(spec, offline=config is None),
                )
                output = result.output.model_dump(mode="json")
                status = "succeeded"
            except UsageLimitExceeded as exc:
                budget = "max_steps" if run.usage["requests"] >= spec.max_steps else "max_tokens"
                status, error = "stopped", f"budget {budget} exceeded: {exc}"
            except BudgetExceeded as exc:
                status, error = "stopped", str(exc)
            finally:
                messages = list(captured)
    except DBOSException:
        check_owner()  # the engine went away under the run: it stays pending for another executor
        raise
    except _ModelFailed as exc:
        status, error = "failed", str(exc)
    except Exception as exc:  # the run ends failed with the reason; nothing is left "running"
        status, error = "failed", f"{type(exc).__name__}: {exc}"
    check_owner()
    transcript = compact(_public(messages))
    usage = run.usage_doc() if run is not None else {}
    await steps.finish_step(tenant_id, run_id, status, output, error, transcript, usage)
    return {"status": status, "error": error}
