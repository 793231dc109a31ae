"""Stored events and their observable index, scoped to one tenant.

Ingest is the hot path, so :meth:`EventRepository.insert_batch` writes with plain driver
``executemany`` (no ORM, no per-row compilation), skips events whose id (content fingerprint) is
already stored for the tenant, and assigns row keys itself so the observable index can point at them.

The index holds posting lists: for each stored batch and each distinct value in it, one row keyed
``(tenant, bucket, hash of value, the batch's first row key)`` listing the row keys of the batch's events
that carry the value. Integer keys, inserted in key order, cost a fraction of indexing the text, and a
row per distinct value (not per event and value) a seventh as many rows on the attack samples. The
bucket is the event's row key shifted right by :data:`BUCKET_BITS`: row keys rise with ingest, so each
batch writes into the newest bucket's few pages instead of pages all over the index (which, hash first,
made every batch slower than the last as the store grew). ``event_buckets`` lists a tenant's buckets; a
search looks its value up in each and expands the lists in SQL. Values are indexed lower-cased (all types
but URLs, whose paths are case-sensitive). A search keeps only events whose own observables carry the
value, so a hash collision cannot produce a wrong result.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from functools import cached_property
from typing import Any

import msgspec
import orjson
from sqlalchemy import ColumnElement, Connection, Select, and_, func, literal_column, or_, select, text
from sqlalchemy.sql.selectable import TableValuedAlias

from bastion.model import Alert
from bastion.store._util import driver_mark
from bastion.store.tables import event_buckets, event_postings, events, tenants

__all__ = [
    "BUCKET_BITS",
    "INDEX_VALUE_MAX",
    "EventRepository",
    "EventRow",
    "StoredEvent",
    "id_fp",
    "index_value",
    "value_hash",
]

INDEX_VALUE_MAX = 1000
# Events per index bucket, as a power of two: large enough that a search's lookups (one per bucket of the
# tenant) stay few (61 for a million events), small enough that the newest bucket's pages stay in cache.
BUCKET_BITS = 14
# A searched value on at most this many events, and on at most one in this many of the tenant's events, is
# looked up by row key (EventRepository._few_hits). On 200,000 events, a value on 10 of them: 3 ms by key
# against 34 ms down the time index; on 5,000 spread over them: 507 ms against 4 ms.
_INDEX_FIRST_MAX = 2000
_INDEX_FIRST_RATIO = 500
_CASE_SENSITIVE = frozenset({"url"})
_CHUNK = 500
_PG_LOCK_CLASS = 0x0B57  # first key of the per-tenant ingest advisory lock on PostgreSQL


def index_value(obs_type: str, value: str) -> str:
    """The form a value is indexed and searched under."""
    v = value if obs_type in _CASE_SENSITIVE else value.lower()
    return v[:INDEX_VALUE_MAX]


def value_hash(indexed: str) -> int:
    """A signed 64-bit hash of an indexed value (stable across processes, unlike ``hash``)."""
    digest = hashlib.blake2b(indexed.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


# Observable values repeat heavily across events (hosts, users, images): short ones are hashed once
# while they stay in this bounded memo.
_VHASH_MEMO: dict[tuple[str, str], int] = {}
_VHASH_MEMO_MAX = 65536
_VHASH_MEMO_VALUE_MAX = 512
# Rows per INSERT statement: at most 900 parameters (9 an event row), within every SQLite's limit of 999.
_ROWS_PER_INSERT = 100


def _obs_hash(obs: tuple[str, str]) -> int:
    h = _VHASH_MEMO.get(obs)
    if h is None:
        h = value_hash(index_value(*obs))
        if len(obs[1]) <= _VHASH_MEMO_VALUE_MAX:
            if len(_VHASH_MEMO) >= _VHASH_MEMO_MAX:
                _VHASH_MEMO.clear()
            _VHASH_MEMO[obs] = h
    return h


def id_fp(event_id: str) -> int:
    """The indexed 64-bit key of an event id (its first 16 hex digits, as a signed integer)."""
    if len(event_id) != 32:
        raise ValueError(f"not an event id: {event_id!r}")
    return int.from_bytes(bytes.fromhex(event_id[:16]), "big", signed=True)


def _search_forms(value: str, obs_type: str | None) -> set[str]:
    if obs_type is not None:
        return {index_value(obs_type, value)}
    return {value[:INDEX_VALUE_MAX], value.lower()[:INDEX_VALUE_MAX]}


def _carries(event: Any, forms: set[str], obs_type: str | None) -> bool:
    for obs in event.get("observables") or ():
        t = obs.get("type")
        if (obs_type is None or t == obs_type) and index_value(t, obs.get("value", "")) in forms:
            return True
    return False


def _postings(pks: Sequence[int], rows: Sequence[EventRow]) -> list[tuple[int, list[int]]]:
    """``(value hash, row keys of the events that carry it)`` for these events (rising row keys), in
    hash order: the index rows of one batch run, in key order."""
    memo = _VHASH_MEMO.get  # a memo hit, nearly every value, skips the call to _obs_hash
    lists: dict[int, list[int]] = {}
    for pk, r in zip(pks, rows, strict=True):
        for obs in r.observables:
            h = memo(obs) or _obs_hash(obs)
            carriers = lists.get(h)
            if carriers is None:
                lists[h] = [pk]
            elif carriers[-1] != pk:  # one event may carry the value twice (as a host and a user)
                carriers.append(pk)
    return sorted(lists.items())


def _bucket_runs(
    pks: Sequence[int], rows: Sequence[EventRow]
) -> list[tuple[int, Sequence[int], Sequence[EventRow]]]:
    """``(bucket, pks, rows)`` for each run of consecutive events in one index bucket (a batch's row keys
    rise, so a batch is one run or two)."""
    runs: list[tuple[int, Sequence[int], Sequence[EventRow]]] = []
    start = 0
    for i in range(1, len(pks) + 1):
        if i == len(pks) or pks[i] >> BUCKET_BITS != pks[start] >> BUCKET_BITS:
            runs.append((pks[start] >> BUCKET_BITS, pks[start:i], rows[start:i]))
            start = i
    return runs


def _insert_rows(cursor: Any, sql: str, row: str, params: list[Any], width: int) -> None:
    """Insert rows given as one flat list of ``width`` parameters each, :data:`_ROWS_PER_INSERT` rows to
    a statement (``sql`` with ``{}`` for its rows, ``row`` one row's values). Every statement executed
    costs a driver round (the GIL released and taken back, the statement stepped and reset) that a row
    of values in a longer statement does not: a batch inserts one event row and several index rows for
    each event."""
    n = len(params) // width
    whole = n - n % _ROWS_PER_INSERT
    if whole:
        step = width * _ROWS_PER_INSERT
        cursor.executemany(
            sql.format(", ".join([row] * _ROWS_PER_INSERT)),
            (params[i : i + step] for i in range(0, whole * width, step)),
        )
    if whole < n:
        cursor.execute(sql.format(", ".join([row] * (n - whole))), params[whole * width :])


class EventRow(msgspec.Struct, array_like=True, gc=False):
    """One prepared event, ready to store: everything computed before the transaction starts. Not
    tracked by the garbage collector (it holds no cycles): a batch holds thousands."""

    id: str
    time: int
    class_uid: int
    severity_id: int
    format: str
    # The normalized event and the raw record, as UTF-8 JSON.
    normalized: bytes
    raw: bytes
    observables: list[tuple[str, str]]
    # Alerts that detection raised on this event; stored only if the event itself is new.
    alerts: list[Alert] = msgspec.field(default_factory=list)


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
        self._param = driver_mark(conn)
        self._sqlite = conn.dialect.name == "sqlite"

    @cached_property
    def tenant_num(self) -> int:
        """The tenant's small integer, the key of the event tables (-1 for an unknown tenant: no rows)."""
        num = self.conn.execute(select(tenants.c.num).where(tenants.c.id == self.tenant_id)).scalar()
        return int(num) if num is not None else -1

    def existing_ids(self, ids: Sequence[str]) -> set[str]:
        return self._existing([id_fp(i) for i in ids])

    def _existing(self, fps: Sequence[int]) -> set[str]:
        """Stored ids whose 64-bit key is among ``fps`` (callers compare the full ids). On the driver:
        compiling the expanding ``IN`` through SQLAlchemy cost more than the index lookups."""
        found: set[str] = set()
        p = self._param
        num = self.tenant_num
        for start in range(0, len(fps), _CHUNK):
            chunk = list(set(fps[start : start + _CHUNK]))
            sql = f"SELECT id FROM events WHERE tenant_num = {p} AND fp IN ({', '.join([p] * len(chunk))})"
            found.update(self.conn.exec_driver_sql(sql, (num, *chunk)).scalars())
        return found

    def insert_batch(self, rows: Sequence[EventRow], ingested: int) -> tuple[list[str], int]:
        """Store the rows whose id is new; return (the new ids, how many were duplicates).

        The duplicate check and the insert must see the same table: SQLite write transactions are
        exclusive already; on PostgreSQL a per-tenant transaction lock serializes concurrent writers.
        """
        num = self.tenant_num
        if num < 0:
            raise LookupError(f"no tenant with id {self.tenant_id!r}")
        if not self._sqlite:
            self.conn.exec_driver_sql("SELECT pg_advisory_xact_lock(%s, %s)", (_PG_LOCK_CLASS, num))
        fps = [id_fp(r.id) for r in rows]
        seen = self._existing(fps)
        fresh: list[EventRow] = []
        fresh_fps: list[int] = []
        for row, fp in zip(rows, fps, strict=True):
            if row.id not in seen:
                seen.add(row.id)
                fresh.append(row)
                fresh_fps.append(fp)
        duplicates = len(rows) - len(fresh)
        if not fresh:
            return [], duplicates
        p = self._param
        pks = self._reserve_pks(len(fresh))
        # Straight to the driver's cursor, in multi-row statements (:func:`_insert_rows`); the parameters
        # are one flat list, not a tuple per row for the garbage collector to count. sqlite3 and psycopg
        # both take any iterable of parameter lists, which SQLAlchemy's cursor protocol does not say:
        # hence ``Any``.
        cursor: Any = self.conn.connection.cursor()
        try:
            # The tenant and the ingest time are the same for every row: written into the statement as
            # integer literals (ints from this method, never text from outside), so the driver binds only
            # what varies, row by row.
            tenant, at = int(num), int(ingested)
            # On SQLite, a multi-row INSERT whose conflict would abort the statement keeps a journal of
            # every page it touches so it can undo just itself: OR FAIL needs none (a conflict, which the
            # duplicate check and the reserved keys rule out, still fails the whole transaction).
            insert = "INSERT OR FAIL" if self._sqlite else "INSERT"
            # The JSON columns come as the UTF-8 their encoders wrote, read as text by the database:
            # decoding them to str here, for the driver to encode again, cost as much as a row's insert.
            utf8 = f"CAST({p} AS TEXT)" if self._sqlite else f"convert_from({p}, 'UTF8')"
            _insert_rows(
                cursor,
                f"{insert} INTO events (pk, tenant_num, id, fp, time, ingested, class_uid, severity_id, "
                "format, normalized, raw) VALUES {}",
                f"({p}, {tenant}, {p}, {p}, {p}, {at}, {p}, {p}, {p}, {utf8}, {utf8})",
                [
                    value
                    for pk, r, fp in zip(pks, fresh, fresh_fps, strict=True)
                    for value in (
                        pk,
                        r.id,
                        fp,
                        r.time,
                        r.class_uid,
                        r.severity_id,
                        r.format,
                        r.normalized,
                        r.raw,
                    )
                ],
                9,
            )
            buckets: list[int] = []
            # A list binds as the JSON array SQLite stores, or as the driver's array for PostgreSQL.
            pk_list = f"CAST({p} AS TEXT)" if self._sqlite else f"{p}::bigint[]"
            dump: Any = orjson.dumps if self._sqlite else list
            for bucket, run_pks, run_rows in _bucket_runs(pks, fresh):
                postings = _postings(run_pks, run_rows)
                if not postings:
                    continue
                buckets.append(bucket)
                _insert_rows(
                    cursor,
                    f"{insert} INTO event_postings (tenant_num, bucket, vhash, first_pk, pks) VALUES {{}}",
                    f"({tenant}, {int(bucket)}, {p}, {int(run_pks[0])}, {pk_list})",
                    [part for h, carriers in postings for part in (h, dump(carriers))],
                    2,
                )
            if buckets:
                cursor.execute(
                    "INSERT INTO event_buckets (tenant_num, bucket) VALUES "
                    + ", ".join(f"({tenant}, {int(b)})" for b in buckets)
                    + " ON CONFLICT DO NOTHING"
                )
        finally:
            cursor.close()
        return [r.id for r in fresh], duplicates

    def _reserve_pks(self, n: int) -> list[int]:
        """Row keys for ``n`` new events. SQLite write transactions are exclusive, so the next keys
        after the largest are ours; PostgreSQL hands out a block from the table's sequence."""
        if self._sqlite:
            top = self.conn.exec_driver_sql("SELECT coalesce(max(pk), 0) FROM events").scalar_one()
            return list(range(int(top) + 1, int(top) + 1 + n))
        rows = self.conn.execute(
            text("SELECT nextval(pg_get_serial_sequence('events', 'pk')) FROM generate_series(1, :n)"),
            {"n": n},
        )
        return [int(r[0]) for r in rows]

    def get(self, event_id: str) -> StoredEvent | None:
        try:
            fp = id_fp(event_id)
        except ValueError:
            return None
        row = self.conn.execute(
            select(events).where(
                events.c.tenant_num == self.tenant_num, events.c.fp == fp, events.c.id == event_id
            )
        ).first()
        return _stored(row) if row else None

    def count(self) -> int:
        q = select(func.count()).select_from(events).where(events.c.tenant_num == self.tenant_num)
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
        tenant: ColumnElement[bool] = events.c.tenant_num == self.tenant_num
        forms: set[str] = set()
        hits: ColumnElement[bool] | None = None
        if value is not None:
            forms = _search_forms(value, obs_type)
            sub = self._value_hits(forms)
            few = self._few_hits(sub)
            if few is None:
                hits = events.c.pk.in_(sub)
            elif not few:
                return [], None
            else:
                # Read by row key: ``+tenant_num`` keeps SQLite from walking the (tenant, time) index.
                tenant = literal_column("+events.tenant_num") == self.tenant_num
                hits = events.c.pk.in_(few)
        q = select(events).where(tenant)
        if hits is not None:
            q = q.where(hits)
        if start is not None:
            q = q.where(events.c.time >= start)
        if end is not None:
            q = q.where(events.c.time < end)
        if before is not None:
            t, pk = before
            q = q.where(or_(events.c.time < t, and_(events.c.time == t, events.c.pk < pk)))
        q = q.order_by(events.c.time.desc(), events.c.pk.desc()).limit(limit + 1)
        rows = list(self.conn.execute(q))
        cursor = None
        if len(rows) > limit:
            rows = rows[:limit]
            cursor = (rows[-1].time, rows[-1].pk)
        found = [_stored(r) for r in rows]
        if value is not None:
            found = [e for e in found if _carries(e.event, forms, obs_type)]
        return found, cursor

    def _value_hits(self, forms: set[str]) -> Select[Any]:
        """The row keys of the tenant's events indexed under any of these forms of a value (one lookup
        per bucket and form)."""
        buckets = select(event_buckets.c.bucket).where(event_buckets.c.tenant_num == self.tenant_num)
        carriers: TableValuedAlias
        if self._sqlite:
            carriers = func.json_each(event_postings.c.pks).table_valued("value", joins_implicitly=True)
        else:
            carriers = (
                func.unnest(event_postings.c.pks)
                .table_valued("value", joins_implicitly=True)
                .render_derived()
            )
        # The lists' table first: PostgreSQL reads a function's argument only from what precedes it.
        return (
            select(carriers.c.value)
            .select_from(event_postings)
            .where(
                event_postings.c.tenant_num == self.tenant_num,
                event_postings.c.bucket.in_(buckets),
                event_postings.c.vhash.in_(sorted(value_hash(f) for f in forms)),
            )
        )

    def _few_hits(self, hits: Select[Any]) -> list[int] | None:
        """The row keys of a searched value's events when they are few enough to read by key, else None.

        Read by key, a value's events are found at once but each costs a row read; walking the tenant's
        (time) index newest first costs a step per event until a page of hits is found, which for a rare
        value is every event in the range. "Few" is at most :data:`_INDEX_FIRST_MAX`, and one in
        :data:`_INDEX_FIRST_RATIO` of the tenant's events, estimated from its index buckets.
        """
        pks: set[int] = set(self.conn.execute(hits.limit(_INDEX_FIRST_MAX + 1)).scalars())
        if not pks:
            return []
        if len(pks) > _INDEX_FIRST_MAX:
            return None
        num = self.tenant_num
        count = select(func.count()).select_from(event_buckets).where(event_buckets.c.tenant_num == num)
        buckets = self.conn.execute(count).scalar_one()
        if len(pks) * _INDEX_FIRST_RATIO > int(buckets) << BUCKET_BITS:
            return None
        return sorted(pks)


def _stored(row: Any) -> StoredEvent:
    return StoredEvent(
        id=row.id,
        time=row.time,
        ingested=row.ingested,
        class_uid=row.class_uid,
        severity_id=row.severity_id,
        format=row.format,
        event=orjson.loads(row.normalized),
        raw=orjson.loads(row.raw),
    )
