"""The offline "model": an agent's deterministic reasoner behind a pydantic-ai ``FunctionModel``.

With no LLM configured, the runtime runs the very same pydantic-ai agent (same tools, allow-list,
approval gate, budgets, output validation, transcript); only the thing that decides is different. On
each model turn this module turns the message history into the reasoner's view (``Seen``: every tool
call made so far, with its result or error), asks the reasoner, and answers as a model would: tool
calls, or the final output as a call of the output tool (which pydantic-ai validates against the
agent's output schema).

:func:`play` runs a reasoner against its agent's allow-listed *agent tools* directly, with no model, no
durable run and no record: for the evaluation bench and for tests of a reasoner's decisions. Product
paths (commands, API, console) always go through ``bastion.agents.runtime``; ``play`` refuses actions,
which need the runtime's approval gate.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    RetryPromptPart,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
)
from pydantic_ai.models.function import AgentInfo, FunctionModel

from bastion.agents.spec import (
    AgentDeps,
    AgentSpec,
    Call,
    Finish,
    Seen,
    Task,
    get_agent,
    get_agent_tool,
    tool_name,
    wire_name,
)

__all__ = ["Played", "ReasonerError", "play", "reasoner_model", "seen_from_messages"]


class ReasonerError(RuntimeError):
    """The reasoner returned something that is neither tool calls nor a Finish."""


def _error_of(part: ToolReturnPart) -> str | None:
    meta = part.metadata
    if isinstance(meta, dict) and meta.get("error"):
        return str(meta["error"])
    return None


def seen_from_messages(messages: Sequence[ModelMessage], *, skip: set[str] | None = None) -> list[Seen]:
    """Every tool call in ``messages`` (except those named in ``skip``: output tools), in order, with
    what came back: the tool's result, or its error (a refusal, a denial, a failed action, a retry)."""
    skip = skip or set()
    answers: dict[str, ToolReturnPart | RetryPromptPart] = {}
    for msg in messages:
        if isinstance(msg, ModelRequest):
            for part in msg.parts:
                if isinstance(part, ToolReturnPart | RetryPromptPart) and part.tool_call_id:
                    answers[part.tool_call_id] = part
    seen: list[Seen] = []
    for msg in messages:
        if not isinstance(msg, ModelResponse):
            continue
        for rpart in msg.parts:
            if not isinstance(rpart, ToolCallPart) or rpart.tool_name in skip:
                continue
            args = rpart.args_as_dict()
            answer = answers.get(rpart.tool_call_id)
            name = tool_name(rpart.tool_name)
            if answer is None:
                seen.append(Seen(tool=name, args=args, error="no result (the call did not run)"))
            elif isinstance(answer, RetryPromptPart):
                seen.append(Seen(tool=name, args=args, error=answer.model_response()))
            else:
                error = _error_of(answer)
                seen.append(Seen(tool=name, args=args, result=None if error else answer.content, error=error))
    return seen


def _respond(spec: AgentSpec, task: Task, messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    output_names = {t.name for t in info.output_tools}
    seen = seen_from_messages(messages, skip=output_names)
    decision: Any = spec.reasoner(task, seen)
    turn = sum(1 for m in messages if isinstance(m, ModelResponse)) + 1
    if isinstance(decision, Finish):
        if not info.output_tools:
            raise ReasonerError(f"agent {spec.name}: the run has no output tool to finish with")
        return ModelResponse(
            parts=[
                ToolCallPart(info.output_tools[0].name, dict(decision.output), tool_call_id=f"t{turn}-out")
            ],
            model_name="offline",
        )
    if not isinstance(decision, list) or not decision or not all(isinstance(c, Call) for c in decision):
        raise ReasonerError(
            f"agent {spec.name}: the reasoner must return a non-empty list of Call or a Finish, "
            f"not {type(decision).__name__}"
        )
    parts: list[Any] = []
    why = [f"- {c.tool}: {c.why}" for c in decision if c.why]
    if why:
        parts.append(TextPart("Plan:\n" + "\n".join(why)))
    for k, call in enumerate(decision):
        parts.append(ToolCallPart(wire_name(call.tool), dict(call.args), tool_call_id=f"t{turn}-{k}"))
    return ModelResponse(
        parts=parts,
        model_name="offline",
        provider_details={"why": {f"t{turn}-{k}": c.why for k, c in enumerate(decision)}},
    )


def reasoner_model(spec: AgentSpec, task: Task) -> FunctionModel:
    """A pydantic-ai model whose every answer is ``spec.reasoner(task, seen)``."""

    def function(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        return _respond(spec, task, messages, info)

    return FunctionModel(function, model_name="offline")


@dataclass
class Played:
    """What :func:`play` did: ``status`` succeeded (a validated output), failed (the reasoner raised, or
    its output did not validate) or stopped (the step budget ran out), the calls made, and the error."""

    status: str
    output: dict[str, Any] | None = None
    plan: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None


def play(agent: str, task: Task, deps: AgentDeps) -> Played:
    """Run ``agent``'s reasoner here against its allow-listed agent tools (see the module docstring)."""
    spec = get_agent(agent)
    seen: list[Seen] = []
    plan: list[dict[str, Any]] = []
    for _ in range(spec.max_steps):
        try:
            decision = spec.reasoner(task, seen)
        except Exception as exc:  # as under the runtime: a failing "model" fails the run, with the reason
            return Played("failed", plan=plan, error=str(exc))
        if isinstance(decision, Finish):
            try:
                output = spec.output.model_validate(decision.output).model_dump(mode="json")
            except ValueError as exc:
                return Played("failed", plan=plan, error=f"output does not validate: {exc}")
            return Played("succeeded", output=output, plan=plan)
        for call in decision:
            plan.append({"tool": call.tool, "args": call.args, "why": call.why})
            tool = get_agent_tool(call.tool) if call.tool in spec.tools else None
            if tool is None:
                error = f"refused: {call.tool} is not an agent tool of {agent} (actions need the runtime)"
                seen.append(Seen(call.tool, call.args, error=error))
                continue
            try:
                seen.append(Seen(call.tool, call.args, result=tool.fn(deps, **call.args)))
            except Exception as exc:  # as under the runtime: the reasoner sees the failure
                seen.append(Seen(call.tool, call.args, error=f"{type(exc).__name__}: {exc}"))
    return Played("stopped", plan=plan, error=f"budget max_steps exceeded: {spec.max_steps} steps")
