"""Alerts: a detection (ours or another tool's) that someone may need to look at."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

import msgspec

from bastion.model.event import Severity
from bastion.model.observable import Observable

__all__ = ["Alert", "AlertStatus", "ScoreComponent", "Verdict"]


class AlertStatus(StrEnum):
    NEW = "new"
    ACKNOWLEDGED = "acknowledged"
    IN_PROGRESS = "in_progress"
    CLOSED = "closed"


class Verdict(StrEnum):
    """How an alert or case was closed: required to close a case."""

    TRUE_POSITIVE = "true_positive"
    BENIGN_TRUE_POSITIVE = "benign_true_positive"
    FALSE_POSITIVE = "false_positive"


class ScoreComponent(msgspec.Struct, omit_defaults=True, frozen=True):
    """One line of an explained risk score: what was seen (``detail``), and the points it added. Frozen:
    scoring hands the same component to every alert that earns it (the same severity, rule fidelity or
    asset), so none may change one in place."""

    name: str
    points: float
    detail: str = ""
    weight: float = 1.0


class Alert(msgspec.Struct, omit_defaults=True):
    """An alert. ``time`` is when it fired, in epoch milliseconds; ``source`` names the tool that raised it.

    ``external_id`` is the producing tool's own id: with ``source`` it makes re-sent alerts idempotent.
    """

    title: str
    severity: Severity
    time: int
    source: str
    id: str | None = None
    description: str | None = None
    external_id: str | None = None
    rule_id: str | None = None
    rule_name: str | None = None
    status: AlertStatus = AlertStatus.NEW
    techniques: list[str] = msgspec.field(default_factory=list)  # ATT&CK ids, e.g. T1059.001
    tags: list[str] = msgspec.field(default_factory=list)
    observables: list[Observable] = msgspec.field(default_factory=list)
    event_ids: list[str] = msgspec.field(default_factory=list)
    case_id: str | None = None
    # What the enrichment stage found when the alert came in: intel matches, known-benign marks,
    # assets, identities, GeoIP, and the reasons its severity was raised.
    enrichment: dict[str, Any] | None = None
    raw: Any = None
    # Triage (bastion.triage): the dedupe key, how many times it was seen and when last, the 0-100 score
    # with its explanation, the queue it was routed to, and how it was closed and why.
    fingerprint: str | None = None
    count: int = 1
    last_seen: int | None = None
    score: int = 0
    score_components: list[ScoreComponent] = msgspec.field(default_factory=list)
    queue: str | None = None
    verdict: Verdict | None = None
    close_reason: str | None = None
    auto_closed: bool = False
    acknowledged: int | None = None
    closed: int | None = None
