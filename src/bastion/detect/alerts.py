"""Turning matches into Alerts, after suppressions.

An alert carries the rule's severity (from ``level``), ATT&CK technique ids (from ``attack.tNNNN[.NNN]``
tags), the rule's false-positive notes, and why it fired: the named detections that matched and the
event fields they test, with the event's values. Suppressions (rule, field values, expiry) are checked
first, so a suppressed match never becomes an alert.

With a tenant's correlation engine, each event's (unsuppressed) matches also feed the Sigma correlation
rules, and a correlation that fires becomes an alert of its own on the event that completed it.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bastion.detect.events import FlatEvent, flatten
from bastion.model import Alert, Event, Severity

if TYPE_CHECKING:
    from bastion.detect.correlation import CorrelationEngine, CorrelationHit
    from bastion.detect.engine import Detector, Match

__all__ = [
    "Suppression",
    "alerts_for_events",
    "build_alert",
    "build_correlation_alert",
    "severity_of",
    "techniques_of",
]

_LEVELS = {
    "informational": Severity.INFORMATIONAL,
    "low": Severity.LOW,
    "medium": Severity.MEDIUM,
    "high": Severity.HIGH,
    "critical": Severity.CRITICAL,
}
_TECHNIQUE = re.compile(r"^attack\.(t\d{4}(?:\.\d{3})?)$", re.IGNORECASE)


def severity_of(level: str | None) -> Severity:
    """OCSF severity for a Sigma ``level`` (unknown or missing: medium)."""
    return _LEVELS.get((level or "").lower(), Severity.MEDIUM)


def techniques_of(tags: Iterable[Any]) -> list[str]:
    """ATT&CK technique ids (``T1059.001``) from Sigma tags, in order, without repeats."""
    out: list[str] = []
    for tag in tags:
        m = _TECHNIQUE.match(str(tag))
        if m and m.group(1).upper() not in out:
            out.append(m.group(1).upper())
    return out


@dataclass(frozen=True)
class Suppression:
    """An exception: matches of ``rule_id`` (None: any rule) whose event has every field in ``fields``
    equal (case-insensitively) to the given value are dropped, until ``expires`` (epoch ms; None: never)."""

    fields: dict[str, str] = field(default_factory=dict)
    rule_id: str | None = None
    expires: int | None = None
    id: str | None = None
    reason: str | None = None

    def applies(self, rule_id: str, ev: FlatEvent, now: int) -> bool:
        if self.expires is not None and now >= self.expires:
            return False
        if self.rule_id is not None and self.rule_id != rule_id:
            return False
        for name, want in self.fields.items():
            v = ev.low(name)
            if v is None:
                return False
            if (v if type(v) is str else "\x00".join(v)) != str(want).lower() and (
                type(v) is str or str(want).lower() not in v
            ):
                return False
        return True


def build_alert(detector: Detector, match: Match, ev: FlatEvent, event: Event | None, now: int) -> Alert:
    """The alert for one match on one event."""
    rule = match.rule
    sigma = rule.rule
    tags = [str(t) for t in (sigma.tags or [])]
    why = detector.explain(match, ev)
    raw: dict[str, Any] = {
        "why": why,
        "falsepositives": list(sigma.falsepositives or []),
        "level": rule.level,
        # The rule's maturity (stable, test, experimental...): triage scores fidelity from it.
        "status": str(sigma.status.name).lower() if sigma.status is not None else None,
        "rule_source": rule.source,
    }
    return Alert(
        title=rule.title,
        severity=severity_of(rule.level),
        time=(event.time if event is not None and event.time else now),
        source="sigma",
        description=sigma.description,
        rule_id=rule.rule_id,
        rule_name=rule.title,
        techniques=techniques_of(tags),
        tags=tags,
        observables=list(event.observables) if event is not None else [],
        raw=raw,
    )


def build_correlation_alert(hit: CorrelationHit, event: Event | None, now: int) -> Alert:
    """The alert for a correlation that fired on ``event`` (the one that completed it)."""
    group = ", ".join(f"{k}={v}" for k, v in hit.group.items()) or "all events"
    why = f"correlation {hit.kind}: {hit.count} within {(hit.last_ms - hit.first_ms) / 1000:g}s for {group}"
    return Alert(
        title=hit.title,
        severity=severity_of(hit.level),
        time=(event.time if event is not None and event.time else now),
        source="sigma",
        description=hit.description,
        rule_id=hit.rule_id,
        rule_name=hit.title,
        techniques=techniques_of(hit.tags),
        tags=list(hit.tags),
        observables=list(event.observables) if event is not None else [],
        raw={
            "why": why,
            "level": hit.level,
            "correlation": {
                "type": hit.kind,
                "group": hit.group,
                "count": hit.count,
                "first": hit.first_ms,
                "last": hit.last_ms,
            },
        },
    )


def alerts_for_events(
    detector: Detector,
    events: Iterable[Event | Any],
    *,
    now: int | None = None,
    suppressions: Sequence[Suppression] = (),
    event_ids: Sequence[str] | None = None,
    correlation: CorrelationEngine | None = None,
) -> list[Alert]:
    """Alerts for a batch of events: ``bastion.model.Event`` (matched on ``raw``) or plain documents.

    With ``event_ids`` (the stored ids, in the same order), each alert lists its event and gets
    ``external_id = "<rule id>:<event id>"``, so re-running detection on the same events is idempotent.
    With ``correlation``, matches also feed the correlation rules (see the module docstring).
    """
    now = now if now is not None else int(time.time() * 1000)
    silenced = correlation.silenced if correlation is not None else frozenset()
    out: list[Alert] = []
    for pos, item in enumerate(events):
        event = item if isinstance(item, Event) else None
        doc = item.raw if event is not None else item
        ev = flatten(doc)
        matched: list[int] = []
        for match in detector.match_flat(ev):
            if any(s.applies(match.rule.rule_id, ev, now) for s in suppressions):
                continue
            matched.append(match.rule.index)
            if match.rule.index in silenced:
                continue
            alert = build_alert(detector, match, ev, event, now)
            if event_ids is not None:
                alert.event_ids = [event_ids[pos]]
                alert.external_id = f"{match.rule.rule_id}:{event_ids[pos]}"
            out.append(alert)
        if correlation is None or not matched:
            continue
        when = event.time if event is not None and event.time else None
        for hit in correlation.feed(ev, matched, when):
            alert = build_correlation_alert(hit, event, now)
            if event_ids is not None:
                alert.event_ids = [event_ids[pos]]
                alert.external_id = f"{hit.rule_id}:{event_ids[pos]}"
            out.append(alert)
    return out
