"""Stored events and their observable index, scoped to one tenant.

Ingest is the hot path, so :meth:`EventRepository.insert_batch` writes with plain driver
``executemany`` (no ORM, no per-row compilation) and skips events whose id (content fingerprint) is
already stored for the tenant. Observable values are indexed lower-cased (all types but URLs, whose
paths are case-sensitive) and cut to :data:`INDEX_VALUE_MAX` characters so PostgreSQL's B-tree accepts them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec
import orjson
from sqlalchemy import Connection, and_, func, or_, select

from bastion.store.tables import event_observables, events

__all__ = ["INDEX_VALUE_MAX", "EventRepository", "EventRow", "StoredEvent", "index_value"]

INDEX_VALUE_MAX = 1000
_CASE_SENSITIVE = frozenset({"url"})
_CHUNK = 500


def index_value(obs_type: str, value: str) -> str:
    """The form a value is indexed and searched under."""
    v = value if obs_type in _CASE_SENSITIVE else value.lower()
    return v[:INDEX_VALUE_MAX]


class EventRow(msgspec.Struct, array_like=True):
    """One prepared event, ready to store: everything computed before the transaction starts."""

    id: str
    time: int
    class_uid: int
    severity_id: int
    format: str
    normalized: str
    raw: str
    observables: list[tuple[str, str]]


class StoredEvent(msgspec.Struct, omit_defaults=True):
    id: str
    time: int
    ingested: int
    class_uid: int
    severity_id: int
    format: str
    event: Any
    raw: Any


class EventRepository:
    """Events of one tenant."""

    def __init__(self, conn: Connection, tenant_id: str) -> None:
        self.conn = conn
        self.tenant_id = tenant_id
        self._param = "?" if conn.dialect.paramstyle == "qmark" else "%s"
        self._sqlite = conn.dialect.name == "sqlite"

    def existing_ids(self, ids: Sequence[str]) -> set[str]:
        found: set[str] = set()
        for start in range(0, len(ids), _CHUNK):
            chunk = list(ids[start : start + _CHUNK])
            q = select(events.c.id).where(events.c.tenant_id == self.tenant_id, events.c.id.in_(chunk))
            found.update(self.conn.execute(q).scalars())
        return found

    def insert_batch(self, rows: Sequence[EventRow], ingested: int) -> tuple[list[str], int]:
        """Store the rows whose id is new; return (the new ids, how many were duplicates)."""
        seen = self.existing_ids([r.id for r in rows])
        fresh: list[EventRow] = []
        duplicates = 0
        for row in rows:
            if row.id in seen:
                duplicates += 1
                continue
            seen.add(row.id)
            fresh.append(row)
        if not fresh:
            return [], duplicates
        p = self._param
        tenant = self.tenant_id
        ignore = "INSERT OR IGNORE INTO" if self._sqlite else "INSERT INTO"
        conflict = "" if self._sqlite else " ON CONFLICT DO NOTHING"
        self.conn.exec_driver_sql(
            f"INSERT INTO events (tenant_id, id, time, ingested, class_uid, severity_id, format, "
            f"normalized, raw) VALUES ({p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}){conflict}",
            [
                (tenant, r.id, r.time, ingested, r.class_uid, r.severity_id, r.format, r.normalized, r.raw)
                for r in fresh
            ],
        )
        index_rows = []
        for r in fresh:
            pairs = {(t, index_value(t, v)) for t, v in r.observables}
            index_rows.extend((tenant, v, t, r.id, r.time) for t, v in pairs)
        if index_rows:
            self.conn.exec_driver_sql(
                f"{ignore} event_observables (tenant_id, value, type, event_id, time) "
                f"VALUES ({p}, {p}, {p}, {p}, {p}){conflict}",
                index_rows,
            )
        return [r.id for r in fresh], duplicates

    def get(self, event_id: str) -> StoredEvent | None:
        row = self.conn.execute(
            select(events).where(events.c.tenant_id == self.tenant_id, events.c.id == event_id)
        ).first()
        return _stored(row) if row else None

    def count(self) -> int:
        q = select(func.count()).select_from(events).where(events.c.tenant_id == self.tenant_id)
        return int(self.conn.execute(q).scalar_one())

    def search(
        self,
        *,
        start: int | None = None,
        end: int | None = None,
        value: str | None = None,
        obs_type: str | None = None,
        limit: int = 100,
        before: tuple[int, int] | None = None,
    ) -> tuple[list[StoredEvent], tuple[int, int] | None]:
        """Newest first. ``before`` is the (time, pk) cursor returned by the previous page."""
        q = select(events).where(events.c.tenant_id == self.tenant_id)
        if start is not None:
            q = q.where(events.c.time >= start)
        if end is not None:
            q = q.where(events.c.time < end)
        if value is not None:
            candidates = {value[:INDEX_VALUE_MAX], value.lower()[:INDEX_VALUE_MAX]}
            if obs_type is not None:
                candidates = {index_value(obs_type, value)}
            sub = select(event_observables.c.event_id).where(
                event_observables.c.tenant_id == self.tenant_id,
                event_observables.c.value.in_(sorted(candidates)),
            )
            if obs_type is not None:
                sub = sub.where(event_observables.c.type == obs_type)
            q = q.where(events.c.id.in_(sub))
        if before is not None:
            t, pk = before
            q = q.where(or_(events.c.time < t, and_(events.c.time == t, events.c.pk < pk)))
        q = q.order_by(events.c.time.desc(), events.c.pk.desc()).limit(limit + 1)
        rows = list(self.conn.execute(q))
        cursor = None
        if len(rows) > limit:
            rows = rows[:limit]
            cursor = (rows[-1].time, rows[-1].pk)
        return [_stored(r) for r in rows], cursor

    def observables(self, event_id: str) -> list[tuple[str, str]]:
        q = select(event_observables.c.type, event_observables.c.value).where(
            event_observables.c.tenant_id == self.tenant_id, event_observables.c.event_id == event_id
        )
        return [(r.type, r.value) for r in self.conn.execute(q)]


def _stored(row: Any) -> StoredEvent:
    return StoredEvent(
        id=row.id, time=row.time, ingested=row.ingested, class_uid=row.class_uid,
        severity_id=row.severity_id, format=row.format, event=orjson.loads(row.normalized),
        raw=orjson.loads(row.raw),
    )
