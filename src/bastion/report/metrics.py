"""SOC metrics for one tenant and period, computed from the timestamps the store recorded.

Nothing here is estimated from "now": every figure comes from columns written when something happened
(``alerts.time`` when the alert fired, ``alerts.created`` when Bastion stored it, ``acknowledged``,
``closed``, the cases' lifecycle columns, workflow runs and steps). Counts, means and percentiles are
aggregated in SQL, because a tenant's period can hold 100k+ alerts; only the ATT&CK/NIST coverage reads
alert documents, streamed and decoded for the two fields it needs.

Scope of a period: alerts and cases *created* in ``[start, end)``; workflow runs created and steps started
in it. ``severity`` (exact) and ``source`` narrow alerts, the cases holding such alerts, and the runs
linked to either. Preemptive (intel) runs belong to no alert, so the filters do not narrow them.

NIST CSF mapping (``coverage.by_nist_csf``; each function's parts are in ``coverage.nist_csf_detail``):

* Identify - preemptive runs started (intel matched the tenant's own users, domains or assets) and alerts
  whose enrichment matched a known asset;
* Protect - preemptive runs that completed (the preventive action was taken before any alert);
* Detect - alerts stored;
* Respond - reactive workflow runs (everything but preemptive) and containment actions that succeeded;
* Recover - cases resolved or closed.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Connection, and_, case, func, literal, or_, select, union_all

from bastion.model import Severity
from bastion.report import breakdowns
from bastion.report.period import check_window
from bastion.report.query import (
    DAY_MS,
    MetricsQuery,
    containment_sql,
    pct,
    ratio,
    sql_stats,
    stats_of,
)
from bastion.store.tables import alerts, audit_log, cases
from bastion.store.workflows import workflow_run_steps, workflow_runs
from bastion.triage.policy import load_policy

__all__ = ["DEFINITIONS", "compute_metrics"]

# People, as audit actors: the web/API user, an API key, the command line. Everything else is automation.
_PERSON = ("user:%", "apikey:%")
# The close_reason of an alert a suppression closed, as msgspec/orjson write it in the alert document.
_SUPPRESSED = '%"close_reason":"suppressed%'

DEFINITIONS = {
    "alerts": "alerts stored in the period (created in [start, end)), each stored alert once",
    "deduplicated": "repeats folded into those alerts by dedupe: sum of (count - 1)",
    "deduplicated_pct": "100 * deduplicated / (alerts + deduplicated)",
    "auto_closed_pct": "100 * auto_closed / alerts",
    "escalated": "cases created in the period with at least one SLA escalation",
    "escalation_rate": "escalated / cases (a fraction)",
    "analyst_touches_per_case": "audit entries on those cases by people (user:*, apikey:*, cli) / cases",
    "mttd_s": "mean seconds from the event (alerts.time) to the alert being stored (alerts.created)",
    "mtta_s": "mean seconds from alert stored to its first acknowledgement or first workflow run, "
    "whichever came first",
    "mttc_s": "mean seconds from a case's first stored alert (else the case's creation) to containment: "
    "cases.contained or a succeeded containment step of a run linked to the case or its alerts; for a "
    "preemptive case, its recorded detection_to_containment_s (intel match to containment)",
    "mttr_s": "mean seconds to resolution over both alerts closed by people or workflows (stored -> "
    "closed; auto-closed and suppressed alerts excluded) and cases (created -> first of resolved/closed); "
    "timings.mttr_alerts and timings.mttr_cases give each part",
    "timings": "n, mean, p50 and p90 (nearest rank) of each timing, in seconds",
    "analyst_hours_saved": "manual minutes (triage policy manual_minutes) for each auto-closed alert "
    "(not counting suppressed ones), dedupe repeat, suppressed alert and succeeded workflow step "
    "(by action id, else action.default), / 60",
    "incidents_prevented": "preemptive runs (trigger type intel) created in the period that succeeded",
}


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---------------------------------------------------------------- the computation


def compute_metrics(
    conn: Connection,
    tenant_id: str,
    *,
    start: int,
    end: int,
    severity: Severity | None = None,
    source: str | None = None,
) -> dict[str, Any]:
    """Every metric of the tenant for ``[start, end)`` (epoch ms); see the module docstring and the
    returned ``definitions`` for what each figure means. Timings are null when there is no data."""
    check_window(start, end)
    q = MetricsQuery(tenant_id, start, end, severity, source)
    suppressed = and_(alerts.c.closed.is_not(None), alerts.c.document.like(_SUPPRESSED))
    out: dict[str, Any] = {
        "tenant_id": tenant_id,
        "period": {
            "start": start,
            "end": end,
            "start_iso": _iso(start),
            "end_iso": _iso(end),
            "days": round((end - start) / DAY_MS, 2),
        },
        "filters": {"severity": severity.name.lower() if severity is not None else None, "source": source},
    }

    # -- volume
    n_alerts, dedup, auto_closed, n_suppressed, auto_not_suppressed, mttd_mean = conn.execute(
        select(
            func.count(),
            func.coalesce(func.sum(alerts.c.count - 1), 0),
            func.coalesce(func.sum(case((alerts.c.auto_closed.is_(True), 1), else_=0)), 0),
            func.coalesce(func.sum(case((suppressed, 1), else_=0)), 0),
            func.coalesce(func.sum(case((and_(alerts.c.auto_closed.is_(True), ~suppressed), 1), else_=0)), 0),
            func.avg(alerts.c.created - alerts.c.time),
        ).where(*q.alerts_where())
    ).one()
    n_alerts, dedup, auto_closed = int(n_alerts), int(dedup), int(auto_closed)
    n_suppressed, auto_not_suppressed = int(n_suppressed), int(auto_not_suppressed)

    case_rows = _period_cases(conn, q)
    n_cases = len(case_rows)
    escalated = sum(1 for c in case_rows if c["escalations"] > 0)
    touches = _touches(conn, q)
    out.update(
        alerts=n_alerts,
        deduplicated=dedup,
        deduplicated_pct=pct(dedup, n_alerts + dedup),
        auto_closed=auto_closed,
        auto_closed_pct=pct(auto_closed, n_alerts),
        suppressed=n_suppressed,
        cases=n_cases,
        escalated=escalated,
        escalation_rate=ratio(escalated, n_cases),
        analyst_touches=touches,
        analyst_touches_per_case=ratio(touches, n_cases),
    )

    # -- timings
    first_run = (
        select(workflow_runs.c.alert_id.label("alert_id"), func.min(workflow_runs.c.created).label("first"))
        .where(workflow_runs.c.tenant_id == tenant_id, workflow_runs.c.alert_id.is_not(None))
        .group_by(workflow_runs.c.alert_id)
        .subquery()
    )
    acked = case(
        (
            and_(
                first_run.c.first.is_not(None),
                or_(alerts.c.acknowledged.is_(None), first_run.c.first < alerts.c.acknowledged),
            ),
            first_run.c.first,
        ),
        else_=alerts.c.acknowledged,
    )
    mttd_sub = (
        select(alerts.c.created.label("created"), (alerts.c.created - alerts.c.time).label("v"))
        .where(*q.alerts_where())
        .subquery()
    )
    mtta_sub = (
        select(alerts.c.created.label("created"), (acked - alerts.c.created).label("v"))
        .select_from(alerts.outerjoin(first_run, first_run.c.alert_id == alerts.c.id))
        .where(*q.alerts_where(), acked.is_not(None))
        .subquery()
    )
    alert_resolved = select(
        literal("alert").label("kind"),
        alerts.c.created.label("created"),
        (alerts.c.closed - alerts.c.created).label("v"),
    ).where(*q.alerts_where(), alerts.c.closed.is_not(None), alerts.c.auto_closed.is_(False), ~suppressed)
    case_done = case(
        (
            and_(
                cases.c.resolved.is_not(None),
                or_(cases.c.closed.is_(None), cases.c.resolved <= cases.c.closed),
            ),
            cases.c.resolved,
        ),
        else_=cases.c.closed,
    )
    case_resolved = select(
        literal("case").label("kind"),
        cases.c.created.label("created"),
        (case_done - cases.c.created).label("v"),
    ).where(*q.cases_where(), case_done.is_not(None))
    mttr_sub = union_all(alert_resolved, case_resolved).subquery()
    containment = _containment_times(conn, q, [c["id"] for c in case_rows])
    mttc_values = []
    for c in case_rows:
        measured = c["detection_to_containment_s"]
        if isinstance(measured, int | float) and not isinstance(measured, bool):
            # a preemptive response contains before it opens its case: it measured from the intel match
            mttc_values.append(max(0, int(measured * 1000)))
            continue
        times = [t for t in (c["contained"], containment.get(c["id"])) if t is not None]
        if times:
            start = c["first_alert"] if c["first_alert"] is not None else c["created"]
            mttc_values.append(max(0, min(times) - start))
    timings = {
        "mttd": sql_stats(conn, mttd_sub, (n_alerts, mttd_mean)),
        "mtta": sql_stats(conn, mtta_sub),
        "mttc": stats_of(mttc_values),
        **_resolution_stats(conn, mttr_sub, alert_resolved, case_resolved),
    }
    out.update(
        mttd_s=timings["mttd"]["mean_s"],
        mtta_s=timings["mtta"]["mean_s"],
        mttc_s=timings["mttc"]["mean_s"],
        mttr_s=timings["mttr"]["mean_s"],
        timings=timings,
    )

    # -- savings
    runs = _period_runs(conn, q)
    steps = _succeeded_steps(conn, q)
    minutes = load_policy(conn, tenant_id).manual_minutes
    default = float(minutes.get("action.default", 0.0))
    parts: dict[str, dict[str, Any]] = {}

    def add(key: str, count: int, each: float) -> None:
        if count:
            parts[key] = {"count": count, "minutes_each": each, "minutes": round(count * each, 2)}

    add("alert.auto_close", auto_not_suppressed, float(minutes.get("alert.auto_close", 0.0)))
    add("alert.deduplicate", dedup, float(minutes.get("alert.deduplicate", 0.0)))
    add("alert.suppress", n_suppressed, float(minutes.get("alert.suppress", 0.0)))
    for action, count in sorted(steps.items()):
        add(action, count, float(minutes.get(action, default)))
    total_minutes = sum(p["minutes"] for p in parts.values())
    out.update(
        analyst_hours_saved=round(total_minutes / 60.0, 1),
        savings={"minutes": round(total_minutes, 2), "by_kind": parts},
        incidents_prevented=runs["preemptive_succeeded"],
        preemptive_runs=runs["preemptive"],
        workflow_runs=runs["total"],
    )

    # -- breakdowns
    out.update(breakdowns.dimensions(conn, q))
    tactics, asset_matches = breakdowns.coverage_docs(conn, q)
    resolved_cases = sum(1 for c in case_rows if c["resolved"] is not None or c["closed"] is not None)
    detail = {
        "identify": {"preemptive_runs": runs["preemptive"], "asset_matches": asset_matches},
        "protect": {"preventive_runs_completed": runs["preemptive_succeeded"]},
        "detect": {"alerts": n_alerts},
        "respond": {"workflow_runs": runs["reactive"], "containment_actions": runs["containment_steps"]},
        "recover": {"resolved_cases": resolved_cases},
    }
    out["coverage"] = {
        "by_tactic": tactics,
        "by_nist_csf": {fn: sum(counts.values()) for fn, counts in detail.items()},
        "nist_csf_detail": detail,
    }
    out["series"] = breakdowns.series(conn, q, mttr_sub)
    out["top_rules"] = breakdowns.top_rules(conn, q)
    out["top_entities"] = breakdowns.top_entities(conn, q)
    out["definitions"] = dict(DEFINITIONS)
    return out


def _resolution_stats(conn: Connection, union: Any, alert_part: Any, case_part: Any) -> dict[str, Any]:
    """MTTR over alerts and cases together and for each part, from one grouped scan plus the slices."""
    parts = {
        kind: (int(n), mean)
        for kind, n, mean in conn.execute(
            select(union.c.kind, func.count(union.c.v), func.avg(union.c.v)).group_by(union.c.kind)
        )
    }
    a_n, a_mean = parts.get("alert", (0, None))
    c_n, c_mean = parts.get("case", (0, None))
    n = a_n + c_n
    mean = (float(a_mean or 0) * a_n + float(c_mean or 0) * c_n) / n if n else None
    return {
        "mttr": sql_stats(conn, union, (n, mean)),
        "mttr_alerts": sql_stats(conn, alert_part.subquery(), (a_n, a_mean)),
        "mttr_cases": sql_stats(conn, case_part.subquery(), (c_n, c_mean)),
    }


def _period_cases(conn: Connection, q: MetricsQuery) -> list[dict[str, Any]]:
    """The period's cases with the creation time of their first stored alert."""
    first_alert = (
        select(alerts.c.case_id.label("case_id"), func.min(alerts.c.created).label("first"))
        .where(alerts.c.tenant_id == q.tenant_id, alerts.c.case_id.is_not(None))
        .group_by(alerts.c.case_id)
        .subquery()
    )
    rows = conn.execute(
        select(
            cases.c.id,
            cases.c.created,
            cases.c.escalations,
            cases.c.contained,
            cases.c.resolved,
            cases.c.closed,
            cases.c.custom_fields,
            first_alert.c.first,
        )
        .select_from(cases.outerjoin(first_alert, first_alert.c.case_id == cases.c.id))
        .where(*q.cases_where())
    )
    return [
        {
            "id": r.id,
            "created": r.created,
            "escalations": int(r.escalations or 0),
            "contained": r.contained,
            "resolved": r.resolved,
            "closed": r.closed,
            "first_alert": r.first,
            "detection_to_containment_s": orjson.loads(r.custom_fields or "{}").get(
                "detection_to_containment_s"
            ),
        }
        for r in rows
    ]


