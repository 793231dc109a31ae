"""Stored cases with their alerts, observables, comments, tasks and timeline, scoped to one tenant."""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import Connection, func, select, update

from bastion.model import (
    Case,
    CaseComment,
    CaseStatus,
    CaseTask,
    Observable,
    ObservableType,
    Severity,
    TaskStatus,
    TimelineEntry,
)
from bastion.store._util import new_id, now_ms
from bastion.store.tables import (
    case_alerts,
    case_comments,
    case_observables,
    case_tasks,
    case_timeline,
    cases,
)

__all__ = ["CaseRepository"]


class CaseRepository:
    """Cases of one tenant."""

    def __init__(self, conn: Connection, tenant_id: str) -> None:
        self.conn = conn
        self.tenant_id = tenant_id

    def _where(self, case_id: str) -> Any:
        return (cases.c.tenant_id == self.tenant_id) & (cases.c.id == case_id)

    def create(
        self, title: str, severity: Severity, *, description: str | None = None, assignee: str | None = None
    ) -> Case:
        now = now_ms()
        number = (
            int(
                self.conn.execute(
                    select(func.coalesce(func.max(cases.c.number), 0)).where(
                        cases.c.tenant_id == self.tenant_id
                    )
                ).scalar_one()
            )
            + 1
        )
        case = Case(
            id=new_id(),
            title=title,
            severity=severity,
            description=description,
            assignee=assignee,
            created=now,
            updated=now,
        )
        self.conn.execute(
            cases.insert().values(
                id=case.id,
                tenant_id=self.tenant_id,
                number=number,
                title=title,
                description=description,
                severity_id=int(severity),
                status=case.status.value,
                assignee=assignee,
                created=now,
                updated=now,
            )
        )
        return case

    def exists(self, case_id: str) -> bool:
        return self.conn.execute(select(cases.c.id).where(self._where(case_id))).first() is not None

    def _touch(self, case_id: str) -> None:
        self.conn.execute(update(cases).where(self._where(case_id)).values(updated=now_ms()))

    def set_status(self, case_id: str, status: CaseStatus) -> None:
        self.conn.execute(
            update(cases).where(self._where(case_id)).values(status=status.value, updated=now_ms())
        )

    def add_alert(self, case_id: str, alert_id: str, reason: str | None = None) -> None:
        self.conn.execute(
            case_alerts.insert().values(
                case_id=case_id, alert_id=alert_id, tenant_id=self.tenant_id, reason=reason, added=now_ms()
            )
        )
        self._touch(case_id)

    def add_observables(self, case_id: str, observables: list[Observable]) -> None:
        have = {
            (r.type, r.value)
            for r in self.conn.execute(
                select(case_observables.c.type, case_observables.c.value).where(
                    case_observables.c.tenant_id == self.tenant_id, case_observables.c.case_id == case_id
                )
            )
        }
        now = now_ms()
        new = sorted({(o.type.value, o.value) for o in observables} - have)
        if new:
            self.conn.execute(
                case_observables.insert(),
                [
                    {"case_id": case_id, "type": t, "value": v, "tenant_id": self.tenant_id, "added": now}
                    for t, v in new
                ],
            )

    def add_comment(self, case_id: str, author: str, body: str) -> CaseComment:
        comment = CaseComment(id=new_id(), author=author, body=body, time=now_ms())
        self.conn.execute(
            case_comments.insert().values(
                id=comment.id,
                case_id=case_id,
                tenant_id=self.tenant_id,
                author=author,
                body=body,
                time=comment.time,
            )
        )
        self._touch(case_id)
        return comment

    def add_task(self, case_id: str, title: str, assignee: str | None = None) -> CaseTask:
        task = CaseTask(id=new_id(), title=title, assignee=assignee)
        self.conn.execute(
            case_tasks.insert().values(
                id=task.id,
                case_id=case_id,
                tenant_id=self.tenant_id,
                title=title,
                status=task.status.value,
                assignee=assignee,
                created=now_ms(),
            )
        )
        self._touch(case_id)
        return task

    def add_timeline(
        self,
        case_id: str,
        kind: str,
        summary: str,
        *,
        actor: str | None = None,
        data: dict[str, Any] | None = None,
        time: int | None = None,
    ) -> None:
        self.conn.execute(
            case_timeline.insert().values(
                case_id=case_id,
                tenant_id=self.tenant_id,
                time=time if time is not None else now_ms(),
                kind=kind,
                summary=summary,
                actor=actor,
                data=orjson.dumps(data).decode() if data is not None else None,
            )
        )

    def get(self, case_id: str) -> Case | None:
        row = self.conn.execute(select(cases).where(self._where(case_id))).first()
        if row is None:
            return None
        scope = (self.tenant_id, case_id)

        def rows(table: Any, order: Any) -> list[Any]:
            return list(
                self.conn.execute(
                    select(table)
                    .where(table.c.tenant_id == scope[0], table.c.case_id == scope[1])
                    .order_by(order)
                )
            )

        case = _case(row)
        case.alert_ids = [r.alert_id for r in rows(case_alerts, case_alerts.c.added)]
        case.observables = [
            Observable(ObservableType(r.type), r.value)
            for r in rows(case_observables, case_observables.c.added)
        ]
        case.comments = [
            CaseComment(id=r.id, author=r.author, body=r.body, time=r.time)
            for r in rows(case_comments, case_comments.c.time)
        ]
        case.tasks = [
            CaseTask(id=r.id, title=r.title, status=TaskStatus(r.status), assignee=r.assignee)
            for r in rows(case_tasks, case_tasks.c.created)
        ]
        case.timeline = [
            TimelineEntry(
                time=r.time,
                kind=r.kind,
                summary=r.summary,
                actor=r.actor,
                data=orjson.loads(r.data) if r.data else None,
            )
            for r in rows(case_timeline, case_timeline.c.id)
        ]
        return case

    def number(self, case_id: str) -> int | None:
        return self.conn.execute(select(cases.c.number).where(self._where(case_id))).scalar()

    def count(self) -> int:
        q = select(func.count()).select_from(cases).where(cases.c.tenant_id == self.tenant_id)
        return int(self.conn.execute(q).scalar_one())

    def list(
        self, *, status: CaseStatus | None = None, limit: int = 100, offset: int = 0
    ) -> list[dict[str, Any]]:
        """Case summaries, most recently updated first."""
        n_alerts = (
            select(func.count())
            .select_from(case_alerts)
            .where(case_alerts.c.case_id == cases.c.id)
            .scalar_subquery()
        )
        q = select(cases, n_alerts.label("alerts")).where(cases.c.tenant_id == self.tenant_id)
        if status is not None:
            q = q.where(cases.c.status == status.value)
        q = q.order_by(cases.c.updated.desc(), cases.c.id).limit(limit).offset(offset)
        return [
            {
                "id": r.id,
                "number": r.number,
                "title": r.title,
                "severity": Severity(r.severity_id).name.lower(),
                "status": r.status,
                "assignee": r.assignee,
                "created": r.created,
                "updated": r.updated,
                "alerts": r.alerts,
            }
            for r in self.conn.execute(q)
        ]


def _case(row: Any) -> Case:
    return Case(
        id=row.id,
        title=row.title,
        severity=Severity(row.severity_id),
        status=CaseStatus(row.status),
        description=row.description,
        assignee=row.assignee,
        created=row.created,
        updated=row.updated,
    )
