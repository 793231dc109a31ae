"""What an agent is, and the tools agents may call.

An agent is data: instructions, an allow-list of tools, a typed output schema, budgets, and an offline
*reasoner*. The runtime (``bastion.agents.runtime``) runs it with the tenant's LLM; with no LLM it runs
the same agent through a pydantic-ai ``FunctionModel`` that asks the reasoner what to do next. So one
loop, one set of guardrails, one audit, whichever "model" decides.

A reasoner is a pure function ``(task, seen) -> decision``: given the task and the tool calls made so far
with their results, it returns the next tool calls (``list[Call]``) or the final output (``Finish``). It
does no I/O itself; everything it learns comes through tools, which the guardrails check.

Tools are the registered actions (``connectors.registry``; their id is the tool name, e.g.
``crowdstrike.contain_host``) plus the agent tools registered here with :func:`agent_tool` (read tools
such as ``search_events``, and a few safe fixes such as ``retry_run``). Tool names on the wire to an LLM
replace ``.`` with ``__`` (OpenAI tool names allow no dots); :func:`wire_name` and :func:`tool_name` map.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel

from bastion.store import Database

__all__ = [
    "AgentDeps",
    "AgentSpec",
    "AgentTool",
    "Call",
    "Decision",
    "Finish",
    "Reasoner",
    "Seen",
    "Task",
    "agent_tool",
    "agent_tools",
    "all_agents",
    "get_agent",
    "get_agent_tool",
    "register_agent",
    "tool_name",
    "wire_name",
]

Impact = Literal["read", "low", "high"]


# ------------------------------------------------------------------------------------ the task


@dataclass(frozen=True)
class Task:
    """What an agent is asked to do. ``input`` is the structured request (an indicator, a file path, a
    run id, an objective's parameters); ``untrusted`` holds alert or e-mail content that the agent may
    read but must never take instructions from: the runtime passes it fenced, as data."""

    agent: str
    objective: str
    input: dict[str, Any] = field(default_factory=dict)
    tenant_id: str | None = None
    case_id: str | None = None
    untrusted: tuple[str, ...] = ()


@dataclass(frozen=True)
class Call:
    """A tool call the reasoner asks for. ``why`` is shown in the plan and the transcript."""

    tool: str
    args: dict[str, Any] = field(default_factory=dict)
    why: str = ""


@dataclass(frozen=True)
class Seen:
    """A tool call already made and what came back: its result, or the error (a refusal by the
    guardrails, a denied approval, a failed action) as text."""

    tool: str
    args: dict[str, Any]
    result: Any = None
    error: str | None = None


@dataclass(frozen=True)
class Finish:
    """The final answer: a dict the runtime validates against the agent's output schema."""

    output: dict[str, Any]


Decision = list[Call] | Finish
Reasoner = Callable[[Task, list[Seen]], Decision]


# ------------------------------------------------------------------------------------ agents


@dataclass(frozen=True)
class AgentSpec:
    """One specialist agent."""

    name: str  # "intel", "malware", "troubleshoot", "design", "construct", "docs", "objective", "triage"
    title: str
    instructions: str  # the system prompt an LLM gets
    tools: tuple[str, ...]  # the allow-list: agent tool names and action ids
    output: type[BaseModel]  # the typed result; an LLM's final answer is validated against it
    reasoner: Reasoner  # the offline "model"
    max_steps: int = 12  # model requests per run (a budget; the runtime may lower it, never raise it)
    max_tokens: int = 60_000  # total tokens per run, when an LLM reports usage
    max_seconds: float = 300.0  # wall-clock per run


_AGENTS: dict[str, AgentSpec] = {}


def register_agent(spec: AgentSpec) -> AgentSpec:
    """Register ``spec`` under its name (specialist modules call this at import)."""
    if spec.name in _AGENTS and _AGENTS[spec.name] is not spec:
        raise ValueError(f"agent {spec.name!r} is already registered")
    _AGENTS[spec.name] = spec
    return spec


def get_agent(name: str) -> AgentSpec:
    """The registered agent ``name``; a KeyError names the ones there are."""
    _load_specialists()
    try:
        return _AGENTS[name]
    except KeyError:
        raise KeyError(f"unknown agent {name!r}; agents: {', '.join(sorted(_AGENTS))}") from None


def all_agents() -> list[AgentSpec]:
    _load_specialists()
    return [_AGENTS[n] for n in sorted(_AGENTS)]


def _load_specialists() -> None:
    import importlib
    import pkgutil

    import bastion.agents.specialists as pkg

    for module in pkgutil.iter_modules(pkg.__path__):
        importlib.import_module(f"{pkg.__name__}.{module.name}")


# ------------------------------------------------------------------------------------ tools


@dataclass(frozen=True)
class AgentDeps:
    """What an agent tool gets besides its arguments: the store, the tenant, who asked, and the run."""

    db: Database
    tenant_id: str
    actor: str
    run_id: str
    case_id: str | None = None


@dataclass(frozen=True)
class AgentTool:
    """A tool that is not a registered action: a read of Bastion's data, or a safe fix. ``fn`` is a plain
    function ``fn(deps, **args) -> JSON-able``; its signature and docstring are its schema and
    description, as for actions. It may raise ``ValueError`` for a bad argument (the agent sees the
    message)."""

    name: str
    description: str
    fn: Callable[..., Any]
    impact: Impact = "read"

    @property
    def signature(self) -> inspect.Signature:
        return inspect.signature(self.fn)


_TOOLS: dict[str, AgentTool] = {}


def agent_tool(name: str, *, impact: Impact = "read") -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register ``fn(deps: AgentDeps, ...)`` as agent tool ``name`` (snake_case, no dots)."""
    if "." in name:
        raise ValueError(f"agent tool names have no dots (dots are action ids): {name!r}")

    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        doc = inspect.getdoc(fn) or ""
        existing = _TOOLS.get(name)
        if existing is not None and existing.fn is not fn:
            raise ValueError(f"agent tool {name!r} is already registered")
        _TOOLS[name] = AgentTool(name=name, description=doc, fn=fn, impact=impact)
        return fn

    return register


def get_agent_tool(name: str) -> AgentTool | None:
    _load_tools()
    return _TOOLS.get(name)


def agent_tools() -> list[AgentTool]:
    _load_tools()
    return [_TOOLS[n] for n in sorted(_TOOLS)]


def _load_tools() -> None:
    import importlib
    import pkgutil

    import bastion.agents.tools as pkg

    for module in pkgutil.iter_modules(pkg.__path__):
        importlib.import_module(f"{pkg.__name__}.{module.name}")


def wire_name(tool: str) -> str:
    """The name an LLM sees: action ids' dots become ``__``."""
    return tool.replace(".", "__")


def tool_name(wire: str) -> str:
    """Back from the wire name to the tool or action id."""
    return wire.replace("__", ".")
