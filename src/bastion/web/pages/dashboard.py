"""The console's dashboard: the triage metrics of a chosen period, as the reports show them.

Nothing is computed here: the figures come from :func:`bastion.report.metrics.compute_metrics` (the same
numbers as ``bastion metrics`` and ``GET /api/v1/metrics``) and the charts from
:func:`bastion.report.charts.report_charts` (the same SVG as the period report), so the dashboard, the
API and the PDF never disagree. This module only reads the period from the query string, formats the
figures for people, and lays them out.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from markupsafe import Markup
from starlette.concurrency import run_in_threadpool

from bastion.model import Role, Severity
from bastion.report.charts import report_charts
from bastion.report.metrics import compute_metrics
from bastion.report.period import resolve_window
from bastion.store import Database
from bastion.web.render import NavItem, render
from bastion.web.session import CurrentUser

__all__ = ["PERIODS", "dashboard_data", "human_duration", "nav", "router"]

router = APIRouter()
nav = [NavItem("Dashboard", "/dashboard", order=5, min_role=Role.VIEWER)]

# The periods the picker offers; any other ``30d``-style length typed into the URL works too.
PERIODS = {"24h": "Last 24 hours", "7d": "Last 7 days", "30d": "Last 30 days", "90d": "Last 90 days"}
_DEFAULT = "7d"
LIVE_EVERY_S = 10  # the figures follow new alerts and cases live, recomputed at most this often


def human_duration(seconds: float | None) -> str:
    """``3933.9`` -> ``1h 05m``; None -> an em dash (no data, which is not zero)."""
    if seconds is None:
        return "\u2014"
    s = round(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h {(s % 3600) // 60:02d}m"
    return f"{s // 86400}d {(s % 86400) // 3600:02d}h"


def _kpis(m: dict[str, Any]) -> list[dict[str, Any]]:
    """The headline figures, each with what it means (the metrics' own definitions)."""
    d = m["definitions"]
    t = m["timings"]

    def timing(key: str, label: str) -> dict[str, Any]:
        stats = t[key]
        sub = f"p90 {human_duration(stats['p90_s'])} · n={stats['n']}" if stats["n"] else "no data"
        return {"label": label, "value": human_duration(stats["mean_s"]), "sub": sub, "help": d[f"{key}_s"]}

    auto_pct = m["auto_closed_pct"]
    return [
        {
            "label": "Alerts",
            "value": f"{m['alerts']:,}",
            "sub": f"{m['deduplicated']:,} repeats folded",
            "help": d["alerts"],
        },
        {
            "label": "Auto-closed",
            "value": f"{m['auto_closed']:,}",
            "sub": f"{auto_pct:g}% of alerts" if auto_pct is not None else "no alerts",
            "help": d["auto_closed_pct"],
        },
        {
            "label": "Escalated",
            "value": f"{m['escalated']:,}",
            "sub": f"of {m['cases']:,} cases",
            "help": d["escalated"],
        },
        timing("mttd", "MTTD"),
        timing("mtta", "MTTA"),
        timing("mttc", "MTTC"),
        timing("mttr", "MTTR"),
        {
            "label": "Analyst hours saved",
            "value": f"{m['analyst_hours_saved']:g}",
            "sub": f"{m['savings']['minutes']:g} minutes",
            "help": d["analyst_hours_saved"],
        },
        {
            "label": "Incidents prevented",
            "value": f"{m['incidents_prevented']:,}",
            "sub": f"of {m['preemptive_runs']:,} preemptive runs",
            "help": d["incidents_prevented"],
        },
    ]


def dashboard_data(
    db: Database,
    tenant_id: str,
    *,
    period: str | None,
    start: str | None = None,
    end: str | None = None,
    severity: str | None = None,
    source: str | None = None,
) -> dict[str, Any]:
    """Everything the dashboard shows for the period, or ``error`` (a sentence) when the period or a
    filter is wrong; the page then shows the error above the default period's figures."""
    error = None
    sev = None
    try:
        if start:
            lo, hi = resolve_window(None, start, end or None)
        else:
            lo, hi = resolve_window(period or _DEFAULT, None, end or None)
        sev = Severity.parse(severity) if severity else None
    except ValueError as exc:
        error = str(exc)
        lo, hi = resolve_window(_DEFAULT)
        period, start, end, sev = _DEFAULT, None, None, None
    with db.read() as conn:
        m = compute_metrics(conn, tenant_id, start=lo, end=hi, severity=sev, source=source or None)
    # trusted server-made SVG: matplotlib escapes every text (rule titles are user data) it draws
    charts = {name: Markup(svg) for name, svg in report_charts(m).items()}  # noqa: S704
    coverage = m["coverage"]
    return {
        "m": m,
        "error": error,
        "kpis": _kpis(m),
        "charts": charts,
        "tactics": coverage["by_tactic"],
        "nist": coverage["by_nist_csf"],
        "top_rules": m["top_rules"],
        "top_entities": m["top_entities"],
        "period": period if not start else None,
        "start": start or "",
        "end": end or "",
        "severity": sev.name.lower() if sev is not None else "",
        "source": source or "",
    }


@router.get("/dashboard", summary="The dashboard")
async def dashboard_page(
    request: Request,
    user: CurrentUser,
    period: Annotated[str | None, Query(max_length=20)] = None,
    start: Annotated[str | None, Query(max_length=40)] = None,
    end: Annotated[str | None, Query(max_length=40)] = None,
    severity: Annotated[str | None, Query(max_length=20)] = None,
    source: Annotated[str | None, Query(max_length=100)] = None,
) -> Response:
    data = await run_in_threadpool(
        dashboard_data,
        request.app.state.db,
        user.tenant_id,
        period=period,
        start=start,
        end=end,
        severity=severity,
        source=source,
    )
    return render(
        request,
        "dashboard.html",
        periods=PERIODS,
        severities=["critical", "high", "medium", "low", "informational"],
        human_duration=human_duration,
        live_every_s=LIVE_EVERY_S,
        **data,
    )
