"""The alert queue: what needs looking at now, live.

Filters (severity, status, source, rule, entity, time) are GET parameters, so a filtered queue is a
link. Each row shows the triage score with its top reasons. Bulk actions go through the triage and case
services exactly as the API's do (analyst or higher): acknowledge, assign (the alerts' cases go to the
chosen person; alerts without a case are opened into one), and close with a verdict, optionally
suppressing similar alerts (false positives only).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from bastion.cases.errors import CaseError
from bastion.cases.service import assign, open_case
from bastion.model import Alert, AlertStatus, ObservableType, Role, Severity, Verdict
from bastion.store import Database, TenantScope
from bastion.triage.alerts import AlertError, acknowledge, close_alert
from bastion.triage.suppress import SuppressionError
from bastion.web.render import NavItem, flash_redirect, render
from bastion.web.session import AnalystUser, CurrentUser

__all__ = ["nav", "router"]

router = APIRouter()
nav = [NavItem("Queue", "/queue", order=10)]

PAGE_SIZE = 200
PAGE_SIZES = (25, 50, 100, 200, 500)
_OPEN = (AlertStatus.NEW, AlertStatus.ACKNOWLEDGED, AlertStatus.IN_PROGRESS)
SINCE = {"1h": 3600, "24h": 86400, "7d": 7 * 86400, "30d": 30 * 86400}
SEVERITIES = ["informational", "low", "medium", "high", "critical"]
ENTITY_TYPES = (
    ObservableType.HOST,
    ObservableType.USER,
    ObservableType.IPV4,
    ObservableType.IPV6,
    ObservableType.DOMAIN,
)


@dataclass(frozen=True)
class Filters:
    severity: str = ""
    status: str = "open"
    source: str = ""
    rule: str = ""
    entity: str = ""
    since: str = "7d"
    size: int = PAGE_SIZE
    before: str = ""  # the page's cursor: "<time>:<id>" of the last alert of the page before it

    def query(self, **changes: Any) -> str:
        """The filters (with ``changes``) as a query string; the default page size left out."""
        values = {**self.__dict__, **changes}
        if values["size"] == PAGE_SIZE:
            values.pop("size")
        return urlencode({k: v for k, v in values.items() if v})

    def cursor(self) -> tuple[int, str] | None:
        """``before`` as (time, id); None for the first page or a cursor that is not one of ours."""
        t, _, aid = self.before.partition(":")
        if not (t.isascii() and t.isdigit() and aid.isascii() and aid.isalnum()):
            return None
        return int(t), aid


def severity_name(sev: int | Severity) -> str:
    try:
        return Severity(int(sev)).name.lower()
    except ValueError:
        return "unknown"


def top_reasons(alert: Alert, n: int = 3) -> list[str]:
    """The score's biggest contributions, as "+30 intel match: 203.0.113.7"."""
    parts = sorted(alert.score_components, key=lambda c: -abs(c.points))[:n]
    return [f"{c.points:+.0f} {c.name}" + (f": {c.detail}" if c.detail else "") for c in parts if c.points]


def entities(alert: Alert, n: int = 4) -> list[tuple[str, str]]:
    seen: list[tuple[str, str]] = []
    for kind in ENTITY_TYPES:
        for o in alert.observables:
            if o.type == kind and (kind.value, o.value) not in seen:
                seen.append((kind.value, o.value))
    return seen[:n]


def _list(db: Database, tenant_id: str, f: Filters) -> tuple[list[Alert], str]:
    """One page of the queue, newest first, and the cursor of the next (older) page ("" at the end)."""
    try:
        min_sev = Severity.parse(f.severity) if f.severity else None
    except ValueError:
        min_sev = None
    start = int(time.time() * 1000) - SINCE[f.since] * 1000 if f.since in SINCE else None
    statuses: list[AlertStatus | None]
    if f.status == "open":
        statuses = list(_OPEN)
    elif f.status in {s.value for s in AlertStatus}:
        statuses = [AlertStatus(f.status)]
    else:
        statuses = [None]
    found: list[Alert] = []
    more = False
    with db.read() as conn:
        repo = TenantScope(conn, tenant_id).alerts
        for status in statuses:
            rows, next_cursor = repo.list(
                status=status,
                min_severity=min_sev,
                source=f.source or None,
                start=start,
                value=f.entity or None,
                rule_id=f.rule or None,
                limit=f.size,
                before=f.cursor(),
            )
            found.extend(rows)
            more = more or next_cursor is not None
    # each status's query is in (time, id) order, so the merged page continues from its last alert
    found.sort(key=lambda a: (a.time, a.id or ""), reverse=True)
    more = more or len(found) > f.size
    page = found[: f.size]
    return page, (f"{page[-1].time}:{page[-1].id}" if more and page else "")


