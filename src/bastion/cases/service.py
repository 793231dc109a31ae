"""Case operations that record themselves: each change writes the case timeline and the audit log.

This module holds opening a case, linking alerts, assignment, comments, tasks, observables, custom
fields and templates. The lifecycle (status, close, reopen) is in :mod:`bastion.cases.lifecycle`,
attachments in :mod:`bastion.cases.attachments`, merge/split/move in :mod:`bastion.cases.merge` and the
full timeline in :mod:`bastion.cases.timeline`; their public functions are also reachable from here
(``bastion.cases.service.close_case``), so callers have one place to import from.

Every function takes a case *reference*: the 32-hex id or the case number (``12`` or ``#12``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from bastion.cases.enrichment import enrichment_summary
from bastion.cases.errors import CaseError, CaseNotFound, TransitionError
from bastion.ingest.alerts import normalize_observable
from bastion.model import Alert, Case, CaseComment, CaseStatus, CaseTask, Observable, Severity, TaskStatus
from bastion.store import TenantScope
from bastion.store._util import now_ms

if TYPE_CHECKING:
    from bastion.triage.policy import CaseTemplate, TriagePolicy

__all__ = [
    "CaseError",
    "CaseNotFound",
    "TransitionError",
    "add_comment",
    "add_observables",
    "add_task",
    "apply_template",
    "assign",
    "attach_alert",
    "get_case",
    "is_person",
    "open_case",
    "require_case",
    "set_custom_field",
    "set_task_status",
    "unset_custom_field",
    "update_case",
]

# Actors that are automation, not a person: their comments do not acknowledge a case.
_AUTOMATION = ("pipeline", "triage", "sla", "intel", "hook", "demo", "workflow:", "system")


def is_person(actor: str) -> bool:
    """Whether ``actor`` names a person (``user:NAME``, ``apikey:ID``, ``cli``) rather than automation."""
    return not any(actor == a or (a.endswith(":") and actor.startswith(a)) for a in _AUTOMATION)


def require_case(scope: TenantScope, ref: str) -> str:
    """The id of the case ``ref`` names, or :class:`CaseNotFound`."""
    found = scope.cases.resolve(str(ref))
    if found is None:
        raise CaseNotFound(f"no case {ref} in this tenant (use its id or number, e.g. #12)")
    return found


def get_case(scope: TenantScope, ref: str) -> Case:
    case = scope.cases.get(require_case(scope, ref))
    assert case is not None
    return case


def record(
    scope: TenantScope,
    actor: str,
    case_id: str,
    kind: str,
    summary: str,
    data: dict[str, Any] | None = None,
    *,
    audit: str | None = None,
) -> None:
    """Write one change to the case timeline and (as ``audit`` or ``case.<kind>``) to the audit log."""
    scope.cases.add_timeline(case_id, kind, summary, actor=actor, data=data)
    scope.audit.append(actor, audit or f"case.{kind}", "case", case_id, data or {})


def acknowledge(scope: TenantScope, case_id: str, when: int | None = None) -> None:
    """The case's first acknowledgement (a move out of ``new``, an assignment, a person's comment)."""
    scope.cases.set_first(case_id, "acknowledged", when or now_ms())


def _open_guard(scope: TenantScope, case_id: str, doing: str) -> Case:
    case = scope.cases.get(case_id)
    assert case is not None
    if case.status == CaseStatus.CLOSED:
        raise TransitionError(f"case #{case.number} is closed: reopen it before you {doing}")
    return case


# ---------------------------------------------------------------------------------- opening


def open_case(
    scope: TenantScope,
    actor: str,
    title: str,
    severity: Severity,
    *,
    description: str | None = None,
    alert_ids: Sequence[str] = (),
    reason: str | None = None,
    assignee: str | None = None,
    queue: str | None = None,
    template: str | CaseTemplate | None = None,
    policy: TriagePolicy | None = None,
) -> Case:
    """Open a case, optionally with alerts (whose observables join the case).

    ``template`` names one of the policy's case templates (or is one); without it, the first template of
    the tenant's policy that matches the alerts applies (pass ``policy`` when it is already loaded).
    """
    if not title.strip():
        raise CaseError("a case needs a title")
    alerts: list[Alert] = []
    for alert_id in alert_ids:
        alert = scope.alerts.get(alert_id)
        if alert is None:
            raise CaseNotFound(f"no alert {alert_id} in this tenant")
        alerts.append(alert)
    chosen = _choose_template(scope, template, alerts, policy)
    case = scope.cases.create(
        title.strip(), Severity(severity), description=description, assignee=assignee, queue=queue
    )
    assert case.id is not None
    record(
        scope,
        actor,
        case.id,
        "case.opened",
        f"Case opened: {case.title}",
        {"title": case.title, "severity": int(severity), "number": case.number},
        audit="case.create",
    )
    for alert in alerts:
        attach_alert(scope, actor, case.id, alert.id or "", reason=reason)
    if assignee:
        acknowledge(scope, case.id)
    if chosen is not None:
        apply_template(scope, actor, case.id, chosen)
    got = scope.cases.get(case.id)
    assert got is not None
    return got


def _matches(template: CaseTemplate, alerts: list[Alert]) -> bool:
    if not (template.tags or template.techniques or template.rule_ids):
        return True
    for a in alerts:
        if set(template.tags) & set(a.tags):
            return True
        if any(t.startswith(p) for t in a.techniques for p in template.techniques):
            return True
        if a.rule_id is not None and a.rule_id in template.rule_ids:
            return True
    return False


def _choose_template(
    scope: TenantScope, template: str | CaseTemplate | None, alerts: list[Alert], policy: TriagePolicy | None
) -> CaseTemplate | None:
    from bastion.triage.policy import CaseTemplate, load_policy

    if isinstance(template, CaseTemplate):
        return template
    if template is None and not alerts:
        return None
    templates = (policy or load_policy(scope.conn, scope.tenant_id)).templates
    if template is not None:
        for t in templates:
            if t.name == template:
                return t
        names = ", ".join(t.name for t in templates) or "none are defined in the triage policy"
        raise CaseError(f"no case template {template!r} (templates: {names})")
    return next((t for t in templates if _matches(t, alerts)), None)


def apply_template(scope: TenantScope, actor: str, case_ref: str, template: CaseTemplate) -> Case:
    """Give the case the template's tasks (as a checklist; a task already on the case is not added
    twice) and its custom fields (values already set on the case are kept)."""
    case_id = require_case(scope, case_ref)
    case = _open_guard(scope, case_id, "apply a template")
    have = {t.title for t in case.tasks}
    added = []
    for title in template.tasks:
        if title not in have:
            scope.cases.add_task(case_id, title)
            have.add(title)
            added.append(title)
    fields = {**template.custom_fields, **case.custom_fields}
    if fields != case.custom_fields:
        scope.cases.update_fields(case_id, custom_fields=fields)
    record(
        scope,
        actor,
        case_id,
        "template.applied",
        f"Template {template.name}: {len(added)} task(s)",
        {"template": template.name, "tasks": added, "custom_fields": sorted(template.custom_fields)},
        audit="case.template",
    )
    return get_case(scope, case_id)


# ---------------------------------------------------------------------------------- alerts


def attach_alert(
    scope: TenantScope, actor: str, case_id: str, alert_id: str, *, reason: str | None = None
) -> None:
    """Link an alert to the case, with the reason, and record its enrichment.

    An alert that triage (or a person) put in another case is *moved* here
    (:func:`bastion.cases.merge.move_alert`: both cases record it, and both are re-indexed): an alert
    belongs to one case at a time.
    """
    case_id = require_case(scope, case_id)
    alert = scope.alerts.get(alert_id)
    if alert is None:
        raise CaseNotFound(f"no alert {alert_id} in this tenant")
    linked = scope.cases.cases_of_alert(alert_id)
    if case_id in linked:
        raise TransitionError(f"alert {alert_id} is already in case #{scope.cases.number(case_id)}")
    if linked:
        from bastion.cases.merge import move_alert

        move_alert(scope, actor, alert_id, case_id, reason)
        return
    scope.cases.add_alert(case_id, alert_id, reason)
    scope.cases.add_observables(case_id, alert.observables)
    scope.alerts.set_case(alert_id, case_id)
    record(
        scope,
        actor,
        case_id,
        "alert.added",
        f"Alert added: {alert.title}" + (f" ({reason})" if reason else ""),
        {"alert_id": alert_id, "reason": reason},
        audit="case.alert_added",
    )
    summary = enrichment_summary(alert)
    if summary is not None:
        scope.cases.add_timeline(case_id, "enrichment", summary[0], actor=actor, data=summary[1])


# ---------------------------------------------------------------------------------- people's changes


def assign(scope: TenantScope, actor: str, case_ref: str, assignee: str | None) -> Case:
    """Assign the case (``None`` unassigns). An assignment acknowledges the case."""
    case_id = require_case(scope, case_ref)
    case = _open_guard(scope, case_id, "assign it")
    assignee = assignee.strip() if assignee else None
    scope.cases.update_fields(case_id, assignee=assignee)
    if assignee:
        acknowledge(scope, case_id)
    record(
        scope,
        actor,
        case_id,
        "assigned",
        f"Assigned to {assignee}" if assignee else "Unassigned",
        {"assignee": assignee, "previous": case.assignee},
        audit="case.assign",
    )
    return get_case(scope, case_id)


def add_comment(scope: TenantScope, actor: str, case_id: str, body: str) -> CaseComment:
    """A comment; the first comment by a person acknowledges the case."""
    case_id = require_case(scope, case_id)
    if not body.strip():
        raise CaseError("a comment needs text")
    comment = scope.cases.add_comment(case_id, actor, body)
    if is_person(actor):
        acknowledge(scope, case_id, comment.time)
    scope.cases.add_timeline(case_id, "comment", body[:200], actor=actor, data={"comment_id": comment.id})
    scope.audit.append(actor, "case.comment", "case", case_id, {"comment_id": comment.id})
    return comment


def add_task(
    scope: TenantScope, actor: str, case_id: str, title: str, assignee: str | None = None
) -> CaseTask:
    case_id = require_case(scope, case_id)
    if not title.strip():
        raise CaseError("a task needs a title")
    task = scope.cases.add_task(case_id, title.strip(), assignee)
    scope.cases.add_timeline(
        case_id, "task.created", f"Task: {task.title}", actor=actor, data={"task_id": task.id}
    )
    scope.audit.append(actor, "case.task", "case", case_id, {"task_id": task.id, "title": task.title})
    return task


def set_task_status(
    scope: TenantScope, actor: str, case_ref: str, task_id: str, status: TaskStatus | str
) -> CaseTask:
    """Complete (``done``), cancel (``cancelled``) or reopen (``open``) a task."""
    case_id = require_case(scope, case_ref)
    try:
        new = TaskStatus(status)
    except ValueError:
        raise CaseError(f"task status must be open, done or cancelled, not {status!r}") from None
    task = scope.cases.get_task(case_id, task_id)
    if task is None:
        raise CaseNotFound(f"no task {task_id} in this case")
    if task.status != new:
        scope.cases.update_task(case_id, task_id, status=new)
        verb = {TaskStatus.DONE: "completed", TaskStatus.CANCELLED: "cancelled", TaskStatus.OPEN: "reopened"}
        record(
            scope,
            actor,
            case_id,
            f"task.{verb[new]}",
            f"Task {verb[new]}: {task.title}",
            {"task_id": task_id, "status": new.value, "previous": task.status.value},
            audit="case.task_status",
        )
    got = scope.cases.get_task(case_id, task_id)
    assert got is not None
    return got


def add_observables(scope: TenantScope, actor: str, case_ref: str, observables: list[Observable]) -> int:
    """Add observables by hand; returns how many the case did not have yet. Each value is checked and
    made canonical as an alert's is (an address that is none would match nothing, yet look like intel)."""
    case_id = require_case(scope, case_ref)
    if not observables:
        raise CaseError("no observables given")
    clean = []
    for i, o in enumerate(observables):
        try:
            clean.append(Observable(o.type, normalize_observable(o.type, o.value), o.field))
        except ValueError as exc:
            raise CaseError(f"observables[{i}].value: {exc}") from None
    observables = clean
    added = scope.cases.add_observables(case_id, observables)
    record(
        scope,
        actor,
        case_id,
        "observable.added",
        "Observables added: " + ", ".join(f"{o.type.value}:{o.value}" for o in observables[:10]),
        {"observables": [{"type": o.type.value, "value": o.value} for o in observables], "new": added},
        audit="case.observable",
    )
    return added


