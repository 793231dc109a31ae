"""A connection's rate limit is shared by every worker on the store: at most N calls in any S seconds from
any number of workers (Database instances) and threads, on SQLite and on PostgreSQL, per tenant and
connection; a full window says how long until a place frees."""

from __future__ import annotations

import asyncio
import threading

import pytest

from bastion.connectors.ratelimit import RateLimits
from bastion.store import Database
from bastion.tenancy.service import create_tenant


def test_workers_and_threads_share_one_window(db: Database) -> None:
    tenant, _ = create_tenant(db, "acme")
    second_worker = Database(db.engine.url)
    limit, period_s = 2, 0.4
    granted: list[int] = []
    waited: list[float] = []

    def calls(worker: Database) -> None:
        limits = RateLimits(worker)
        for _ in range(2):
            at, wait = asyncio.run(limits.acquire(tenant.id, "edr", limit, period_s))
            granted.append(at)
            waited.append(wait)

    threads = [threading.Thread(target=calls, args=(w,)) for w in (db, second_worker) for _ in range(2)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    finally:
        second_worker.dispose()
    assert len(granted) == 8
    times = sorted(granted)
    # No window of 400 ms holds more than two calls, so eight calls took at least three windows.
    assert all(times[i + limit] - times[i] >= 400 for i in range(len(times) - limit)), times
    assert times[-1] - times[0] >= 1200
    assert all(w >= 0 for w in waited)


def test_a_full_window_tells_how_long_and_leaves_other_connections_and_tenants_alone(db: Database) -> None:
    acme, _ = create_tenant(db, "acme")
    globex, _ = create_tenant(db, "globex")
    limits = RateLimits(db)
    for _ in range(3):
        at, wait = limits.try_acquire(acme.id, "edr", 3, 60)
        assert at is not None and wait == 0.0
    at, wait = limits.try_acquire(acme.id, "edr", 3, 60)
    assert at is None and 59 < wait <= 60
    assert limits.try_acquire(acme.id, "firewall", 3, 60)[0] is not None  # its own window
    assert limits.try_acquire(globex.id, "edr", 3, 60)[0] is not None  # another tenant's
    assert limits.try_acquire(acme.id, "edr", 4, 60)[0] is not None  # a limit raised takes effect at once
    with pytest.raises(ValueError, match="rate_limit must be"):
        limits.try_acquire(acme.id, "edr", 0, 60)
