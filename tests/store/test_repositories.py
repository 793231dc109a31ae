"""The store on SQLite and PostgreSQL: every repository, scoped to its tenant."""

from __future__ import annotations

import threading

import orjson
import pytest
from sqlalchemy import select

from bastion.model import Alert, AlertStatus, CaseStatus, Observable, ObservableType, Role, Severity
from bastion.store import Database, DuplicateError, TenantRepository, TenantScope
from bastion.store.events import EventRow, value_hash
from bastion.store.tables import events
from tests.store.rows import event_row, index_entries


def _tenant(db: Database, name: str) -> str:
    with db.write() as conn:
        return TenantRepository(conn).create(name).id


def _row(i: int, *, ip: str = "10.0.0.1", user: str = "Alice") -> EventRow:
    observables = [("ipv4", ip), ("user", user), ("url", "https://Example.com/Path")]
    return event_row(i, observables, time=1_700_000_000_000 + i * 1000)


def test_migrations_are_idempotent(db: Database) -> None:
    db.migrate()
    db.migrate()
    with db.read() as conn:
        assert TenantRepository(conn).list() == []


def test_tenant_names_are_unique(db: Database) -> None:
    _tenant(db, "acme")
    with pytest.raises(DuplicateError, match="acme"), db.write() as conn:
        TenantRepository(conn).create("acme")
    with db.read() as conn:
        assert [t.name for t in TenantRepository(conn).list()] == ["acme"]


def test_events_insert_dedupe_and_search(db: Database) -> None:
    tid = _tenant(db, "acme")
    with db.write() as conn:
        new, dup = TenantScope(conn, tid).events.insert_batch([_row(i) for i in range(10)], ingested=1)
    assert (len(new), dup) == (10, 0)
    with db.write() as conn:
        new, dup = TenantScope(conn, tid).events.insert_batch(
            [_row(i) for i in range(5, 15)] + [_row(14)], ingested=2
        )
    assert (len(new), dup) == (5, 6)  # 5..9 stored before, 14 twice in the batch
    with db.read() as conn:
        repo = TenantScope(conn, tid).events
        assert repo.count() == 15
        page, cursor = repo.search(limit=4)
        assert [e.id for e in page] == [f"{i:032x}" for i in (14, 13, 12, 11)]
        assert cursor is not None
        page2, _ = repo.search(limit=4, before=cursor)
        assert [e.id for e in page2] == [f"{i:032x}" for i in (10, 9, 8, 7)]
        ranged, _ = repo.search(start=1_700_000_002_000, end=1_700_000_004_000)
        assert sorted(e.id for e in ranged) == [f"{i:032x}" for i in (2, 3)]
        # values are indexed case-insensitively except URLs
        assert len(repo.search(value="ALICE", limit=100)[0]) == 15
        assert len(repo.search(value="alice", obs_type="user", limit=100)[0]) == 15
        assert repo.search(value="alice", obs_type="ipv4")[0] == []
        assert len(repo.search(value="https://Example.com/Path", limit=100)[0]) == 15
        assert repo.search(value="https://example.com/path")[0] == []
        got = repo.get(f"{3:032x}")
        assert got is not None and got.raw == {"n": 3, "note": "caf\u00e9"}
        assert got.event["class_uid"] == 1007
        # the UTF-8 the writer binds is stored as text, not as a blob a SQL reader would trip on
        mark = "?" if db.dialect == "sqlite" else "%s"
        raw, normalized = conn.exec_driver_sql(
            f"SELECT raw, normalized FROM events WHERE id = {mark}", (f"{3:032x}",)
        ).one()
        assert isinstance(raw, str) and "caf\u00e9" in raw and isinstance(normalized, str)