def _touches(conn: Connection, q: MetricsQuery) -> int:
    person = or_(*(audit_log.c.actor.like(p) for p in _PERSON), audit_log.c.actor == "cli")
    period_cases = select(cases.c.id).where(*q.cases_where())
    return int(
        conn.execute(
            select(func.count()).where(
                audit_log.c.tenant_id == q.tenant_id,
                audit_log.c.target_type == "case",
                audit_log.c.target_id.in_(period_cases),
                person,
            )
        ).scalar_one()
    )


def _containment_times(conn: Connection, q: MetricsQuery, case_ids: list[str]) -> dict[str, int]:
    """Case id -> when the first succeeded containment step of a run linked to it (or to one of its
    alerts) finished."""
    if not case_ids:
        return {}
    s, r = workflow_run_steps, workflow_runs
    rows = conn.execute(
        select(r.c.case_id, r.c.alert_id, func.coalesce(s.c.finished, s.c.started).label("at"))
        .select_from(s.join(r, and_(r.c.id == s.c.run_id, r.c.tenant_id == s.c.tenant_id)))
        .where(
            s.c.tenant_id == q.tenant_id,
            s.c.status == "succeeded",
            containment_sql(s.c.action),
            or_(r.c.case_id.is_not(None), r.c.alert_id.is_not(None)),
        )
    ).all()
    alert_ids = sorted({row.alert_id for row in rows if row.alert_id})
    alert_case: dict[str, str] = {}
    for i in range(0, len(alert_ids), 500):
        chunk = alert_ids[i : i + 500]
        alert_case.update(
            (a, c)
            for a, c in conn.execute(
                select(alerts.c.id, alerts.c.case_id).where(
                    alerts.c.tenant_id == q.tenant_id, alerts.c.id.in_(chunk), alerts.c.case_id.is_not(None)
                )
            )
        )
    wanted = set(case_ids)
    found: dict[str, int] = {}
    for row in rows:
        for cid in {row.case_id, alert_case.get(row.alert_id or "")}:
            if cid in wanted and (cid not in found or row.at < found[cid]):
                found[cid] = int(row.at)
    return found


