"""Cases: the unit of investigation, grouping alerts with their observables, comments, tasks and timeline."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

import msgspec

from bastion.model.alert import ScoreComponent, Verdict
from bastion.model.event import Severity
from bastion.model.observable import Observable

__all__ = [
    "Case",
    "CaseAttachment",
    "CaseComment",
    "CaseStatus",
    "CaseTask",
    "TaskStatus",
    "TimelineEntry",
]


class CaseStatus(StrEnum):
    """The lifecycle, in order. Closing needs a verdict; a closed case can be reopened."""

    NEW = "new"
    TRIAGED = "triaged"
    IN_PROGRESS = "in_progress"
    CONTAINED = "contained"
    RESOLVED = "resolved"
    CLOSED = "closed"


class TaskStatus(StrEnum):
    OPEN = "open"
    DONE = "done"
    CANCELLED = "cancelled"


class CaseComment(msgspec.Struct, omit_defaults=True):
    author: str
    body: str
    time: int
    id: str | None = None


class CaseTask(msgspec.Struct, omit_defaults=True):
    title: str
    status: TaskStatus = TaskStatus.OPEN
    assignee: str | None = None
    id: str | None = None


class CaseAttachment(msgspec.Struct, omit_defaults=True):
    """Evidence stored with its SHA-256; the bytes are fetched separately."""

    name: str
    content_type: str
    size: int
    sha256: str
    author: str
    added: int
    id: str | None = None


class TimelineEntry(msgspec.Struct, omit_defaults=True):
    """Something that happened to or in the case: an alert joined, a comment, a step ran."""

    time: int
    kind: str
    summary: str
    actor: str | None = None
    data: dict[str, Any] | None = None


class Case(msgspec.Struct, omit_defaults=True):
    title: str
    severity: Severity = Severity.MEDIUM
    status: CaseStatus = CaseStatus.NEW
    id: str | None = None
    number: int | None = None
    description: str | None = None
    assignee: str | None = None
    created: int = 0
    updated: int = 0
    # Triage: the explained 0-100 score, routing (queue and tier, raised by SLA escalation), the ATT&CK
    # span of its alerts, and when its newest alert fired.
    score: int = 0
    score_components: list[ScoreComponent] = msgspec.field(default_factory=list)
    queue: str | None = None
    tier: int = 1
    escalations: int = 0
    sla_breaches: list[str] = msgspec.field(default_factory=list)
    techniques: list[str] = msgspec.field(default_factory=list)
    tactics: list[str] = msgspec.field(default_factory=list)
    last_alert: int | None = None
    verdict: Verdict | None = None
    custom_fields: dict[str, Any] = msgspec.field(default_factory=dict)
    # Lifecycle timestamps: the first time the case was acknowledged, contained, resolved, closed.
    acknowledged: int | None = None
    contained: int | None = None
    resolved: int | None = None
    closed: int | None = None
    alert_ids: list[str] = msgspec.field(default_factory=list)
    observables: list[Observable] = msgspec.field(default_factory=list)
    comments: list[CaseComment] = msgspec.field(default_factory=list)
    tasks: list[CaseTask] = msgspec.field(default_factory=list)
    timeline: list[TimelineEntry] = msgspec.field(default_factory=list)
    attachments: list[CaseAttachment] = msgspec.field(default_factory=list)
