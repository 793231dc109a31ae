"""Agent tools for designing and building workflows: the action list with what each action does, the
offline planner, the real validator, the simulated dry-run, and saving a draft.

The design agent (``specialists/design.py``) plans and validates; the construction agent
(``specialists/construct.py``) also dry-runs and saves a draft. An LLM gets the same tools, so a model
can plan by itself from ``list_actions`` and still be held to the validator and the dry-run. Nothing
here touches the outside world: saving a draft only stores it (publishing needs an approval, see
:mod:`bastion.agents.drafts`).
"""

from __future__ import annotations

from typing import Any

from bastion.agents.spec import AgentDeps, agent_tool

__all__ = ["dry_run_workflow", "list_actions", "plan_workflow", "save_draft", "validate_workflow"]


def _connections(deps: AgentDeps) -> list[str]:
    from bastion.tenancy.connections import connection_names

    with deps.db.read() as conn:
        return connection_names(conn, deps.tenant_id)


@agent_tool("list_actions")
def list_actions(deps: AgentDeps, effect: str = "") -> list[dict[str, Any]]:
    """The registered actions a workflow can use: id, impact, required inputs, what it does (its effects)
    and whether the tenant has its product connected.

    Args:
        effect: only actions with this effect (e.g. "suspend-account", "isolate-host", "block-ip"); empty
            for all.
    """
    from bastion.agents.planner.catalogue import ACTIONS
    from bastion.connectors.registry import all_actions

    connected = set(_connections(deps))
    out = []
    for defn in all_actions():
        entry = ACTIONS.get(defn.id)
        effects = list(entry.effects) if entry else []
        if effect and effect not in effects:
            continue
        out.append(
            {
                "id": defn.id,
                "impact": defn.impact,
                "required": list(defn.schema.get("required", [])),
                "inputs": sorted(defn.schema.get("properties", {})),
                "effects": effects,
                "description": defn.description.splitlines()[0] if defn.description else "",
                "connected": bool(entry and entry.vendor and entry.vendor in connected),
            }
        )
    return out


@agent_tool("plan_workflow")
def plan_workflow(deps: AgentDeps, objective: str, workflow_id: str = "") -> dict[str, Any]:
    """Plan a workflow for an objective in plain language with the offline planner, preferring the
    tenant's connected products; returns the plan (trigger, inputs, steps with why) and its YAML.

    Args:
        objective: what the workflow should do, e.g. "when a user's credentials leak, suspend them and
            open a case".
        workflow_id: the id to give the workflow (default: from the title).
    """
    from bastion.agents.construct import plan_to_yaml
    from bastion.agents.planner import plan_objective

    plan = plan_objective(objective, connections=_connections(deps), workflow_id=workflow_id or None)
    return {"plan": plan, "workflow_yaml": plan_to_yaml(plan)}


@agent_tool("validate_workflow")
def validate_workflow(deps: AgentDeps, source: str) -> dict[str, Any]:
    """Validate workflow YAML with Bastion's validator (``uses:`` resolved against the tenant's stored
    workflows): ``{"valid", "problems": [{"line", "column", "message"}]}``.

    Args:
        source: the workflow YAML.
    """
    from bastion.respond.service import resolver_for
    from bastion.respond.validate import validate_text

    workflow, problems = validate_text(source, resolver=resolver_for(deps.db, deps.tenant_id))
    return {
        "valid": workflow is not None,
        "workflow_id": workflow.id if workflow else None,
        "problems": [p.as_dict() for p in problems],
    }


@agent_tool("dry_run_workflow")
def dry_run_workflow(deps: AgentDeps, source: str, inputs: dict[str, Any] | None = None) -> dict[str, Any]:
    """Dry-run workflow YAML with simulated connectors: each step's rendered inputs, skipped steps, input
    problems and which steps would wait for an approval under the tenant's policy. Nothing is called.

    Args:
        source: the workflow YAML (it must validate).
        inputs: run inputs (default: each input's default, else a sample value).
    """
    from bastion.agents.construct import dry_run
    from bastion.connectors.policy import get_policy
    from bastion.respond.validate import validate_text

    workflow, problems = validate_text(source)
    if workflow is None:
        first = problems[0]
        raise ValueError(f"the workflow does not validate (line {first.line}: {first.message}); fix it first")
    with deps.db.read() as conn:
        policy = get_policy(conn, deps.tenant_id)
    return dry_run(
        workflow, inputs=inputs, connections=_connections(deps), policy=policy, tenant_id=deps.tenant_id
    )


@agent_tool("save_draft", impact="low")
def save_draft(
    deps: AgentDeps,
    source: str,
    objective: str,
    plan: dict[str, Any] | None = None,
    dry_run: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Save workflow YAML as a draft of this tenant (validated again here). Publishing it is a separate,
    approved step: `bastion agent drafts publish ID`.

    Args:
        source: the workflow YAML.
        objective: the objective it was designed for.
        plan: the plan it came from.
        dry_run: the dry-run report.
    """
    from bastion.agents import drafts
    from bastion.respond.service import resolver_for
    from bastion.respond.validate import validate_text

    workflow, problems = validate_text(source, resolver=resolver_for(deps.db, deps.tenant_id))
    workflow_id = workflow.id if workflow else str((plan or {}).get("workflow_id") or "draft")
    draft = drafts.save_draft(
        deps.db,
        deps.tenant_id,
        workflow_id=workflow_id,
        objective=objective,
        source=source,
        plan=plan,
        validation=[p.as_dict() for p in problems],
        dry_run=dry_run,
        actor=deps.actor,
        agent_run_id=deps.run_id or None,
    )
    return {
        "draft_id": draft["id"],
        "workflow_id": workflow_id,
        "status": draft["status"],
        "valid": workflow is not None,
    }