def set_custom_field(scope: TenantScope, actor: str, case_ref: str, key: str, value: Any) -> Case:
    """Set one custom field (any JSON value)."""
    case_id = require_case(scope, case_ref)
    if not key.strip():
        raise CaseError("a custom field needs a name")
    case = get_case(scope, case_id)
    fields = {**case.custom_fields, key: value}
    scope.cases.update_fields(case_id, custom_fields=fields)
    record(
        scope,
        actor,
        case_id,
        "field.set",
        f"Field {key} set",
        {"key": key, "value": value, "previous": case.custom_fields.get(key)},
        audit="case.field",
    )
    return get_case(scope, case_id)


def unset_custom_field(scope: TenantScope, actor: str, case_ref: str, key: str) -> Case:
    case_id = require_case(scope, case_ref)
    case = get_case(scope, case_id)
    if key not in case.custom_fields:
        raise CaseNotFound(f"the case has no custom field {key!r}")
    fields = {k: v for k, v in case.custom_fields.items() if k != key}
    scope.cases.update_fields(case_id, custom_fields=fields)
    record(
        scope,
        actor,
        case_id,
        "field.unset",
        f"Field {key} removed",
        {"key": key, "previous": case.custom_fields[key]},
        audit="case.field",
    )
    return get_case(scope, case_id)


