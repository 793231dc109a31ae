"""Live updates for the console: one server-sent events endpoint, ``GET /ui/stream?topics=a,b``.

Changes can happen in any process on the same store (the worker decides an approval, the CLI closes an
alert, Slack's callback lands on another server), so the stream does not rely on an in-process hub: it
polls the store. Every state change is audited, so the tenant's audit head (``tenants.audit_seq``, a
primary-key read) tells cheaply whether anything changed; only then are the new audit entries read
(indexed by tenant and sequence) and sorted into topics by their action's prefix. Topics whose changes
are not all audited (a run's progress) add a ``probe``: a cheap query whose value changes when they do.

Each event is ``event: <topic>`` with ``data: {"changes": [{"action", "target_type", "target_id"}]}``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy import Connection, func, select
from starlette.concurrency import run_in_threadpool
from starlette.responses import StreamingResponse

from bastion.store import Database
from bastion.store.tables import audit_log, tenants
from bastion.store.workflows import workflow_runs
from bastion.web.session import Forbidden, NotSignedIn, signed_in

__all__ = ["POLL_SECONDS", "Topic", "register_topic", "router", "topics"]

POLL_SECONDS = 1.0
HEARTBEAT_SECONDS = 15.0
MAX_STREAM_SECONDS = 300.0  # then the browser reconnects (EventSource does so by itself)
_MAX_READ = 2000  # audit entries read per poll; more than that since the last poll is a burst
_MAX_CHANGES = 50  # per event; a bigger burst is sent as "many changes" (the page reloads its region)

Probe = Callable[[Connection, str], Hashable]


@dataclass(frozen=True)
class Topic:
    name: str
    audit_prefixes: tuple[str, ...] = ()
    probe: Probe | None = field(default=None, compare=False)


_topics: dict[str, Topic] = {}


def register_topic(name: str, *, audit_prefixes: tuple[str, ...] = (), probe: Probe | None = None) -> None:
    """Make ``name`` subscribable: it fires on audit actions starting with any of ``audit_prefixes``
    (e.g. ``("case.",)``) and whenever ``probe(conn, tenant_id)`` returns a new value."""
    _topics[name] = Topic(name, tuple(audit_prefixes), probe)


def topics() -> dict[str, Topic]:
    return dict(_topics)


def _runs_probe(conn: Connection, tenant_id: str) -> Hashable:
    since = int(time.time() * 1000) - 7 * 86400 * 1000
    row = conn.execute(
        select(func.count(), func.max(workflow_runs.c.updated)).where(
            workflow_runs.c.tenant_id == tenant_id, workflow_runs.c.created >= since
        )
    ).one()
    return (int(row[0]), row[1])


register_topic("alerts", audit_prefixes=("alert.", "alerts.", "triage."))
register_topic("cases", audit_prefixes=("case.", "cases."))
register_topic("approvals", audit_prefixes=("approval.",))
register_topic("runs", audit_prefixes=("run.", "workflow."), probe=_runs_probe)


class _Poller:
    """The state of one stream: the last audit sequence and the last probe values seen."""

    def __init__(self, db: Database, tenant_id: str, wanted: list[Topic]) -> None:
        self.db = db
        self.tenant_id = tenant_id
        self.wanted = wanted
        self.seq: int | None = None
        self.probes: dict[str, Hashable] = {}

    def poll(self) -> dict[str, list[dict[str, Any]]]:
        """Topic -> changes since the previous poll (the first poll only takes the starting point)."""
        fired: dict[str, list[dict[str, Any]]] = {}
        with self.db.read() as conn:
            head = conn.execute(select(tenants.c.audit_seq).where(tenants.c.id == self.tenant_id)).scalar()
            head = int(head or 0)
            if self.seq is not None and head - self.seq > _MAX_READ:
                # a burst (a bulk ingest): say "many changes" to every audit topic instead of reading it all
                for topic in self.wanted:
                    if topic.audit_prefixes:
                        fired[topic.name] = [{"action": "many", "target_type": "", "target_id": None}]
            elif self.seq is not None and head > self.seq:
                rows = conn.execute(
                    select(audit_log.c.action, audit_log.c.target_type, audit_log.c.target_id)
                    .where(audit_log.c.tenant_id == self.tenant_id, audit_log.c.seq > self.seq)
                    .order_by(audit_log.c.seq)
                    .limit(_MAX_READ)
                ).all()
                for row in rows:
                    for topic in self.wanted:
                        if topic.audit_prefixes and row.action.startswith(topic.audit_prefixes):
                            fired.setdefault(topic.name, []).append(
                                {
                                    "action": row.action,
                                    "target_type": row.target_type,
                                    "target_id": row.target_id,
                                }
                            )
            first = self.seq is None
            self.seq = head
            for topic in self.wanted:
                if topic.probe is None:
                    continue
                value = topic.probe(conn, self.tenant_id)
                if not first and self.probes.get(topic.name) != value:
                    fired.setdefault(topic.name, [])
                self.probes[topic.name] = value
        return fired


def _event(name: str, data: dict[str, Any]) -> str:
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


router = APIRouter()


@router.get("/ui/stream", include_in_schema=False)
async def stream(request: Request, topics: str = "") -> StreamingResponse:
    """Server-sent events for the signed-in user's tenant; ``topics`` is a comma-separated list."""
    user = await run_in_threadpool(signed_in, request)
    names = [t for t in (s.strip() for s in topics.split(",")) if t]
    unknown = [n for n in names if n not in _topics]
    if not names or unknown:
        known = ", ".join(sorted(_topics))
        raise Forbidden(f"unknown or missing topics {', '.join(unknown) or '(none)'}; known: {known}")
    poller = _Poller(request.app.state.db, user.tenant_id, [_topics[n] for n in names])

    async def events() -> AsyncIterator[str]:
        yield "retry: 2000\n\n"
        await run_in_threadpool(poller.poll)
        yield _event("ready", {"topics": names})
        started = last_beat = last_auth = time.monotonic()
        while True:
            await asyncio.sleep(POLL_SECONDS)
            if await request.is_disconnected():
                return
            now = time.monotonic()
            if now - started > MAX_STREAM_SECONDS:
                return
            if now - last_auth > 60:  # a signed-out or expired session stops receiving
                last_auth = now
                request.state.signed_in = None
                try:
                    await run_in_threadpool(signed_in, request)
                except NotSignedIn:
                    return
            for name, changes in (await run_in_threadpool(poller.poll)).items():
                many = len(changes) > _MAX_CHANGES
                yield _event(name, {"changes": changes[:_MAX_CHANGES], "many": many})
            if now - last_beat > HEARTBEAT_SECONDS:
                last_beat = now
                yield ": keep-alive\n\n"

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