def test_alerts_idempotent_by_external_id(db: Database) -> None:
    tid = _tenant(db, "acme")
    alert = Alert(
        title="Beacon",
        severity=Severity.HIGH,
        time=5,
        source="edr",
        external_id="x-1",
        observables=[Observable(ObservableType.IPV4, "203.0.113.9")],
    )
    with db.write() as conn:
        repo = TenantScope(conn, tid).alerts
        first, new1 = repo.insert(alert)
        again, new2 = repo.insert(alert)
        other, new3 = repo.insert(Alert(title="Other", severity=Severity.LOW, time=6, source="edr"))
    assert new1 and not new2 and new3 and first.id == again.id
    with db.write() as conn:
        repo = TenantScope(conn, tid).alerts
        repo.set_status(first.id or "", AlertStatus.CLOSED)
        listed, _ = repo.list()
        assert [a.title for a in listed] == ["Other", "Beacon"]
        assert [a.title for a in repo.list(min_severity=Severity.MEDIUM)[0]] == ["Beacon"]
        assert [a.title for a in repo.list(status=AlertStatus.CLOSED)[0]] == ["Beacon"]
        assert [a.title for a in repo.list(value="203.0.113.9")[0]] == ["Beacon"]
        assert repo.get(other.id or "") is not None


def test_cases_hold_alerts_observables_comments_tasks_timeline(db: Database) -> None:
    from bastion.cases.service import add_comment, add_task, open_case

    tid = _tenant(db, "acme")
    with db.write() as conn:
        scope = TenantScope(conn, tid)
        alert, _ = scope.alerts.insert(
            Alert(
                title="Mimikatz",
                severity=Severity.CRITICAL,
                time=1,
                source="edr",
                observables=[Observable(ObservableType.HOST, "ws-1"), Observable(ObservableType.USER, "bob")],
            )
        )
        case = open_case(
            scope,
            "user:ana",
            "Credential theft",
            Severity.HIGH,
            alert_ids=[alert.id or ""],
            reason="same host",
        )
        add_comment(scope, "user:ana", case.id or "", "isolating the host")
        add_task(scope, "user:ana", case.id or "", "Reset bob's password", assignee="ana")
        scope.cases.set_status(case.id or "", CaseStatus.IN_PROGRESS)
    with db.read() as conn:
        scope = TenantScope(conn, tid)
        got = scope.cases.get(case.id or "")
        assert got is not None
        assert got.alert_ids == [alert.id]
        assert {(o.type, o.value) for o in got.observables} == {
            (ObservableType.HOST, "ws-1"),
            (ObservableType.USER, "bob"),
        }
        assert [c.body for c in got.comments] == ["isolating the host"]
        assert [t.title for t in got.tasks] == ["Reset bob's password"]
        assert [e.kind for e in got.timeline] == ["case.opened", "alert.added", "comment", "task.created"]
        assert got.status == CaseStatus.IN_PROGRESS
        assert scope.alerts.get(alert.id or "").case_id == case.id  # type: ignore[union-attr]
        assert [c["alerts"] for c in scope.cases.list()] == [1]
        assert scope.audit.verify().ok


def test_every_repository_is_scoped_to_its_tenant(db: Database) -> None:
    a, b = _tenant(db, "tenant-a"), _tenant(db, "tenant-b")
    with db.write() as conn:
        sb = TenantScope(conn, b)
        sb.events.insert_batch([_row(1)], ingested=1)
        alert, _ = sb.alerts.insert(
            Alert(
                title="B only",
                severity=Severity.LOW,
                time=1,
                source="x",
                observables=[Observable(ObservableType.IPV4, "10.0.0.1")],
            )
        )
        case = sb.cases.create("B case", Severity.LOW)
        sb.users.add("bob", Role.ANALYST, email=None, password_hash=None)
        sb.audit.append("t", "x", "y")
    with db.read() as conn:
        sa = TenantScope(conn, a)
        assert sa.events.count() == 0 and sa.events.search(value="10.0.0.1")[0] == []
        assert sa.events.get(f"{1:032x}") is None
        assert sa.alerts.list()[0] == [] and sa.alerts.get(alert.id or "") is None
        assert sa.cases.list() == [] and sa.cases.get(case.id or "") is None
        assert sa.users.list() == [] and sa.users.by_name("bob") is None
        assert list(sa.audit.entries()) == []
        # the same event id may exist in both tenants, independently
    with db.write() as conn:
        new, dup = TenantScope(conn, a).events.insert_batch([_row(1)], ingested=1)
        assert (len(new), dup) == (1, 0)
        assert (
            conn.execute(select(events.c.tenant_num).where(events.c.id == f"{1:032x}")).all().__len__() == 2
        )