def _trigger_type(text: str) -> Any:
    try:
        doc = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    return doc.get("type") if isinstance(doc, dict) else None


def _period_runs(conn: Connection, q: MetricsQuery) -> dict[str, int]:
    """Run counts of the period: all runs, preemptive ones tenant-wide (and how many succeeded),
    reactive ones, and the containment steps that succeeded."""
    r, s = workflow_runs, workflow_run_steps
    in_period = [r.c.created >= q.start, r.c.created < q.end]
    intel_like = r.c.trigger.like('%"type":"intel"%')
    preemptive = preemptive_ok = 0
    for trigger, status in conn.execute(
        select(r.c.trigger, r.c.status).where(r.c.tenant_id == q.tenant_id, *in_period, intel_like)
    ):
        if _trigger_type(trigger) == "intel":
            preemptive += 1
            preemptive_ok += status == "succeeded"
    total = int(conn.execute(select(func.count()).where(*q.runs_where(), *in_period)).scalar_one())
    reactive = int(
        conn.execute(select(func.count()).where(*q.runs_where(), *in_period, ~intel_like)).scalar_one()
    )
    containment_steps = int(
        conn.execute(
            select(func.count())
            .select_from(s.join(r, and_(r.c.id == s.c.run_id, r.c.tenant_id == s.c.tenant_id)))
            .where(
                *q.runs_where(),
                s.c.status == "succeeded",
                s.c.started >= q.start,
                s.c.started < q.end,
                containment_sql(s.c.action),
            )
        ).scalar_one()
    )
    return {
        "total": total,
        "preemptive": preemptive,
        "preemptive_succeeded": preemptive_ok,
        "reactive": reactive,
        "containment_steps": containment_steps,
    }


def _succeeded_steps(conn: Connection, q: MetricsQuery) -> dict[str, int]:
    """Action id -> succeeded steps started in the period (automated work an analyst did not do)."""
    s, r = workflow_run_steps, workflow_runs
    return {
        action: int(n)
        for action, n in conn.execute(
            select(s.c.action, func.count())
            .select_from(s.join(r, and_(r.c.id == s.c.run_id, r.c.tenant_id == s.c.tenant_id)))
            .where(
                *q.runs_where(),
                s.c.status == "succeeded",
                s.c.action.is_not(None),
                s.c.started >= q.start,
                s.c.started < q.end,
            )
            .group_by(s.c.action)
        )
    }
