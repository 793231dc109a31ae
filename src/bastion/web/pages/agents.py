"""The console's agents page: an objective box for agent runs, and each run's plan and approvals.

An objective ("contain host web-01 and find related alerts") starts the ``objective`` agent through the
agent runtime (:func:`bastion.agents.runtime.run_agent`), the same call the API and ``bastion agent run``
make: the runtime plans, runs read tools, and turns every high-impact call into an approval that waits in
the approvals inbox, so nothing the console starts here bypasses the tenant's policy. The run page shows
the plan, the approvals with their state, and the result; it refreshes itself while the run is going.

"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from bastion.model import Role
from bastion.store import Database
from bastion.web import sse
from bastion.web.render import NavItem, flash_redirect, render
from bastion.web.session import AnalystUser, CurrentUser

__all__ = ["nav", "router"]

router = APIRouter()
nav = [NavItem("Agents", "/agents", order=60, min_role=Role.VIEWER)]

# Agent runs audit ``agent.*`` (start, tool calls, refusals, finish): the pages follow them live.
sse.register_topic("agents", audit_prefixes=("agent.",))

AGENT = "objective"
_WAIT_S = 15.0  # how long the POST waits for the run to finish or park on an approval before answering
_MAX_OBJECTIVE = 2000


def _runs(db: Database, tenant_id: str, case_id: str | None) -> list[dict[str, Any]]:
    from bastion.agents.runtime import list_agent_runs

    return list_agent_runs(db, tenant_id, case_id=case_id, limit=30)


@router.get("/agents", summary="Agent runs and the objective box")
async def agents_page(
    request: Request, user: CurrentUser, case: Annotated[str | None, Query(max_length=64)] = None
) -> Response:
    runs = await run_in_threadpool(_runs, request.app.state.db, user.tenant_id, case)
    return render(request, "agents.html", runs=runs, case_id=case or "", objective="")


@router.post("/agents/runs", summary="Start an objective run")
async def agents_start(
    request: Request,
    user: AnalystUser,
    objective: Annotated[str, Form(max_length=_MAX_OBJECTIVE)],
    case_id: Annotated[str, Form(max_length=64)] = "",
) -> Response:
    from bastion.agents.specialists.objective import start_run

    db: Database = request.app.state.db
    try:  # the same call as the API's and `bastion agent run`'s (the tenant's products, durable, audited)
        view = await run_in_threadpool(
            lambda: start_run(
                db,
                user.tenant_id,
                objective,
                actor=user.actor,
                agent=AGENT,
                case_id=case_id.strip() or None,
                wait_s=_WAIT_S,
            )
        )
    except ValueError as exc:  # an empty objective, an unknown case (AgentRunError is a ValueError)
        runs = await run_in_threadpool(_runs, db, user.tenant_id, None)
        return render(
            request,
            "agents.html",
            status_code=400,
            runs=runs,
            error=str(exc),
            case_id=case_id,
            objective=objective,
        )
    return flash_redirect(
        request, f"/agents/runs/{view['run_id']}", f"agent run {view['status'].replace('_', ' ')}"
    )


@router.get("/agents/runs/{run_id}", summary="One agent run: plan, approvals, result")
async def agents_run(request: Request, user: CurrentUser, run_id: str) -> Response:
    from bastion.agents.runtime import get_agent_run

    run = await run_in_threadpool(get_agent_run, request.app.state.db, user.tenant_id, run_id)
    if run is None:
        return render(request, "agents_run.html", status_code=404, run=None, error=f"no agent run {run_id}")
    return render(request, "agents_run.html", run=run, approvals=run["approvals"], error=None)
