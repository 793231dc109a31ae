"""Case operations that record themselves: each change writes the case timeline and the audit log."""

from __future__ import annotations

from collections.abc import Sequence

from bastion.model import Case, CaseComment, CaseTask, Severity
from bastion.store import TenantScope

__all__ = ["CaseError", "add_comment", "add_task", "attach_alert", "open_case"]


class CaseError(ValueError):
    """A user's mistake about a case (unknown case or alert); the message says which."""


def open_case(
    scope: TenantScope,
    actor: str,
    title: str,
    severity: Severity,
    *,
    description: str | None = None,
    alert_ids: Sequence[str] = (),
    reason: str | None = None,
) -> Case:
    """Open a case, optionally with alerts (whose observables join the case)."""
    if not title.strip():
        raise CaseError("a case needs a title")
    case = scope.cases.create(title, severity, description=description)
    assert case.id is not None
    scope.cases.add_timeline(case.id, "case.opened", f"Case opened: {title}", actor=actor)
    scope.audit.append(actor, "case.create", "case", case.id, {"title": title, "severity": int(severity)})
    for alert_id in alert_ids:
        attach_alert(scope, actor, case.id, alert_id, reason=reason)
    return case


def attach_alert(
    scope: TenantScope, actor: str, case_id: str, alert_id: str, *, reason: str | None = None
) -> None:
    if not scope.cases.exists(case_id):
        raise CaseError(f"no case {case_id}")
    alert = scope.alerts.get(alert_id)
    if alert is None:
        raise CaseError(f"no alert {alert_id}")
    scope.cases.add_alert(case_id, alert_id, reason)
    scope.cases.add_observables(case_id, alert.observables)
    scope.alerts.set_case(alert_id, case_id)
    scope.cases.add_timeline(
        case_id,
        "alert.added",
        f"Alert added: {alert.title}",
        actor=actor,
        data={"alert_id": alert_id, "reason": reason},
        time=None,
    )
    scope.audit.append(actor, "case.alert_added", "case", case_id, {"alert_id": alert_id, "reason": reason})


def add_comment(scope: TenantScope, actor: str, case_id: str, body: str) -> CaseComment:
    if not scope.cases.exists(case_id):
        raise CaseError(f"no case {case_id}")
    if not body.strip():
        raise CaseError("a comment needs text")
    comment = scope.cases.add_comment(case_id, actor, body)
    scope.cases.add_timeline(case_id, "comment", body[:200], actor=actor)
    scope.audit.append(actor, "case.comment", "case", case_id, {"comment_id": comment.id})
    return comment


def add_task(
    scope: TenantScope, actor: str, case_id: str, title: str, assignee: str | None = None
) -> CaseTask:
    if not scope.cases.exists(case_id):
        raise CaseError(f"no case {case_id}")
    task = scope.cases.add_task(case_id, title, assignee)
    scope.cases.add_timeline(case_id, "task.created", f"Task: {title}", actor=actor)
    scope.audit.append(actor, "case.task", "case", case_id, {"task_id": task.id, "title": title})
    return task
