"""Stored alerts and their observable index, scoped to one tenant.

An alert re-sent by its source with the same ``external_id`` is not stored twice: ``insert`` returns the
id of the one already there. (Fingerprint-window dedupe of *similar* alerts is triage's job.)
"""

from __future__ import annotations

import msgspec
from sqlalchemy import Connection, and_, func, or_, select, update

from bastion.model import Alert, AlertStatus, Severity
from bastion.store._util import new_id, now_ms
from bastion.store.events import index_value
from bastion.store.tables import alert_observables, alerts

__all__ = ["AlertRepository"]

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(Alert).decode


class AlertRepository:
    """Alerts of one tenant."""

    def __init__(self, conn: Connection, tenant_id: str) -> None:
        self.conn = conn
        self.tenant_id = tenant_id

    def insert(self, alert: Alert) -> tuple[Alert, bool]:
        """Store ``alert``; return (the stored alert, whether it was new)."""
        if alert.external_id is not None:
            existing = self.conn.execute(
                select(alerts.c.document).where(
                    alerts.c.tenant_id == self.tenant_id,
                    alerts.c.source == alert.source,
                    alerts.c.external_id == alert.external_id,
                )
            ).scalar()
            if existing is not None:
                return _decode(existing), False
        now = now_ms()
        stored = msgspec.structs.replace(alert, id=alert.id or new_id())
        self.conn.execute(
            alerts.insert().values(
                id=stored.id,
                tenant_id=self.tenant_id,
                title=stored.title,
                severity_id=int(stored.severity),
                time=stored.time,
                source=stored.source,
                external_id=stored.external_id,
                rule_id=stored.rule_id,
                status=stored.status.value,
                case_id=stored.case_id,
                created=now,
                updated=now,
                document=_encode(stored).decode(),
            )
        )
        pairs = {(o.type.value, index_value(o.type.value, o.value)) for o in stored.observables}
        if pairs:
            self.conn.execute(
                alert_observables.insert(),
                [
                    {"tenant_id": self.tenant_id, "alert_id": stored.id, "type": t, "value": v}
                    for t, v in sorted(pairs)
                ],
            )
        return stored, True

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
        limit: int = 100,
        before: tuple[int, str] | None = None,
    ) -> tuple[list[Alert], tuple[int, str] | None]:
        """Newest first; ``before`` is the (time, id) cursor of the previous page."""
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
        if before is not None:
            t, aid = before
            q = q.where(or_(alerts.c.time < t, and_(alerts.c.time == t, alerts.c.id < aid)))
        rows = list(self.conn.execute(q.order_by(alerts.c.time.desc(), alerts.c.id.desc()).limit(limit + 1)))
        cursor = None
        if len(rows) > limit:
            rows = rows[:limit]
            cursor = (rows[-1].time, rows[-1].id)
        return [_decode(r.document) for r in rows], cursor
