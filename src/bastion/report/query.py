"""The filters and small arithmetic shared by the metrics: which rows a request covers, and how
durations become n / mean / p50 / p90 (nearest rank) in seconds, computed by the database where the rows
are many."""

from __future__ import annotations

import math
from typing import Any

from sqlalchemy import Connection, func, or_, select
from sqlalchemy.sql.elements import ColumnElement

from bastion.model import Severity
from bastion.store.tables import alerts, cases
from bastion.store.workflows import workflow_runs

__all__ = [
    "CONTAINMENT_WORDS",
    "DAY_MS",
    "MetricsQuery",
    "containment_sql",
    "is_containment",
    "pct",
    "ratio",
    "secs",
    "sql_stats",
    "stats_of",
]

DAY_MS = 86_400_000
# A workflow step whose action id contains one of these took a containment action (isolate a host,
# disable an account, block an address...): it counts for MTTC and for the NIST "Respond" function.
CONTAINMENT_WORDS = ("contain", "isolate", "disable", "block", "quarantine", "suspend")


def is_containment(action: str | None) -> bool:
    """Whether a workflow step's action id is a containment action (see CONTAINMENT_WORDS)."""
    low = (action or "").lower()
    return any(w in low for w in CONTAINMENT_WORDS)


def containment_sql(col: Any) -> ColumnElement[bool]:
    return or_(*(func.lower(col).like(f"%{w}%") for w in CONTAINMENT_WORDS))


def pct(part: int, whole: int) -> float | None:
    return round(100.0 * part / whole, 1) if whole else None


def ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 3) if whole else None


def secs(ms: Any) -> float | None:
    return None if ms is None else round(float(ms) / 1000.0, 3)


def stats_of(values_ms: list[int]) -> dict[str, Any]:
    """n, mean, p50, p90 (nearest rank) of millisecond durations, in seconds."""
    if not values_ms:
        return {"n": 0, "mean_s": None, "p50_s": None, "p90_s": None}
    vals = sorted(values_ms)
    n = len(vals)
    return {
        "n": n,
        "mean_s": secs(sum(vals) / n),
        "p50_s": secs(vals[max(0, math.ceil(0.5 * n) - 1)]),
        "p90_s": secs(vals[max(0, math.ceil(0.9 * n) - 1)]),
    }


def sql_stats(conn: Connection, sub: Any, known: tuple[int, Any] | None = None) -> dict[str, Any]:
    """:func:`stats_of` over the ``v`` column of a subquery, computed by the database: count and mean,
    then one sorted slice from the median to the 90th percentile (``known`` is a count and mean already
    aggregated elsewhere, saving a scan)."""
    n, mean = (
        known if known is not None else conn.execute(select(func.count(sub.c.v), func.avg(sub.c.v))).one()
    )
    n = int(n or 0)
    if not n:
        return {"n": 0, "mean_s": None, "p50_s": None, "p90_s": None}
    k50, k90 = max(0, math.ceil(0.5 * n) - 1), max(0, math.ceil(0.9 * n) - 1)
    q = select(sub.c.v).where(sub.c.v.is_not(None)).order_by(sub.c.v).limit(k90 - k50 + 1).offset(k50)
    values = conn.execute(q).scalars().all()
    return {"n": n, "mean_s": secs(mean), "p50_s": secs(values[0]), "p90_s": secs(values[-1])}


class MetricsQuery:
    """The filters of one metrics request, as reusable SQL conditions."""

    def __init__(
        self, tenant_id: str, start: int, end: int, severity: Severity | None, source: str | None
    ) -> None:
        self.tenant_id, self.start, self.end = tenant_id, start, end
        self.severity, self.source = severity, source
        self.filtered = severity is not None or source is not None

    def alert_match(self) -> list[ColumnElement[bool]]:
        conds: list[ColumnElement[bool]] = [alerts.c.tenant_id == self.tenant_id]
        if self.severity is not None:
            conds.append(alerts.c.severity_id == int(self.severity))
        if self.source is not None:
            conds.append(alerts.c.source == self.source)
        return conds

    def alerts_where(self) -> list[ColumnElement[bool]]:
        return [*self.alert_match(), alerts.c.created >= self.start, alerts.c.created < self.end]

    def cases_where(self) -> list[ColumnElement[bool]]:
        conds: list[ColumnElement[bool]] = [
            cases.c.tenant_id == self.tenant_id,
            cases.c.created >= self.start,
            cases.c.created < self.end,
        ]
        if self.severity is not None:
            conds.append(cases.c.severity_id == int(self.severity))
        if self.source is not None:
            conds.append(
                cases.c.id.in_(
                    select(alerts.c.case_id).where(*self.alert_match(), alerts.c.case_id.is_not(None))
                )
            )
        return conds

    def runs_where(self) -> list[ColumnElement[bool]]:
        """Runs of the tenant; with a filter, only those linked to a matching alert or case."""
        conds: list[ColumnElement[bool]] = [workflow_runs.c.tenant_id == self.tenant_id]
        if self.filtered:
            case_match = [cases.c.tenant_id == self.tenant_id]
            if self.severity is not None:
                case_match.append(cases.c.severity_id == int(self.severity))
            linked_cases = select(alerts.c.case_id).where(*self.alert_match(), alerts.c.case_id.is_not(None))
            conds.append(
                or_(
                    workflow_runs.c.alert_id.in_(select(alerts.c.id).where(*self.alert_match())),
                    workflow_runs.c.case_id.in_(
                        select(cases.c.id).where(
                            *case_match, *([cases.c.id.in_(linked_cases)] if self.source else [])
                        )
                    ),
                )
            )
        return conds
