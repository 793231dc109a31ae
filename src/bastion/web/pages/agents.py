"""The console's agents page: an objective box for agent runs, and each run's plan and approvals.

An objective ("contain host web-01 and find related alerts") starts the ``objective`` agent through the
agent runtime (:func:`bastion.agents.runtime.run_agent`), the same call the API and ``bastion agent run``
make: the runtime plans, runs read tools, and turns every high-impact call into an approval that waits in
the approvals inbox, so nothing the console starts here bypasses the tenant's policy. The run page shows
the plan, the approvals with their state, and the result; it refreshes itself while the run is going.

The runtime is imported when a page needs it; an installation without it shows the box disabled with
the reason instead of failing.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from bastion.model import Role
from bastion.store import Database
from bastion.tenancy.connections import connection_names
from bastion.web import sse
from bastion.web.render import NavItem, flash_redirect, render
from bastion.web.session import AnalystUser, CurrentUser

__all__ = ["nav", "router", "runtime"]

router = APIRouter()
nav = [NavItem("Agents", "/agents", order=60, min_role=Role.VIEWER)]

# Agent runs audit ``agent.*`` (start, tool calls, refusals, finish): the pages follow them live.
sse.register_topic("agents", audit_prefixes=("agent.",))

AGENT = "objective"
_WAIT_S = 15.0  # how long the POST waits for the run to finish or park on an approval before answering
_MAX_OBJECTIVE = 2000


def runtime() -> tuple[ModuleType | None, str | None]:
    """The agent runtime module, or None and why it cannot be used."""
    try:
        module = importlib.import_module("bastion.agents.runtime")
    except ImportError as exc:
        return None, f"the agent runtime is not installed ({exc})"
    if not hasattr(module, "run_agent"):
        return None, "the agent runtime has no run_agent"
    return module, None


def _runs(db: Database, tenant_id: str, mod: ModuleType | None, case_id: str | None) -> list[dict[str, Any]]:
    if mod is None or not hasattr(mod, "list_agent_runs"):
        return []
    runs: list[dict[str, Any]] = mod.list_agent_runs(db, tenant_id, case_id=case_id, limit=30)
    return runs


@router.get("/agents", summary="Agent runs and the objective box")
async def agents_page(
    request: Request, user: CurrentUser, case: Annotated[str | None, Query(max_length=64)] = None
) -> Response:
    mod, why = runtime()
    runs = await run_in_threadpool(_runs, request.app.state.db, user.tenant_id, mod, case)
    return render(request, "agents.html", runs=runs, disabled_reason=why, case_id=case or "", objective="")


@router.post("/agents/runs", summary="Start an objective run")
async def agents_start(
    request: Request,
    user: AnalystUser,
    objective: Annotated[str, Form(max_length=_MAX_OBJECTIVE)],
    case_id: Annotated[str, Form(max_length=64)] = "",
) -> Response:
    mod, why = runtime()
    text = objective.strip()
    if mod is None or not text:
        runs = await run_in_threadpool(_runs, request.app.state.db, user.tenant_id, mod, None)
        return render(
            request,
            "agents.html",
            status_code=503 if mod is None else 400,
            runs=runs,
            disabled_reason=why,
            error=why or "write an objective: what should the agent do?",
            case_id=case_id,
            objective=objective,
        )
    from bastion.agents.spec import Task

    db: Database = request.app.state.db

    def start() -> Any:
        # the objective runner picks the actions of the products the tenant has connected, as the API's
        # and the CLI's runs do
        with db.read() as conn:
            connections = connection_names(conn, user.tenant_id)
        task = Task(
            agent=AGENT,
            objective=text,
            input={"connections": connections},
            tenant_id=user.tenant_id,
            case_id=case_id.strip() or None,
        )
        return mod.run_agent(db, user.tenant_id, AGENT, task, actor=user.actor, wait_s=_WAIT_S)

    try:
        result = await run_in_threadpool(start)
    except (KeyError, ValueError) as exc:  # unknown agent, a task the runtime refuses
        runs = await run_in_threadpool(_runs, request.app.state.db, user.tenant_id, mod, None)
        return render(
            request,
            "agents.html",
            status_code=400,
            runs=runs,
            disabled_reason=None,
            error=str(exc),
            case_id=case_id,
            objective=objective,
        )
    return flash_redirect(
        request, f"/agents/runs/{result.run_id}", f"agent run {result.status.replace('_', ' ')}"
    )


@router.get("/agents/runs/{run_id}", summary="One agent run: plan, approvals, result")
async def agents_run(request: Request, user: CurrentUser, run_id: str) -> Response:
    mod, why = runtime()
    run = None
    if mod is not None and hasattr(mod, "get_agent_run"):
        run = await run_in_threadpool(mod.get_agent_run, request.app.state.db, user.tenant_id, run_id)
    if run is None:
        return render(
            request, "agents_run.html", status_code=404, run=None, error=why or f"no agent run {run_id}"
        )
    approvals = run.get("approvals")
    if approvals is None:
        approvals = await run_in_threadpool(_approvals, request.app.state.db, user.tenant_id, run_id)
    return render(request, "agents_run.html", run=run, approvals=approvals, error=None)


def _approvals(db: Database, tenant_id: str, run_id: str) -> list[dict[str, Any]]:
    from bastion.agents.store import AgentRunRepository

    with db.read() as conn:
        return AgentRunRepository(conn, tenant_id).approvals(run_id)
