"""``bastion agent design|build`` and ``bastion agent drafts list|show|publish``: workflow design from an
objective in plain language, construction into a validated, dry-run draft, and publication on approval.

``design`` and ``build`` run the "design" and "construct" agents through the agent runtime (a recorded,
durable agent run; offline, the deterministic planner decides). A draft's
publication is decided like any approval (``bastion approve draft:ID``); the command line loads the
drafts module, so an approval decided here publishes the draft at once (any later ``drafts`` command
settles one decided elsewhere).
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

import bastion.agents.drafts  # publishes a draft as soon as `bastion approve` decides it
import bastion.cli.workflow  # noqa: F401  (installs the engine's approval delivery)
from bastion.cli._common import JsonOpt, TenantOpt, UserError, emit, open_db, out
from bastion.cli.agents import agent_app
from bastion.store import Database, TenantRepository

__all__ = ["drafts_app"]

drafts_app = typer.Typer(
    help="Workflow drafts written by the agents (publishing needs an approval).", no_args_is_help=True
)
agent_app.add_typer(drafts_app, name="drafts")

AsOpt = Annotated[str | None, typer.Option("--as", help="the user acting (recorded; cannot approve its own)")]


def _tenant_id(db: Database, name: str) -> str:
    from bastion.tenancy.service import require_tenant

    with db.read() as conn:
        return require_tenant(TenantRepository(conn), name).id


def _actor(user: str | None) -> str:
    return f"user:{user}" if user else "cli"


def _run(db: Database, tenant_id: str, agent: str, objective: str, actor: str) -> dict[str, Any]:
    """The agent's output, with ``run`` (id, status, model): a recorded agent run through the runtime."""
    from bastion.agents.spec import Task
    from bastion.cli.agents._drive import run_specialist

    task = Task(agent=agent, objective=objective, input={"objective": objective}, tenant_id=tenant_id)
    view = run_specialist(db, tenant_id, agent, task, actor=actor)
    run = {"run_id": view["run_id"], "status": view["status"], "model": view["model"]}
    if view["output"] is None:
        raise UserError(f"agent run {view['run_id']} {view['status']}: {view['error']}")
    return {**view["output"], "run": run}


def _check(objective: str) -> None:
    if not objective.strip():
        raise UserError("the objective is empty: say what the workflow should do, in quotes")


@agent_app.command("design")
def design(
    objective: Annotated[str, typer.Argument(help="what the workflow should do, in plain language")],
    tenant: TenantOpt,
    as_user: AsOpt = None,
    json: JsonOpt = False,
) -> None:
    """Plan a workflow for an objective: the steps (action and why) and validated workflow YAML."""
    from bastion.agents.planner import PlanError

    _check(objective)
    db = open_db()
    tid = _tenant_id(db, tenant)
    try:
        output = _run(db, tid, "design", objective, _actor(as_user))
    except PlanError as exc:
        raise UserError(str(exc)) from None
    if output.get("error") and not output.get("steps"):
        raise UserError(str(output["error"]))
    if json:
        emit(output)
        return
    table = Table("step", "action", "why")
    for s in output["steps"]:
        table.add_row(s.get("id", ""), s["action"] + (" (approval)" if s.get("approval") else ""), s["why"])
    out.print(table)
    out.print(output["workflow_yaml"], highlight=False, markup=False, soft_wrap=True)
    out.print("valid" if output.get("valid") else f"problems: {output.get('problems')}", highlight=False)


@agent_app.command("build")
def build(
    objective: Annotated[str, typer.Argument(help="what the workflow should do, in plain language")],
    tenant: TenantOpt,
    as_user: AsOpt = None,
    json: JsonOpt = False,
) -> None:
    """Plan, write, validate and dry-run a workflow, and save it as a draft (publish it with
    `bastion agent drafts publish ID`)."""
    from bastion.agents.planner import PlanError

    _check(objective)
    db = open_db()
    tid = _tenant_id(db, tenant)
    try:
        output = _run(db, tid, "construct", objective, _actor(as_user))
    except PlanError as exc:
        raise UserError(str(exc)) from None
    if not output.get("draft_id"):
        raise UserError(str(output.get("error") or "no draft was saved"))
    if json:
        emit(output)
        return
    out.print(output["workflow_yaml"], highlight=False, markup=False, soft_wrap=True)
    dry = output.get("dry_run") or {}
    for s in dry.get("steps", []):
        gate = " [approval]" if s.get("approval") else ""
        out.print(
            f"  {s['status']:<9} {s['id']}: {s['action']}{gate}",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
    state = "valid" if output.get("valid") else f"INVALID: {output.get('problems')}"
    out.print(
        f"draft {output['draft_id']} saved ({state}); publish with "
        f"`bastion agent drafts publish {output['draft_id']} --tenant {tenant}`",
        highlight=False,
    )


def _drafts_call(fn: Any, *args: Any, **kw: Any) -> Any:
    from bastion.agents.drafts import DraftError
    from bastion.respond.approvals import ApprovalError

    try:
        return fn(*args, **kw)
    except (DraftError, ApprovalError) as exc:
        raise UserError(str(exc)) from None


@drafts_app.command("list")
def drafts_list(
    tenant: TenantOpt,
    status: Annotated[str | None, typer.Option(help="draft, pending, published or rejected")] = None,
    json: JsonOpt = False,
) -> None:
    """The tenant's workflow drafts, newest first."""
    from bastion.agents.drafts import list_drafts

    db = open_db()
    found = _drafts_call(list_drafts, db, _tenant_id(db, tenant), status=status)
    brief = [
        {
            k: d[k]
            for k in (
                "id",
                "workflow_id",
                "status",
                "objective",
                "approval_id",
                "published_version",
                "created_by",
                "created",
            )
        }
        | {"valid": not d["validation"]}
        for d in found
    ]
    if json:
        emit({"drafts": brief})
        return
    table = Table("id", "workflow", "status", "valid", "version", "objective")
    for d in brief:
        table.add_row(
            d["id"],
            d["workflow_id"],
            d["status"],
            "yes" if d["valid"] else "no",
            str(d["published_version"] or ""),
            d["objective"][:60],
        )
    out.print(table)


@drafts_app.command("show")
def drafts_show(draft_id: str, tenant: TenantOpt, json: JsonOpt = False) -> None:
    """One draft: its YAML, plan, validation and dry-run."""
    from bastion.agents.drafts import get_draft

    db = open_db()
    draft = _drafts_call(get_draft, db, _tenant_id(db, tenant), draft_id)
    if json:
        emit(draft)
        return
    out.print(
        f"draft {draft['id']} of {draft['workflow_id']}: {draft['status']}"
        + (f" (version {draft['published_version']})" if draft["published_version"] else ""),
        highlight=False,
    )
    out.print(draft["source"], highlight=False, markup=False, soft_wrap=True)


@drafts_app.command("publish")
def drafts_publish(draft_id: str, tenant: TenantOpt, as_user: AsOpt = None, json: JsonOpt = False) -> None:
    """Ask an approver to publish the draft; once approved (`bastion approve draft:ID`) the workflow is
    stored as the tenant's next version."""
    from bastion.agents.drafts import request_publish

    db = open_db()
    draft = _drafts_call(request_publish, db, _tenant_id(db, tenant), draft_id, actor=_actor(as_user))
    if json:
        emit(draft)
        return
    out.print(
        f"publishing {draft['workflow_id']} awaits approval {draft['approval_id']} "
        f"(`bastion approve {draft['approval_id']} --tenant {tenant} --as APPROVER`)",
        highlight=False,
    )
