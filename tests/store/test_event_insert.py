"""The event insert path writes the tenant and the ingest time as statement literals (the rows bind only
what varies): each row and index entry must still carry its own tenant and batch time."""

from __future__ import annotations

from sqlalchemy import Connection, inspect, select

from bastion.store import Database, TenantRepository, TenantScope
from bastion.store.events import BUCKET_BITS, EventRow, value_hash
from bastion.store.tables import event_buckets, event_postings, events, tenants
from tests.store.migrations import run_migration
from tests.store.rows import event_row, index_entries


def _row(i: int, observables: list[tuple[str, str]] | None = None) -> EventRow:
    if observables is None:
        observables = [("user", f"user{i % 2}"), ("ipv4", "10.0.0.1")]
    return event_row(i, observables, time=1_700_000_000_000 + i)


def test_rows_and_index_carry_their_tenant_and_batch_time(db: Database) -> None:
    with db.write() as conn:
        a = TenantRepository(conn).create("a").id
        b = TenantRepository(conn).create("b").id
    with db.write() as conn:
        TenantScope(conn, a).events.insert_batch([_row(i) for i in range(4)], ingested=111)
        TenantScope(conn, b).events.insert_batch([_row(i) for i in range(2, 6)], ingested=222)
    with db.read() as conn:
        nums = dict(conn.execute(select(tenants.c.id, tenants.c.num)).tuples().all())
        stored = {(r.tenant_num, r.id): r.ingested for r in conn.execute(select(events))}
        assert stored == {
            **{(nums[a], f"{i:032x}"): 111 for i in range(4)},
            **{(nums[b], f"{i:032x}"): 222 for i in range(2, 6)},
        }
        pk_tenant = dict(conn.execute(select(events.c.pk, events.c.tenant_num)).tuples().all())
        index = index_entries(conn)
        assert len(index) == 16  # two values for each of eight events
        assert len(conn.execute(select(event_postings)).all()) == 6  # three values in each batch
        assert all(pk_tenant[r.event_pk] == r.tenant_num for r in index)
        user0 = value_hash("user0")
        assert (
            sorted(r.event_pk for r in index if r.vhash == user0 and r.tenant_num == nums[a])
            == sorted(pk for pk, t in pk_tenant.items() if t == nums[a])[0::2]
        )
        repo_a, repo_b = TenantScope(conn, a).events, TenantScope(conn, b).events
        found_a = sorted(e.id for e in repo_a.search(value="user1", limit=10)[0])
        found_b = sorted(e.id for e in repo_b.search(value="user1", limit=10)[0])
        assert found_a == [f"{i:032x}" for i in (1, 3)] and found_b == [f"{i:032x}" for i in (3, 5)]
        got = repo_b.get(f"{5:032x}")
        assert got is not None and got.ingested == 222 and got.time == 1_700_000_000_005


def test_index_rows_in_whole_statements_and_the_rest(db: Database) -> None:
    """Index rows go in several to a statement (events._ROWS_PER_INSERT): every row lands, whole or not."""
    with db.write() as conn:
        tid = TenantRepository(conn).create("a").id
    rows = [_row(i) for i in range(130)]  # 130 events x 2 values: two whole statements and a rest
    rows[7] = _row(7, [("user", f"only{n}") for n in range(150)])
    with db.write() as conn:
        new, _ = TenantScope(conn, tid).events.insert_batch(rows, ingested=1)
    assert len(new) == 130
    with db.read() as conn:
        # one list per distinct value (user0, user1, the address, only0..149): a whole statement and a rest
        assert len(conn.execute(select(event_postings)).all()) == 3 + 150
        assert len(index_entries(conn)) == 130 * 2 - 2 + 150
        repo = TenantScope(conn, tid).events
        assert len(repo.search(value="user0", limit=200)[0]) == 65
        assert len(repo.search(value="10.0.0.1", limit=200)[0]) == 129  # not row 7
        assert [e.id for e in repo.search(value="only149")[0]] == [f"{7:032x}"]


def _start_event_keys_at(db: Database, conn: Connection, tenant_id: str, pk: int) -> None:
    """Make the next event row key ``pk`` (SQLite: a row of the tenant, with no observables, just below
    it; PostgreSQL: the sequence)."""
    if db.engine.dialect.name == "sqlite":
        num = TenantScope(conn, tenant_id).events.tenant_num
        conn.exec_driver_sql(
            "INSERT INTO events (pk, tenant_num, id, fp, time, ingested, class_uid, severity_id, format,"
            f" normalized, raw) VALUES ({pk - 1}, {num}, 'filler', 0, 0, 0, 0, 0, 'x', '{{}}', '{{}}')"
        )
    else:
        conn.exec_driver_sql(f"SELECT setval(pg_get_serial_sequence('events', 'pk'), {pk - 1})")


