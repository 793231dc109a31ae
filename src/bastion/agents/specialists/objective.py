"""The objective runner: a free-text objective ("contain host web-01 and find related alerts") turned into
read-tool calls and response actions, run through the agent runtime, and written up as a report.

Offline, the reasoner splits the objective into clauses. Clauses that ask to find or look into something
become read-tool calls (alerts, intel, assets, identities, cases) about the entities the objective names.
The other clauses go to the workflow design planner (:func:`bastion.agents.planner.plan_objective`), which
picks the actions for the tenant's connected products (``Task.input["connections"]``) and chains their
inputs (``crowdstrike.find_device`` gives the device ids ``contain_host`` needs). The reasoner then runs
that plan step by step, rendering each step's inputs with the workflow expression engine against the
results seen so far, and finishes with a Markdown report of what was done, what was found and what is
left for a person. High-impact actions are asked for like any other call: the runtime's approval gate
parks them until someone decides.

The reasoner is pure: each turn it re-derives the plan from the objective and the results seen so far,
and asks for the calls that are ready and not yet made.

The "mcp" agent registered here is the pass-through the MCP server uses to run one registered action on
behalf of an external assistant under the same approval gate, durability and audit as any agent call.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from pydantic import BaseModel, Field

from bastion.agents.planner.catalogue import ACTIONS, ENTITY_INPUTS
from bastion.agents.spec import AgentSpec, Call, Decision, Finish, Seen, Task, register_agent
from bastion.store import Database

__all__ = [
    "ACTION_TOOLS",
    "READ_TOOLS",
    "McpCallResult",
    "ObjectiveReport",
    "Step",
    "entities_of",
    "plan_steps",
    "read_args",
    "reason_mcp",
    "reason_objective",
    "run_view",
    "start_run",
]

# The read tools the objective runner may use (``agents/tools/read.py``).
READ_TOOLS: tuple[str, ...] = (
    "search_alerts",
    "search_events",
    "get_alert",
    "get_case",
    "related_cases",
    "intel_lookup",
    "attack_lookup",
    "asset_lookup",
    "identity_lookup",
)

# The actions an objective may lead to: exactly those the planner knows how to use (its catalogue is
# checked against the registry by its own tests), so the allow-list is explicit and reviewable.
ACTION_TOOLS: tuple[str, ...] = tuple(sorted(ACTIONS))

MAX_ENTITIES = 10  # per kind: an objective naming more is a bulk job, not a conversation
_CASE = re.compile(r"(?:\bcase\s*#?\s*|#)(\d{1,9}|[0-9a-f]{32})\b", re.IGNORECASE)
_READ = re.compile(
    r"\b(?:find|search|look(?:ing)? (?:for|up|into)|lookup|hunt|list|show|investigate|enrich|check|what do we"
    r" know|intel(?:ligence)?|reputation|history|sightings?|related|triage|assess|analy[sz]e)\b",
    re.IGNORECASE,
)
_ACT = re.compile(
    r"\b(?:contain|isolate|quarantine|disconnect|suspend|disable|lock|deactivate|block|reset|rotate|revoke|"
    r"sign out|log out|open|create|raise|notify|tell|page|post|message|e-?mail|ticket|close|unblock|release|"
    r"enable|restore|lift|remove|add|scan|collect|confirm)\b",
    re.IGNORECASE,
)


# ------------------------------------------------------------------------------------ parsing


def entities_of(task: Task) -> dict[str, list[str]]:
    """The entities the objective names (the planner's extraction: ip, domain, url, email, hash, host,
    user, cve), case references, and any given in ``input["entities"]`` (``{"host": [...]}``)."""
    from bastion.agents.planner.parse import extract_entities

    found = {k: list(v)[:MAX_ENTITIES] for k, v in extract_entities(task.objective).items()}
    cases = [m.group(1) for m in _CASE.finditer(task.objective)]
    if task.case_id:
        cases.append(task.case_id)
    if cases:
        found["case"] = list(dict.fromkeys(cases))[:MAX_ENTITIES]
    given = task.input.get("entities")
    for kind, values in (given if isinstance(given, dict) else {}).items():
        if isinstance(values, list):
            target = found.setdefault(str(kind), [])
            target.extend(str(v) for v in values if str(v) not in target)
    return found


def _clauses(objective: str) -> tuple[list[str], list[str]]:
    """(read clauses, action clauses): a clause that asks to find or look into something, and names no
    action verb, is a read."""
    from bastion.agents.planner.parse import split_clauses

    reads: list[str] = []
    acts: list[str] = []
    for clause in split_clauses(" ".join(objective.split())):
        (reads if _READ.search(clause) and not _ACT.search(clause) else acts).append(clause)
    return reads, acts


# ------------------------------------------------------------------------------------ steps

Args = dict[str, Any] | list[dict[str, Any]] | str


@dataclass
class Step:
    """One planned step. ``args`` is a function of the results so far (by step id) that returns the
    arguments of its call, a list of them (a ``for_each`` step), or a string saying why the step cannot
    run (a missing input, a false condition)."""

    id: str
    tool: str
    why: str
    args: Callable[[dict[str, Any]], Args]
    after: tuple[str, ...] = ()
    read: bool = False


# The argument a read tool takes its subject in, by preference; the first the tool declares is used.
_SUBJECT_ARGS: tuple[str, ...] = ("value", "entity", "query", "case_ref", "indicator", "subject", "case_id")
_SUBJECT_ARGS += ("host", "hostname", "username", "user", "email", "ip", "name", "id")


def read_args(tool: str, value: str) -> dict[str, Any] | str:
    """Arguments for the read tool ``tool`` about ``value``: its subject parameter, by its signature (or
    why it cannot be called: the tool is not installed)."""
    from bastion.agents.spec import get_agent_tool

    found = get_agent_tool(tool)
    if found is None:
        return f"the read tool {tool} is not available"
    params = [p for p in found.signature.parameters if p not in ("deps", "self")]
    for name in _SUBJECT_ARGS:
        if name in params:
            return {name: value}
    return {params[0]: value} if params else {}


def _read(step_id: str, tool: str, why: str, value: str) -> Step:
    args = read_args(tool, value)
    return Step(step_id, tool, why, lambda _results: args, read=True)


def _read_steps(ents: dict[str, list[str]], investigate: bool) -> list[Step]:
    steps = [
        _read(f"case_{n}", "get_case", f"read case {ref}", ref) for n, ref in enumerate(ents.get("case", []))
    ]
    iocs = [v for k in ("ip", "domain", "url", "hash", "email") for v in ents.get(k, [])]
    subjects = [*ents.get("host", []), *ents.get("user", []), *iocs]
    steps += [
        _read(f"alerts_{n}", "search_alerts", f"find alerts involving {v}", v) for n, v in enumerate(subjects)
    ]
    if investigate:
        steps += [
            _read(f"intel_{n}", "intel_lookup", f"look {v} up in threat intel", v) for n, v in enumerate(iocs)
        ]
        steps += [
            _read(f"asset_{n}", "asset_lookup", f"asset context of {h}", h)
            for n, h in enumerate(ents.get("host", []))
        ]
        steps += [
            _read(f"identity_{n}", "identity_lookup", f"identity context of {u}", u)
            for n, u in enumerate(ents.get("user", []))
        ]
    return steps


def _missing(value: Any) -> bool:
    from jinja2 import Undefined

    return value is None or value == "" or isinstance(value, Undefined)


def _plan_step(raw: dict[str, Any], context: Callable[[dict[str, Any]], dict[str, Any]]) -> Step:
    """A planner step as a runnable step: its ``if``, ``for_each`` and ``with`` rendered by the workflow
    expression engine against the inputs and the results of earlier steps."""
    from bastion.connectors.registry import get_action
    from bastion.respond.expr import ExpressionError, render

    defn = get_action(raw["action"])
    required = set(defn.schema.get("required", [])) if defn else set()
    deps = tuple(sorted(set(re.findall(r"steps\.(\w+)\.", repr(raw)))))

    def args(results: dict[str, Any]) -> Args:
        ctx = context(results)
        try:
            if "if" in raw and not render(raw["if"], ctx):
                return "its condition is false"
            items = render(raw["for_each"], ctx) if "for_each" in raw else None
            if items is not None and (_missing(items) or not isinstance(items, list) or not items):
                return "nothing to do it for (an earlier step found none)"
            calls = []
            for item in items if items is not None else [None]:
                done = render(raw.get("with", {}), {**ctx, "item": item})
                absent = sorted(k for k, v in done.items() if k in required and _missing(v))
                if absent:
                    return f"no value for {', '.join(absent)}: name it in the objective"
                calls.append({k: v for k, v in done.items() if not _missing(v)})
        except ExpressionError as exc:
            return f"its inputs could not be worked out: {exc}"
        return calls if items is not None else calls[0]

    read = defn is not None and defn.impact == "read"
    return Step(raw["id"], raw["action"], str(raw.get("why", raw["action"])), args, after=deps, read=read)


@lru_cache(maxsize=64)
def _planned(text: str, connections: tuple[str, ...]) -> dict[str, Any] | str:
    from bastion.agents.planner import PlanError, plan_objective

    try:
        return plan_objective(text, connections=connections)
    except PlanError as exc:
        return str(exc)


def plan_steps(task: Task) -> tuple[list[str], dict[str, list[str]], list[Step], list[str]]:
    """(intents, entities, ordered steps, notes) for ``task``: reads first, then the planned actions."""
    ents = entities_of(task)
    reads, acts = _clauses(task.objective)
    investigate = any(
        re.search(r"investigat|look|enrich|check|intel|know|reputation|assess|analy|triage", c, re.I)
        for c in reads
    )
    steps = _read_steps(ents, investigate) if reads or not acts else []
    intents = ["find"] * bool(reads) + ["investigate"] * investigate
    notes: list[str] = []
    if acts:
        connections = tuple(sorted(str(c) for c in task.input.get("connections", [])))
        plan = _planned(", ".join(acts), connections)
        if isinstance(plan, str):
            notes.append(f"no action planned for {', '.join(acts)!r}: {plan}")
        else:
            intents += [i["effect"] for i in plan["intents"]]
            notes += plan["notes"]
            values = {name: spec.get("default") for name, spec in plan["inputs"].items()}
            for kind, name in ENTITY_INPUTS.items():  # an entity named in a read clause counts too
                if _missing(values.get(name)) and ents.get(kind):
                    values[name] = ents[kind][0]
            base = {"inputs": values, "vars": plan["vars"], "tenant": {"connections": list(connections)}}

            def context(results: dict[str, Any]) -> dict[str, Any]:
                return {**base, "steps": {k: {"output": v} for k, v in results.items()}}

            steps += [_plan_step(raw, context) for raw in plan["steps"]]
    return intents, ents, steps, notes


# ------------------------------------------------------------------------------------ the reasoner


class ObjectiveReport(BaseModel):
    """What an objective run did, found and left for a person; ``report`` is the Markdown write-up."""

    objective: str
    intents: list[str] = Field(default_factory=list)
    entities: dict[str, list[str]] = Field(default_factory=dict)
    done: list[str] = Field(default_factory=list)
    found: list[str] = Field(default_factory=list)
    pending: list[str] = Field(default_factory=list)
    summary: str
    report: str


def _match(seen: list[Seen], tool: str, args: dict[str, Any]) -> Seen | None:
    for s in seen:
        if s.tool == tool and s.args == args:
            return s
    return None


def _describe_result(tool: str, result: Any) -> str:
    if isinstance(result, list):
        return f"{len(result)} result(s)"
    if isinstance(result, dict):
        for key in ("total", "count"):
            if isinstance(result.get(key), int):
                return f"{result[key]} result(s)"
        for key in ("alerts", "matches", "events", "cases", "results", "items", "ids"):
            if isinstance(result.get(key), list):
                return f"{len(result[key])} {key}"
        bits = [
            f"{k}={result[k]}"
            for k in ("status", "verdict", "found", "contained", "id", "number")
            if k in result and not isinstance(result[k], dict | list)
        ]
        return ", ".join(bits) or "ok"
    return "ok" if result is None else str(result)[:200]


def _titles(result: Any) -> list[str]:
    items = result.get("alerts") or result.get("items") or [] if isinstance(result, dict) else result
    out = []
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict) and item.get("title"):
            extra = f" (score {item['score']})" if "score" in item else ""
            out.append(f"{item['title']}{extra}")
    return out[:5]


def reason_objective(task: Task, seen: list[Seen]) -> Decision:
    """Next calls for the objective, or the report once every step ran or cannot run."""
    intents, ents, steps, notes = plan_steps(task)
    results: dict[str, Any] = {}
    outcome: dict[str, tuple[str, str]] = {}  # step id -> (state, text)
    ready: list[Call] = []
    for step in steps:
        states = [outcome.get(dep, ("waiting", ""))[0] for dep in step.after if dep in {s.id for s in steps}]
        if any(st in ("failed", "skipped") for st in states):
            outcome[step.id] = ("skipped", f"{step.why}: not done, because an earlier step did not succeed")
            continue
        if any(st != "done" for st in states):
            continue  # waits for its inputs
        args = step.args(results)
        if isinstance(args, str):
            outcome[step.id] = ("skipped", f"{step.why}: not done ({args})")
            continue
        calls = args if isinstance(args, list) else [args]
        hits = [_match(seen, step.tool, a) for a in calls]
        missing = [Call(step.tool, a, step.why) for a, h in zip(calls, hits, strict=True) if h is None]
        if missing:
            ready.extend(missing)
            continue
        errors = [h.error for h in hits if h is not None and h.error]
        if errors:
            outcome[step.id] = ("failed", f"{step.why}: {step.tool} failed: {errors[0]}")
            continue
        out = [h.result for h in hits if h is not None]
        results[step.id] = out if isinstance(args, list) else out[0]
        shown = "; ".join(_describe_result(step.tool, r) for r in out)
        outcome[step.id] = ("done", f"{step.why}: {step.tool} -> {shown}")
    if ready:
        return ready
    return Finish(_report(task, intents, ents, steps, outcome, results, notes))


def _report(
    task: Task,
    intents: list[str],
    ents: dict[str, list[str]],
    steps: list[Step],
    outcome: dict[str, tuple[str, str]],
    results: dict[str, Any],
    notes: list[str],
) -> dict[str, Any]:
    done: list[str] = []
    found: list[str] = []
    pending: list[str] = []
    for step in steps:
        state, text = outcome.get(step.id, ("skipped", f"{step.why}: not reached"))
        if state == "done" and step.read:
            found.append(text)
            found.extend(f"  - {t}" for t in _titles(results.get(step.id)))
        elif state == "done":
            done.append(text)
        else:
            pending.append(text)
    pending += notes
    if not steps:
        pending.append(
            "nothing in the objective maps to a tool: name a host, user or indicator and what to do"
        )
    lookups = sum(1 for s in steps if s.read and outcome.get(s.id, ("",))[0] == "done")
    summary = (
        f"{len(done)} action(s) done, {lookups} lookup(s) made, {len(pending)} item(s) left for a person"
    )
    lines = [f"# Objective: {task.objective}", "", summary, ""]
    if ents:
        lines += ["## Entities", ""] + [f"- {k}: {', '.join(v)}" for k, v in ents.items()] + [""]
    for title, items in (("Done", done), ("Found", found), ("Pending (for a person)", pending)):
        lines += [f"## {title}", ""] + (
            [i if i.startswith("  - ") else f"- {i}" for i in items] or ["- nothing"]
        )
        lines.append("")
    return {
        "objective": task.objective,
        "intents": intents,
        "entities": ents,
        "done": done,
        "found": found,
        "pending": pending,
        "summary": summary,
        "report": "\n".join(lines).rstrip() + "\n",
    }


OBJECTIVE = register_agent(
    AgentSpec(
        name="objective",
        title="Objective runner",
        instructions=(
            "You carry out a security analyst's objective in Bastion. First look things up with the read "
            "tools (alerts, cases, intel, assets, identities), then call the response actions the objective "
            "asks for, with inputs taken from what you found (e.g. find a device id before containing it). "
            "High-impact actions wait for a human approval: ask for them anyway when the objective wants "
            "them. Never act beyond the objective. Finish with a report: what was done, what was found, and "
            "what is left for a person, as Markdown in `report`."
        ),
        tools=READ_TOOLS + ACTION_TOOLS,
        output=ObjectiveReport,
        reasoner=reason_objective,
        max_steps=16,
    )
)


# ------------------------------------------------------------------------------------ MCP pass-through


class McpCallResult(BaseModel):
    """One action called for an external assistant: its result, or the error."""

    tool: str
    ok: bool
    result: Any = None
    error: str | None = None


def reason_mcp(task: Task, seen: list[Seen]) -> Decision:
    """Make exactly the one call the assistant asked for (``input: {"tool", "args"}``), then report it."""
    tool = str(task.input.get("tool", ""))
    args = task.input.get("args") or {}
    if not seen:
        return [
            Call(tool, dict(args), f"requested over MCP by {task.input.get('requested_by', 'an assistant')}")
        ]
    last = seen[-1]
    return Finish({"tool": tool, "ok": last.error is None, "result": last.result, "error": last.error})


def _all_action_ids() -> tuple[str, ...]:
    from bastion.connectors.registry import all_actions

    return tuple(a.id for a in all_actions())


MCP = register_agent(
    AgentSpec(
        name="mcp",
        title="External assistant action call (MCP)",
        instructions="Call exactly the one tool you are given with its arguments, then report the result.",
        tools=_all_action_ids(),
        output=McpCallResult,
        reasoner=reason_mcp,
        max_steps=3,
    )
)


# ------------------------------------------------------------------------------------ service


def run_view(run: dict[str, Any]) -> dict[str, Any]:
    """An agent run as the CLI and API show it: ``run_id, status, plan, approvals`` (the contract),
    with the agent, model, objective, output, Markdown ``report`` (objective runs) and error."""
    output = run.get("result")
    plan = [{k: v for k, v in p.items() if k != "id"} for p in run.get("plan") or []]
    return {
        "run_id": run["id"],
        "status": run["status"],
        "plan": plan,
        "approvals": run.get("approvals") or [],
        "agent": run["agent"],
        "objective": run["objective"],
        "model": run["model"],
        "actor": run["actor"],
        "case_id": run.get("case_id"),
        "created": run["created"],
        "finished": run.get("finished"),
        "output": output,
        "report": output.get("report") if isinstance(output, dict) else None,
        "error": run.get("error"),
    }


def start_run(
    db: Database,
    tenant_id: str,
    objective: str,
    *,
    actor: str,
    agent: str = "objective",
    input: dict[str, Any] | None = None,
    case_id: str | None = None,
    wait_s: float = 30.0,
) -> dict[str, Any]:
    """Run ``agent`` (the objective runner by default) on ``objective`` for the tenant, durably, and
    return :func:`run_view` of the run when it finished, parked on an approval, or ``wait_s`` passed.
    The objective runner is told the tenant's connection names, so it picks their products. Raises
    the runtime's ``AgentRunError`` (unknown agent or case) for the caller to show."""
    from bastion.agents.runtime import get_agent_run, run_agent
    from bastion.tenancy.connections import connection_names

    if not objective.strip():
        raise ValueError("the objective is empty: say what to do, e.g. 'contain host web-01'")
    if agent == "mcp":
        raise ValueError("the mcp agent only serves the MCP server (`bastion agent mcp`)")
    doc = dict(input or {})
    if agent == "objective" and "connections" not in doc:
        with db.read() as conn:
            doc["connections"] = connection_names(conn, tenant_id)
    task = Task(agent=agent, objective=objective.strip(), input=doc, tenant_id=tenant_id, case_id=case_id)
    result = run_agent(db, tenant_id, agent, task, actor=actor, wait_s=wait_s)
    run = get_agent_run(db, tenant_id, result.run_id)
    assert run is not None
    return run_view(run)
