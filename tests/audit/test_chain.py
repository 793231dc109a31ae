"""The audit chain detects rows edited, deleted or reordered directly in the database."""

from __future__ import annotations

from itertools import pairwise

from sqlalchemy import delete, select, update

from bastion.store import Database, TenantRepository, TenantScope
from bastion.store.tables import audit_log


def _chain(db: Database, n: int = 5) -> tuple[str, list[int]]:
    with db.write() as conn:
        tid = TenantRepository(conn).create("acme").id
        ids = [
            TenantScope(conn, tid).audit.append("user:ana", "case.comment", "case", f"c{i}", {"i": i}).id
            for i in range(n)
        ]
    return tid, ids


def _verify(db: Database, tid: str):  # type: ignore[no-untyped-def]
    with db.read() as conn:
        return TenantScope(conn, tid).audit.verify()


def test_intact_chain_verifies(db: Database) -> None:
    tid, _ids = _chain(db)
    result = _verify(db, tid)
    assert result.ok and result.entries == 5 and result.first_bad is None
    with db.read() as conn:
        entries = list(TenantScope(conn, tid).audit.entries())
    assert [e.seq for e in entries] == [1, 2, 3, 4, 5]
    assert all(e.prev_hash == p.hash for p, e in pairwise(entries))


def test_batched_appends_continue_one_chain(db: Database) -> None:
    tid, _ids = _chain(db, 2)
    with db.write() as conn:
        audit = TenantScope(conn, tid).audit
        made = audit.append_many([("pipeline", "alert.create", "alert", f"a{i}", {"i": i}) for i in range(4)])
        audit.append("user:ana", "case.comment", "case", "c9", None)
    assert [e.seq for e in made] == [3, 4, 5, 6]
    result = _verify(db, tid)
    assert result.ok and result.entries == 7
    with db.read() as conn:
        entries = list(TenantScope(conn, tid).audit.entries())
    assert [e.target_id for e in entries] == ["c0", "c1", "a0", "a1", "a2", "a3", "c9"]
    assert all(e.prev_hash == p.hash for p, e in pairwise(entries))
    with db.write() as conn:  # an edit inside the batch is still named
        conn.execute(update(audit_log).where(audit_log.c.target_id == "a2").values(data="{}"))
    bad = _verify(db, tid)
    assert not bad.ok and bad.first_bad == entries[4].id


def test_edited_row_is_named(db: Database) -> None:
    tid, ids = _chain(db)
    with db.write() as conn:
        conn.execute(update(audit_log).where(audit_log.c.id == ids[2]).values(actor="user:mallory"))
    result = _verify(db, tid)
    assert not result.ok and result.first_bad == ids[2]


def test_deleted_row_is_detected(db: Database) -> None:
    tid, ids = _chain(db)
    with db.write() as conn:
        conn.execute(delete(audit_log).where(audit_log.c.id == ids[1]))
    result = _verify(db, tid)
    assert not result.ok and result.first_bad == ids[2]  # the entry after the gap


def test_deleted_newest_rows_are_detected(db: Database) -> None:
    tid, ids = _chain(db)
    with db.write() as conn:
        conn.execute(delete(audit_log).where(audit_log.c.id == ids[-1]))
    result = _verify(db, tid)
    assert not result.ok and "deleted" in (result.reason or "")


def test_reordered_rows_are_detected(db: Database) -> None:
    tid, ids = _chain(db)
    with db.write() as conn:
        rows = {r.id: r for r in conn.execute(select(audit_log).where(audit_log.c.id.in_(ids[1:3])))}
        a, b = rows[ids[1]], rows[ids[2]]
        cols = ["seq", "time", "actor", "action", "target_type", "target_id", "data", "prev_hash", "hash"]
        # swap the two rows' contents, so the rows sit in each other's place
        conn.execute(update(audit_log).where(audit_log.c.id == a.id).values(seq=-1))
        conn.execute(update(audit_log).where(audit_log.c.id == b.id).values({c: getattr(a, c) for c in cols}))
        conn.execute(update(audit_log).where(audit_log.c.id == a.id).values({c: getattr(b, c) for c in cols}))
    result = _verify(db, tid)
    assert not result.ok and result.first_bad == ids[1]


def test_chains_are_per_tenant(db: Database) -> None:
    tid, _ = _chain(db)
    with db.write() as conn:
        other = TenantRepository(conn).create("other").id
        entry = TenantScope(conn, other).audit.append("cli", "tenant.create", "tenant", other)
    assert entry.seq == 1
    assert _verify(db, tid).ok and _verify(db, other).ok


def test_appends_from_two_processes_and_a_rolled_back_one_keep_one_chain(db: Database) -> None:
    """A process remembers where it left each chain's head; another process's appends, and its own
    transaction that rolled back after moving the head, must send it back to the head row."""
    tid, _ids = _chain(db, 2)
    other = Database(db.url if db.dialect == "sqlite" else db.engine.url.render_as_string(False))
    try:

        def append(database: Database, target: str) -> None:
            with database.write() as conn:
                TenantScope(conn, tid).audit.append("user:ana", "case.comment", "case", target, None)

        append(db, "mine-1")
        append(other, "theirs-1")  # the head moves where this process cannot see
        append(db, "mine-2")
        try:
            with db.write() as conn:
                TenantScope(conn, tid).audit.append("user:ana", "case.comment", "case", "undone", None)
                raise RuntimeError("roll back")
        except RuntimeError:
            pass
        # The other process now writes the sequence number the rolled-back append had used, with
        # another hash: a head remembered by number alone would chain onto an entry that never was.
        append(other, "theirs-2")
        append(db, "mine-3")
    finally:
        other.dispose()
    result = _verify(db, tid)
    assert result.ok, result
    with db.read() as conn:
        entries = list(TenantScope(conn, tid).audit.entries())
    order = ["c0", "c1", "mine-1", "theirs-1", "mine-2", "theirs-2", "mine-3"]
    assert [e.target_id for e in entries] == order
    assert [e.seq for e in entries] == list(range(1, 8))
