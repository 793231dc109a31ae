"""The tools an agent may call, as the model sees them: one pydantic-ai tool per entry of the agent's
allow-list, a registered action (schema: the action's input schema) or an :func:`agent_tool` (schema:
the function's signature and docstring, ``deps`` left out).

Only allowed tools are offered. A call to anything else (a tool the model invented, or one an injected
text asked for) is turned by the runtime into a call of the hidden :data:`REFUSED` tool, which answers
with a refusal and audits it: the model learns it may not, and nothing runs. The tools are sequential
so that the durable steps they make are numbered in the order the model asked for them.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from pydantic_ai import Tool

from bastion.agents.spec import AgentDeps, AgentSpec, get_agent_tool, wire_name
from bastion.connectors.registry import _arg_docs, _json_type, get_action

__all__ = ["REFUSED", "ToolInfo", "UnknownTool", "agent_tool_schema", "build_tools", "resolve_tools"]

# The wire name of the hidden tool that stands in for every call outside the allow-list (never offered
# to a model; the runtime removes it from the tool list and renames calls back in transcripts).
REFUSED = "bastion_refused_call"

ToolRunner = Callable[["ToolInfo", dict[str, Any]], Awaitable[Any]]
RefusalRunner = Callable[[str, dict[str, Any]], Awaitable[Any]]


class UnknownTool(ValueError):
    """An agent's allow-list names a tool that is neither an action nor an agent tool."""


@dataclass(frozen=True)
class ToolInfo:
    """One allowed tool: its id (``cases.comment``, ``search_events``), wire name, kind and impact."""

    name: str
    wire: str
    kind: str  # "action" | "agent_tool"
    impact: str  # read | low | high
    description: str
    schema: dict[str, Any]


def agent_tool_schema(fn: Callable[..., Any]) -> dict[str, Any]:
    """JSON Schema of an agent tool's arguments: its parameters after ``deps``, with the docstring's
    ``Args:`` descriptions."""
    try:
        hints = typing.get_type_hints(fn, localns={"AgentDeps": AgentDeps})
    except Exception:  # an annotation that cannot be resolved here: untyped, like ``Any``
        hints = {}
    _, docs = _arg_docs(fn.__doc__ or "")
    props: dict[str, Any] = {}
    required: list[str] = []
    params = list(inspect.signature(fn).parameters.values())
    for param in params[1:]:  # the first parameter is ``deps``
        if param.kind in (param.VAR_KEYWORD, param.VAR_POSITIONAL):
            continue
        prop = _json_type(hints.get(param.name, Any))
        if param.name in docs:
            prop["description"] = docs[param.name]
        if param.default is inspect.Parameter.empty:
            required.append(param.name)
        elif param.default is not None:
            prop["default"] = param.default
        props[param.name] = prop
    schema: dict[str, Any] = {"type": "object", "properties": props, "additionalProperties": False}
    if required:
        schema["required"] = required
    return schema


def resolve_tools(spec: AgentSpec) -> dict[str, ToolInfo]:
    """The agent's allow-list as ``{wire name: ToolInfo}``; raises UnknownTool for a name that is neither."""
    found: dict[str, ToolInfo] = {}
    for name in spec.tools:
        tool = get_agent_tool(name)
        if tool is not None:
            doc = inspect.cleandoc(tool.description or "")
            summary = doc.split("\nArgs:")[0].strip() if doc else name
            found[wire_name(name)] = ToolInfo(
                name=name,
                wire=wire_name(name),
                kind="agent_tool",
                impact=tool.impact,
                description=summary or name,
                schema=agent_tool_schema(tool.fn),
            )
            continue
        defn = get_action(name)
        if defn is None:
            raise UnknownTool(
                f"agent {spec.name!r} allows {name!r}, which is neither an action nor an agent tool"
            )
        found[wire_name(name)] = ToolInfo(
            name=name,
            wire=wire_name(name),
            kind="action",
            impact=defn.impact,
            description=f"{defn.description or name} (action {name}, impact {defn.impact})",
            schema=defn.schema,
        )
    return found


def build_tools(tools: dict[str, ToolInfo], run: ToolRunner, refuse: RefusalRunner) -> list[Tool[Any]]:
    """pydantic-ai tools for ``tools`` (each call goes to ``run(info, args)``), plus the hidden refusal
    tool (``refuse(tool, args)``)."""
    out: list[Tool[Any]] = []
    for info in tools.values():
        out.append(
            Tool.from_schema(
                _caller(info, run),
                name=info.wire,
                description=info.description,
                json_schema=info.schema,
                sequential=True,
            )
        )

    async def refused(tool: str = "", args: dict[str, Any] | None = None) -> Any:
        return await refuse(tool, args or {})

    out.append(
        Tool.from_schema(
            refused,
            name=REFUSED,
            description="(internal) a call outside the allow-list",
            json_schema={
                "type": "object",
                "properties": {"tool": {"type": "string"}, "args": {"type": "object"}},
            },
            sequential=True,
        )
    )
    return out


def _caller(info: ToolInfo, run: ToolRunner) -> Callable[..., Awaitable[Any]]:
    async def call(**args: Any) -> Any:
        return await run(info, args)

    call.__name__ = info.wire
    return call
