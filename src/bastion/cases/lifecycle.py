"""The case lifecycle: new -> triaged -> in_progress -> contained -> resolved -> closed.

Moving forward may skip states and moving back is allowed, but a closed case only leaves ``closed``
through :func:`reopen_case` (with a reason). Closing needs a verdict and closes the case's open alerts
with it. The first time a case is acknowledged (leaves ``new``), contained, resolved (or closed, which
implies resolution) and closed is kept in the case's columns: the metrics are computed from them, so a
move back never clears them.
"""

from __future__ import annotations

from bastion.cases.errors import CaseError, TransitionError
from bastion.cases.service import acknowledge, get_case, record, require_case
from bastion.model import AlertStatus, Case, CaseStatus
from bastion.model.alert import Verdict
from bastion.store import TenantScope
from bastion.store._util import now_ms

__all__ = ["ORDER", "change_status", "close_case", "parse_status", "parse_verdict", "reopen_case"]

ORDER = list(CaseStatus)
_VERDICTS = ", ".join(v.value for v in Verdict)


def parse_status(value: str | CaseStatus) -> CaseStatus:
    try:
        return CaseStatus(str(value).strip().lower().replace(" ", "_").replace("-", "_"))
    except ValueError:
        raise CaseError(
            f"unknown case status {value!r}: use one of {', '.join(s.value for s in CaseStatus)}"
        ) from None


def parse_verdict(value: str | Verdict | None) -> Verdict:
    if value is None or not str(value).strip():
        raise CaseError(f"closing a case needs a verdict: {_VERDICTS}")
    try:
        return Verdict(str(value).strip().lower().replace(" ", "_").replace("-", "_"))
    except ValueError:
        raise CaseError(f"unknown verdict {value!r}: use one of {_VERDICTS}") from None


def _stamp(scope: TenantScope, case_id: str, status: CaseStatus, now: int) -> None:
    if status != CaseStatus.NEW:
        acknowledge(scope, case_id, now)
    if status == CaseStatus.CONTAINED:
        scope.cases.set_first(case_id, "contained", now)
    if status in (CaseStatus.RESOLVED, CaseStatus.CLOSED):
        scope.cases.set_first(case_id, "resolved", now)
    if status == CaseStatus.CLOSED:
        scope.cases.set_first(case_id, "closed", now)


def change_status(
    scope: TenantScope,
    actor: str,
    case_ref: str,
    status: CaseStatus | str,
    *,
    reason: str | None = None,
    verdict: Verdict | str | None = None,
) -> Case:
    """Move the case to ``status``. ``closed`` goes through :func:`close_case` (``verdict`` needed);
    moving a closed case raises :class:`TransitionError` (reopen it). The same status is a no-op."""
    target = parse_status(status)
    case_id = require_case(scope, case_ref)
    case = get_case(scope, case_id)
    if target == CaseStatus.CLOSED:
        return close_case(scope, actor, case_id, verdict, reason=reason)
    if case.status == CaseStatus.CLOSED:
        raise TransitionError(
            f"case #{case.number} is closed: reopen it (with a reason) to change its status"
        )
    if target == case.status:
        return case
    now = now_ms()
    scope.cases.set_status(case_id, target)
    _stamp(scope, case_id, target, now)
    direction = "forward" if ORDER.index(target) > ORDER.index(case.status) else "back"
    record(
        scope,
        actor,
        case_id,
        "status",
        f"Status {case.status.value} -> {target.value}" + (f": {reason}" if reason else ""),
        {"from": case.status.value, "to": target.value, "direction": direction, "reason": reason},
        audit="case.status",
    )
    return get_case(scope, case_id)


def close_case(
    scope: TenantScope,
    actor: str,
    case_ref: str,
    verdict: Verdict | str | None,
    *,
    reason: str | None = None,
) -> Case:
    """Close the case with a verdict; its alerts that are still open are closed with the same verdict."""
    from bastion.triage.alerts import close_alert

    chosen = parse_verdict(verdict)
    case_id = require_case(scope, case_ref)
    case = get_case(scope, case_id)
    if case.status == CaseStatus.CLOSED:
        raise TransitionError(f"case #{case.number} is already closed")
    now = now_ms()
    closed_alerts = []
    for alert_id in case.alert_ids:
        alert = scope.alerts.get(alert_id)
        if alert is None or alert.status == AlertStatus.CLOSED:
            continue
        close_alert(
            scope,
            actor,
            alert_id,
            chosen,
            reason=f"case #{case.number} closed" + (f": {reason}" if reason else ""),
            now=now,
        )
        closed_alerts.append(alert_id)
    scope.cases.update_fields(case_id, status=CaseStatus.CLOSED, verdict=chosen)
    _stamp(scope, case_id, CaseStatus.CLOSED, now)
    record(
        scope,
        actor,
        case_id,
        "closed",
        f"Case closed as {chosen.value}" + (f": {reason}" if reason else ""),
        {
            "from": case.status.value,
            "verdict": chosen.value,
            "reason": reason,
            "alerts_closed": closed_alerts,
        },
        audit="case.close",
    )
    return get_case(scope, case_id)


def reopen_case(
    scope: TenantScope,
    actor: str,
    case_id: str,
    reason: str,
    *,
    status: CaseStatus | str = CaseStatus.IN_PROGRESS,
) -> Case:
    """Reopen a closed case (a reason is required) into ``status`` (default in_progress). The verdict
    is cleared; the first-closed timestamp stays (metrics), and the alerts closed with it stay closed
    (reopen them one by one if needed)."""
    if not reason or not reason.strip():
        raise CaseError("say why the case is reopened (a reason is required)")
    target = parse_status(status)
    if target == CaseStatus.CLOSED:
        raise CaseError("a case is reopened into an open status, not closed")
    cid = require_case(scope, case_id)
    case = get_case(scope, cid)
    if case.status != CaseStatus.CLOSED:
        raise TransitionError(f"case #{case.number} is not closed (status {case.status.value})")
    scope.cases.update_fields(cid, status=target, verdict=None)
    record(
        scope,
        actor,
        cid,
        "reopened",
        f"Case reopened ({target.value}): {reason.strip()}",
        {
            "reason": reason.strip(),
            "to": target.value,
            "previous_verdict": case.verdict.value if case.verdict else None,
            "merged_into": case.custom_fields.get("merged_into"),
        },
        audit="case.reopen",
    )
    return get_case(scope, cid)
