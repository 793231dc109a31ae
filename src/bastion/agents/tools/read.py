"""Read tools: what an agent may look at in the tenant's data.

Each tool is a thin, bounded view over the service or repository the API and CLI already use (event
search, alerts, the case document, intel lookup, ATT&CK, the inventories, run history), so an agent
sees exactly what a person would, scoped to the agent's tenant through ``TenantScope`` and the tenant's
repositories. Results are trimmed (``limit``, long texts cut) because they go back into a model's
context; a bad argument raises ``ValueError`` with a message the agent can act on.

Threat intel and ATT&CK lookups are in :mod:`.threat`, health checks of connections and feeds in
:mod:`.health`, the documentation agent's reads in :mod:`.documents`, the safe fixes in :mod:`.fixes`.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec
import orjson
from sqlalchemy import select

from bastion.agents.spec import AgentDeps, agent_tool
from bastion.model import AlertStatus, ObservableType, Severity
from bastion.store import TenantScope

__all__ = [
    "alert_summary",
    "asset_lookup",
    "event_summary",
    "get_alert",
    "get_case",
    "identity_lookup",
    "related_cases",
    "run_history",
    "search_alerts",
    "search_events",
]

MAX_LIMIT = 200
_TEXT = 400  # longest free text returned per field
ATTACK_ID = re.compile(r"^(T\d{4}(\.\d{3})?|TA\d{4}|G\d{4}|S\d{4}|C\d{4}|M\d{4})$", re.IGNORECASE)


def _limit(limit: int, cap: int = MAX_LIMIT) -> int:
    if limit < 1:
        raise ValueError("limit must be at least 1")
    return min(int(limit), cap)


def _cut(text: Any, n: int = _TEXT) -> Any:
    if isinstance(text, str) and len(text) > n:
        return text[: n - 1] + "\u2026"
    return text


def _time(value: str | None, name: str) -> int | None:
    if value is None or str(value).strip() == "":
        return None
    from bastion.model.timefmt import parse_time_ms

    try:
        return parse_time_ms(str(value))
    except ValueError as exc:
        raise ValueError(f"{name}: {exc}") from None


def _get_path(doc: Any, path: str) -> Any:
    cur = doc
    for part in path.split("."):
        if not isinstance(cur, dict):
            return None
        cur = cur.get(part)
    return cur


# ------------------------------------------------------------------------------------ events


def event_summary(e: Any) -> dict[str, Any]:
    """A stored event cut to what reasoning needs: when, what, where, who, and its observables."""
    ev = e.event if isinstance(e.event, dict) else {}
    proc = ev.get("process") or {}
    summary = (
        ev.get("message")
        or proc.get("cmd_line")
        or (ev.get("metadata") or {}).get("event_code")
        or ev.get("class_name")
        or ""
    )
    obs = ev.get("observables") or []
    by_type: dict[str, list[str]] = {}
    for o in obs:
        t, v = o.get("type"), o.get("value")
        if t and v and len(by_type.setdefault(t, [])) < 5 and v not in by_type[t]:
            by_type[t].append(v)
    return {
        "id": e.id,
        "time": e.time,
        "format": e.format,
        "class_uid": e.class_uid,
        "severity_id": e.severity_id,
        "summary": _cut(str(summary), 240),
        "hosts": by_type.get("host", []),
        "users": by_type.get("user", []),
        "observables": by_type,
    }


@agent_tool("search_events")
def search_events(
    deps: AgentDeps,
    value: str | None = None,
    obs_type: str | None = None,
    field: str | None = None,
    start: str | None = None,
    end: str | None = None,
    limit: int = 20,
) -> dict[str, Any]:
    """Search the tenant's stored events, newest first: by an observable value (IP, domain, hash, user,
    host, ...; ``obs_type`` restricts it to one type), optionally only where the normalized event field
    ``field`` (a dotted path such as ``process.name``) equals the value, and by time (``start``/``end``:
    ISO-8601, epoch, or -15m/-2h/-7d). Returns the matching events summarised and the first and last
    time seen."""
    if obs_type is not None:
        try:
            ObservableType(obs_type)
        except ValueError:
            raise ValueError(
                f"unknown obs_type {obs_type!r}; use one of {', '.join(t.value for t in ObservableType)}"
            ) from None
    if field is not None and value is None:
        raise ValueError("field needs a value to compare with")
    n = _limit(limit)
    t0, t1 = _time(start, "start"), _time(end, "end")
    with deps.db.read() as conn:
        scope = TenantScope(conn, deps.tenant_id)
        found, cursor = scope.events.search(
            start=t0, end=t1, value=value, obs_type=obs_type, limit=n if field is None else MAX_LIMIT * 5
        )
        if field is not None and value is not None:
            want = value.lower()
            found = [e for e in found if str(_get_path(e.event, field) or "").lower() == want][:n]
    events = [event_summary(e) for e in found]
    times = [e["time"] for e in events]
    return {
        "count": len(events),
        "more": cursor is not None,
        "first_seen": min(times) if times else None,
        "last_seen": max(times) if times else None,
        "events": events,
    }


# ------------------------------------------------------------------------------------ alerts


def alert_summary(a: Any, *, full: bool = False) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "id": a.id,
        "title": _cut(a.title, 200),
        "severity": a.severity.name.lower(),
        "status": a.status.value,
        "time": a.time,
        "source": a.source,
        "rule_id": a.rule_id,
        "score": a.score,
        "techniques": list(a.techniques),
        "case_id": a.case_id,
        "verdict": a.verdict.value if a.verdict else None,
        "count": a.count,
        "hosts": [o.value for o in a.observables if o.type == ObservableType.HOST][:5],
        "users": [o.value for o in a.observables if o.type == ObservableType.USER][:5],
    }
    if full:
        doc["description"] = _cut(a.description)
        doc["tags"] = list(a.tags)
        doc["observables"] = [{"type": o.type.value, "value": o.value} for o in a.observables[:50]]
        doc["event_ids"] = list(a.event_ids[:20])
        doc["score_explained"] = [f"{c.points:+.1f} {c.name}: {c.detail}" for c in a.score_components]
        enrichment = a.enrichment or {}
        raw = orjson.dumps(enrichment, default=str)
        doc["enrichment"] = (
            orjson.loads(raw) if len(raw) <= 4000 else {"truncated": True, "keys": sorted(enrichment)[:20]}
        )
        doc["close_reason"] = a.close_reason
        doc["auto_closed"] = a.auto_closed
    return doc


@agent_tool("get_alert")
def get_alert(deps: AgentDeps, alert_id: str) -> dict[str, Any]:
    """One alert with its observables, ATT&CK techniques, explained score, enrichment and case."""
    with deps.db.read() as conn:
        alert = TenantScope(conn, deps.tenant_id).alerts.get(alert_id.strip())
    if alert is None:
        raise ValueError(f"no alert {alert_id} in this tenant")
    return alert_summary(alert, full=True)


@agent_tool("search_alerts")
def search_alerts(
    deps: AgentDeps,
    entity: str | None = None,
    host: str | None = None,
    user: str | None = None,
    technique: str | None = None,
    status: str | None = None,
    min_severity: str | None = None,
    start: str | None = None,
    end: str | None = None,
    limit: int = 20,
) -> dict[str, Any]:
    """Alerts, newest first, about an entity (any observable value: IP, domain, hash, ...), a host or a
    user (all given must match), with an ATT&CK technique, in a status (new, acknowledged, closed, ...),
    at least a severity (low, medium, high, critical), within a time range."""
    n = _limit(limit)
    st = None
    if status is not None:
        try:
            st = AlertStatus(status.lower())
        except ValueError:
            raise ValueError(
                f"unknown status {status!r}; use one of {', '.join(s.value for s in AlertStatus)}"
            ) from None
    sev = None
    if min_severity is not None:
        try:
            sev = Severity[min_severity.upper()]
        except KeyError:
            raise ValueError(
                f"unknown severity {min_severity!r}; use low, medium, high or critical"
            ) from None
    wanted = [v for v in (entity, host, user) if v]
    t0, t1 = _time(start, "start"), _time(end, "end")
    # The first value narrows through the index; the rest, and a technique, filter what came back.
    scan = n if len(wanted) <= 1 and technique is None else MAX_LIMIT * 5
    with deps.db.read() as conn:
        found, cursor = TenantScope(conn, deps.tenant_id).alerts.list(
            status=st, min_severity=sev, start=t0, end=t1, value=wanted[0] if wanted else None, limit=scan
        )
    out = []
    for a in found:
        values = {o.value.lower() for o in a.observables}
        if any(v.lower() not in values for v in wanted[1:]):
            continue
        if technique is not None and not any(
            t.upper() == technique.upper() or t.upper().startswith(technique.upper() + ".")
            for t in a.techniques
        ):
            continue
        out.append(alert_summary(a))
        if len(out) >= n:
            break
    return {"count": len(out), "more": cursor is not None and len(out) >= n, "alerts": out}


# ------------------------------------------------------------------------------------ cases


def _case_ref(scope: TenantScope, ref: str) -> str:
    found = scope.cases.resolve(str(ref))
    if found is None:
        raise ValueError(f"no case {ref} in this tenant (use its id or number, e.g. #12)")
    return found


@agent_tool("get_case")
def get_case(deps: AgentDeps, case_ref: str, timeline_limit: int = 30) -> dict[str, Any]:
    """A case as analysts see it: fields, its alerts with the reason each joined, observables, the
    explained risk score, tasks, and the newest ``timeline_limit`` timeline entries."""
    from bastion.cases.view import case_document
    from bastion.triage.score import explain

    with deps.db.read() as conn:
        scope = TenantScope(conn, deps.tenant_id)
        case = scope.cases.get(_case_ref(scope, case_ref))
        assert case is not None
        doc = case_document(scope, case)
    timeline = doc.get("timeline") or []
    keep = _limit(timeline_limit)
    return {
        "id": doc["id"],
        "number": doc.get("number"),
        "title": doc.get("title"),
        "description": _cut(doc.get("description")),
        "severity": doc.get("severity"),
        "status": doc.get("status"),
        "verdict": doc.get("verdict"),
        "assignee": doc.get("assignee"),
        "score": doc.get("score"),
        "score_explained": explain(case.score_components),
        "techniques": doc.get("techniques") or [],
        "tactics": doc.get("tactics") or [],
        "created": doc.get("created"),
        "contained": doc.get("contained"),
        "resolved": doc.get("resolved"),
        "alerts": doc.get("alerts", [])[:50],
        "observables": [{"type": o.type.value, "value": o.value} for o in case.observables[:100]],
        "tasks": [msgspec.to_builtins(t) for t in case.tasks[:30]],
        "timeline": [
            {k: _cut(v, 240) for k, v in e.items() if k in ("time", "kind", "summary", "actor")}
            for e in timeline[-keep:]
        ],
        "timeline_total": len(timeline),
    }


@agent_tool("related_cases")
def related_cases(
    deps: AgentDeps,
    case_ref: str | None = None,
    value: str | None = None,
    technique: str | None = None,
    limit: int = 10,
) -> dict[str, Any]:
    """Other cases sharing something: the observables of case ``case_ref`` (or one ``value``) in their
    alerts or evidence, or an ATT&CK ``technique``. Each comes with what it shares, strongest first."""
    from bastion.store.tables import case_observables, cases

    if not (case_ref or value or technique):
        raise ValueError("give case_ref, value or technique")
    n = _limit(limit, 50)
    shared: dict[str, set[str]] = {}
    with deps.db.read() as conn:
        scope = TenantScope(conn, deps.tenant_id)
        own: str | None = None
        values: list[str] = []
        if case_ref:
            own = _case_ref(scope, case_ref)
            case = scope.cases.get(own)
            assert case is not None
            values = [o.value for o in case.observables]
            for aid in case.alert_ids[:50]:
                a = scope.alerts.get(aid)
                if a is not None:
                    values.extend(o.value for o in a.observables)
        if value:
            values.append(value)
        for v in list(dict.fromkeys(values))[:100]:
            alerts, _ = scope.alerts.list(value=v, limit=100)
            for a in alerts:
                for cid in scope.cases.cases_of_alert(a.id or ""):
                    shared.setdefault(cid, set()).add(v)
            rows = conn.execute(
                select(case_observables.c.case_id).where(
                    case_observables.c.tenant_id == deps.tenant_id,
                    case_observables.c.value.in_(sorted({v, v.lower()})),
                )
            )
            for (cid,) in rows:
                shared.setdefault(cid, set()).add(v)
        if technique:
            needle = orjson.dumps(technique.upper()).decode()[:-1]  # '"T1059' also finds sub-techniques
            rows = conn.execute(
                select(cases.c.id).where(
                    cases.c.tenant_id == deps.tenant_id, cases.c.techniques.contains(needle)
                )
            )
            for (cid,) in rows:
                shared.setdefault(cid, set()).add(technique.upper())
        if own is not None:
            shared.pop(own, None)
        ranked = sorted(shared.items(), key=lambda kv: (-len(kv[1]), kv[0]))[:n]
        out = []
        for cid, what in ranked:
            c = scope.cases.get(cid)
            if c is None:
                continue
            out.append(
                {
                    "id": cid,
                    "number": c.number,
                    "title": _cut(c.title, 200),
                    "status": c.status.value,
                    "severity": c.severity.name.lower(),
                    "verdict": c.verdict.value if c.verdict else None,
                    "score": c.score,
                    "created": c.created,
                    "shared": sorted(what)[:20],
                }
            )
    return {"count": len(out), "cases": out}


# ------------------------------------------------------------------------------------ inventory


@agent_tool("asset_lookup")
def asset_lookup(deps: AgentDeps, host: str | None = None, ip: str | None = None) -> dict[str, Any]:
    """An asset from the inventory by hostname or IP: owner, business unit, criticality, OS, tags,
    software."""
    from bastion.store.assets import InventoryRepository

    if not host and not ip:
        raise ValueError("give host or ip")
    with deps.db.read() as conn:
        repo = InventoryRepository(conn, deps.tenant_id)
        found = []
        if host:
            a = repo.asset(host.strip())
            if a is not None:
                found.append(a)
        if ip:
            found.extend(a for a in repo.assets_by_ip(ip.strip()) if a not in found)
    return {
        "found": bool(found),
        "assets": [
            {
                **msgspec.to_builtins(a),
                "criticality": a.criticality.name.lower(),
                "software": [msgspec.to_builtins(s) for s in a.software[:30]],
            }
            for a in found[:10]
        ],
    }


@agent_tool("identity_lookup")
def identity_lookup(deps: AgentDeps, username: str | None = None, email: str | None = None) -> dict[str, Any]:
    """An identity from the inventory by username or e-mail: display name, groups, whether privileged,
    manager, status and department."""
    from bastion.store.assets import InventoryRepository

    if not username and not email:
        raise ValueError("give username or email")
    with deps.db.read() as conn:
        repo = InventoryRepository(conn, deps.tenant_id)
        ident = repo.identity(username.strip()) if username else None
        if ident is None and email:
            ident = repo.identity_by_email(email.strip())
        if ident is None and username and "\\" in username:  # DOMAIN\user as events carry it
            ident = repo.identity(username.split("\\", 1)[1])
    return {"found": ident is not None, "identity": msgspec.to_builtins(ident) if ident else None}


# ------------------------------------------------------------------------------------ runs


def _step_connections(conn: Any, tenant_id: str, workflow_id: str, version: int) -> dict[str, str]:
    """Step id -> the connection the step names itself (``connection:`` overrides the action's)."""
    from bastion.respond.validate import WorkflowInvalid, parse_workflow
    from bastion.store.workflows import WorkflowRepository

    d = WorkflowRepository(conn, tenant_id).definition(workflow_id, version)
    if d is None:
        return {}
    try:
        wf = parse_workflow(d["source"])
    except WorkflowInvalid:
        return {}
    return {s.id: s.connection for s in wf.all_steps() if s.connection}


def _step_view(step: dict[str, Any], overrides: dict[str, str] | None = None) -> dict[str, Any]:
    from bastion.connectors.registry import get_action

    defn = get_action(step["action"]) if step.get("action") else None
    return {
        "key": step["key"],
        "step_id": step["step_id"],
        "action": step.get("action"),
        "connection": (overrides or {}).get(step["step_id"]) or (defn.connection if defn else None),
        "impact": defn.impact if defn else None,
        "status": step["status"],
        "attempts": step.get("attempts"),
        "error": _cut(step.get("error"), 600),
        "started": step.get("started"),
        "finished": step.get("finished"),
        "logs": [_cut(x, 200) for x in (step.get("logs") or [])[-5:]],
    }


@agent_tool("run_history")
def run_history(
    deps: AgentDeps,
    run_id: str | None = None,
    workflow_id: str | None = None,
    status: str | None = None,
    limit: int = 10,
) -> dict[str, Any]:
    """Workflow runs: one run (``run_id``) with every step, its action, connection, status, attempts and
    error; or the newest runs (of ``workflow_id``, in ``status``: running, waiting_approval, succeeded,
    failed, cancelled) each with its failed steps."""
    from bastion.respond.service import RunError, run_detail
    from bastion.store.workflows import WorkflowRepository

    if run_id:
        try:
            run = run_detail(deps.db, deps.tenant_id, run_id.strip())
        except RunError as exc:
            raise ValueError(str(exc)) from None
        with deps.db.read() as conn:
            overrides = _step_connections(conn, deps.tenant_id, run["workflow_id"], run["version"])
        steps = [_step_view(s, overrides) for s in run.pop("steps")]
        with deps.db.read() as conn:
            retries = [
                r["run_id"]
                for r in WorkflowRepository(conn, deps.tenant_id).list_runs(
                    workflow_id=run["workflow_id"], limit=200
                )
                if r["retry_of"] == run["run_id"]
            ]
        return {
            "run": {**run, "error": _cut(run.get("error"), 600), "retried_by": retries},
            "steps": steps,
            "failed_steps": [s for s in steps if s["status"] in ("failed", "denied")],
        }
    n = _limit(limit, 50)
    with deps.db.read() as conn:
        repo = WorkflowRepository(conn, deps.tenant_id)
        runs = repo.list_runs(status=status, workflow_id=workflow_id, limit=n)
        out = []
        for r in runs:
            steps = [s for s in repo.steps(r["run_id"]) if s["status"] in ("failed", "denied")]
            overrides = (
                _step_connections(conn, deps.tenant_id, r["workflow_id"], r["version"]) if steps else {}
            )
            failed = [_step_view(s, overrides) for s in steps]
            out.append(
                {
                    "run_id": r["run_id"],
                    "workflow_id": r["workflow_id"],
                    "version": r["version"],
                    "status": r["status"],
                    "error": _cut(r.get("error"), 300),
                    "retry_of": r.get("retry_of"),
                    "created": r["created"],
                    "finished": r.get("finished"),
                    "failed_steps": failed[:5],
                }
            )
    return {"count": len(out), "runs": out}
