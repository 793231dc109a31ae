"""Stored alerts and their observable index, scoped to one tenant.

An alert re-sent by its source with the same ``external_id`` is not stored twice: ``insert`` returns the
id of the one already there. (Fingerprint-window dedupe of *similar* alerts is triage's job: it finds open
alerts by fingerprint here and folds repeats into them with :meth:`AlertRepository.apply_dedupe`.)

The triage columns (fingerprint, count, last seen, score, queue, verdict, auto-close and the timestamps)
mirror the document's fields so that triage and the metrics query them without decoding documents.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import msgspec
from sqlalchemy import Connection, and_, bindparam, func, or_, select, update

from bastion.model import (
    OBSERVABLE_TYPE_NAMES,
    Alert,
    AlertStatus,
    Observable,
    Severity,
    Verdict,
)
from bastion.store._util import chunks, driver_mark, insert_tuples, new_id, now_ms
from bastion.store.events import index_value
from bastion.store.tables import alert_observables, alerts

__all__ = ["AlertRepository"]

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(Alert).decode
_STATUS = {s: s.value for s in AlertStatus}
_TRIAGE_COLUMNS = (
    "fingerprint",
    "count",
    "last_seen",
    "score",
    "queue",
    "verdict",
    "auto_closed",
    "acknowledged",
    "closed",
)
# The columns of an inserted alert row, in the order insert_many builds its tuples.
_ALERT_COLUMNS = (
    "id",
    "tenant_id",
    "title",
    "severity_id",
    "time",
    "source",
    "external_id",
    "rule_id",
    "status",
    "case_id",
    "created",
    "updated",
    "document",
    *_TRIAGE_COLUMNS,
)
_INDEX_COLUMNS = ("tenant_id", "value", "type", "alert_id")


def _triage_values(alert: Alert) -> tuple[Any, ...]:
    """The alert's triage columns, in the order of :data:`_TRIAGE_COLUMNS`."""
    verdict = alert.verdict
    return (
        alert.fingerprint,
        alert.count,
        alert.last_seen,
        alert.score,
        alert.queue,
        verdict.value if verdict is not None else None,
        alert.auto_closed,
        alert.acknowledged,
        alert.closed,
    )


def _triage_columns(alert: Alert) -> dict[str, Any]:
    return dict(zip(_TRIAGE_COLUMNS, _triage_values(alert), strict=True))


