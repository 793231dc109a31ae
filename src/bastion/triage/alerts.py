"""What people do to one alert: acknowledge, close with a verdict, reopen; and finding alerts by their
triage state (auto-closed, queue, score, verdict) so nothing closed automatically is ever out of sight.

Every change is audited and, when the alert belongs to a case, written to the case's timeline. Closing
a false positive with "suppress similar" adds a suppression scoped to the alert's rule (or source and
title) AND its main entity, never a global mute.
"""

from __future__ import annotations

from typing import Any

import msgspec

from bastion.model import Alert, AlertStatus, ObservableType, Verdict
from bastion.store import TenantScope
from bastion.store._util import now_ms
from bastion.triage.suppress import Suppression, add_suppression

__all__ = [
    "AlertConflict",
    "AlertError",
    "UnknownAlert",
    "acknowledge",
    "close_alert",
    "parse_verdict",
    "reopen_alert",
]


_decode = msgspec.json.Decoder(Alert).decode


class AlertError(ValueError):
    """A user's mistake about an alert operation (bad verdict, missing reason)."""


class UnknownAlert(AlertError):
    """No alert with that id in this tenant."""


class AlertConflict(AlertError):
    """The alert is not in a state that allows the operation (closing a closed alert...)."""


def parse_verdict(value: str | Verdict) -> Verdict:
    if isinstance(value, Verdict):
        return value
    try:
        return Verdict(str(value).strip().lower().replace("-", "_").replace(" ", "_"))
    except ValueError:
        names = ", ".join(v.value for v in Verdict)
        raise AlertError(f"unknown verdict {value!r}; use one of {names}") from None


def _load(scope: TenantScope, alert_id: str) -> Alert:
    alert = scope.alerts.get(alert_id)
    if alert is None:
        raise UnknownAlert(f"no alert {alert_id}")
    return alert


def _save(scope: TenantScope, alert: Alert) -> None:
    """Write the whole alert: status, document and the triage columns the filters and metrics read."""
    scope.alerts.save_many([alert])


def _timeline(scope: TenantScope, alert: Alert, kind: str, summary: str, actor: str, data: dict) -> None:
    if alert.case_id and scope.cases.exists(alert.case_id):
        scope.cases.add_timeline(
            alert.case_id, kind, summary, actor=actor, data={"alert_id": alert.id, **data}
        )


def acknowledge(scope: TenantScope, actor: str, alert_id: str, *, now: int | None = None) -> Alert:
    """Mark an open alert acknowledged; the first acknowledgement's time is kept (MTTA reads it)."""
    alert = _load(scope, alert_id)
    if alert.status == AlertStatus.CLOSED:
        raise AlertConflict(f"alert {alert_id} is closed; reopen it first")
    now = now if now is not None else now_ms()
    first = alert.acknowledged is None
    if first:
        alert.acknowledged = now
    if alert.status == AlertStatus.NEW:
        alert.status = AlertStatus.ACKNOWLEDGED
    _save(scope, alert)
    scope.audit.append(actor, "alert.acknowledge", "alert", alert_id, {"first": first})
    _timeline(scope, alert, "alert.acknowledged", f"Alert acknowledged: {alert.title}", actor, {})
    return alert


def _main_entity(alert: Alert) -> tuple[str, str] | None:
    for kind in (ObservableType.HOST, ObservableType.USER):
        for o in alert.observables:
            if o.type == kind and o.value.strip():
                return kind.value, o.value.strip()
    return None


def close_alert(
    scope: TenantScope,
    actor: str,
    alert_id: str,
    verdict: Verdict | str,
    *,
    reason: str | None = None,
    suppress_similar: bool = False,
    suppress_for: str | int = "30d",
    now: int | None = None,
) -> dict[str, Any]:
    """Close an alert with a verdict; returns ``{"alert": Alert, "suppression": Suppression | None}``.

    ``suppress_similar`` (false positives only) adds a suppression for the same rule (or source and
    title) on the same host (else user), owned by ``actor`` and expiring after ``suppress_for``.
    """
    verdict = parse_verdict(verdict)
    if suppress_similar and verdict != Verdict.FALSE_POSITIVE:
        raise AlertError("suppress similar is only for alerts closed as false_positive")
    alert = _load(scope, alert_id)
    if alert.status == AlertStatus.CLOSED:
        raise AlertConflict(f"alert {alert_id} is already closed")
    now = now if now is not None else now_ms()
    reason = reason.strip() if reason and reason.strip() else None
    alert.status = AlertStatus.CLOSED
    alert.verdict = verdict
    alert.closed = now
    alert.close_reason = reason
    alert.auto_closed = False
    if alert.acknowledged is None:  # a person closing it has looked at it
        alert.acknowledged = now
    _save(scope, alert)
    suppression: Suppression | None = None
    if suppress_similar:
        entity = _main_entity(alert)
        if entity is None:
            raise AlertError(
                f"alert {alert_id} has no host or user to scope a suppression to; "
                "add one with explicit conditions instead (bastion triage suppress add)"
            )
        suppression = add_suppression(
            scope,
            actor,
            owner=actor,
            expires=suppress_for,
            rule_id=alert.rule_id,
            source=alert.source,
            fields=None if alert.rule_id else {"title": alert.title.replace("*", "?")},
            entity=entity,
            reason=f"similar to alert {alert_id}, closed as false positive"
            + (f": {reason}" if reason else ""),
            now=now,
        )
    data = {
        "verdict": verdict.value,
        "reason": reason,
        "suppression_id": suppression.id if suppression else None,
    }
    scope.audit.append(actor, "alert.close", "alert", alert_id, data)
    _timeline(scope, alert, "alert.closed", f"Alert closed ({verdict.value}): {alert.title}", actor, data)
    return {"alert": alert, "suppression": suppression}


def reopen_alert(
    scope: TenantScope, actor: str, alert_id: str, *, reason: str, now: int | None = None
) -> Alert:
    """Reopen a closed or auto-closed alert. The old close reason stays in the audit entry and in the
    alert's ``close_reason`` as a "reopened" note; verdict and closed time are cleared."""
    if not reason or not reason.strip():
        raise AlertError("say why the alert is reopened (a reason is required)")
    alert = _load(scope, alert_id)
    if alert.status != AlertStatus.CLOSED:
        raise AlertConflict(f"alert {alert_id} is not closed (status {alert.status.value})")
    data = {
        "reason": reason.strip(),
        "was_auto_closed": alert.auto_closed,
        "previous_verdict": alert.verdict.value if alert.verdict else None,
        "previous_close_reason": alert.close_reason,
        "previous_closed": alert.closed,
    }
    note = f"reopened by {actor}: {reason.strip()}"
    if alert.close_reason:
        note += f" (was closed: {alert.close_reason})"
    alert.status = AlertStatus.NEW
    alert.verdict = None
    alert.closed = None
    alert.auto_closed = False
    alert.close_reason = note
    _save(scope, alert)
    scope.audit.append(actor, "alert.reopen", "alert", alert_id, data)
    _timeline(scope, alert, "alert.reopened", f"Alert reopened: {alert.title}", actor, data)
    return alert


