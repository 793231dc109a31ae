"""Cases: the unit of investigation, grouping alerts with their observables, comments, tasks and timeline."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

import msgspec

from bastion.model.event import Severity
from bastion.model.observable import Observable

__all__ = ["Case", "CaseComment", "CaseStatus", "CaseTask", "TaskStatus", "TimelineEntry"]


class CaseStatus(StrEnum):
    OPEN = "open"
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
    status: CaseStatus = CaseStatus.OPEN
    id: str | None = None
    description: str | None = None
    assignee: str | None = None
    created: int = 0
    updated: int = 0
    alert_ids: list[str] = msgspec.field(default_factory=list)
    observables: list[Observable] = msgspec.field(default_factory=list)
    comments: list[CaseComment] = msgspec.field(default_factory=list)
    tasks: list[CaseTask] = msgspec.field(default_factory=list)
    timeline: list[TimelineEntry] = msgspec.field(default_factory=list)
