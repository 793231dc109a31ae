"""The workflow design agent: an objective in plain language ("when a user's credentials leak, suspend
them, open a case and ask an approver to reset the password") becomes a step plan over the registered
actions, and the workflow YAML for it, checked by the real validator.

Offline, the reasoner asks the planner (tool ``plan_workflow``: it chains actions by their declared
inputs and effects and prefers the tenant's connected products), then validates the YAML it produced
(``validate_workflow``) and answers with the steps, each with why it is there. With an LLM the same tools
are offered, plus ``list_actions``; the answer is held to the same schema.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from bastion.agents.spec import (
    AgentSpec,
    Call,
    Decision,
    Finish,
    Seen,
    Task,
    register_agent,
)

__all__ = ["SPEC", "DesignOutput", "DesignStep", "last_seen", "reason", "steps_of"]


class DesignStep(BaseModel):
    id: str = ""
    action: str
    why: str
    impact: str = ""
    approval: bool = False
    condition: str | None = None  # the step's ``if``
    for_each: str | None = None


class DesignOutput(BaseModel):
    """The design agent's answer: the plan's steps and the workflow YAML (valid when ``valid``)."""

    steps: list[DesignStep]
    workflow_yaml: str
    workflow_id: str = ""
    title: str = ""
    trigger: dict[str, Any] = Field(default_factory=dict)
    valid: bool = False
    problems: list[dict[str, Any]] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)
    error: str | None = None


def last_seen(seen: list[Seen], tool: str) -> Seen | None:
    return next((s for s in reversed(seen) if s.tool == tool), None)


def steps_of(plan: dict[str, Any]) -> list[dict[str, Any]]:
    """The plan's steps in the output's shape."""
    return [
        {
            "id": s.get("id", ""),
            "action": s["action"],
            "why": s.get("why", ""),
            "impact": s.get("impact", ""),
            "approval": "approval" in s,
            "condition": s.get("if"),
            "for_each": s.get("for_each"),
        }
        for s in plan.get("steps", [])
    ]


def _objective(task: Task) -> str:
    return str(task.input.get("objective") or task.objective)


def reason(task: Task, seen: list[Seen]) -> Decision:
    planned = last_seen(seen, "plan_workflow")
    if planned is None:
        return [
            Call(
                "plan_workflow",
                {"objective": _objective(task), "workflow_id": str(task.input.get("workflow_id") or "")},
                why="plan the steps from the actions' declared inputs and effects",
            )
        ]
    if planned.error is not None or not isinstance(planned.result, dict):
        return Finish(
            {"steps": [], "workflow_yaml": "", "error": planned.error or "the planner gave no plan"}
        )
    plan = planned.result["plan"]
    source = planned.result["workflow_yaml"]
    checked = last_seen(seen, "validate_workflow")
    if checked is None:
        return [Call("validate_workflow", {"source": source}, why="check the YAML with Bastion's validator")]
    result = checked.result if isinstance(checked.result, dict) else {}
    return Finish(
        {
            "steps": steps_of(plan),
            "workflow_yaml": source,
            "workflow_id": plan.get("workflow_id", ""),
            "title": plan.get("title", ""),
            "trigger": plan.get("trigger", {}),
            "valid": bool(result.get("valid")),
            "problems": result.get("problems", []) if checked.error is None else [{"message": checked.error}],
            "notes": plan.get("notes", []),
        }
    )


SPEC = register_agent(
    AgentSpec(
        name="design",
        title="Workflow design",
        instructions=(
            "You design Bastion response workflows. Given an objective in plain language, produce a step "
            "plan that uses only registered actions (see list_actions; prefer the products the tenant has "
            "connected), fill every required input from a workflow input or an earlier step's output, put "
            "an approval block on steps the objective says need an approver, and return the workflow YAML. "
            "Use plan_workflow for a first plan and validate_workflow until the YAML has no problems. "
            "Answer with the steps (action and why) and the YAML."
        ),
        tools=("list_actions", "plan_workflow", "validate_workflow"),
        output=DesignOutput,
        reasoner=reason,
        max_steps=8,
        max_seconds=120.0,
    )
)
