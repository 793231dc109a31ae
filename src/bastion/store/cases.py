"""Stored cases with their alerts, observables, comments, tasks, attachments and timeline, scoped to one
tenant. Services (``bastion.cases``) decide what may change; this module only reads and writes rows."""

from __future__ import annotations

import builtins
import re
from typing import Any

import msgspec
import orjson
from sqlalchemy import Connection, delete, false, func, insert, select, update

from bastion.model import (
    Case,
    CaseAttachment,
    CaseComment,
    CaseStatus,
    CaseTask,
    Observable,
    ObservableType,
    Severity,
    TaskStatus,
    TimelineEntry,
)
from bastion.model.alert import ScoreComponent, Verdict
from bastion.store._util import new_id, now_ms
from bastion.store.tables import (
    case_alerts,
    case_attachments,
    case_comments,
    case_observables,
    case_tasks,
    case_timeline,
    cases,
)

__all__ = ["CaseRepository"]

_HEX_ID = re.compile(r"^[0-9a-f]{32}$")
_NUMBER = re.compile(r"#?([0-9]{1,9})")  # ASCII digits: int() also reads full-width ones
# Columns stored as JSON text, encoded here so services pass plain values.
_JSON_COLUMNS = ("score_components", "sla_breaches", "techniques", "tactics", "custom_fields")
_components = msgspec.json.Decoder(list[ScoreComponent]).decode


def _dump(value: Any) -> str:
    return orjson.dumps(msgspec.to_builtins(value)).decode()


