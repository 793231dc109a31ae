"""Read tools for the documentation agent: a case as its report sees it, and a workflow as a runbook sees
it.

``case_report`` is :func:`bastion.report.case_report.case_report_data` (the data behind ``bastion report
case``), so an agent's report and the shipped report never disagree. ``workflow_outline`` is a stored
workflow parsed by the validator, with, for every step, what its action does (the action's docstring),
its impact, whether it needs an approval under the tenant's policy, and how to undo it when the action
records the change it makes (found in the connector modules' ``record_change(action=..., undo_action=...)``
calls, so it follows the code).
"""

from __future__ import annotations

import ast
import inspect
from functools import cache
from pathlib import Path
from typing import Any

import orjson

from bastion.agents.spec import AgentDeps, agent_tool
from bastion.store import TenantScope

__all__ = ["case_report", "undo_map", "workflow_outline"]


@agent_tool("case_report")
def case_report(deps: AgentDeps, case_ref: str) -> dict[str, Any]:
    """Everything the case report shows: the case with its explained score, key times, timeline, the
    workflow runs and steps that acted on it, approvals and their decisions, evidence, alerts, comments
    and tasks."""
    from bastion.report.case_report import case_report_data
    from bastion.report.render import ReportError

    with deps.db.read() as conn:
        try:
            data = case_report_data(TenantScope(conn, deps.tenant_id), case_ref)
        except ReportError as exc:
            raise ValueError(str(exc)) from None
    # tuples become lists, and every value plain JSON, as it would through any transcript
    result: dict[str, Any] = orjson.loads(orjson.dumps(data, default=str))
    return result


@cache
def undo_map() -> dict[str, str]:
    """Action id -> the action that undoes the change it records, read from the connectors' source."""
    import bastion.connectors as pkg

    found: dict[str, str] = {}
    for path in sorted(Path(pkg.__path__[0]).glob("*.py")):
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and getattr(node.func, "id", None) == "record_change"):
                continue
            kw = {
                k.arg: k.value.value
                for k in node.keywords
                if k.arg and isinstance(k.value, ast.Constant) and isinstance(k.value.value, str)
            }
            if "action" in kw and "undo_action" in kw:
                found[kw["action"]] = kw["undo_action"]
    return found


def _first_paragraph(doc: str) -> str:
    text = inspect.cleandoc(doc or "")
    return text.split("\n\n", 1)[0].replace("\n", " ").strip()


def _approval(
    policy: dict[str, Any], impact: str | None, step_approval: dict[str, Any] | None
) -> dict[str, Any]:
    if step_approval is not None:
        roles = (
            step_approval.get("roles") or (policy.get("default_approval") or {}).get("roles") or ["approver"]
        )
        return {"required": True, "by": "the step", "roles": list(roles), "spec": step_approval}
    if impact is not None and impact in (policy.get("require_approval") or []):
        roles = (policy.get("default_approval") or {}).get("roles") or ["approver"]
        waivers = [w for w in policy.get("waivers") or [] if isinstance(w, dict)]
        return {"required": True, "by": "the tenant policy", "roles": list(roles), "waivers": waivers}
    return {"required": False}


@agent_tool("workflow_outline")
def workflow_outline(deps: AgentDeps, workflow_id: str, version: int | None = None) -> dict[str, Any]:
    """A stored workflow laid out for a runbook: purpose, triggers, inputs, each step in order (its action
    and what it does, impact, approval requirement, condition, retries, error handling, undo), handlers
    and outputs."""
    from bastion.connectors.policy import get_policy
    from bastion.connectors.registry import get_action
    from bastion.respond.model import Step
    from bastion.respond.validate import WorkflowInvalid, parse_workflow
    from bastion.store.workflows import WorkflowRepository

    with deps.db.read() as conn:
        d = WorkflowRepository(conn, deps.tenant_id).definition(workflow_id.strip(), version)
        policy = get_policy(conn, deps.tenant_id)
    if d is None:
        raise ValueError(f"no workflow {workflow_id!r} in this tenant (`bastion workflow list`)")
    try:
        wf = parse_workflow(d["source"])
    except WorkflowInvalid as exc:
        raise ValueError(f"workflow {workflow_id} does not validate: {exc}") from None
    undo = undo_map()

    def step_doc(s: Step, n: str) -> dict[str, Any]:
        defn = get_action(s.action) if s.action else None
        doc: dict[str, Any] = {
            "number": n,
            "id": s.id,
            "action": s.action,
            "uses": s.uses,
            "does": _first_paragraph(defn.description)
            if defn
            else (f"runs workflow {s.uses}" if s.uses else ""),
            "impact": defn.impact if defn else None,
            "connection": s.connection or (defn.connection if defn else None),
            "with": s.with_,
            "if": s.if_,
            "for_each": s.for_each,
            "retry": {"max_attempts": s.retry.max_attempts, "interval_s": s.retry.interval_s}
            if s.retry.max_attempts > 1
            else None,
            "timeout_s": s.timeout_s,
            "on_error": s.on_error,
            "approval": _approval(policy, defn.impact if defn else None, s.approval),
            "undo": undo.get(s.action or ""),
            "records_change": (s.action or "") in undo,
            "parallel": [
                [step_doc(b, f"{n}.{i + 1}.{j + 1}") for j, b in enumerate(br)]
                for i, br in enumerate(s.parallel)
            ],
        }
        return doc

    return {
        "workflow_id": wf.id,
        "version": d["version"],
        "title": wf.title,
        "description": wf.description,
        "triggers": [
            {"kind": t.kind, "schedule": t.schedule, "match": t.match, "condition": t.condition}
            for t in wf.triggers
        ],
        "inputs": [
            {
                "name": i.name,
                "type": i.type,
                "required": i.required,
                "default": i.default,
                "description": i.description,
            }
            for i in wf.inputs.values()
        ],
        "steps": [step_doc(s, str(k + 1)) for k, s in enumerate(wf.steps)],
        "handlers": [step_doc(s, f"h{k + 1}") for k, s in enumerate(wf.handlers.values())],
        "outputs": wf.outputs,
        "created": d["created"],
        "created_by": d["created_by"],
    }
