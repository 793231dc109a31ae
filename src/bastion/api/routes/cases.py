"""Cases: list and get (with alerts, observables, comments, tasks and timeline)."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from fastapi import APIRouter, Query, Request

from bastion.api.deps import CurrentPrincipal
from bastion.api.errors import ApiError
from bastion.api.responses import JSON
from bastion.model import CaseStatus
from bastion.store import TenantScope

router = APIRouter(prefix="/api/v1", tags=["cases"])


@router.get("/cases", summary="List cases")
def list_cases(
    request: Request,
    principal: CurrentPrincipal,
    status: CaseStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> JSON:
    with request.app.state.db.read() as conn:
        found = TenantScope(conn, principal.tenant_id).cases.list(status=status, limit=limit, offset=offset)
    return JSON({"cases": found})


@router.get("/cases/{case_id}", summary="Get one case")
def get_case(request: Request, principal: CurrentPrincipal, case_id: str) -> JSON:
    with request.app.state.db.read() as conn:
        scope = TenantScope(conn, principal.tenant_id)
        case = scope.cases.get(case_id)
        number = scope.cases.number(case_id)
    if case is None:
        raise ApiError(404, f"no case {case_id}")
    doc: dict[str, Any] = msgspec.to_builtins(case)
    doc["severity"] = case.severity.name.lower()
    doc["number"] = number
    return JSON(doc)
