"""The metrics' breakdowns: by severity/source/queue, ATT&CK tactic coverage, the per-day series the
charts draw, and the top rules and entities. Counts are SQL aggregates; tactic coverage streams only the
alert documents that carry an ``attack.*`` tag or an asset match, decoding just those two fields."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec
from sqlalchemy import Connection, and_, case, func, or_, select

from bastion.model import Severity
from bastion.report.query import DAY_MS, MetricsQuery, secs
from bastion.store.tables import alert_observables, alerts, cases

__all__ = ["coverage_docs", "dimensions", "series", "top_entities", "top_rules"]

_TOP = 10


class _Enrichment(msgspec.Struct):
    assets: list[Any] = msgspec.field(default_factory=list)


class _CoverageDoc(msgspec.Struct):
    """The two parts of an alert document coverage needs; msgspec skips the rest without building it."""

    tags: list[Any] = msgspec.field(default_factory=list)
    enrichment: _Enrichment | None = None


_decode_coverage = msgspec.json.Decoder(_CoverageDoc).decode


# The enterprise ATT&CK tactics by id, as Sigma names them in ``attack.<tactic>`` tags.
TACTICS = {
    "TA0043": "reconnaissance",
    "TA0042": "resource_development",
    "TA0001": "initial_access",
    "TA0002": "execution",
    "TA0003": "persistence",
    "TA0004": "privilege_escalation",
    "TA0005": "defense_evasion",
    "TA0006": "credential_access",
    "TA0007": "discovery",
    "TA0008": "lateral_movement",
    "TA0009": "collection",
    "TA0011": "command_and_control",
    "TA0010": "exfiltration",
    "TA0040": "impact",
}
_TACTIC_NAMES = set(TACTICS.values())


def _tactic(tag: Any) -> str | None:
    """``attack.credential_access`` / ``attack.defense-evasion`` / ``attack.ta0006`` -> the tactic;
    technique, group and software tags (``attack.t1059.001``, ``attack.g0007``) -> None."""
    if not isinstance(tag, str):
        return None
    low = tag.strip().lower()
    if not low.startswith("attack."):
        return None
    name = low[7:].replace("-", "_").replace(" ", "_")
    if name in _TACTIC_NAMES:
        return name
    return TACTICS.get(name.upper())


def _day(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d")


def dimensions(conn: Connection, q: MetricsQuery) -> dict[str, dict[str, int]]:
    """Alert counts by severity, by source and by queue, from one grouped scan."""
    queue = func.coalesce(alerts.c.queue, "unrouted")
    sev: dict[int, int] = {}
    src: dict[str, int] = {}
    que: dict[str, int] = {}
    for s_id, source, qname, n in conn.execute(
        select(alerts.c.severity_id, alerts.c.source, queue, func.count())
        .where(*q.alerts_where())
        .group_by(alerts.c.severity_id, alerts.c.source, queue)
    ):
        sev[int(s_id)] = sev.get(int(s_id), 0) + int(n)
        src[str(source)] = src.get(str(source), 0) + int(n)
        que[str(qname)] = que.get(str(qname), 0) + int(n)
    known = {int(s) for s in Severity}

    def ordered(counts: dict[str, int]) -> dict[str, int]:
        return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))

    return {
        "by_severity": {
            Severity(k).name.lower() if k in known else str(k): v
            for k, v in sorted(sev.items(), reverse=True)
        },
        "by_source": ordered(src),
        "by_queue": ordered(que),
    }


def coverage_docs(conn: Connection, q: MetricsQuery) -> tuple[dict[str, int], int]:
    """Alerts per ATT&CK tactic (from Sigma ``attack.<tactic>`` tags) and alerts on a known asset,
    streaming only the documents that can carry either."""
    tactics: dict[str, int] = {}
    asset_matches = 0
    doc = alerts.c.document
    query = select(doc).where(*q.alerts_where(), or_(doc.like('%"attack.%'), doc.like('%"assets":[{%')))
    result = conn.execute(query.execution_options(stream_results=True, yield_per=2000))
    for (text,) in result:
        try:
            parsed = _decode_coverage(text)
        except (msgspec.DecodeError, msgspec.ValidationError):
            continue
        for name in {t for t in map(_tactic, parsed.tags) if t}:
            tactics[name] = tactics.get(name, 0) + 1
        if parsed.enrichment is not None and parsed.enrichment.assets:
            asset_matches += 1
    ordered = dict(sorted(tactics.items(), key=lambda kv: (-kv[1], kv[0])))
    return ordered, asset_matches


def series(conn: Connection, q: MetricsQuery, mttr_sub: Any) -> list[dict[str, Any]]:
    """One entry per UTC day of the period: alerts, auto-closed, escalated cases, mean MTTD, mean MTTR."""
    day = alerts.c.created // DAY_MS
    days: dict[int, dict[str, Any]] = {}
    first_day, last_day = q.start // DAY_MS, (q.end - 1) // DAY_MS
    for d in range(first_day, last_day + 1):
        days[d] = {
            "day": _day(d * DAY_MS),
            "alerts": 0,
            "auto_closed": 0,
            "escalated": 0,
            "mttd_s": None,
            "mttr_s": None,
        }
    for d, n, auto, mttd in conn.execute(
        select(
            day.label("d"),
            func.count(),
            func.coalesce(func.sum(case((alerts.c.auto_closed.is_(True), 1), else_=0)), 0),
            func.avg(alerts.c.created - alerts.c.time),
        )
        .where(*q.alerts_where())
        .group_by(day)
    ):
        if int(d) in days:
            days[int(d)].update(alerts=int(n), auto_closed=int(auto), mttd_s=secs(mttd))
    cday = cases.c.created // DAY_MS
    for d, n in conn.execute(
        select(cday.label("d"), func.count()).where(*q.cases_where(), cases.c.escalations > 0).group_by(cday)
    ):
        if int(d) in days:
            days[int(d)]["escalated"] = int(n)
    rday = mttr_sub.c.created // DAY_MS
    for d, mttr in conn.execute(select(rday.label("d"), func.avg(mttr_sub.c.v)).group_by(rday)):
        if int(d) in days:
            days[int(d)]["mttr_s"] = secs(mttr)
    return list(days.values())


def top_rules(conn: Connection, q: MetricsQuery) -> list[dict[str, Any]]:
    key = func.coalesce(alerts.c.rule_id, alerts.c.title)
    rows = conn.execute(
        select(
            key.label("rule"),
            func.max(alerts.c.title).label("title"),
            func.count().label("alerts"),
            func.sum(alerts.c.count).label("seen"),
            func.sum(case((alerts.c.auto_closed.is_(True), 1), else_=0)).label("auto_closed"),
        )
        .where(*q.alerts_where())
        .group_by(key)
        .order_by(func.count().desc(), key)
        .limit(_TOP)
    )
    return [
        {
            "rule": r.rule,
            "title": r.title,
            "alerts": int(r.alerts),
            "seen": int(r.seen or 0),
            "auto_closed": int(r.auto_closed or 0),
        }
        for r in rows
    ]


def top_entities(conn: Connection, q: MetricsQuery) -> list[dict[str, Any]]:
    ao = alert_observables
    n = func.count(func.distinct(ao.c.alert_id))
    rows = conn.execute(
        select(ao.c.type, ao.c.value, n.label("alerts"))
        .select_from(
            ao.join(alerts, and_(alerts.c.id == ao.c.alert_id, alerts.c.tenant_id == ao.c.tenant_id))
        )
        .where(ao.c.tenant_id == q.tenant_id, ao.c.type.in_(("host", "user")), *q.alerts_where())
        .group_by(ao.c.type, ao.c.value)
        .order_by(n.desc(), ao.c.type, ao.c.value)
        .limit(_TOP)
    )
    return [{"type": r.type, "value": r.value, "alerts": int(r.alerts)} for r in rows]
