"""The offline workflow planner: from an objective in plain language to a step plan, with no model.

It chains the registered actions by their declared inputs and effects (:mod:`.catalogue`): the objective
is read into a trigger, intents and entities (:mod:`.parse`), each intent becomes the step of the action
that has that effect, preferring the tenant's connected products, and every required input is filled
from a workflow input, an earlier step's output or a variable (:mod:`.chain`).

:func:`plan_objective` returns the plan as plain data::

    {"workflow_id", "title", "objective", "trigger": {...}, "inputs": {...}, "vars": {...},
     "steps": [{"id", "action", "why", "with", "if"?, "for_each"?, "approval"?}], "outputs": {...},
     "notes": [...]}

:mod:`bastion.agents.construct` turns it into workflow YAML, validates and dry-runs it.
"""

from __future__ import annotations

import re
from typing import Any

from bastion.agents.planner.catalogue import ACTIONS, EFFECTS
from bastion.agents.planner.chain import Builder, candidates, choose_action
from bastion.agents.planner.parse import Parsed, parse_objective

__all__ = ["PlanError", "candidates", "choose_action", "parse_objective", "plan_objective", "title_for"]

_TOPIC_TITLES = {
    "credential-leak": "Leaked credential response",
    "lookalike-domain": "Lookalike domain response",
    "vulnerable-software": "Vulnerable asset response",
    "report": "Reported message response",
}


class PlanError(ValueError):
    """The objective names nothing the planner can do; the message says what it understood."""

    #: A user's mistake, told to the user in one line: no traceback in the logs (respond/runtime.py).
    user_mistake = True


def title_for(parsed: Parsed) -> str:
    topic = parsed.trigger.topic
    if topic in _TOPIC_TITLES:
        return _TOPIC_TITLES[topic]
    if parsed.trigger.kind == "alert" and topic not in ("", "alert"):
        return f"{topic[0].upper()}{topic[1:]} response"
    # keep what makes an indicator readable (198.51.100.7, evil.example, a@b.c, /path): drop the rest
    words = [w.strip(".:/") for w in re.sub(r"[^\w\s.:@/-]", " ", parsed.objective).split()]
    text = " ".join(w for w in words[:8] if w) or "Designed workflow"
    return text[0].upper() + text[1:]


def _slug(text: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60].strip("-")
    return slug or "designed-workflow"


def plan_objective(
    objective: str,
    *,
    connections: list[str] | set[str] | tuple[str, ...] = (),
    workflow_id: str | None = None,
) -> dict[str, Any]:
    """A step plan for ``objective`` (see the module docs for its shape). ``connections`` are the tenant's
    connection names: when several products can do a step, a connected one is chosen.

    Raises :class:`PlanError` when no clause names anything an action can do.
    """
    if not objective or not objective.strip():
        raise PlanError(
            "the objective is empty: say what should happen, e.g. 'isolate the host and open a case'"
        )
    parsed = parse_objective(objective)
    if not parsed.intents:
        raise PlanError(
            "no step found in the objective: name what to do "
            "(suspend, isolate, block, open a case, notify, ...)"
            + (f"; not understood: {', '.join(parsed.unmatched)}" if parsed.unmatched else "")
        )
    title = title_for(parsed)
    builder = Builder(parsed, set(connections), title)
    builder.build()
    steps = []
    for s in builder.steps:
        step = {k: v for k, v in s.items() if not k.startswith("_")}
        step["impact"] = _impact(step["action"])
        steps.append(step)
    outputs: dict[str, Any] = {}
    for s in steps:
        sample = ACTIONS[s["action"]].sample
        looped = "for_each" in s
        if s["action"] == "cases.create" and not looped:
            outputs.setdefault("case_id", f"${{{{ steps.{s['id']}.output.id }}}}")
        elif "change_id" in sample and not looped:
            outputs[f"{s['id']}_change_id"] = (
                f"${{{{ steps.{s['id']}.output.change_id if steps.{s['id']}.output else None }}}}"
            )
    return {
        "workflow_id": workflow_id or _slug(title),
        "title": title,
        "objective": parsed.objective,
        "trigger": parsed.trigger.spec,
        "inputs": builder.inputs,
        "vars": builder.vars,
        "steps": steps,
        "outputs": outputs,
        "notes": [*builder.notes, *(f"not understood: {c!r}" for c in parsed.unmatched)],
        "intents": [
            {
                "effect": i.effect,
                "clause": i.clause,
                "vendor": i.vendor,
                "approval": i.approval,
                "meaning": EFFECTS[i.effect].why,
            }
            for i in parsed.intents
        ],
    }


def _impact(action: str) -> str:
    from bastion.connectors.registry import get_action

    defn = get_action(action)
    return defn.impact if defn else "unknown"
