"""Case actions for workflows and agents: ``cases.create``, ``cases.update``, ``cases.comment``,
``cases.set_status``, ``cases.add_observable`` and ``cases.close`` (impact ``low``: they change only
Bastion's own records).

They act through the case service, as the actor ``workflow:<run id>``, on the store the engine was
configured with (``bastion.respond.engine.configure``), in the tenant of the step's context. A case
created by a run is linked to that run, so the case's timeline shows the run's steps and approvals.
``cases.create`` is idempotent per step: a retried step finds the case it created the first time.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import update

from bastion.connectors.registry import ActionContext, ActionError, action
from bastion.store import Database, TenantScope

__all__ = ["add_observable", "close", "comment", "create", "set_status", "update_fields"]

_KEY_FIELD = "workflow_step"


def _db() -> Database:
    from bastion.respond.engine import configured_store

    try:
        return configured_store()
    except RuntimeError as exc:
        raise ActionError(str(exc)) from None


def _actor(ctx: ActionContext) -> str:
    return f"workflow:{ctx.run_id}" if ctx.run_id else "workflow"


def _case_ref(case_id: str | int) -> str:
    return str(case_id).strip()


def _link_run(scope: TenantScope, run_id: str, case_id: str) -> None:
    from bastion.store.workflows import workflow_runs

    if not run_id:
        return
    scope.conn.execute(
        update(workflow_runs)
        .where(
            workflow_runs.c.tenant_id == scope.tenant_id,
            workflow_runs.c.id == run_id,
            workflow_runs.c.case_id.is_(None),
        )
        .values(case_id=case_id)
    )


def _errors(exc: Exception) -> ActionError:
    return ActionError(str(exc))


@action("cases.create", impact="low", idempotent=True)
async def create(
    title: str,
    severity: str = "medium",
    description: str | None = None,
    alert_ids: list[str] | None = None,
    template: str | None = None,
    *,
    ctx: ActionContext,
) -> dict[str, Any]:
    """Open a case (optionally with alerts that are in no case yet) and link it to this run.

    Args:
        title: the case's title
        severity: informational, low, medium, high or critical
        description: what the case is about
        alert_ids: alerts to put in the case
        template: a case template of the tenant's triage policy
    """
    from bastion.cases.errors import CaseError
    from bastion.cases.service import open_case
    from bastion.model import Severity

    try:
        sev = Severity.parse(severity)
    except ValueError as exc:
        raise ActionError(f"severity: {exc}") from None
    key = ctx.idempotency_key or None
    with _db().write() as conn:
        scope = TenantScope(conn, ctx.tenant_id)
        if key:
            found = scope.cases.by_custom_field(_KEY_FIELD, key)
            if found is not None:
                return {"id": found, "number": scope.cases.number(found), "created": False}
        try:
            case = open_case(
                scope,
                _actor(ctx),
                title,
                sev,
                description=description,
                alert_ids=alert_ids or [],
                reason=f"workflow run {ctx.run_id}" if ctx.run_id else None,
                template=template,
            )
        except (CaseError, ValueError) as exc:
            raise _errors(exc) from None
        assert case.id is not None
        if key:
            scope.cases.update_fields(case.id, custom_fields={**case.custom_fields, _KEY_FIELD: key})
        _link_run(scope, ctx.run_id, case.id)
    ctx.log(f"opened case #{case.number}")
    return {"id": case.id, "number": case.number, "created": True}


@action("cases.comment", impact="low")
async def comment(case_id: str | int, body: str, *, ctx: ActionContext) -> dict[str, Any]:
    """Comment on a case.

    Args:
        case_id: the case's id or number
        body: the comment
    """
    from bastion.cases.service import add_comment

    with _db().write() as conn:
        try:
            c = add_comment(TenantScope(conn, ctx.tenant_id), _actor(ctx), _case_ref(case_id), body)
        except ValueError as exc:
            raise _errors(exc) from None
    return {"comment_id": c.id}


@action("cases.set_status", impact="low")
async def set_status(
    case_id: str | int,
    status: str,
    verdict: str | None = None,
    reason: str | None = None,
    *,
    ctx: ActionContext,
) -> dict[str, Any]:
    """Move a case through its lifecycle (``closed`` needs a verdict).

    Args:
        case_id: the case's id or number
        status: new, triaged, in_progress, contained, resolved or closed
        verdict: true_positive, benign_true_positive or false_positive (to close)
        reason: why
    """
    from bastion.cases.lifecycle import change_status

    with _db().write() as conn:
        try:
            case = change_status(
                TenantScope(conn, ctx.tenant_id),
                _actor(ctx),
                _case_ref(case_id),
                status,
                reason=reason,
                verdict=verdict,
            )
        except ValueError as exc:
            raise _errors(exc) from None
    return {"id": case.id, "number": case.number, "status": case.status.value}


@action("cases.add_observable", impact="low")
async def add_observable(case_id: str | int, type: str, value: str, *, ctx: ActionContext) -> dict[str, Any]:
    """Add an observable to a case.

    Args:
        case_id: the case's id or number
        type: the observable type (ipv4, domain, host, user, sha256, ...)
        value: the observable's value
    """
    from bastion.cases.service import add_observables
    from bastion.model import Observable, ObservableType

    try:
        obs = Observable(ObservableType(type), value.strip())
    except ValueError:
        raise ActionError(f"unknown observable type {type!r}") from None
    with _db().write() as conn:
        try:
            added = add_observables(TenantScope(conn, ctx.tenant_id), _actor(ctx), _case_ref(case_id), [obs])
        except ValueError as exc:
            raise _errors(exc) from None
    return {"added": added}


@action("cases.update", impact="low")
async def update_fields(
    case_id: str | int,
    title: str | None = None,
    severity: str | None = None,
    description: str | None = None,
    assignee: str | None = None,
    custom_fields: dict[str, Any] | None = None,
    *,
    ctx: ActionContext,
) -> dict[str, Any]:
    """Change a case's title, severity, description, assignee or custom fields (only those given).

    Args:
        case_id: the case's id or number
        title: a new title
        severity: informational, low, medium, high or critical
        description: a new description
        assignee: the user to assign; an empty string unassigns
        custom_fields: fields to set; a null value removes that field
    """
    from bastion.cases.errors import CaseError
    from bastion.cases.service import assign, set_custom_field, unset_custom_field, update_case
    from bastion.model import Severity

    sev = None
    if severity is not None:
        try:
            sev = Severity.parse(severity)
        except ValueError as exc:
            raise ActionError(f"severity: {exc}") from None
    actor = _actor(ctx)
    with _db().write() as conn:
        scope = TenantScope(conn, ctx.tenant_id)
        ref = _case_ref(case_id)
        try:
            case = update_case(scope, actor, ref, title=title, severity=sev, description=description)
            assert case.id is not None
            cid = case.id
            if assignee is not None and (assignee.strip() or None) != case.assignee:
                case = assign(scope, actor, cid, assignee or None)
            for key, value in (custom_fields or {}).items():
                if value is None:
                    if key in case.custom_fields:
                        case = unset_custom_field(scope, actor, cid, key)
                elif case.custom_fields.get(key) != value:
                    case = set_custom_field(scope, actor, cid, key, value)
        except (CaseError, ValueError) as exc:
            raise _errors(exc) from None
    return {
        "id": case.id,
        "number": case.number,
        "title": case.title,
        "severity": case.severity.name.lower(),
        "assignee": case.assignee,
        "custom_fields": {k: v for k, v in case.custom_fields.items() if k != _KEY_FIELD},
    }


@action("cases.close", impact="low")
async def close(
    case_id: str | int, verdict: str, reason: str | None = None, *, ctx: ActionContext
) -> dict[str, Any]:
    """Close a case with a verdict; its alerts still open are closed with the same verdict.

    Args:
        case_id: the case's id or number
        verdict: true_positive, benign_true_positive or false_positive
        reason: why (kept in the timeline)
    """
    from bastion.cases.lifecycle import close_case

    with _db().write() as conn:
        try:
            scope = TenantScope(conn, ctx.tenant_id)
            case = close_case(scope, _actor(ctx), _case_ref(case_id), verdict, reason=reason)
        except ValueError as exc:
            raise _errors(exc) from None
    return {
        "id": case.id,
        "number": case.number,
        "status": case.status.value,
        "verdict": case.verdict.value if case.verdict else None,
    }