def test_events_sharing_a_64_bit_key_are_kept_apart(db: Database) -> None:
    """The duplicate check indexes 64 bits of the id; two ids sharing them are still two events."""
    tid = _tenant(db, "acme")
    first, second = _row(1), _row(2)
    first.id = "ab" * 8 + "0" * 16
    second.id = "ab" * 8 + "1" * 16
    with db.write() as conn:
        new, dup = TenantScope(conn, tid).events.insert_batch([first], ingested=1)
        assert (len(new), dup) == (1, 0)
    with db.write() as conn:
        new, dup = TenantScope(conn, tid).events.insert_batch([second, first], ingested=2)
        assert (new, dup) == ([second.id], 1)
    with db.read() as conn:
        scope = TenantScope(conn, tid)
        assert scope.events.count() == 2
        got = scope.events.get(second.id)
        assert got is not None and got.id == second.id
        assert scope.events.get("not-an-id") is None


def test_concurrent_writers_keep_one_unbroken_audit_chain(db: Database) -> None:
    """Threads writing at once (the engine's workflows do) each get their turn: every entry is kept, in
    one chain that verifies, with no ``database is locked`` on SQLite."""
    tid = _tenant(db, "acme")

    def write(worker: int) -> None:
        for i in range(25):
            with db.write() as conn:
                TenantScope(conn, tid).audit.append(f"worker{worker}", "test.write", "item", str(i))

    threads = [threading.Thread(target=write, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with db.read() as conn:
        audit = TenantScope(conn, tid).audit
        entries = list(audit.entries())
        assert [e.seq for e in entries] == list(range(1, 201))
        assert audit.verify().ok
    assert {e.actor for e in entries} == {f"worker{w}" for w in range(8)}


def test_observable_index_rows_are_one_per_value_hash(db: Database) -> None:
    """Each event is indexed once per distinct indexed value (a host and a domain spelt alike share one
    row), hashes of either sign survive the packing of (hash, row key) into one integer, and re-sending
    the batch adds nothing."""
    tid = _tenant(db, "acme")
    values = [f"host{i}.example.com" for i in range(8)]
    signs = {value_hash(v) < 0 for v in values}
    assert signs == {True, False}
    rows = []
    for i, v in enumerate(values):
        row = _row(100 + i)
        row.observables = [("host", v), ("domain", v), ("user", "Alice"), ("user", "alice")]
        row.normalized = orjson.dumps(
            {"observables": [{"type": t, "value": x} for t, x in row.observables]}
        ).decode()
        rows.append(row)
    with db.write() as conn:
        new, dup = TenantScope(conn, tid).events.insert_batch(rows, ingested=1)
        assert (len(new), dup) == (8, 0)
    with db.write() as conn:
        assert TenantScope(conn, tid).events.insert_batch(rows, ingested=2) == ([], 8)
    with db.read() as conn:
        pk_of = dict(conn.execute(select(events.c.id, events.c.pk)).all())
        stored = [(e.vhash, e.event_pk) for e in index_entries(conn)]
        repo = TenantScope(conn, tid).events
        assert [e.id for e in repo.search(value="HOST3.example.com", obs_type="host")[0]] == [rows[3].id]
    expected = {(value_hash(v), pk_of[r.id]) for r, v in zip(rows, values, strict=True)}
    expected |= {(value_hash("alice"), pk_of[r.id]) for r in rows}
    assert sorted(map(tuple, stored)) == sorted(expected)
