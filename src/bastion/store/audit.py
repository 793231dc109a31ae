"""The audit repository: append to a tenant's hash chain, read it back, and verify it.

Appends lock the tenant row (``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite's write transactions are
already exclusive), read the chain head from it, and move the head in the same transaction. A process
that remembers where it last moved the head moves it in one statement, on condition that the row still
says so (sequence number and hash); otherwise it reads the head as above.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import Any

import msgspec
import orjson
from sqlalchemy import Connection, bindparam, select, update

from bastion.audit.chain import GENESIS, entry_hash
from bastion.store._util import bulk_insert, first_prebuilt, insert_rowid, run_prebuilt
from bastion.store.tables import audit_log, tenants

__all__ = ["AuditEntry", "AuditRepository", "VerifyResult"]


class AuditEntry(msgspec.Struct):
    id: int
    seq: int
    time: int
    actor: str
    action: str
    target_type: str
    target_id: str | None
    data: dict[str, Any]
    prev_hash: str
    hash: str


class VerifyResult(msgspec.Struct):
    ok: bool
    entries: int
    first_bad: int | None = None
    reason: str | None = None


def _body(
    tenant_id: str,
    seq: int,
    t: int,
    actor: str,
    action: str,
    target_type: str,
    target_id: str | None,
    data_text: str,
) -> dict[str, Any]:
    return {
        "tenant_id": tenant_id,
        "seq": seq,
        "time": t,
        "actor": actor,
        "action": action,
        "target_type": target_type,
        "target_id": target_id,
        "data": data_text,
    }


# Built once and run on the driver (store/_util.py run_prebuilt): every audited change runs these, and
# building a statement per call, or SQLAlchemy's cache key of it, cost more than executing it.
_HEAD = (
    select(tenants.c.audit_seq, tenants.c.audit_head)
    .where(tenants.c.id == bindparam("b_tenant"))
    .with_for_update()
)
_INSERT = audit_log.insert()
# PostgreSQL's cursor has no lastrowid: there the new id comes back with RETURNING.
_INSERT_RETURNING_ID = _INSERT.returning(audit_log.c.id)
_MOVE_HEAD = (
    update(tenants)
    .where(tenants.c.id == bindparam("b_tenant"))
    .values(audit_seq=bindparam("b_seq"), audit_head=bindparam("b_head"))
)
# Moves the head only if it is still where this process last put it (sequence number and hash).
_MOVE_KNOWN_HEAD = _MOVE_HEAD.where(
    tenants.c.audit_seq == bindparam("b_was_seq"), tenants.c.audit_head == bindparam("b_was_head")
)

# Where this process last moved each chain's head: (database, tenant) -> (seq, head hash). An append
# starts from it and moves the head only if the row still says so (one statement instead of reading the
# head and then moving it); if another process appended, or the transaction that moved it rolled back,
# the row says otherwise and the append reads the head as before. Nothing is trusted that the row does
# not confirm in the same transaction.
_KNOWN_HEADS: dict[tuple[int, str], tuple[int, str]] = {}
_KNOWN_HEADS_MAX = 10_000


class AuditRepository:
    """The audit chain of one tenant."""

    def __init__(self, conn: Connection, tenant_id: str) -> None:
        self.conn = conn
        self.tenant_id = tenant_id

    def append(
        self,
        actor: str,
        action: str,
        target_type: str,
        target_id: str | None = None,
        data: dict[str, Any] | None = None,
    ) -> AuditEntry:
        """Add one entry at the head of the chain, in the caller's transaction."""
        return self.append_many([(actor, action, target_type, target_id, data)])[0]

    def append_many(
        self, items: Sequence[tuple[str, str, str, str | None, dict[str, Any] | None]]
    ) -> list[AuditEntry]:
        """Add entries ``(actor, action, target_type, target_id, data)`` at the head of the chain, in
        order, in the caller's transaction: the head is locked and moved once, the rows inserted in one
        statement, so auditing every alert of a batch costs one round of statements, not one per alert."""
        if not items:
            return []
        cache_key = (id(self.conn.engine), self.tenant_id)
        known = _KNOWN_HEADS.get(cache_key)
        if known is not None:
            rows, made = self._entries(items, *known)
            moved = run_prebuilt(
                self.conn,
                _MOVE_KNOWN_HEAD,
                {
                    "b_tenant": self.tenant_id,
                    "b_seq": made[-1].seq,
                    "b_head": made[-1].hash,
                    "b_was_seq": known[0],
                    "b_was_head": known[1],
                },
            )
            if moved != 1:
                known = None
        if known is None:
            head = first_prebuilt(self.conn, _HEAD, {"b_tenant": self.tenant_id})
            if head is None:
                raise LookupError(f"no tenant with id {self.tenant_id!r}")
            rows, made = self._entries(items, int(head[0]), head[1] or "")
            run_prebuilt(
                self.conn,
                _MOVE_HEAD,
                {"b_tenant": self.tenant_id, "b_seq": made[-1].seq, "b_head": made[-1].hash},
            )
        if len(rows) == 1:
            if self.conn.dialect.name == "sqlite":
                made[0].id = insert_rowid(self.conn, _INSERT, rows[0])
            else:
                pk = first_prebuilt(self.conn, _INSERT_RETURNING_ID, rows[0])
                made[0].id = int(pk[0]) if pk else 0
        else:  # a batch's entries (one per stored alert): plain values, straight to the driver
            bulk_insert(self.conn, audit_log, rows)
        if len(_KNOWN_HEADS) >= _KNOWN_HEADS_MAX:
            _KNOWN_HEADS.clear()
        _KNOWN_HEADS[cache_key] = (made[-1].seq, made[-1].hash)
        return made

    def _entries(
        self, items: Sequence[tuple[str, str, str, str | None, dict[str, Any] | None]], seq: int, head: str
    ) -> tuple[list[dict[str, Any]], list[AuditEntry]]:
        """The rows and entries of ``items`` chained after ``(seq, head)`` ("" before the first)."""
        prev = head or GENESIS
        now = int(time.time() * 1000)
        rows: list[dict[str, Any]] = []
        made: list[AuditEntry] = []
        for actor, action, target_type, target_id, data in items:
            seq += 1
            data_text = orjson.dumps(data or {}, option=orjson.OPT_SORT_KEYS).decode()
            body = _body(self.tenant_id, seq, now, actor, action, target_type, target_id, data_text)
            digest = entry_hash(prev, body)
            rows.append({**body, "prev_hash": prev, "hash": digest})
            made.append(
                AuditEntry(
                    id=0,
                    seq=seq,
                    time=now,
                    actor=actor,
                    action=action,
                    target_type=target_type,
                    target_id=target_id,
                    data=data or {},
                    prev_hash=prev,
                    hash=digest,
                )
            )
            prev = digest
        return rows, made

    def entries(self, *, after_seq: int = 0, limit: int | None = None) -> Iterator[AuditEntry]:
        """Entries in chain order (by ``seq``)."""
        q = (
            select(audit_log)
            .where(audit_log.c.tenant_id == self.tenant_id, audit_log.c.seq > after_seq)
            .order_by(audit_log.c.seq, audit_log.c.id)
        )
        if limit is not None:
            q = q.limit(limit)
        for row in self.conn.execute(q):
            yield AuditEntry(
                id=row.id,
                seq=row.seq,
                time=row.time,
                actor=row.actor,
                action=row.action,
                target_type=row.target_type,
                target_id=row.target_id,
                data=orjson.loads(row.data),
                prev_hash=row.prev_hash,
                hash=row.hash,
            )

    def verify(self) -> VerifyResult:
        """Walk the chain from the start. The first entry that does not follow is ``first_bad``.

        An edited row fails its own hash; a deleted row leaves a gap in ``seq`` (the entry after it is
        bad); reordered rows fail the sequence, the link or the hash. Deleting the newest rows is caught
        by comparing the last entry with the head kept on the tenant row.
        """
        head = self.conn.execute(
            select(tenants.c.audit_seq, tenants.c.audit_head).where(tenants.c.id == self.tenant_id)
        ).one()
        prev = GENESIS
        expected_seq = 1
        count = 0
        rows = self.conn.execute(
            select(audit_log).where(audit_log.c.tenant_id == self.tenant_id).order_by(audit_log.c.id)
        )
        # Rows are walked in insertion (id) order: a reorder that swaps ``seq`` values shows up as a
        # sequence break even if someone also rewrote the hashes.
        for row in rows:
            count += 1
            if row.seq != expected_seq:
                return VerifyResult(False, count, row.id, f"expected seq {expected_seq}, found {row.seq}")
            if row.prev_hash != prev:
                return VerifyResult(False, count, row.id, "previous-hash link broken")
            body = _body(
                self.tenant_id,
                row.seq,
                row.time,
                row.actor,
                row.action,
                row.target_type,
                row.target_id,
                row.data,
            )
            if entry_hash(prev, body) != row.hash:
                return VerifyResult(False, count, row.id, "content does not match its hash")
            prev = row.hash
            expected_seq += 1
        if count != head.audit_seq or (count and prev != head.audit_head):
            return VerifyResult(
                False,
                count,
                None,
                f"chain ends at entry {count} but the tenant's head is at {head.audit_seq}: "
                "newest entries were deleted",
            )
        return VerifyResult(True, count)