def _people(db: Database, tenant_id: str) -> list[str]:
    from bastion.model import ROLE_RANK

    with db.read() as conn:
        return [
            u.name
            for u in TenantScope(conn, tenant_id).users.list()
            if ROLE_RANK[u.role] >= ROLE_RANK[Role.ANALYST]
        ]


@router.get("/queue")
def queue_page(
    request: Request,
    user: CurrentUser,
    severity: Annotated[str, Query(max_length=20)] = "",
    status: Annotated[str, Query(max_length=20)] = "open",
    source: Annotated[str, Query(max_length=100)] = "",
    rule: Annotated[str, Query(max_length=200)] = "",
    entity: Annotated[str, Query(max_length=500)] = "",
    since: Annotated[str, Query(max_length=10)] = "7d",
    size: Annotated[int, Query(ge=1, le=max(PAGE_SIZES))] = PAGE_SIZE,
    before: Annotated[str, Query(max_length=80)] = "",
) -> Response:
    f = Filters(
        severity.strip(),
        status.strip(),
        source.strip(),
        rule.strip(),
        entity.strip(),
        since.strip(),
        size,
        before.strip(),
    )
    db: Database = request.app.state.db
    alerts, older = _list(db, user.tenant_id, f)
    rows: list[dict[str, Any]] = [
        {
            "alert": a,
            "sev": severity_name(a.severity),
            "reasons": top_reasons(a),
            "entities": entities(a),
        }
        for a in alerts
    ]
    return render(
        request,
        "queue.html",
        title="Alert queue",
        rows=rows,
        f=f,
        severities=SEVERITIES,
        statuses=["open", *(s.value for s in AlertStatus), "all"],
        since_options=[*SINCE, "all"],
        verdicts=[v.value for v in Verdict],
        people=_people(db, user.tenant_id) if user.can(Role.ANALYST) else [],
        page_sizes=PAGE_SIZES,
        older=f.query(before=older) if older else "",
        newest=f.query(before="") if f.before else "",
    )


def _bulk(
    db: Database, tenant_id: str, actor: str, op: str, ids: list[str], form: dict[str, str]
) -> tuple[int, list[str]]:
    """Apply ``op`` to each alert in its own transaction; returns (done, problems)."""
    done, problems = 0, []
    if op == "assign":
        person = form.get("assignee", "").strip()
        if not person:
            return 0, ["choose the person to assign to"]
        loose: list[str] = []
        cases: list[str] = []
        with db.write() as conn:
            scope = TenantScope(conn, tenant_id)
            for alert_id in ids:
                alert = scope.alerts.get(alert_id)
                if alert is None:
                    problems.append(f"no alert {alert_id}")
                elif alert.case_id and alert.case_id not in cases:
                    cases.append(alert.case_id)
                elif not alert.case_id:
                    loose.append(alert_id)
        for case_id in cases:
            try:
                with db.write() as conn:
                    assign(TenantScope(conn, tenant_id), actor, case_id, person)
                done += 1
            except CaseError as exc:
                problems.append(str(exc))
        if loose:
            try:
                with db.write() as conn:
                    scope = TenantScope(conn, tenant_id)
                    first = scope.alerts.get(loose[0])
                    assert first is not None
                    worst = max(
                        (a.severity for a in (scope.alerts.get(i) for i in loose) if a is not None),
                        default=Severity.MEDIUM,
                    )
                    title = (
                        first.title if len(loose) == 1 else f"{first.title} and {len(loose) - 1} more alerts"
                    )
                    open_case(
                        scope,
                        actor,
                        title[:500],
                        Severity(worst),
                        alert_ids=loose,
                        assignee=person,
                        reason=f"assigned to {person} from the queue",
                    )
                    for alert_id in loose:
                        found = scope.alerts.get(alert_id)
                        if found is not None and found.status != AlertStatus.CLOSED:
                            acknowledge(scope, actor, alert_id)
                done += 1
            except (CaseError, AlertError) as exc:
                problems.append(str(exc))
        return done, problems
    for alert_id in ids:
        try:
            with db.write() as conn:
                scope = TenantScope(conn, tenant_id)
                if op == "acknowledge":
                    acknowledge(scope, actor, alert_id)
                elif op == "close":
                    close_alert(
                        scope,
                        actor,
                        alert_id,
                        form.get("verdict", ""),
                        reason=form.get("reason") or None,
                        suppress_similar=form.get("suppress") == "1",
                        suppress_for=form.get("suppress_for") or "30d",
                    )
                else:
                    return 0, [f"unknown action {op!r}"]
            done += 1
        except (AlertError, SuppressionError) as exc:
            problems.append(str(exc))
    return done, problems