def test_a_batch_across_an_index_bucket_boundary_is_found_in_both(db: Database) -> None:
    """Index rows are keyed by bucket (row key >> BUCKET_BITS) first; a batch that spans two buckets
    writes into both, lists both for its tenant, and a search looks in each."""
    with db.write() as conn:
        a = TenantRepository(conn).create("a").id
        b = TenantRepository(conn).create("b").id
        _start_event_keys_at(db, conn, a, (1 << BUCKET_BITS) - 3)
    with db.write() as conn:
        new, _ = TenantScope(conn, a).events.insert_batch([_row(i) for i in range(10)], ingested=1)
    assert len(new) == 10
    with db.read() as conn:
        num_a = TenantScope(conn, a).events.tenant_num
        index = index_entries(conn)
        assert index and all(r.bucket == r.event_pk >> BUCKET_BITS for r in index)
        assert {r.bucket for r in index} == {0, 1}
        assert sorted(conn.execute(select(event_buckets.c.tenant_num, event_buckets.c.bucket))) == [
            (num_a, 0),
            (num_a, 1),
        ]
        found = TenantScope(conn, a).events.search(value="10.0.0.1", limit=20)[0]
        assert sorted(e.id for e in found) == [f"{i:032x}" for i in range(10)]
        assert TenantScope(conn, b).events.search(value="10.0.0.1")[0] == []


def test_index_buckets_the_dropped_foreign_key_and_posting_lists_migrate_both_ways(db: Database) -> None:
    """Migrations 0015 (index in buckets), 0016 (events without a foreign key to their tenant) and 0018
    (posting lists) keep every event and index entry on the way down and up again, and the search finds
    what it found before."""
    with db.write() as conn:
        tid = TenantRepository(conn).create("a").id
        _start_event_keys_at(db, conn, tid, (1 << BUCKET_BITS) - 2)
    with db.write() as conn:  # two batches: one value's events in two lists of a bucket
        TenantScope(conn, tid).events.insert_batch([_row(i) for i in range(4)], ingested=1)
        TenantScope(conn, tid).events.insert_batch([_row(i) for i in range(4, 6)], ingested=1)
        lists = len(conn.execute(select(event_postings)).all())

    def state() -> tuple[list[tuple[int, int]], list[str]]:
        with db.read() as conn:
            index = sorted((r.vhash, r.event_pk) for r in index_entries(conn))
            found = sorted(e.id for e in TenantScope(conn, tid).events.search(value="user1")[0])
        return index, found

    before = state()
    assert len(before[0]) == 12 and before[1] == [f"{i:032x}" for i in (1, 3, 5)]
    run_migration(db, "downgrade", "0017")
    with db.read() as conn:
        pairs = sorted(
            tuple(r) for r in conn.exec_driver_sql("SELECT vhash, event_pk FROM event_observables")
        )
        assert "event_postings" not in inspect(conn).get_table_names()
    assert pairs == before[0]
    run_migration(db, "upgrade", "head")
    assert state() == before
    with db.read() as conn:  # regrouped: one list per value and bucket, fewer than the batches wrote
        assert len(conn.execute(select(event_postings)).all()) < lists
    run_migration(db, "downgrade", "0014")
    with db.read() as conn:
        columns = {c["name"] for c in inspect(conn).get_columns("event_observables")}
        foreign = inspect(conn).get_foreign_keys("events")
        index_down = sorted(
            tuple(r) for r in conn.exec_driver_sql("SELECT vhash, event_pk FROM event_observables")
        )
    assert "bucket" not in columns and [f["referred_table"] for f in foreign] == ["tenants"]
    assert index_down == before[0]
    run_migration(db, "upgrade", "head")
    assert state() == before
    with db.read() as conn:
        assert inspect(conn).get_foreign_keys("events") == []
        assert len(conn.execute(select(event_buckets)).all()) == 2


def test_rare_and_common_values_page_the_same_way(db: Database) -> None:
    """A value on few of the tenant's events is read by row key, one on many down the time index
    (EventRepository._few_hits): both give the newest first, honour the time range, and page with the
    cursor to exactly the events that carry the value."""
    with db.write() as conn:
        tid = TenantRepository(conn).create("a").id
        other = TenantRepository(conn).create("b").id
    rows = [_row(i, [("user", "common"), ("host", "rare" if i % 20 == 3 else f"h{i}")]) for i in range(100)]
    with db.write() as conn:
        TenantScope(conn, tid).events.insert_batch(rows, ingested=1)
        TenantScope(conn, other).events.insert_batch(
            [_row(1000 + i, [("host", "rare")]) for i in range(3)], 1
        )
    with db.read() as conn:
        repo = TenantScope(conn, tid).events
        # the two paths are taken: 5 carriers of 100 events are few, 100 are not
        assert repo._few_hits(repo._value_hits({"rare"})) is not None
        assert repo._few_hits(repo._value_hits({"common"})) is None
        for value, carriers in (
            ("rare", [i for i in range(100) if i % 20 == 3]),
            ("common", list(range(100))),
        ):
            newest_first = [f"{i:032x}" for i in sorted(carriers, reverse=True)]
            pages, cursor = [], None
            while True:
                page, cursor = repo.search(value=value, limit=2, before=cursor)
                pages += [e.id for e in page]
                if cursor is None:
                    break
            assert pages == newest_first
            start, end = 1_700_000_000_040, 1_700_000_000_090
            ranged = [e.id for e in repo.search(value=value, start=start, end=end, limit=100)[0]]
            assert ranged == [f"{i:032x}" for i in sorted(carriers, reverse=True) if 40 <= i < 90]
