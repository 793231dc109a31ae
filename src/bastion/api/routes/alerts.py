"""Alerts: ingest (the generic document, vendor webhooks), list with triage filters, get, and what
people do to one alert (acknowledge, close with a verdict, reopen)."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr
from starlette.concurrency import run_in_threadpool

from bastion.api.deps import CurrentPrincipal, read_limited_body, require_role
from bastion.api.errors import ApiError
from bastion.api.params import format_cursor, parse_cursor, parse_time_param
from bastion.api.responses import JSON
from bastion.api.routes.events import parse_body
from bastion.ingest.alerts import AlertDocumentError, UnknownWebhookSource, map_webhook, parse_alert_document
from bastion.ingest.records import RecordError
from bastion.model import Alert, AlertStatus, Role, Severity, Verdict
from bastion.pipeline import ingest_alerts
from bastion.store import TenantScope
from bastion.tenancy.service import Principal
from bastion.triage.alerts import (
    AlertConflict,
    AlertError,
    UnknownAlert,
    acknowledge,
    close_alert,
    reopen_alert,
)
from bastion.triage.suppress import SuppressionError

router = APIRouter(prefix="/api/v1", tags=["alerts"])
Writer = Annotated[Principal, Depends(require_role(Role.ANALYST))]


async def _documents(request: Request) -> list[Any]:
    body = await read_limited_body(request, request.app.state.settings.max_body_bytes)
    records = await run_in_threadpool(parse_body, request, body)
    docs = []
    for rec in records:
        if isinstance(rec, RecordError):
            raise ApiError(400, f"line {rec.line}: {rec.reason}")
        docs.append(rec.data)
    if not docs:
        raise ApiError(400, "empty body: send an alert object, an array of them, or NDJSON")
    return docs


def _store(request: Request, principal: Principal, alerts: list[Alert]) -> JSON:
    result = ingest_alerts(
        request.app.state.db,
        principal.tenant_id,
        principal.actor,
        alerts,
        enricher=request.app.state.enricher,
    )
    return JSON(
        {
            "accepted": result.accepted,
            "duplicates": result.duplicates,
            "deduplicated": result.deduplicated,
            "auto_closed": result.auto_closed,
            "suppressed": result.suppressed,
            "cases": result.cases,
            "ids": result.ids,
        }
    )


@router.post("/alerts", summary="Ingest alerts (generic document)")
async def post_alerts(request: Request, principal: Writer) -> JSON:
    """One alert document, an array of them, or NDJSON. A bad document rejects the whole request."""
    docs = await _documents(request)
    alerts = []
    for i, doc in enumerate(docs):
        try:
            alerts.append(parse_alert_document(doc))
        except AlertDocumentError as exc:
            raise ApiError(400, f"[{i}] {exc}" if len(docs) > 1 else str(exc)) from None
    return await run_in_threadpool(_store, request, principal, alerts)


@router.post("/webhooks/{source}", summary="Ingest a vendor's alert webhook")
async def post_webhook(request: Request, principal: Writer, source: str) -> JSON:
    docs = await _documents(request)
    payload = docs[0] if len(docs) == 1 else docs
    try:
        alerts = map_webhook(source, payload)
    except UnknownWebhookSource as exc:
        raise ApiError(404, str(exc)) from None
    except AlertDocumentError as exc:
        raise ApiError(400, str(exc)) from None
    return await run_in_threadpool(_store, request, principal, alerts)


@router.get("/alerts", summary="List alerts")
def list_alerts(
    request: Request,
    principal: CurrentPrincipal,
    status: AlertStatus | None = None,
    severity: Annotated[
        str | None, Query(description="minimum severity: low, medium, high, critical")
    ] = None,
    source: str | None = None,
    start: str | None = None,
    end: str | None = None,
    value: Annotated[str | None, Query(description="alerts carrying this observable value")] = None,
    auto_closed: Annotated[bool | None, Query(description="only alerts closed (or not) by triage")] = None,
    queue: Annotated[str | None, Query(description="routed to this queue")] = None,
    min_score: Annotated[int | None, Query(ge=0, le=100, description="risk score at least")] = None,
    rule_id: str | None = None,
    verdict: Verdict | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: str | None = None,
) -> JSON:
    try:
        min_sev = Severity.parse(severity) if severity is not None else None
    except ValueError as exc:
        raise ApiError(400, f"severity: {exc}") from None
    with request.app.state.db.read() as conn:
        found, nxt = TenantScope(conn, principal.tenant_id).alerts.list(
            status=status,
            min_severity=min_sev,
            source=source,
            start=parse_time_param("start", start),
            end=parse_time_param("end", end),
            value=value,
            auto_closed=auto_closed,
            queue=queue,
            min_score=min_score,
            rule_id=rule_id,
            verdict=verdict,
            limit=limit,
            before=parse_cursor(cursor),
        )
    return JSON({"alerts": [_alert(a) for a in found], "next_cursor": format_cursor(nxt)})


@router.get("/alerts/{alert_id}", summary="Get one alert")
def get_alert(request: Request, principal: CurrentPrincipal, alert_id: str) -> JSON:
    with request.app.state.db.read() as conn:
        alert = TenantScope(conn, principal.tenant_id).alerts.get(alert_id)
    if alert is None:
        raise ApiError(404, f"no alert {alert_id}")
    return JSON(_alert(alert))


def _alert(alert: Alert) -> dict[str, Any]:
    doc: dict[str, Any] = msgspec.to_builtins(alert)
    # The state people filter on is always present, even at its default (the document omits defaults).
    doc["status"] = alert.status.value
    for key in ("verdict", "close_reason", "queue", "acknowledged", "closed"):
        doc.setdefault(key, None)
    doc.setdefault("auto_closed", alert.auto_closed)
    doc.setdefault("score", alert.score)
    doc["severity"] = alert.severity.name.lower()
    doc["severity_id"] = int(alert.severity)
    return doc


# ---------------------------------------------------------------- people's operations on one alert


class CloseBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    verdict: str = Field(description="true_positive, benign_true_positive or false_positive")
    reason: str | None = Field(None, max_length=4000)
    suppress_similar: bool = Field(
        False, description="false positives: suppress the same rule on this entity"
    )
    # strict: ``true`` was read as 1 (epoch ms) and refused as "in the past"
    suppress_for: StrictStr | StrictInt = Field(
        "30d", description="how long that suppression lasts (7d, 12h, a date)"
    )


class ReopenBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=4000)


def _op_error(exc: AlertError | SuppressionError) -> ApiError:
    if isinstance(exc, UnknownAlert):
        return ApiError(404, str(exc))
    if isinstance(exc, AlertConflict):
        return ApiError(409, str(exc))
    return ApiError(400, str(exc))


@router.post("/alerts/{alert_id}/acknowledge", summary="Acknowledge an alert")
def post_acknowledge(request: Request, principal: Writer, alert_id: str) -> JSON:
    try:
        with request.app.state.db.write() as conn:
            alert = acknowledge(TenantScope(conn, principal.tenant_id), principal.actor, alert_id)
    except AlertError as exc:
        raise _op_error(exc) from None
    return JSON({"alert": _alert(alert)})


@router.post(
    "/alerts/{alert_id}/close", summary="Close an alert with a verdict (optionally suppress similar)"
)
def post_close(request: Request, principal: Writer, alert_id: str, body: CloseBody) -> JSON:
    try:
        with request.app.state.db.write() as conn:
            done = close_alert(
                TenantScope(conn, principal.tenant_id),
                principal.actor,
                alert_id,
                body.verdict,
                reason=body.reason,
                suppress_similar=body.suppress_similar,
                suppress_for=body.suppress_for,
            )
    except (AlertError, SuppressionError) as exc:
        raise _op_error(exc) from None
    suppression = done["suppression"]
    return JSON(
        {"alert": _alert(done["alert"]), "suppression": suppression.to_dict() if suppression else None}
    )


@router.post("/alerts/{alert_id}/reopen", summary="Reopen a closed or auto-closed alert")
def post_reopen(request: Request, principal: Writer, alert_id: str, body: ReopenBody) -> JSON:
    try:
        with request.app.state.db.write() as conn:
            alert = reopen_alert(
                TenantScope(conn, principal.tenant_id), principal.actor, alert_id, reason=body.reason
            )
    except AlertError as exc:
        raise _op_error(exc) from None
    return JSON({"alert": _alert(alert)})
