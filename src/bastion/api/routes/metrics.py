"""SOC metrics over HTTP: ``GET /api/v1/metrics`` returns what ``bastion metrics --json`` prints."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from bastion.api.deps import require_role
from bastion.api.errors import ApiError
from bastion.api.responses import JSON
from bastion.model import Role, Severity
from bastion.report.metrics import compute_metrics
from bastion.report.period import resolve_window
from bastion.tenancy.service import Principal

router = APIRouter(prefix="/api/v1", tags=["metrics"])
Viewer = Annotated[Principal, Depends(require_role(Role.VIEWER))]


@router.get("/metrics", summary="SOC metrics of a period")
def get_metrics(
    request: Request,
    principal: Viewer,
    period: Annotated[str | None, Query(description="back from end: 30d (default), 12h, 2w")] = None,
    start: Annotated[str | None, Query(description="ISO-8601 or epoch s/ms; instead of period")] = None,
    end: Annotated[str | None, Query(description="ISO-8601 or epoch s/ms (default now)")] = None,
    severity: Annotated[str | None, Query(description="only alerts of this severity")] = None,
    source: Annotated[str | None, Query(description="only alerts from this source")] = None,
) -> JSON:
    """Volume, dedupe/auto-close/escalation rates, MTTD/MTTA/MTTC/MTTR, analyst hours saved, incidents
    prevented, breakdowns and ATT&CK/NIST CSF coverage, all from recorded timestamps."""
    try:
        lo, hi = resolve_window(period, start, end)
    except ValueError as exc:
        raise ApiError(400, str(exc)) from None
    try:
        sev = Severity.parse(severity) if severity is not None else None
    except ValueError as exc:
        raise ApiError(400, f"severity: {exc}") from None
    with request.app.state.db.read() as conn:
        return JSON(compute_metrics(conn, principal.tenant_id, start=lo, end=hi, severity=sev, source=source))
