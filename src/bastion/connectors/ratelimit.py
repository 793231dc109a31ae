"""Per-connection rate limits, shared by every worker on the store.

A connection's ``rate_limit`` (``{"limit": N, "period_s": S}``) allows at most N calls through that tenant's
connection in any S seconds, however many workers, threads and runs make them: vendors count an API key's
calls, not a worker's. The times of the calls inside the window live in one row of
``respond_rate_windows`` per (tenant, connection), and a call takes its place in a write transaction
(SQLite's are exclusive; on PostgreSQL the row is locked with ``FOR UPDATE``). A call that finds the window
full waits until its oldest call leaves it and tries again. Times come from the database's clock on
PostgreSQL, so that workers on several machines agree, and from this machine's on SQLite.

The row holds up to N times (a few kilobytes for the hundreds to thousands of calls per period that vendor
limits allow); a call rewrites it, one short transaction per call through a limited connection.
"""

from __future__ import annotations

import asyncio
import bisect
import time
from typing import Any

import orjson
from sqlalchemy import Connection, and_, insert, select, text, update

from bastion.store import Database
from bastion.store.workflows import respond_rate_windows

__all__ = ["RateLimits"]

_T = respond_rate_windows.c
_PG_NOW_MS = text("SELECT CAST(extract(epoch FROM clock_timestamp()) * 1000 AS BIGINT)")


class RateLimits:
    """The rate limits of every connection on one store (cheap to create: it holds only the store)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def acquire(
        self, tenant_id: str, connection: str, limit: int, period_s: float
    ) -> tuple[int, float]:
        """Wait for a place in the connection's window and take it. Returns the time the call was let
        through (epoch ms, the clock the window keeps) and the seconds it waited. The store is reached
        from a worker thread, so that an event loop is never held up by a write waiting for its lock."""
        waited = 0.0
        while True:
            granted, wait = await asyncio.to_thread(self.try_acquire, tenant_id, connection, limit, period_s)
            if granted is not None:
                return granted, waited
            await asyncio.sleep(wait)
            waited += wait

    def try_acquire(
        self, tenant_id: str, connection: str, limit: int, period_s: float
    ) -> tuple[int | None, float]:
        """Take a place now if the window has one: ``(time taken, 0.0)``; else ``(None, seconds until the
        oldest call in the window leaves it)``."""
        if limit < 1 or period_s <= 0:
            raise ValueError("rate_limit must be {limit: N >= 1, period_s: seconds > 0}")
        period_ms = max(1, round(period_s * 1000))
        key = and_(_T.tenant_id == tenant_id, _T.connection == connection)
        with self.db.write() as conn:
            now = _now_ms(conn)
            calls = _locked_calls(conn, tenant_id, connection, key)
            live = calls[bisect.bisect_right(calls, now - period_ms) :]
            if len(live) < limit:
                bisect.insort(live, now)
                conn.execute(update(respond_rate_windows).where(key).values(calls=_dump(live)))
                return now, 0.0
            if len(live) < len(calls):  # keep the row to the window while here
                conn.execute(update(respond_rate_windows).where(key).values(calls=_dump(live)))
            free_at = live[len(live) - limit] + period_ms
            return None, max(free_at - now, 1) / 1000


def _now_ms(conn: Connection) -> int:
    if conn.dialect.name == "postgresql":
        return int(conn.execute(_PG_NOW_MS).scalar_one())
    return int(time.time() * 1000)


def _locked_calls(conn: Connection, tenant_id: str, connection: str, key: Any) -> list[int]:
    """The window's call times, oldest first, with the row locked until the transaction ends (created
    empty on first use; two workers creating it at once both go on, one finding the other's row)."""
    query = select(_T.calls).where(key).with_for_update()
    found = conn.execute(query).scalar()
    if found is None:
        row = {"tenant_id": tenant_id, "connection": connection, "calls": "[]"}
        if conn.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            conn.execute(pg_insert(respond_rate_windows).values(row).on_conflict_do_nothing())
        else:  # SQLite write transactions are exclusive: nobody else can have made it meanwhile
            conn.execute(insert(respond_rate_windows).values(row))
        found = conn.execute(query).scalar_one()
    return sorted(orjson.loads(found))


def _dump(calls: list[int]) -> str:
    return orjson.dumps(calls).decode()
