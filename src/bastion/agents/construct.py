"""Workflow construction: a step plan becomes workflow YAML, checked by the real validator and dry-run
against simulated connectors, ready to save as a draft.

The dry-run does not start the engine (that would call real products, or need engine hooks to swap
actions). It walks the parsed workflow the way the engine does: for each step it evaluates ``if`` and
``for_each`` and renders ``with`` with the real expression engine (:func:`bastion.respond.expr.render`)
against simulated outputs of the earlier steps (the catalogue's samples, shaped like the real actions'
answers; ``core.set``/``core.transform`` give their rendered values, as they do for real), checks the
rendered inputs against the action's schema (:func:`~bastion.connectors.registry.check_inputs`), and
asks the tenant's policy (:func:`~bastion.connectors.policy.approval_for`) whether the call would wait
for an approval. Nothing is called.
"""

from __future__ import annotations

from typing import Any

import yaml

from bastion.agents.planner.catalogue import ACTIONS
from bastion.connectors.policy import DEFAULT_POLICY, approval_for
from bastion.connectors.registry import check_inputs, get_action
from bastion.respond.expr import ExpressionError, render
from bastion.respond.model import Step, Workflow
from bastion.respond.validate import validate_text

__all__ = ["build", "dry_run", "plan_to_yaml", "sample_inputs", "validate"]

_SAMPLES: dict[str, Any] = {
    "username": "jdoe",
    "email": "jdoe@example.org",
    "hostname": "ws-0042",
    "ip": "203.0.113.7",
    "domain": "login-examp1e.com",
    "url": "http://login-examp1e.com/reset",
    "file_hash": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "indicator": "CVE-2026-1234",
    "reporter": "reporter@example.org",
    "body": "Please reset your password at hxxp://login-examp1e[.]com/reset or call +1 555 0100",
}


def plan_to_yaml(plan: dict[str, Any]) -> str:
    """The workflow YAML for ``plan`` (id, title, version 1, description, trigger, inputs, vars, steps,
    outputs). Each step's ``why`` becomes its ``name``."""
    doc: dict[str, Any] = {
        "id": plan["workflow_id"],
        "title": plan["title"],
        "version": 1,
        "description": "Designed by the Bastion workflow design agent from the objective: "
        + plan["objective"],
        "trigger": plan["trigger"],
    }
    if plan.get("inputs"):
        doc["inputs"] = plan["inputs"]
    if plan.get("vars"):
        doc["vars"] = plan["vars"]
    steps = []
    for s in plan["steps"]:
        step: dict[str, Any] = {"id": s["id"], "name": s.get("why", "")[:200], "action": s["action"]}
        for key in ("if", "for_each", "approval"):
            if key in s:
                step[key] = s[key]
        if s["action"] in ("slack.post_message", "teams.post_card", "email.send"):
            step["on_error"] = "continue"  # a chat or mail failure must not stop the response
        step["with"] = s.get("with", {})
        steps.append(step)
    doc["steps"] = steps
    if plan.get("outputs"):
        doc["outputs"] = plan["outputs"]
    return str(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=110))


def validate(source: str) -> tuple[Workflow | None, list[dict[str, Any]]]:
    """The workflow and its problems (line, column, message) from the real validator."""
    workflow, problems = validate_text(source)
    return workflow, [p.as_dict() for p in problems]


def sample_inputs(workflow: Workflow) -> dict[str, Any]:
    """Input values for a dry-run: each input's default when it has one, else a sample of its kind."""
    out: dict[str, Any] = {}
    for name, spec in workflow.inputs.items():
        if spec.default not in (None, "", []):
            out[name] = spec.default
        elif name == "observables":
            out[name] = [
                {"type": "host", "value": "ws-0042"},
                {"type": "user", "value": "jdoe"},
                {"type": "ipv4", "value": "203.0.113.7"},
                {"type": "domain", "value": "login-examp1e.com"},
                {"type": "url", "value": "http://login-examp1e.com/reset"},
            ]
        elif name in _SAMPLES:
            out[name] = _SAMPLES[name]
        elif spec.type == "array":
            out[name] = []
        else:
            out[name] = spec.default if spec.default is not None else f"sample-{name}"
    return out


