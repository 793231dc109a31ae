"""A small real world for the objective and triage tests: a SQLite store with a tenant, alerts ingested
through the real pipeline (so triage scores them and opens cases), threat intel loaded through the real
intel store, and a loop that drives a reasoner with the real read tools (no runtime needed)."""

from __future__ import annotations

import time
from typing import Any

from bastion.agents.spec import AgentDeps, Finish, Seen, Task, get_agent, get_agent_tool
from bastion.intel.store import load_indicators
from bastion.model import Alert, Observable, ObservableType, Severity
from bastion.model.intel import Indicator, IndicatorType
from bastion.pipeline import ingest_alerts
from bastion.store import Database, TenantScope

EVIL_IP = "203.0.113.66"


def obs(kind: str, value: str) -> Observable:
    return Observable(ObservableType(kind), value)


def alert(
    title: str,
    *,
    host: str,
    user: str | None = None,
    severity: Severity = Severity.HIGH,
    extra: list[Observable] | None = None,
    techniques: list[str] | None = None,
    at: int | None = None,
    rule: str = "r-1",
) -> Alert:
    observables = [obs("host", host), *([obs("user", user)] if user else []), *(extra or [])]
    return Alert(
        title=title,
        severity=severity,
        time=at or int(time.time() * 1000),
        source="edr",
        rule_id=rule,
        techniques=techniques or [],
        observables=observables,
    )


def add_intel(db: Database, tenant_id: str, value: str = EVIL_IP, confidence: int = 90) -> None:
    now = int(time.time() * 1000)
    load_indicators(
        db,
        tenant_id,
        [
            Indicator(
                type=IndicatorType.IPV4,
                value=value,
                source="test-feed",
                confidence=confidence,
                first_seen=now,
                last_seen=now,
                actors=["FIN7"],
            )
        ],
        actor="test",
    )


def ingest(db: Database, tenant_id: str, *alerts: Alert) -> list[str]:
    """Ingest alerts through triage; returns the ids of the cases they are in."""
    result = ingest_alerts(db, tenant_id, "test", list(alerts))
    with db.read() as conn:
        scope = TenantScope(conn, tenant_id)
        cases = []
        for aid in result.ids:
            a = scope.alerts.get(aid)
            if a is not None and a.case_id and a.case_id not in cases:
                cases.append(a.case_id)
    return cases


def drive(
    db: Database, tenant_id: str, task: Task, *, actions: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Run ``task``'s reasoner to its end, calling the real read tools; an action's result comes from
    ``actions`` (tool -> result) since actions are the runtime's business. Returns the final output,
    with the calls made under ``_calls``."""
    spec = get_agent(task.agent)
    deps = AgentDeps(db=db, tenant_id=tenant_id, actor="test", run_id="r", case_id=task.case_id)
    seen: list[Seen] = []
    for _ in range(spec.max_steps):
        decision = spec.reasoner(task, seen)
        if isinstance(decision, Finish):
            out = spec.output.model_validate(decision.output).model_dump(mode="json")
            out["_calls"] = [(s.tool, s.args) for s in seen]
            return out
        for call in decision:
            assert call.tool in spec.tools, f"{call.tool} is not on {spec.name}'s allow-list"
            tool = get_agent_tool(call.tool)
            if tool is not None:
                try:
                    seen.append(Seen(call.tool, call.args, tool.fn(deps, **call.args)))
                except ValueError as exc:
                    seen.append(Seen(call.tool, call.args, error=str(exc)))
            else:
                seen.append(Seen(call.tool, call.args, (actions or {}).get(call.tool, {"ok": True})))
    raise AssertionError("the reasoner did not finish within its step budget")
