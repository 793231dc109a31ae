"""``/api/v1/agents``: agent runs (objective runs, specialist agents) over HTTP, and the triage
assistant's proposal for a case.

Starting a run needs the analyst role or above; reading needs any role (viewer). The tenant is the API
key's. A run is durable: the answer comes when it finished (200), or when it parked on an approval or
is still going after ``wait_s`` (202, with ``status`` ``waiting_approval`` or ``running``); either way
``GET /runs/{id}`` follows it. High-impact actions a run asks for are approvals like a workflow step's
(``POST /api/v1/approvals/{id}``).

``POST /samples?name=...`` submits a file (the raw body) for the malware agent: it answers the path to
give the agent as ``input.path``; the agent reads no other file of the host.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

import bastion.agents.drafts  # noqa: F401  (a draft is published as soon as its approval is decided)
from bastion.api.deps import CurrentPrincipal, read_limited_body, require_role
from bastion.api.errors import ApiError
from bastion.api.responses import JSON
from bastion.model import Role
from bastion.tenancy.service import Principal

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/agents", tags=["agents"])
Analyst = Annotated[Principal, Depends(require_role(Role.ANALYST))]
_FINISHED = ("succeeded", "failed", "stopped")


class RunBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    objective: str = Field(min_length=1, max_length=4000)
    agent: str = Field("objective", min_length=1, max_length=50)
    input: dict[str, Any] = Field(default_factory=dict)
    case_id: str | None = Field(None, max_length=64)
    wait_s: float = Field(30.0, ge=0, le=120)


@router.post("/samples", summary="Submit a file for the malware agent", status_code=201)
async def submit_sample(
    request: Request, principal: Analyst, name: Annotated[str, Query(min_length=1, max_length=200)]
) -> JSON:
    from bastion.agents.malware.samples import MAX_BYTES, SampleError, submit

    data = await read_limited_body(request, MAX_BYTES)
    if not data:
        raise ApiError(400, "the request body is empty: send the file's bytes as the body")
    try:
        path = await run_in_threadpool(submit, principal.tenant_id, data, name)
    except SampleError as exc:
        raise ApiError(400, str(exc)) from None
    return JSON({"path": str(path), "sha256": path.parent.name, "size": len(data)}, status_code=201)


@router.post("/runs", summary="Start an agent run (objective runner by default)", status_code=202)
async def start(request: Request, principal: Analyst, body: RunBody) -> JSON:
    from bastion.agents.runtime import AgentRunError
    from bastion.agents.specialists.objective import start_run

    try:
        view = await run_in_threadpool(
            start_run,
            request.app.state.db,
            principal.tenant_id,
            body.objective,
            actor=principal.actor,
            agent=body.agent,
            input=body.input,
            case_id=body.case_id,
            wait_s=body.wait_s,
        )
    except AgentRunError as exc:  # an unknown agent or case, a broken allow-list
        raise ApiError(400, str(exc)) from None
    except ValueError as exc:
        raise ApiError(400, str(exc)) from None
    return JSON(view, status_code=200 if view["status"] in _FINISHED else 202)


@router.get("/runs", summary="List agent runs, newest first")
def list_runs(
    request: Request,
    principal: CurrentPrincipal,
    agent: str | None = None,
    case_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> JSON:
    from bastion.agents.runtime import list_agent_runs
    from bastion.agents.specialists.objective import run_view

    runs = list_agent_runs(
        request.app.state.db, principal.tenant_id, agent=agent, case_id=case_id, limit=limit
    )
    return JSON({"runs": [_brief(run_view(r)) for r in runs]})


def _brief(view: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in view.items() if k not in ("output", "report", "plan")} | {
        "steps": len(view["plan"])
    }


@router.get("/runs/{run_id}", summary="One agent run: plan, approvals, output and report")
def get_run(request: Request, principal: CurrentPrincipal, run_id: str) -> JSON:
    from bastion.agents.runtime import get_agent_run
    from bastion.agents.specialists.objective import run_view

    run = get_agent_run(request.app.state.db, principal.tenant_id, run_id)
    if run is None:
        raise ApiError(404, f"no agent run {run_id} in this tenant")
    view = run_view(run)
    view["transcript"] = run.get("transcript")
    view["usage"] = run.get("usage")
    return JSON(view)


@router.post("/runs/{run_id}/cancel", summary="Stop a running or waiting agent run")
def cancel_run(request: Request, principal: Analyst, run_id: str) -> JSON:
    from bastion.agents.runtime import AgentRunError, cancel_agent_run, get_agent_run

    db = request.app.state.db
    if get_agent_run(db, principal.tenant_id, run_id) is None:
        raise ApiError(404, f"no agent run {run_id} in this tenant")
    try:
        return JSON(cancel_agent_run(db, principal.tenant_id, run_id, actor=principal.actor))
    except AgentRunError as exc:  # already finished
        raise ApiError(409, str(exc)) from None


@router.get("/cases/{case_id}/proposal", summary="The triage assistant's proposal for a case")
def get_proposal(request: Request, principal: CurrentPrincipal, case_id: str) -> JSON:
    from bastion.agents.assistant import assistant_settings, latest_proposal
    from bastion.store import TenantScope

    db = request.app.state.db
    with db.read() as conn:
        found = TenantScope(conn, principal.tenant_id).cases.resolve(case_id)
    if found is None:
        raise ApiError(404, f"no case {case_id} in this tenant (use its id or number)")
    proposal = latest_proposal(db, principal.tenant_id, found)
    if proposal is None:
        raise ApiError(
            404, f"case {case_id} has no triage proposal yet (the assistant proposes for new cases)"
        )
    settings = assistant_settings(db, principal.tenant_id)
    proposal["auto_apply"] = settings.auto_apply
    proposal["min_confidence"] = settings.min_confidence
    return JSON(proposal)
