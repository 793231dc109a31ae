"""Runs: list, show (with step records), cancel and retry."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from starlette.concurrency import run_in_threadpool

from bastion.api.deps import CurrentPrincipal, require_role
from bastion.api.errors import ApiError
from bastion.api.responses import JSON
from bastion.model import Role
from bastion.respond.service import RunError, RunStateError, cancel_run, retry_run, run_detail
from bastion.store._util import INT64_MAX
from bastion.store.workflows import RUN_STATUSES, WorkflowRepository
from bastion.tenancy.service import Principal

router = APIRouter(prefix="/api/v1", tags=["runs"])
Analyst = Annotated[Principal, Depends(require_role(Role.ANALYST))]


@router.get("/runs", summary="List runs, newest first")
def list_runs(
    request: Request,
    principal: CurrentPrincipal,
    status: str | None = None,
    workflow_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=INT64_MAX)] = 0,
) -> JSON:
    if status is not None and status not in RUN_STATUSES:
        raise ApiError(400, f"unknown status {status!r}; use one of {', '.join(RUN_STATUSES)}")
    with request.app.state.db.read() as conn:
        found = WorkflowRepository(conn, principal.tenant_id).list_runs(
            status=status, workflow_id=workflow_id, limit=limit, offset=offset
        )
    return JSON({"runs": found})


@router.get("/runs/{run_id}", summary="One run with its step records")
def get_run(request: Request, principal: CurrentPrincipal, run_id: str) -> JSON:
    try:
        return JSON(run_detail(request.app.state.db, principal.tenant_id, run_id))
    except RunError as exc:
        raise ApiError(404, str(exc)) from None


@router.post("/runs/{run_id}/cancel", summary="Cancel a running or waiting run")
async def post_cancel(request: Request, principal: Analyst, run_id: str) -> JSON:
    try:
        result = await run_in_threadpool(
            cancel_run, request.app.state.db, principal.tenant_id, run_id, actor=principal.actor
        )
    except RunStateError as exc:
        raise ApiError(409, str(exc)) from None
    except RunError as exc:
        raise ApiError(404, str(exc)) from None
    return JSON(result)


@router.post("/runs/{run_id}/retry", summary="Re-run a failed run from the failed step", status_code=202)
async def post_retry(request: Request, principal: Analyst, run_id: str) -> JSON:
    try:
        new_id = await run_in_threadpool(
            retry_run, request.app.state.db, principal.tenant_id, run_id, actor=principal.actor
        )
    except RunStateError as exc:
        raise ApiError(409, str(exc)) from None
    except RunError as exc:
        raise ApiError(404, str(exc)) from None
    return JSON({"run_id": new_id, "status": "running", "retry_of": run_id}, status_code=202)
