"""Events: ingest (JSON object, array or NDJSON; gzip or not) and search by time and observable."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from starlette.concurrency import run_in_threadpool

from bastion.api.deps import CurrentPrincipal, read_limited_body, require_role
from bastion.api.errors import ApiError
from bastion.api.params import format_cursor, parse_cursor, parse_time_param
from bastion.api.responses import JSON
from bastion.ingest.normalize import NORMALIZERS
from bastion.ingest.queue import IngestJob, QueueClosed, QueueFull
from bastion.ingest.readers import BodyError, BodyTooLarge, read_body
from bastion.ingest.records import RawRecord, RecordError
from bastion.model import ObservableType, Role
from bastion.store import TenantScope
from bastion.tenancy.service import Principal

router = APIRouter(prefix="/api/v1", tags=["events"])
Writer = Annotated[Principal, Depends(require_role(Role.ANALYST))]


def parse_body(request: Request, body: bytes) -> list[RawRecord | RecordError]:
    """Decode a body into records, mapping body problems onto 400/413."""
    limit = request.app.state.settings.max_body_bytes
    try:
        return list(
            read_body(
                body,
                request.headers.get("content-type"),
                request.headers.get("content-encoding"),
                max_bytes=limit,
            )
        )
    except BodyTooLarge as exc:
        raise ApiError(413, str(exc), limit=limit) from None
    except BodyError as exc:
        raise ApiError(400, str(exc)) from None


@router.post("/events", summary="Ingest events")
async def ingest_events(
    request: Request,
    principal: Writer,
    format: Annotated[str | None, Query(description="normalizer id; detected when absent")] = None,
) -> JSON:
    """Store events. Answers only once they are committed; a full queue answers 429 with Retry-After."""
    if format is not None and format not in NORMALIZERS:
        raise ApiError(400, f"format: unknown format {format!r}; known: {', '.join(sorted(NORMALIZERS))}")
    queue = request.app.state.ingest_queue
    try:
        reservation = queue.reserve()
    except QueueFull as exc:
        raise ApiError(429, f"{exc}; retry shortly", headers={"Retry-After": "1"}) from None
    except QueueClosed as exc:
        raise ApiError(503, str(exc), headers={"Retry-After": "5"}) from None
    try:
        body = await read_limited_body(request, request.app.state.settings.max_body_bytes)
        records = await run_in_threadpool(parse_body, request, body)
    except BaseException:
        reservation.release()
        raise
    future = reservation.submit(
        IngestJob(
            tenant_id=principal.tenant_id, actor=principal.actor, records=records, fmt=format, source="api"
        )
    )
    result = await asyncio.wrap_future(future)
    return JSON(
        {
            "accepted": result.accepted,
            "duplicates": result.duplicates,
            "rejected": result.rejected,
            "errors": result.errors,
        }
    )


@router.get("/events", summary="Search events")
def search_events(
    request: Request,
    principal: CurrentPrincipal,
    start: Annotated[str | None, Query(description="ISO-8601, epoch s/ms, or -15m/-2h/-7d")] = None,
    end: Annotated[str | None, Query(description="exclusive end; same forms as start")] = None,
    value: Annotated[str | None, Query(description="an observable value: IP, domain, hash, user...")] = None,
    type: Annotated[ObservableType | None, Query(description="restrict value to one observable type")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: str | None = None,
) -> JSON:
    t0, t1 = parse_time_param("start", start), parse_time_param("end", end)
    before = parse_cursor(cursor)
    if before is not None and not before[1].isdigit():
        raise ApiError(400, f"cursor: {cursor!r} is not a cursor this API returned")
    with request.app.state.db.read() as conn:
        found, nxt = TenantScope(conn, principal.tenant_id).events.search(
            start=t0,
            end=t1,
            value=value,
            obs_type=type.value if type else None,
            limit=limit,
            before=(before[0], int(before[1])) if before else None,
        )
    return JSON({"events": [_event(e) for e in found], "next_cursor": format_cursor(nxt)})


@router.get("/events/{event_id}", summary="Get one event")
def get_event(request: Request, principal: CurrentPrincipal, event_id: str) -> JSON:
    with request.app.state.db.read() as conn:
        found = TenantScope(conn, principal.tenant_id).events.get(event_id)
    if found is None:
        raise ApiError(404, f"no event {event_id}")
    return JSON(_event(found))


def _event(e: Any) -> dict[str, Any]:
    return {
        "id": e.id,
        "time": e.time,
        "ingested": e.ingested,
        "class_uid": e.class_uid,
        "severity_id": e.severity_id,
        "format": e.format,
        "event": e.event,
        "raw": e.raw,
    }