@router.post("/queue/bulk")
async def bulk(request: Request, user: AnalystUser) -> Response:
    """Bulk actions on the ticked alerts (the form may carry several ``ids``)."""
    from starlette.concurrency import run_in_threadpool

    form = await request.form()
    ids = [str(v) for v in form.getlist("ids") if isinstance(v, str) and v][:PAGE_SIZE]
    op = str(form.get("op") or "")
    back = str(form.get("back") or "/queue")
    if not back.startswith("/queue"):
        back = "/queue"
    if not ids:
        return flash_redirect(request, back, "Tick at least one alert first.", error=True)
    fields = {
        k: str(form.get(k) or "") for k in ("assignee", "verdict", "reason", "suppress", "suppress_for")
    }
    done, problems = await run_in_threadpool(
        _bulk, request.app.state.db, user.tenant_id, user.actor, op, ids, fields
    )
    verb = {"acknowledge": "Acknowledged", "close": "Closed", "assign": "Assigned"}.get(op, "Done")
    what = "case(s)" if op == "assign" else "alert(s)"
    message = f"{verb} {done} {what}."
    if problems:
        message += " Refused: " + "; ".join(dict.fromkeys(problems))
    return flash_redirect(request, back, message, error=bool(problems) and not done)


# ---------------------------------------------------------------- one alert


@router.get("/alerts/{alert_id}")
def alert_page(request: Request, user: CurrentUser, alert_id: str) -> Response:
    db: Database = request.app.state.db
    with db.read() as conn:
        alert = TenantScope(conn, user.tenant_id).alerts.get(alert_id)
    if alert is None:
        return render(
            request, "error.html", status_code=404, title="No such alert", message=f"no alert {alert_id}"
        )
    return render(
        request,
        "alert.html",
        title=alert.title,
        a=alert,
        sev=severity_name(alert.severity),
        verdicts=[v.value for v in Verdict],
    )


@router.post("/alerts/{alert_id}/{op}")
async def alert_action(request: Request, user: AnalystUser, alert_id: str, op: str) -> Response:
    """Acknowledge, close (verdict, reason, suppress similar) or reopen (reason) one alert."""
    from starlette.concurrency import run_in_threadpool

    from bastion.triage.alerts import reopen_alert

    form = await request.form()
    fields = {k: str(form.get(k) or "") for k in ("verdict", "reason", "suppress", "suppress_for")}
    back = f"/alerts/{alert_id}"

    def go() -> str:
        with request.app.state.db.write() as conn:
            scope = TenantScope(conn, user.tenant_id)
            if op == "ack":
                acknowledge(scope, user.actor, alert_id)
                return "Alert acknowledged."
            if op == "close":
                result = close_alert(
                    scope,
                    user.actor,
                    alert_id,
                    fields["verdict"],
                    reason=fields["reason"] or None,
                    suppress_similar=fields["suppress"] == "1",
                    suppress_for=fields["suppress_for"] or "30d",
                )
                note = " Similar alerts are suppressed for 30 days." if result["suppression"] else ""
                return f"Alert closed.{note}"
            if op == "reopen":
                reopen_alert(scope, user.actor, alert_id, reason=fields["reason"])
                return "Alert reopened."
        raise AlertError(f"unknown action {op!r}: use ack, close or reopen")

    try:
        message = await run_in_threadpool(go)
    except (AlertError, SuppressionError) as exc:
        return flash_redirect(request, back, str(exc), error=True)
    return flash_redirect(request, back, message)
