"""Workflows: list, add a version, get, start a run, and the per-workflow webhook trigger."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, FastAPI, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError
from starlette.concurrency import run_in_threadpool

from bastion.api.deps import CurrentPrincipal, read_limited_body, require_role
from bastion.api.errors import ApiError
from bastion.api.responses import JSON
from bastion.model import Role
from bastion.respond.runtime import install_delivery
from bastion.respond.service import RunError, add_workflow, start_run, trigger_webhook
from bastion.respond.validate import WorkflowInvalid
from bastion.store._util import INT64_MAX
from bastion.store.workflows import WorkflowRepository
from bastion.tenancy.service import Principal


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    # Runs inside the app's own lifespan (FastAPI merges router lifespans), so the store is open:
    # approval decisions made through this API then reach the waiting run in that store's engine.
    install_delivery(app.state.db)
    yield


router = APIRouter(prefix="/api/v1", tags=["workflows"], lifespan=_lifespan)
Engineer = Annotated[Principal, Depends(require_role(Role.ENGINEER))]
Analyst = Annotated[Principal, Depends(require_role(Role.ANALYST))]
_LIMIT = 1024 * 1024


async def _json_body(request: Request) -> Any:
    raw = await read_limited_body(request, _LIMIT)
    if not raw.strip():
        return {}
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, f"body is not valid JSON: {exc}") from None


@router.get("/workflows", summary="List workflows (latest versions)")
def list_workflows(request: Request, principal: CurrentPrincipal) -> JSON:
    with request.app.state.db.read() as conn:
        found = WorkflowRepository(conn, principal.tenant_id).list_definitions()
    return JSON({"workflows": found})


@router.post("/workflows", summary="Add a workflow version (body: the YAML text)", status_code=201)
async def post_workflow(request: Request, principal: Engineer) -> JSON:
    text = (await read_limited_body(request, _LIMIT)).decode("utf-8", errors="replace")
    try:
        result = await run_in_threadpool(
            add_workflow, request.app.state.db, principal.tenant_id, text, actor=principal.actor
        )
    except WorkflowInvalid as exc:
        raise ApiError(422, str(exc), errors=[p.as_dict() for p in exc.problems]) from None
    return JSON(result, status_code=201 if result["created"] else 200)


@router.get("/workflows/{workflow_id}", summary="One workflow version (latest unless ?version=)")
def get_workflow(
    request: Request,
    principal: CurrentPrincipal,
    workflow_id: str,
    version: Annotated[int | None, Query(ge=1, le=INT64_MAX)] = None,
) -> JSON:
    with request.app.state.db.read() as conn:
        repo = WorkflowRepository(conn, principal.tenant_id)
        found = repo.definition(workflow_id, version)
        latest = repo.latest_version(workflow_id) if found is None else 0
    if found is None:
        if latest:
            raise ApiError(404, f"workflow {workflow_id} has no version {version}; the latest is {latest}")
        raise ApiError(404, f"no workflow {workflow_id}")
    return JSON(found)


class RunBody(BaseModel):
    """What starting a run takes; any other key is a mistake worth saying (a misspelt "inputs")."""

    model_config = ConfigDict(extra="forbid")

    inputs: dict[str, Any] = Field(default_factory=dict)
    version: StrictInt | None = Field(None, ge=1, le=INT64_MAX, description="default: the latest")


@router.post(
    "/workflows/{workflow_id}/runs", summary='Start a run: {"inputs": {...}, "version": N}', status_code=202
)
async def post_run(request: Request, principal: Analyst, workflow_id: str) -> JSON:
    body = await _json_body(request)
    if not isinstance(body, dict):
        raise ApiError(400, 'body must be {"inputs": {...}} (and optionally "version")')
    try:
        run = RunBody.model_validate(body)
    except ValidationError as exc:
        allowed = "unknown key; allowed: " + ", ".join(RunBody.model_fields)
        errors = [{**e, "msg": allowed} if e["type"] == "extra_forbidden" else e for e in exc.errors()]
        raise RequestValidationError(errors) from None
    try:
        run_id = await run_in_threadpool(
            start_run,
            request.app.state.db,
            principal.tenant_id,
            workflow_id,
            run.version,
            run.inputs,
            trigger={"type": "api"},
            actor=principal.actor,
        )
    except RunError as exc:
        raise ApiError(404, str(exc)) from None
    except ValueError as exc:
        raise ApiError(400, str(exc)) from None
    return JSON({"run_id": run_id, "status": "running"}, status_code=202)


@router.post(
    "/workflows/{workflow_id}/trigger", summary="Webhook trigger (X-Bastion-Token header)", status_code=202
)
async def webhook(
    request: Request,
    workflow_id: str,
    x_bastion_token: Annotated[str | None, Header()] = None,
) -> JSON:
    token = x_bastion_token or request.query_params.get("token")
    if not token:
        raise ApiError(401, "missing webhook token: send it in the X-Bastion-Token header")
    body = await _json_body(request)
    if not isinstance(body, dict):
        raise ApiError(400, "webhook body must be a JSON object")
    try:
        _, run_id = await run_in_threadpool(trigger_webhook, request.app.state.db, workflow_id, token, body)
    except PermissionError as exc:
        raise ApiError(403, str(exc)) from None
    except RunError as exc:
        raise ApiError(404, str(exc)) from None
    except ValueError as exc:
        raise ApiError(400, str(exc)) from None
    return JSON({"run_id": run_id, "status": "running"}, status_code=202)
