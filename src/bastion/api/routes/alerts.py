"""Alerts from other tools: the generic document, vendor webhooks, list and get."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from fastapi import APIRouter, Depends, Query, Request
from starlette.concurrency import run_in_threadpool

from bastion.api.deps import CurrentPrincipal, read_limited_body, require_role
from bastion.api.errors import ApiError
from bastion.api.params import format_cursor, parse_cursor, parse_time_param
from bastion.api.responses import JSON
from bastion.api.routes.events import parse_body
from bastion.ingest.alerts import AlertDocumentError, UnknownWebhookSource, map_webhook, parse_alert_document
from bastion.ingest.records import RecordError
from bastion.model import Alert, AlertStatus, Role, Severity
from bastion.pipeline import ingest_alerts
from bastion.store import TenantScope
from bastion.tenancy.service import Principal

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
    return JSON({"accepted": result.accepted, "duplicates": result.duplicates, "ids": result.ids})


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
    doc["severity"] = alert.severity.name.lower()
    doc["severity_id"] = int(alert.severity)
    return doc