def update_case(
    scope: TenantScope,
    actor: str,
    case_ref: str,
    *,
    title: str | None = None,
    severity: Severity | None = None,
    description: str | None = None,
) -> Case:
    """Change the title, severity or description (status and assignee have their own functions)."""
    case_id = require_case(scope, case_ref)
    case = get_case(scope, case_id)
    changes: dict[str, Any] = {}
    if title is not None:
        if not title.strip():
            raise CaseError("a case needs a title")
        if title.strip() != case.title:
            changes["title"] = title.strip()
    if severity is not None and Severity(severity) != case.severity:
        changes["severity"] = Severity(severity)
    if description is not None and description != case.description:
        changes["description"] = description
    if changes:
        scope.cases.update_fields(case_id, **changes)
        shown = {k: (v.name.lower() if isinstance(v, Severity) else v) for k, v in changes.items()}
        record(
            scope,
            actor,
            case_id,
            "case.updated",
            "Changed " + ", ".join(sorted(shown)),
            {"changes": shown},
            audit="case.update",
        )
    return get_case(scope, case_id)


# The lifecycle, attachment, merge and timeline functions, importable from here too (lazily: those
# modules import this one).
_ELSEWHERE = {
    "change_status": "lifecycle",
    "close_case": "lifecycle",
    "reopen_case": "lifecycle",
    "add_attachment": "attachments",
    "get_attachment": "attachments",
    "MAX_ATTACHMENT_BYTES": "attachments",
    "merge_cases": "merge",
    "split_case": "merge",
    "move_alert": "merge",
    "case_timeline": "timeline",
}


def __getattr__(name: str) -> Any:
    module = _ELSEWHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"bastion.cases.{module}"), name)
