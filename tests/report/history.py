"""A tenant's recorded history with known timestamps, built through the real store and services, for the
metrics and report tests.

Everything is written the way Bastion writes it (alerts through ``scope.alerts.insert``, cases through the
case service, runs and steps through ``WorkflowRepository``); then the timestamp columns are moved with
direct updates to known times, as the brief for these tests says, so every figure can be asserted exactly.

The figures this history must produce are listed in ``EXPECTED`` with how they follow from the data.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import update

from bastion.model import Alert, AlertStatus, Observable, ObservableType, Severity
from bastion.report.query import DAY_MS
from bastion.store import Database, TenantScope
from bastion.store._util import now_ms
from bastion.store.approvals import approval_decisions, approvals
from bastion.store.tables import alerts, cases
from bastion.store.workflows import WorkflowRepository, workflow_runs
from bastion.tenancy.service import create_tenant
from bastion.triage.policy import save_policy

S = 1000
H = 3600 * S

# Manual minutes for this tenant (merged over the defaults by the policy loader).
MINUTES = {
    "alert.auto_close": 6,
    "alert.deduplicate": 1.5,
    "alert.suppress": 4,
    "action.default": 12,
    "edr.isolate_host": 30,
}

EXPECTED: dict[str, Any] = {
    # a1, a2, a3 are stored in the period; a_old before it; the other tenant's alert never counts.
    "alerts": 3,
    "deduplicated": 3,  # a2 was seen 4 times
    "deduplicated_pct": 50.0,  # 3 / (3 + 3)
    "auto_closed": 1,  # a2
    "auto_closed_pct": 33.3,
    "suppressed": 1,  # a3
    "cases": 2,
    "escalated": 1,  # case2
    "escalation_rate": 0.5,
    "analyst_touches": 4,  # user:bob x2, cli, apikey:k1 on cases; sla and the alert entry do not count
    "analyst_touches_per_case": 2.0,
    "mttd_s": 120.0,  # every alert stored 120 s after its event
    "mtta_s": 180.0,  # a1 acknowledged after 300 s (its run came later); a2's first run after 60 s
    "mttc_s": 750.0,  # case1: containment step 1000 s after its first alert; case2: contained 500 s in
    "mttr_s": 5400.0,  # a1 closed by a person after 3600 s; case1 resolved 7200 s after it opened
    # 6 (a2 auto-closed) + 3 x 1.5 (repeats) + 4 (a3 suppressed) + core.http_request 12 (default)
    # + edr.isolate_host 30 + firewall.block_ip 12 (default) = 68.5 minutes
    "analyst_hours_saved": 1.1,
    "incidents_prevented": 1,  # intel run 1 succeeded; intel run 2 failed; the old one is out of the period
    "preemptive_runs": 2,
}


@dataclass
class History:
    db: Database
    tenant_id: str
    tenant: str
    key: str
    t0: int
    start: int
    end: int
    ids: dict[str, str] = field(default_factory=dict)


def _alert(title: str, severity: Severity, source: str, rule: str, **kw: Any) -> Alert:
    return Alert(title=title, severity=severity, time=now_ms(), source=source, rule_id=rule, **kw)


def _set_alert(conn: Any, alert_id: str, **values: Any) -> None:
    conn.execute(update(alerts).where(alerts.c.id == alert_id).values(**values))


def _run(
    repo: WorkflowRepository,
    conn: Any,
    workflow_id: str,
    trigger: dict[str, Any],
    *,
    created: int,
    status: str,
    alert_id: str | None = None,
    case_id: str | None = None,
    steps: tuple[tuple[str, str, str, int, int], ...] = (),
) -> str:
    rid = repo.create_run(workflow_id, 1, inputs={}, trigger=trigger, requested_by="hook")
    conn.execute(
        update(workflow_runs)
        .where(workflow_runs.c.id == rid)
        .values(created=created, updated=created, status=status, alert_id=alert_id, case_id=case_id)
    )
    for step_id, action, step_status, started, finished in steps:
        repo.record_step(
            rid,
            step_id,
            step_id=step_id,
            action=action,
            status=step_status,
            attempts=1,
            started=started,
            finished=finished,
        )
    return rid


def build_history(db: Database, name: str = "acme", *, title_one: str = "Suspicious PowerShell") -> History:
    """The history behind ``EXPECTED``; the period is the 7 days from ``t0`` (5 days ago, midnight UTC)."""
    from bastion.cases.service import open_case

    t0 = (now_ms() // DAY_MS - 5) * DAY_MS
    tenant, key = create_tenant(db, name)
    other, _ = create_tenant(db, f"{name}-other")
    h = History(db=db, tenant_id=tenant.id, tenant=name, key=key, t0=t0, start=t0, end=t0 + 7 * DAY_MS)
    a1_at, a2_at, a3_at = t0 + 1 * H, t0 + 2 * H, t0 + 150 * 60 * S
    with db.write() as conn:
        scope = TenantScope(conn, tenant.id)
        save_policy(conn, tenant.id, {"manual_minutes": MINUTES}, "user:admin")
        host, user = Observable(ObservableType.HOST, "ws1"), Observable(ObservableType.USER, "alice")
        a1, _ = scope.alerts.insert(
            _alert(
                title_one,
                Severity.HIGH,
                "sigma",
                "r1",
                tags=["attack.execution", "attack.t1059.001"],
                techniques=["T1059.001"],
                observables=[host, user],
                enrichment={"assets": [{"hostname": "ws1", "criticality": 3}]},
            )
        )
        a2, _ = scope.alerts.insert(
            _alert(
                title_one,
                Severity.LOW,
                "sigma",
                "r1",
                tags=["attack.execution", "attack.persistence", "attack.TA0003", "attack.t1053"],
                observables=[host],
            )
        )
        a3, _ = scope.alerts.insert(
            _alert(
                "Port scan",
                Severity.MEDIUM,
                "edr",
                "r2",
                status=AlertStatus.CLOSED,
                close_reason="suppressed: known scanner (owner bob)",
                tags=["attack.defense-evasion", "attack.g0007", "car.2013-05-002"],
            )
        )
        old, _ = scope.alerts.insert(
            _alert("Old alert", Severity.HIGH, "sigma", "r1", tags=["attack.impact"])
        )
        stranger, _ = TenantScope(conn, other.id).alerts.insert(
            _alert("Other tenant", Severity.HIGH, "sigma", "r9", tags=["attack.discovery"])
        )
        assert a1.id and a2.id and a3.id and old.id and stranger.id
        case1 = open_case(scope, "triage", "Intrusion on ws1", Severity.HIGH, alert_ids=[a1.id])
        case2 = open_case(scope, "triage", "Escalated <b>phish</b>", Severity.MEDIUM)
        assert case1.id and case2.id
        for actor, target in (("user:bob", case1.id), ("user:bob", case1.id), ("cli", case2.id)):
            scope.audit.append(actor, "case.comment", "case", target, {})
        scope.audit.append("apikey:k1", "case.assign", "case", case2.id, {})
        scope.audit.append("sla", "case.escalate", "case", case2.id, {})  # automation: not a touch
        scope.audit.append("user:bob", "alert.acknowledge", "alert", a1.id, {})  # not a case
        data = b"pcap bytes"
        scope.cases.add_attachment(
            case1.id,
            name="capture.pcap",
            content_type="application/vnd.tcpdump.pcap",
            data=data,
            sha256=hashlib.sha256(data).hexdigest(),
            author="user:bob",
        )

        repo = WorkflowRepository(conn, tenant.id)
        alert_trigger = {"type": "alert", "payload": {}}
        _run(
            repo,
            conn,
            "enrich",
            alert_trigger,
            created=a2_at + 60 * S,
            status="succeeded",
            alert_id=a2.id,
            steps=(
                ("lookup", "core.http_request", "succeeded", a2_at + 61 * S, a2_at + 62 * S),
                ("notify", "slack.post_message", "failed", a2_at + 63 * S, a2_at + 64 * S),
            ),
        )
        _run(repo, conn, "enrich", alert_trigger, created=a1_at + 600 * S, status="succeeded", alert_id=a1.id)
        contain_run = _run(
            repo,
            conn,
            "contain-host",
            {"type": "case", "payload": {}},
            created=a1_at + 800 * S,
            status="succeeded",
            case_id=case1.id,
            steps=(("isolate", "edr.isolate_host", "succeeded", a1_at + 900 * S, a1_at + 1000 * S),),
        )
        h.ids["contain_run"] = contain_run
        intel = {"type": "intel", "payload": {"indicator": "evil.example"}}
        _run(
            repo,
            conn,
            "preempt",
            intel,
            created=t0 + 5 * H,
            status="succeeded",
            steps=(("block", "firewall.block_ip", "succeeded", t0 + 5 * H + 10 * S, t0 + 5 * H + 20 * S),),
        )
        _run(repo, conn, "preempt", intel, created=t0 + 6 * H, status="failed")
        _run(repo, conn, "preempt", intel, created=t0 - 40 * DAY_MS, status="succeeded")
        TenantScope(conn, other.id)  # the other tenant's intel run must not count either
        _run(
            WorkflowRepository(conn, other.id), conn, "preempt", intel, created=t0 + 5 * H, status="succeeded"
        )

        # An approval of the containment step, decided by a person.
        conn.execute(
            approvals.insert().values(
                tenant_id=tenant.id,
                id=f"{contain_run}:isolate",
                run_id=contain_run,
                step_id="isolate",
                action="edr.isolate_host",
                summary="Isolate ws1",
                target="{}",
                reason="contain",
                requested_by="hook",
                status="approved",
                roles='["approver"]',
                quorum=1,
                allow_requester=False,
                timeout_s=None,
                on_timeout="deny",
                escalate_to="[]",
                channels='["cli"]',
                escalated=False,
                requested_at=a1_at + 850 * S,
                deadline=None,
                resolved_at=a1_at + 880 * S,
                delivery="{}",
            )
        )
        conn.execute(
            approval_decisions.insert().values(
                tenant_id=tenant.id,
                approval_id=f"{contain_run}:isolate",
                user="carol",
                decision="approve",
                channel="cli",
                comment="go ahead",
                time=a1_at + 880 * S,
            )
        )

        # Last, the recorded timestamps at known times (the services above stamped "now").
        _set_alert(
            conn,
            a1.id,
            time=a1_at - 120 * S,
            created=a1_at,
            acknowledged=a1_at + 300 * S,
            closed=a1_at + 3600 * S,
            auto_closed=False,
            count=1,
            verdict="true_positive",
            queue="tier2",
        )
        _set_alert(
            conn,
            a2.id,
            time=a2_at - 120 * S,
            created=a2_at,
            acknowledged=None,
            closed=a2_at + S,
            auto_closed=True,
            count=4,
            queue="tier1",
        )
        _set_alert(
            conn,
            a3.id,
            time=a3_at - 120 * S,
            created=a3_at,
            acknowledged=None,
            closed=a3_at,
            auto_closed=False,
            count=1,
            queue=None,
        )
        _set_alert(conn, old.id, time=t0 - 40 * DAY_MS, created=t0 - 40 * DAY_MS, count=7)
        _set_alert(conn, stranger.id, time=a1_at - 5 * S, created=a1_at, count=9, auto_closed=True)
        c1_at = a1_at + 10 * S
        conn.execute(
            update(cases)
            .where(cases.c.id == case1.id)
            .values(
                created=c1_at,
                escalations=0,
                contained=a1_at + 2000 * S,
                resolved=c1_at + 7200 * S,
                closed=c1_at + 9000 * S,
                score=72,
                status="closed",
                verdict="true_positive",
                score_components=orjson.dumps(
                    [
                        {"name": "severity", "points": 28.0, "detail": "high (4/5)"},
                        {"name": "asset", "points": 6.0, "detail": "ws1 criticality 3"},
                    ]
                ).decode(),
            )
        )
        conn.execute(
            update(cases)
            .where(cases.c.id == case2.id)
            .values(
                created=t0 + 3 * H, escalations=2, contained=t0 + 3 * H + 500 * S, resolved=None, closed=None
            )
        )
    h.ids.update(a1=a1.id, a2=a2.id, a3=a3.id, case1=case1.id, case2=case2.id)
    return h