def _simulated(step: Step, rendered: dict[str, Any]) -> Any:
    if step.action == "core.set":
        return rendered.get("values", {})
    if step.action == "core.transform":
        return rendered.get("value")
    entry = ACTIONS.get(step.action or "")
    return dict(entry.sample) if entry else {}


def dry_run(
    workflow: Workflow,
    *,
    inputs: dict[str, Any] | None = None,
    connections: list[str] | None = None,
    policy: dict[str, Any] | None = None,
    tenant_id: str = "dry-run",
) -> dict[str, Any]:
    """Walk ``workflow`` with simulated connectors. Returns ``{"ok", "inputs", "steps": [{"id", "action",
    "status" (would_run | skipped | would_fail | error), "calls": [rendered inputs], "approval",
    "problems"}], "outputs"}``; ``ok`` is false when a render or input check failed."""
    policy = policy or DEFAULT_POLICY
    given = {**sample_inputs(workflow), **(inputs or {})}
    context: dict[str, Any] = {
        "inputs": given,
        "steps": {},
        "trigger": {"type": "dry-run", "payload": {}},
        "tenant": {"id": tenant_id, "name": tenant_id, "connections": list(connections or [])},
        "vars": dict(workflow.vars),
        "run": {"id": "dry-run", "workflow_id": workflow.id, "version": workflow.version},
        "secrets": {},
    }
    report: list[dict[str, Any]] = []
    ok = True
    for step in workflow.steps:
        entry: dict[str, Any] = {
            "id": step.id,
            "action": step.action,
            "calls": [],
            "approval": None,
            "problems": [],
        }
        report.append(entry)
        try:
            if step.if_ is not None and not render(step.if_, context):
                entry["status"] = "skipped"
                context["steps"][step.id] = {"output": None, "skipped": True}
                continue
            items: list[Any] | None = None
            if step.for_each is not None:
                items = render(step.for_each, context) if isinstance(step.for_each, str) else step.for_each
                if not isinstance(items, list):
                    raise ExpressionError(f"for_each gave {type(items).__name__}, not a list")
            outputs = []
            for i, item in enumerate(items if items is not None else [None]):
                local = {**context, "item": item, "index": i} if items is not None else context
                rendered = render(step.with_, local)
                entry["calls"].append(rendered)
                defn = get_action(step.action or "")
                if defn is None:
                    entry["problems"].append(f"unknown action {step.action}")
                    continue
                entry["problems"].extend(msg for _, msg in check_inputs(defn, rendered))
                needed = approval_for(policy, defn, step.approval, local)
                if needed is not None:
                    entry["approval"] = needed
                outputs.append(_simulated(step, rendered))
            if step.action == "core.fail":
                entry["status"] = "would_fail"
                report.append(
                    {
                        "id": "(stop)",
                        "action": None,
                        "status": "stopped",
                        "calls": [],
                        "approval": None,
                        "problems": [],
                    }
                )
                break
            entry["status"] = "would_run" if not entry["problems"] else "error"
            context["steps"][step.id] = {
                "output": outputs if items is not None else outputs[0] if outputs else None
            }
        except ExpressionError as exc:
            entry["status"] = "error"
            entry["problems"].append(str(exc))
            context["steps"][step.id] = {"output": None, "error": str(exc)}
        if entry["problems"]:
            ok = False
    outputs_rendered: dict[str, Any] = {}
    for name, value in workflow.outputs.items():
        try:
            outputs_rendered[name] = render(value, context)
        except ExpressionError as exc:
            ok = False
            outputs_rendered[name] = {"error": str(exc)}
    return {
        "ok": ok,
        "inputs": given,
        "steps": report,
        "outputs": outputs_rendered,
        "approvals": [s["id"] for s in report if s.get("approval")],
    }


def build(
    plan: dict[str, Any], *, connections: list[str] | None = None, policy: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Plan -> ``{"workflow_yaml", "valid", "problems", "dry_run"}`` (the dry-run only when valid)."""
    source = plan_to_yaml(plan)
    workflow, problems = validate(source)
    result: dict[str, Any] = {
        "workflow_yaml": source,
        "valid": workflow is not None,
        "problems": problems,
        "dry_run": None,
    }
    if workflow is not None:
        result["dry_run"] = dry_run(workflow, connections=connections, policy=policy)
    return result