class CaseRepository:
    """Cases of one tenant."""

    def __init__(self, conn: Connection, tenant_id: str) -> None:
        self.conn = conn
        self.tenant_id = tenant_id

    def _where(self, case_id: str) -> Any:
        return (cases.c.tenant_id == self.tenant_id) & (cases.c.id == case_id)

    def _children(self, table: Any, case_id: str) -> Any:
        return (table.c.tenant_id == self.tenant_id) & (table.c.case_id == case_id)

    # ------------------------------------------------------------------ the case row

    def create(
        self,
        title: str,
        severity: Severity,
        *,
        description: str | None = None,
        assignee: str | None = None,
        queue: str | None = None,
        custom_fields: dict[str, Any] | None = None,
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
            number=number,
            title=title,
            severity=severity,
            description=description,
            assignee=assignee,
            queue=queue,
            custom_fields=dict(custom_fields or {}),
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
                queue=queue,
                custom_fields=_dump(case.custom_fields),
                created=now,
                updated=now,
            )
        )
        return case

    def exists(self, case_id: str) -> bool:
        return self.conn.execute(select(cases.c.id).where(self._where(case_id))).first() is not None

    def resolve(self, ref: str) -> str | None:
        """The id of the case ``ref`` names: its 32-hex id, or its number (``12`` or ``#12``)."""
        ref = ref.strip()
        if _HEX_ID.match(ref.lower()):
            found = self.conn.execute(select(cases.c.id).where(self._where(ref.lower()))).scalar()
            if found is not None:
                return str(found)
        m = _NUMBER.fullmatch(ref)
        if m is None:
            return None
        found = self.conn.execute(
            select(cases.c.id).where(cases.c.tenant_id == self.tenant_id, cases.c.number == int(m.group(1)))
        ).scalar()
        return str(found) if found is not None else None

    def _touch(self, case_id: str) -> None:
        self.conn.execute(update(cases).where(self._where(case_id)).values(updated=now_ms()))

    def set_status(self, case_id: str, status: CaseStatus) -> None:
        self.conn.execute(
            update(cases).where(self._where(case_id)).values(status=status.value, updated=now_ms())
        )

    def update_fields(self, case_id: str, **values: Any) -> None:
        """Set columns of the case row; JSON columns take plain values, ``severity`` a Severity."""
        row: dict[str, Any] = {}
        for name, value in values.items():
            if name == "severity":
                row["severity_id"] = int(value)
            elif name == "status":
                row["status"] = CaseStatus(value).value
            elif name == "verdict":
                row["verdict"] = None if value is None else Verdict(value).value
            elif name in _JSON_COLUMNS:
                row[name] = _dump(value)
            else:
                row[name] = value
        row["updated"] = now_ms()
        self.conn.execute(update(cases).where(self._where(case_id)).values(**row))

    def set_first(self, case_id: str, column: str, when: int) -> None:
        """Record a lifecycle timestamp (acknowledged, contained, resolved, closed) unless already set."""
        if column not in ("acknowledged", "contained", "resolved", "closed"):
            raise ValueError(f"not a lifecycle timestamp: {column}")
        col = cases.c[column]
        self.conn.execute(update(cases).where(self._where(case_id), col.is_(None)).values({column: when}))

    # ------------------------------------------------------------------ alerts and observables

    def add_alert(self, case_id: str, alert_id: str, reason: str | None = None) -> None:
        self.conn.execute(
            case_alerts.insert().values(
                case_id=case_id, alert_id=alert_id, tenant_id=self.tenant_id, reason=reason, added=now_ms()
            )
        )
        self._touch(case_id)

    def remove_alert(self, case_id: str, alert_id: str) -> bool:
        done = self.conn.execute(
            delete(case_alerts).where(
                self._children(case_alerts, case_id), case_alerts.c.alert_id == alert_id
            )
        ).rowcount
        self._touch(case_id)
        return bool(done)

    def alert_ids(self, case_id: str) -> builtins.list[str]:
        return [
            r.alert_id
            for r in self.conn.execute(
                select(case_alerts.c.alert_id)
                .where(self._children(case_alerts, case_id))
                .order_by(case_alerts.c.added, case_alerts.c.alert_id)
            )
        ]

    def alert_links(self, case_id: str) -> builtins.list[dict[str, Any]]:
        """Each linked alert with the reason it joined and when."""
        q = (
            select(case_alerts.c.alert_id, case_alerts.c.reason, case_alerts.c.added)
            .where(self._children(case_alerts, case_id))
            .order_by(case_alerts.c.added, case_alerts.c.alert_id)
        )
        return [{"alert_id": r.alert_id, "reason": r.reason, "added": r.added} for r in self.conn.execute(q)]

    def cases_of_alert(self, alert_id: str) -> builtins.list[str]:
        q = select(case_alerts.c.case_id).where(
            case_alerts.c.tenant_id == self.tenant_id, case_alerts.c.alert_id == alert_id
        )
        return [r.case_id for r in self.conn.execute(q)]

    def add_observables(self, case_id: str, observables: builtins.list[Observable]) -> int:
        """Add the observables the case does not have yet; returns how many were new."""
        have = {
            (r.type, r.value)
            for r in self.conn.execute(
                select(case_observables.c.type, case_observables.c.value).where(
                    self._children(case_observables, case_id)
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
        return len(new)

    def observables(self, case_id: str) -> builtins.list[Observable]:
        q = (
            select(case_observables.c.type, case_observables.c.value)
            .where(self._children(case_observables, case_id))
            .order_by(case_observables.c.added, case_observables.c.type, case_observables.c.value)
        )
        return [Observable(ObservableType(r.type), r.value) for r in self.conn.execute(q)]

    # ------------------------------------------------------------------ comments and tasks

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

    def _last_task_position(self, case_id: str) -> int:
        q = select(func.coalesce(func.max(case_tasks.c.position), 0)).where(
            self._children(case_tasks, case_id)
        )
        return int(self.conn.execute(q).scalar_one())

    def add_task(self, case_id: str, title: str, assignee: str | None = None) -> CaseTask:
        task = CaseTask(id=new_id(), title=title, assignee=assignee)
        position = self._last_task_position(case_id) + 1
        self.conn.execute(
            case_tasks.insert().values(
                id=task.id,
                case_id=case_id,
                tenant_id=self.tenant_id,
                title=title,
                status=task.status.value,
                assignee=assignee,
                created=now_ms(),
                position=position,
            )
        )
        self._touch(case_id)
        return task

    def get_task(self, case_id: str, task_id: str) -> CaseTask | None:
        r = self.conn.execute(
            select(case_tasks).where(self._children(case_tasks, case_id), case_tasks.c.id == task_id)
        ).first()
        return _task(r) if r is not None else None

    def update_task(self, case_id: str, task_id: str, **values: Any) -> None:
        """Set a task's ``status`` (TaskStatus), ``title`` or ``assignee``."""
        if "status" in values:
            values["status"] = TaskStatus(values["status"]).value
        self.conn.execute(
            update(case_tasks)
            .where(self._children(case_tasks, case_id), case_tasks.c.id == task_id)
            .values(**values)
        )
        self._touch(case_id)

    # ------------------------------------------------------------------ attachments

    def add_attachment(
        self, case_id: str, *, name: str, content_type: str, data: bytes, sha256: str, author: str
    ) -> CaseAttachment:
        att = CaseAttachment(
            id=new_id(),
            name=name,
            content_type=content_type,
            size=len(data),
            sha256=sha256,
            author=author,
            added=now_ms(),
        )
        self.conn.execute(
            case_attachments.insert().values(
                id=att.id,
                case_id=case_id,
                tenant_id=self.tenant_id,
                name=name,
                content_type=content_type,
                size=att.size,
                sha256=sha256,
                data=data,
                author=author,
                added=att.added,
            )
        )
        self._touch(case_id)
        return att

    def attachments(self, case_id: str) -> builtins.list[CaseAttachment]:
        cols = [c for c in case_attachments.c if c.name != "data"]
        q = select(*cols).where(self._children(case_attachments, case_id)).order_by(case_attachments.c.added)
        return [_attachment(r) for r in self.conn.execute(q)]

    def attachment(self, case_id: str, attachment_id: str) -> tuple[CaseAttachment, bytes] | None:
        r = self.conn.execute(
            select(case_attachments).where(
                self._children(case_attachments, case_id), case_attachments.c.id == attachment_id
            )
        ).first()
        return (_attachment(r), bytes(r.data)) if r is not None else None

    # ------------------------------------------------------------------ timeline

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

    def timeline(self, case_id: str) -> builtins.list[TimelineEntry]:
        q = select(case_timeline).where(self._children(case_timeline, case_id)).order_by(case_timeline.c.id)
        return [
            TimelineEntry(
                time=r.time,
                kind=r.kind,
                summary=r.summary,
                actor=r.actor,
                data=orjson.loads(r.data) if r.data else None,
            )
            for r in self.conn.execute(q)
        ]

    # ------------------------------------------------------------------ merge

    def move_contents(self, source_id: str, target_id: str, note: str) -> dict[str, int]:
        """Move comments, tasks, attachments and observables of ``source_id`` to ``target_id``, and copy
        its timeline there with ``note`` in each entry's data (the source keeps its own history)."""
        moved: dict[str, int] = {}
        # the source's checklist goes after the target's, in its own order
        self.conn.execute(
            update(case_tasks)
            .where(self._children(case_tasks, source_id))
            .values(position=case_tasks.c.position + self._last_task_position(target_id))
        )
        for name, table in (
            ("comments", case_comments),
            ("tasks", case_tasks),
            ("attachments", case_attachments),
        ):
            moved[name] = self.conn.execute(
                update(table).where(self._children(table, source_id)).values(case_id=target_id)
            ).rowcount
        moved["observables"] = self.add_observables(target_id, self.observables(source_id))
        self.conn.execute(delete(case_observables).where(self._children(case_observables, source_id)))
        rows = [
            {
                "case_id": target_id,
                "tenant_id": self.tenant_id,
                "time": r.time,
                "kind": r.kind,
                "summary": f"{r.summary} ({note})",
                "actor": r.actor,
                "data": orjson.dumps({**(orjson.loads(r.data) if r.data else {}), "note": note}).decode(),
            }
            for r in self.conn.execute(
                select(case_timeline)
                .where(self._children(case_timeline, source_id))
                .order_by(case_timeline.c.id)
            )
        ]
        if rows:
            self.conn.execute(insert(case_timeline), rows)
        moved["timeline"] = len(rows)
        self._touch(target_id)
        return moved

    # ------------------------------------------------------------------ reading

    def get(self, case_id: str) -> Case | None:
        row = self.conn.execute(select(cases).where(self._where(case_id))).first()
        if row is None:
            return None
        case = _case(row)
        case.alert_ids = self.alert_ids(case_id)
        case.observables = self.observables(case_id)
        case.comments = [
            CaseComment(id=r.id, author=r.author, body=r.body, time=r.time)
            for r in self.conn.execute(
                select(case_comments)
                .where(self._children(case_comments, case_id))
                .order_by(case_comments.c.time, case_comments.c.id)
            )
        ]
        case.tasks = [
            _task(r)
            for r in self.conn.execute(
                select(case_tasks)
                .where(self._children(case_tasks, case_id))
                .order_by(case_tasks.c.position, case_tasks.c.created, case_tasks.c.id)
            )
        ]
        case.timeline = self.timeline(case_id)
        case.attachments = self.attachments(case_id)
        return case

    def by_custom_field(self, name: str, value: str) -> str | None:
        """The id of a case whose custom field ``name`` is the string ``value`` (the oldest, if several)."""
        needle = orjson.dumps({name: value}).decode()[1:-1]
        escaped = needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        for r in self.conn.execute(
            select(cases.c.id, cases.c.custom_fields)
            .where(
                cases.c.tenant_id == self.tenant_id, cases.c.custom_fields.like(f"%{escaped}%", escape="\\")
            )
            .order_by(cases.c.created, cases.c.id)
        ):
            if orjson.loads(r.custom_fields).get(name) == value:
                return str(r.id)
        return None

    def number(self, case_id: str) -> int | None:
        return self.conn.execute(select(cases.c.number).where(self._where(case_id))).scalar()

    def count(self) -> int:
        q = select(func.count()).select_from(cases).where(cases.c.tenant_id == self.tenant_id)
        return int(self.conn.execute(q).scalar_one())

    def list(
        self,
        *,
        status: CaseStatus | None = None,
        limit: int = 100,
        offset: int = 0,
        **filters: Any,
    ) -> builtins.list[dict[str, Any]]:
        """Case summaries, most recently updated first (filters as in :meth:`page`)."""
        return self.page(status=status, limit=limit, offset=offset, **filters)[0]

    def page(
        self,
        *,
        status: CaseStatus | builtins.list[CaseStatus] | None = None,
        min_severity: Severity | None = None,
        assignee: str | None = None,
        queue: str | None = None,
        q: str | None = None,
        min_score: int | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> tuple[builtins.list[dict[str, Any]], int]:
        """(one page of case summaries, the number of cases matching the filters). ``q`` is a
        case-insensitive substring of the title."""
        conds: builtins.list[Any] = [cases.c.tenant_id == self.tenant_id]
        if isinstance(status, builtins.list):
            conds.append(cases.c.status.in_([s.value for s in status]))
        elif status is not None:
            conds.append(cases.c.status == status.value)
        if min_severity is not None:
            conds.append(cases.c.severity_id >= int(min_severity))
        if assignee is not None:
            conds.append(cases.c.assignee == assignee)
        if queue is not None:
            conds.append(cases.c.queue == queue)
        if q and "\x00" in q:  # no title holds a NUL, and SQLite's LIKE would match every title
            conds.append(false())
        elif q:
            escaped = q.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            conds.append(func.lower(cases.c.title).like(f"%{escaped}%", escape="\\"))
        if min_score is not None:
            conds.append(cases.c.score >= min_score)
        total = int(self.conn.execute(select(func.count()).select_from(cases).where(*conds)).scalar_one())
        n_alerts = (
            select(func.count())
            .select_from(case_alerts)
            .where(case_alerts.c.tenant_id == self.tenant_id, case_alerts.c.case_id == cases.c.id)
            .scalar_subquery()
        )
        query = (
            select(cases, n_alerts.label("alerts"))
            .where(*conds)
            .order_by(cases.c.updated.desc(), cases.c.id)
            .limit(limit)
            .offset(offset)
        )
        return [_summary(r) for r in self.conn.execute(query)], total


def _summary(r: Any) -> dict[str, Any]:
    return {
        "id": r.id,
        "number": r.number,
        "title": r.title,
        "severity": Severity(r.severity_id).name.lower(),
        "status": r.status,
        "score": r.score,
        "queue": r.queue,
        "tier": r.tier,
        "assignee": r.assignee,
        "verdict": r.verdict,
        "created": r.created,
        "updated": r.updated,
        "alerts": r.alerts,
    }


def _task(r: Any) -> CaseTask:
    return CaseTask(id=r.id, title=r.title, status=TaskStatus(r.status), assignee=r.assignee)


def _attachment(r: Any) -> CaseAttachment:
    return CaseAttachment(
        id=r.id,
        name=r.name,
        content_type=r.content_type,
        size=r.size,
        sha256=r.sha256,
        author=r.author,
        added=r.added,
    )


def _case(row: Any) -> Case:
    return Case(
        id=row.id,
        number=row.number,
        title=row.title,
        severity=Severity(row.severity_id),
        status=CaseStatus(row.status),
        description=row.description,
        assignee=row.assignee,
        created=row.created,
        updated=row.updated,
        score=row.score,
        score_components=_components(row.score_components or "[]"),
        queue=row.queue,
        tier=row.tier,
        escalations=row.escalations,
        sla_breaches=orjson.loads(row.sla_breaches or "[]"),
        techniques=orjson.loads(row.techniques or "[]"),
        tactics=orjson.loads(row.tactics or "[]"),
        last_alert=row.last_alert,
        verdict=Verdict(row.verdict) if row.verdict else None,
        custom_fields=orjson.loads(row.custom_fields or "{}"),
        acknowledged=row.acknowledged,
        contained=row.contained,
        resolved=row.resolved,
        closed=row.closed,
    )
