"""``bastion agent run "OBJECTIVE"``, ``bastion agent runs list|show``, ``bastion agent triage`` and
``bastion agent mcp``: objective runs, their record, the triage assistant by hand, and the MCP server.

``agent run`` shows the plan and the approvals the run waits for (decide them with ``bastion approve
ID --tenant T --as USER``), and prints the report when the run finished. The run is durable: when it
parks on an approval, this command returns; the next ``bastion worker`` (or ``bastion up``) continues
it once the approval is decided. With a live worker, the run goes to it and this command only waits.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated, Any

import typer
from rich.table import Column, Table

import bastion.cli.workflow  # noqa: F401  (installs the engine's approval delivery)
from bastion.cli._common import JsonOpt, TenantOpt, UserError, emit, err, open_db, out
from bastion.cli.agents import agent_app
from bastion.store import Database, TenantRepository

__all__ = ["runs_app"]

runs_app = typer.Typer(help="Agent runs: objective runs and specialist agents.", no_args_is_help=True)
agent_app.add_typer(runs_app, name="runs")

AsOpt = Annotated[str | None, typer.Option("--as", help="the user acting (recorded as the run's actor)")]
_FINISHED = ("succeeded", "failed", "stopped")


def _tenant_id(db: Database, name: str) -> str:
    from bastion.tenancy.service import require_tenant

    with db.read() as conn:
        return require_tenant(TenantRepository(conn), name).id


def _actor(user: str | None) -> str:
    return f"user:{user}" if user else "cli"


def _show(view: dict[str, Any], tenant: str) -> None:
    out.print(f"run {view['run_id']} ({view['agent']}, {view['model']}): [bold]{view['status']}[/bold]")
    if view["plan"]:
        table = Table("tool", "args", "why")
        for p in view["plan"]:
            table.add_row(str(p.get("tool")), str(p.get("args")), str(p.get("why") or ""))
        out.print(table)
    for a in view["approvals"]:
        hint = (
            f"  -> bastion approve {a['approval_id']} --tenant {tenant} --as USER"
            if a["status"] == "pending"
            else ""
        )
        out.print(
            f"approval {a['approval_id']}: {a['tool']} {a['args']} {a['status']}{hint}", highlight=False
        )
    if view.get("error"):
        out.print(f"error: {view['error']}", highlight=False)
    if view.get("report"):
        out.print(view["report"], highlight=False, markup=False)
    elif view.get("output") is not None:
        out.print(view["output"], highlight=False)


@agent_app.command("run")
def run(
    objective: Annotated[
        str, typer.Argument(help='what to do, e.g. "contain host web-01 and find related alerts"')
    ],
    tenant: TenantOpt,
    agent: Annotated[
        str, typer.Option(help="the agent to run (default: the objective runner)")
    ] = "objective",
    case: Annotated[str | None, typer.Option("--case", help="a case the run is about (id or number)")] = None,
    wait: Annotated[float, typer.Option("--wait", min=0, help="seconds to wait for the run")] = 60.0,
    as_user: AsOpt = None,
    json: JsonOpt = False,
) -> None:
    """Run an objective: plan, look things up, act (high-impact actions wait for an approval), report.
    Prints {"run_id", "status", "plan", "approvals", ...} with --json."""
    from bastion.agents.runtime import AgentRunError
    from bastion.agents.specialists.objective import start_run
    from bastion.respond.runtime import unless_workers

    if not objective.strip():
        raise UserError('the objective is empty: say what to do, in quotes, e.g. "contain host web-01"')
    db = open_db()
    tid = _tenant_id(db, tenant)
    try:
        with unless_workers(db) as executor:
            view = start_run(
                db, tid, objective, actor=_actor(as_user), agent=agent, case_id=case, wait_s=wait
            )
    except AgentRunError as exc:
        raise UserError(str(exc)) from None
    if json:
        emit(view)
    else:
        _show(view, tenant)
    if view["status"] not in _FINISHED:
        err.print(
            f"note: run {view['run_id']} is {view['status']}; `bastion worker` or `bastion up` continues it",
            highlight=False,
        )
    if executor is not None:
        # A run parked on an approval still holds a DBOS thread blocked in its durable wait; the next
        # worker continues it, so leave without waiting for that thread (as `workflow run` does).
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


@runs_app.command("list")
def runs_list(
    tenant: TenantOpt,
    agent: Annotated[str | None, typer.Option(help="only this agent's runs")] = None,
    case: Annotated[str | None, typer.Option("--case", help="only runs about this case (its id)")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
    json: JsonOpt = False,
) -> None:
    """The tenant's agent runs, newest first."""
    from bastion.agents.runtime import list_agent_runs
    from bastion.agents.specialists.objective import run_view

    db = open_db()
    views = [
        run_view(r)
        for r in list_agent_runs(db, _tenant_id(db, tenant), agent=agent, case_id=case, limit=limit)
    ]
    if json:
        emit([{k: v for k, v in v.items() if k not in ("output", "report")} for v in views])
        return
    table = Table(Column("run", no_wrap=True), "agent", "status", "model", "objective")
    for v in views:
        table.add_row(v["run_id"], v["agent"], v["status"], v["model"], v["objective"][:80])
    out.print(table)