class AlertRepository:
    """Alerts of one tenant."""

    def __init__(self, conn: Connection, tenant_id: str) -> None:
        self.conn = conn
        self.tenant_id = tenant_id

    def insert(self, alert: Alert) -> tuple[Alert, bool]:
        """Store ``alert``; return (the stored alert, whether it was new)."""
        return self.insert_many([alert])[0]

    def existing_external(self, batch: Sequence[Alert]) -> dict[tuple[str, str], Alert]:
        """The stored alerts these alerts' (source, external_id) pairs already name. Run on the driver:
        through SQLAlchemy, each ``IN`` list of every batch was expanded and compiled again."""
        by_source: dict[str, set[str]] = {}
        for a in batch:
            if a.external_id is not None:
                by_source.setdefault(a.source, set()).add(a.external_id)
        found: dict[tuple[str, str], Alert] = {}
        mark = driver_mark(self.conn)
        for source, wanted in sorted(by_source.items()):  # (tenant, source, external_id) is indexed
            for chunk in chunks(sorted(wanted)):
                rows = self.conn.exec_driver_sql(
                    f"SELECT external_id, document FROM {alerts.name} WHERE tenant_id = {mark}"
                    f" AND source = {mark} AND external_id IN ({', '.join([mark] * len(chunk))})",
                    (self.tenant_id, source, *chunk),
                )
                for external_id, document in rows:
                    found[(source, external_id)] = _decode(document)
        return found

    def insert_many(
        self, batch: Sequence[Alert], *, checked: bool = False, now: int | None = None
    ) -> list[tuple[Alert, bool]]:
        """Store a batch with one statement per table; return (stored alert, whether new) for each,
        in order. An alert whose (source, external_id) is already stored, or earlier in the batch,
        is not stored again. ``checked``: the caller has already dropped re-sends (triage does).
        ``now`` is the stored ``created`` time: triage passes the time its decisions (auto-close,
        acknowledgement) carry, so no alert is acknowledged before it was created."""
        known = {} if checked else self.existing_external(batch)
        now = now if now is not None else now_ms()
        out: list[tuple[Alert, bool]] = []
        rows: list[tuple[Any, ...]] = []  # in the order of _ALERT_COLUMNS
        tenant = self.tenant_id
        # (value, type, alert id) of the whole batch, inserted sorted: in the index's key order, each
        # page of it is reached once per batch instead of once per alert
        index: set[tuple[str, str, str]] = set()
        add = index.add
        for alert in batch:
            key = (alert.source, alert.external_id) if alert.external_id is not None else None
            if key is not None and key in known:
                out.append((known[key], False))
                continue
            alert_id = alert.id or new_id()
            stored = msgspec.structs.replace(alert, id=alert_id)
            if key is not None:
                known[key] = stored
            out.append((stored, True))
            rows.append(
                (
                    alert_id,
                    tenant,
                    stored.title,
                    int(stored.severity),
                    stored.time,
                    stored.source,
                    stored.external_id,
                    stored.rule_id,
                    _STATUS[stored.status],
                    stored.case_id,
                    now,
                    now,
                    _encode(stored).decode(),
                    *_triage_values(stored),
                )
            )
            for o in stored.observables:
                t = OBSERVABLE_TYPE_NAMES[o.type]
                add((index_value(t, o.value), t, alert_id))
        insert_tuples(self.conn, alerts, _ALERT_COLUMNS, rows)
        insert_tuples(
            self.conn, alert_observables, _INDEX_COLUMNS, [(tenant, v, t, a) for v, t, a in sorted(index)]
        )
        return out

    def open_by_fingerprints(self, fingerprints: Iterable[str], *, since: int) -> dict[str, Alert]:
        """For each fingerprint, the most recently seen alert with it that is not closed, among those
        last seen at or after ``since`` (epoch ms). Triage passes its batch's earliest alert time minus
        the widest dedupe window: an older alert can absorb none of the batch, so neither its row nor its
        document is read (the (tenant, fingerprint, last seen) index skips them). Run on the driver,
        like :meth:`existing_external`."""
        mark = driver_mark(self.conn)
        newest: dict[str, tuple[int, str, str]] = {}
        for chunk in chunks(sorted(set(fingerprints))):
            rows = self.conn.exec_driver_sql(
                f"SELECT fingerprint, id, time, last_seen, document FROM {alerts.name}"
                f" WHERE tenant_id = {mark} AND fingerprint IN ({', '.join([mark] * len(chunk))})"
                # seen is ``last_seen or time``, as in the engine
                f" AND (last_seen >= {mark} OR ((last_seen IS NULL OR last_seen = 0) AND time >= {mark}))"
                f" AND status <> {mark}",
                (self.tenant_id, *chunk, since, since, AlertStatus.CLOSED.value),
            )
            for fp, alert_id, t, last_seen, document in rows:
                seen = (last_seen or t, alert_id, document)
                if fp not in newest or seen[:2] > newest[fp][:2]:
                    newest[fp] = seen
        # only the newest alert per fingerprint is decoded: older open ones can absorb nothing more
        return {fp: _decode(document) for fp, (_, _, document) in newest.items()}

    def apply_dedupe(self, updates: Sequence[tuple[Alert, Sequence[Observable]]]) -> None:
        """Save alerts that absorbed repeats and index the observables each repeat brought that the alert
        did not have (``new_observables``). A fold changes only the count, last seen and document (events,
        observables), so only those columns are written, with one executemany on the driver."""
        if not updates:
            return
        mark = driver_mark(self.conn)
        now = now_ms()
        self.conn.exec_driver_sql(
            f"UPDATE {alerts.name} SET count = {mark}, last_seen = {mark}, updated = {mark},"
            f" document = {mark} WHERE tenant_id = {mark} AND id = {mark}",
            [(a.count, a.last_seen, now, _encode(a).decode(), self.tenant_id, a.id) for a, _ in updates],
        )
        obs_rows: list[dict[str, Any]] = []
        for a, new_obs in updates:
            pairs: set[tuple[str, str]] = set()
            for o in new_obs:
                t = OBSERVABLE_TYPE_NAMES[o.type]
                pairs.add((t, index_value(t, o.value)))
            obs_rows.extend(
                {"tenant_id": self.tenant_id, "alert_id": a.id, "type": t, "value": v}
                for t, v in sorted(pairs)
            )
        if obs_rows:
            self._insert_new_observables(obs_rows)

    def _insert_new_observables(self, rows: list[dict[str, Any]]) -> None:
        """Index rows not indexed yet (two observables may index to the same lower-cased value). Looked
        up by value, the index's leading column: the alert id alone is not indexed."""
        ids = sorted({r["alert_id"] for r in rows})
        types = sorted({r["type"] for r in rows})
        values = sorted({r["value"] for r in rows})
        ao = alert_observables
        have: set[tuple[str, str, str]] = set()
        for chunk in chunks(values):
            for id_chunk in chunks(ids):
                have.update(
                    (r.alert_id, r.type, r.value)
                    for r in self.conn.execute(
                        select(ao.c.alert_id, ao.c.type, ao.c.value).where(
                            ao.c.tenant_id == self.tenant_id,
                            ao.c.value.in_(chunk),
                            ao.c.type.in_(types),
                            ao.c.alert_id.in_(id_chunk),
                        )
                    )
                )
        fresh = []
        for r in rows:
            key = (r["alert_id"], r["type"], r["value"])
            if key not in have:
                have.add(key)
                fresh.append(r)
        if fresh:
            self.conn.execute(alert_observables.insert(), fresh)

    def save_many(self, batch: Sequence[Alert]) -> None:
        """Save whole alerts (status, case, triage columns and document) in one statement."""
        if not batch:
            return
        now = now_ms()
        self.conn.execute(
            update(alerts)
            .where(alerts.c.tenant_id == self.tenant_id, alerts.c.id == bindparam("_id"))
            .values(
                status=bindparam("_status"),
                case_id=bindparam("_case_id"),
                updated=bindparam("_updated"),
                document=bindparam("_document"),
                **{k: bindparam(f"_{k}") for k in _triage_columns(batch[0])},
            ),
            [
                {
                    "_id": a.id,
                    "_status": a.status.value,
                    "_case_id": a.case_id,
                    "_updated": now,
                    "_document": _encode(a).decode(),
                    **{f"_{k}": v for k, v in _triage_columns(a).items()},
                }
                for a in batch
            ],
        )

    def get(self, alert_id: str) -> Alert | None:
        doc = self.conn.execute(
            select(alerts.c.document).where(alerts.c.tenant_id == self.tenant_id, alerts.c.id == alert_id)
        ).scalar()
        return _decode(doc) if doc is not None else None

    def set_case(self, alert_id: str, case_id: str | None) -> None:
        alert = self.get(alert_id)
        if alert is None:
            raise KeyError(alert_id)
        alert.case_id = case_id
        self._save(alert)

    def set_status(self, alert_id: str, status: AlertStatus) -> None:
        alert = self.get(alert_id)
        if alert is None:
            raise KeyError(alert_id)
        alert.status = status
        self._save(alert)

    def _save(self, alert: Alert) -> None:
        self.conn.execute(
            update(alerts)
            .where(alerts.c.tenant_id == self.tenant_id, alerts.c.id == alert.id)
            .values(
                status=alert.status.value,
                case_id=alert.case_id,
                updated=now_ms(),
                document=_encode(alert).decode(),
                **_triage_columns(alert),
            )
        )

    def count(self) -> int:
        q = select(func.count()).select_from(alerts).where(alerts.c.tenant_id == self.tenant_id)
        return int(self.conn.execute(q).scalar_one())

    def list(
        self,
        *,
        status: AlertStatus | None = None,
        min_severity: Severity | None = None,
        source: str | None = None,
        start: int | None = None,
        end: int | None = None,
        value: str | None = None,
        auto_closed: bool | None = None,
        queue: str | None = None,
        min_score: int | None = None,
        rule_id: str | None = None,
        verdict: Verdict | None = None,
        limit: int = 100,
        before: tuple[int, str] | None = None,
    ) -> tuple[list[Alert], tuple[int, str] | None]:
        """Newest first, filtered by any of the given fields (triage state included: auto-closed alerts
        stay searchable); ``before`` is the (time, id) cursor of the previous page."""
        q = select(alerts.c.document, alerts.c.time, alerts.c.id).where(alerts.c.tenant_id == self.tenant_id)
        if status is not None:
            q = q.where(alerts.c.status == status.value)
        if min_severity is not None:
            q = q.where(alerts.c.severity_id >= int(min_severity))
        if source is not None:
            q = q.where(alerts.c.source == source)
        if start is not None:
            q = q.where(alerts.c.time >= start)
        if end is not None:
            q = q.where(alerts.c.time < end)
        if value is not None:
            sub = select(alert_observables.c.alert_id).where(
                alert_observables.c.tenant_id == self.tenant_id,
                alert_observables.c.value.in_(sorted({value, value.lower()})),
            )
            q = q.where(alerts.c.id.in_(sub))
        if auto_closed is not None:
            q = q.where(alerts.c.auto_closed == auto_closed)
        if queue is not None:
            q = q.where(alerts.c.queue == queue)
        if min_score is not None:
            q = q.where(alerts.c.score >= min_score)
        if rule_id is not None:
            q = q.where(alerts.c.rule_id == rule_id)
        if verdict is not None:
            q = q.where(alerts.c.verdict == verdict.value)
        if before is not None:
            t, aid = before
            q = q.where(or_(alerts.c.time < t, and_(alerts.c.time == t, alerts.c.id < aid)))
        rows = list(self.conn.execute(q.order_by(alerts.c.time.desc(), alerts.c.id.desc()).limit(limit + 1)))
        cursor = None
        if len(rows) > limit:
            rows = rows[:limit]
            cursor = (rows[-1].time, rows[-1].id)
        return [_decode(r.document) for r in rows], cursor
