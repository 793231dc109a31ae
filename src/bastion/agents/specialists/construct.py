"""The workflow construction agent: it turns a plan (or an objective, planned first) into workflow YAML,
validates it, dry-runs it with simulated connectors and saves the result as a draft. Publishing a draft
is not its business: that needs an approval (:mod:`bastion.agents.drafts`).

Offline, the reasoner goes plan (``plan_workflow``, unless the task gives a plan or YAML) -> validate
(``validate_workflow``) -> dry-run (``dry_run_workflow``, only when valid) -> save (``save_draft``, also
when invalid, so a person can fix the YAML) -> answer with the draft id and what the dry-run found.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from bastion.agents.spec import AgentSpec, Call, Decision, Finish, Seen, Task, register_agent
from bastion.agents.specialists.design import DesignStep, last_seen, steps_of

__all__ = ["SPEC", "ConstructOutput", "reason"]


class ConstructOutput(BaseModel):
    """The construction agent's answer: the saved draft, the YAML, validation and dry-run."""

    draft_id: str | None = None
    workflow_id: str = ""
    status: str = ""
    workflow_yaml: str = ""
    valid: bool = False
    problems: list[dict[str, Any]] = Field(default_factory=list)
    dry_run: dict[str, Any] | None = None
    approvals_needed: list[str] = Field(default_factory=list)
    steps: list[DesignStep] = Field(default_factory=list)
    error: str | None = None


def _source(task: Task, seen: list[Seen]) -> tuple[str | None, dict[str, Any] | None, str | None]:
    """(YAML, plan, error) from the task or the planner's answer; (None, None, None) when not planned yet."""
    if isinstance(task.input.get("source"), str):
        return task.input["source"], task.input.get("plan"), None
    if isinstance(task.input.get("plan"), dict):
        from bastion.agents.construct import plan_to_yaml

        return plan_to_yaml(task.input["plan"]), task.input["plan"], None
    planned = last_seen(seen, "plan_workflow")
    if planned is None:
        return None, None, None
    if planned.error is not None or not isinstance(planned.result, dict):
        return None, None, planned.error or "the planner gave no plan"
    return planned.result["workflow_yaml"], planned.result["plan"], None


def reason(task: Task, seen: list[Seen]) -> Decision:
    objective = str(task.input.get("objective") or task.objective)
    source, plan, error = _source(task, seen)
    if error is not None:
        return Finish({"error": error})
    if source is None:
        args = {"objective": objective, "workflow_id": str(task.input.get("workflow_id") or "")}
        return [Call("plan_workflow", args, why="plan the steps first")]
    checked = last_seen(seen, "validate_workflow")
    if checked is None:
        return [Call("validate_workflow", {"source": source}, why="check the YAML with Bastion's validator")]
    check = checked.result if isinstance(checked.result, dict) else {"valid": False, "problems": []}
    valid = bool(check.get("valid"))
    tried = last_seen(seen, "dry_run_workflow")
    if valid and tried is None:
        return [Call("dry_run_workflow", {"source": source}, why="walk the steps with simulated connectors")]
    report = tried.result if tried is not None and isinstance(tried.result, dict) else None
    saved = last_seen(seen, "save_draft")
    if saved is None:
        return [
            Call(
                "save_draft",
                {"source": source, "objective": objective, "plan": plan, "dry_run": report},
                why="keep the result as a draft; publishing it needs an approval",
            )
        ]
    draft = saved.result if isinstance(saved.result, dict) else {}
    return Finish(
        {
            "draft_id": draft.get("draft_id"),
            "workflow_id": draft.get("workflow_id", ""),
            "status": draft.get("status", ""),
            "workflow_yaml": source,
            "valid": valid,
            "problems": check.get("problems", []),
            "dry_run": report,
            "approvals_needed": (report or {}).get("approvals", []),
            "steps": steps_of(plan or {}),
            "error": saved.error or (tried.error if tried is not None else None),
        }
    )


SPEC = register_agent(
    AgentSpec(
        name="construct",
        title="Workflow construction",
        instructions=(
            "You build Bastion workflows. Turn the plan (or the objective, planned with plan_workflow) into "
            "workflow YAML, validate it with validate_workflow until it has no problems, dry-run it with "
            "dry_run_workflow, and save it with save_draft. Never publish: publishing a draft needs an "
            "approver. Answer with the draft id, the YAML, the problems and the dry-run."
        ),
        tools=("list_actions", "plan_workflow", "validate_workflow", "dry_run_workflow", "save_draft"),
        output=ConstructOutput,
        reasoner=reason,
        max_steps=10,
        max_seconds=120.0,
    )
)