@runs_app.command("show")
def runs_show(run_id: str, tenant: TenantOpt, json: JsonOpt = False) -> None:
    """One agent run: its plan, approvals, output and report."""
    from bastion.agents.runtime import get_agent_run
    from bastion.agents.specialists.objective import run_view

    db = open_db()
    found = get_agent_run(db, _tenant_id(db, tenant), run_id)
    if found is None:
        raise UserError(f"no agent run {run_id} in tenant {tenant!r}; `bastion agent runs list` shows them")
    view = run_view(found)
    if json:
        emit({**view, "transcript": found.get("transcript"), "usage": found.get("usage")})
    else:
        _show(view, tenant)


@runs_app.command("cancel")
def runs_cancel(run_id: str, tenant: TenantOpt, as_user: AsOpt = None, json: JsonOpt = False) -> None:
    """Stop a running or waiting agent run; its pending approvals close unanswered."""
    from bastion.agents.runtime import AgentRunError, cancel_agent_run

    db = open_db()
    try:
        stopped = cancel_agent_run(db, _tenant_id(db, tenant), run_id, actor=_actor(as_user))
    except AgentRunError as exc:
        raise UserError(str(exc)) from None
    if json:
        emit(stopped)
    else:
        out.print(f"agent run {run_id} stopped", highlight=False)


@agent_app.command("triage")
def triage(
    tenant: TenantOpt,
    case: Annotated[
        str | None, typer.Option("--case", help="propose for this case (id or number) only")
    ] = None,
    json: JsonOpt = False,
) -> None:
    """Run the triage assistant now: a proposed verdict for each new case without one (or for --case).
    Proposals are shown on the case; they are applied only when the tenant opted in."""
    import bastion.agents.runtime  # noqa: F401  (the agent workflow, registered before DBOS launches)
    from bastion.agents.assistant import propose, sweep
    from bastion.cases.errors import CaseNotFound
    from bastion.respond.runtime import unless_workers

    db = open_db()
    tid = _tenant_id(db, tenant)
    try:
        with unless_workers(db):
            done = [propose(db, tid, case)] if case else sweep(db, tid)
    except CaseNotFound as exc:
        raise UserError(str(exc)) from None
    if json:
        emit(done)
        return
    for p in done:
        got = p.get("proposal") or {}
        applied = f", applied: {p['applied']['status']}" if p.get("applied") else ""
        out.print(
            f"case {p.get('case_id')}: {got.get('verdict', p.get('status'))} "
            f"(confidence {got.get('confidence', '-')}){applied}",
            highlight=False,
        )
    if not done:
        out.print("no new case without a proposal")


@agent_app.command("mcp")
def mcp(tenant: TenantOpt) -> None:
    """Serve Bastion's read tools and actions to an AI assistant over MCP (stdio). Authenticates with the
    tenant API key in env BASTION_API_KEY; high-impact actions become approvals; every call is audited
    as mcp:<key name>."""
    from bastion.agents.mcp_server import McpAuthError, serve_stdio

    api_key = os.environ.get("BASTION_API_KEY", "")
    if not api_key.strip():
        raise UserError("set BASTION_API_KEY to a tenant API key (create one with `bastion apikey create`)")
    db = open_db()
    try:
        serve_stdio(db, tenant, api_key)
    except McpAuthError as exc:
        raise UserError(str(exc)) from None
    # The client closed the stream. A run parked on an approval holds a DBOS thread in its durable wait;
    # the next worker continues it, so leave without joining that thread.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
