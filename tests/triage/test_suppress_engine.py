"""Suppressions applied by the triage engine as alerts arrive (the real ingest pipeline, both stores)."""

from __future__ import annotations

import time

from bastion.model import Alert, AlertStatus, Observable, ObservableType, Severity
from bastion.pipeline import ingest_alerts
from bastion.store import Database, TenantScope
from bastion.tenancy.service import create_tenant
from bastion.triage.alerts import close_alert
from bastion.triage.suppress import add_suppression, list_suppressions


def _alert(host: str, n: int, *, rule: str = "r-psexec") -> Alert:
    return Alert(
        title="PsExec service installed",
        severity=Severity.HIGH,  # scores above the auto-close limit
        time=int(time.time() * 1000) - 1000 + n,
        source="sigma",
        external_id=f"{rule}-{host}-{n}",
        rule_id=rule,
        observables=[Observable(ObservableType.HOST, host), Observable(ObservableType.USER, "svc_backup")],
    )


def _stored(db: Database, tenant: str, alert_id: str) -> Alert:
    with db.read() as conn:
        found = TenantScope(conn, tenant).alerts.get(alert_id)
    assert found is not None
    return found


def test_incoming_alert_is_closed_by_a_suppression_and_stays_searchable(db: Database) -> None:
    tenant = create_tenant(db, "acme")[0].id
    with db.write() as conn:
        s = add_suppression(
            TenantScope(conn, tenant),
            "user:ann",
            owner="ann",
            expires="7d",
            rule_id="r-psexec",
            entity="host:ws01",
            reason="admin jump host",
        )
    result = ingest_alerts(db, tenant, "pipeline", [_alert("WS01", 1), _alert("WS02", 2)])
    suppressed, other = (_stored(db, tenant, i) for i in result.ids)
    assert suppressed.status == AlertStatus.CLOSED
    assert suppressed.close_reason is not None and suppressed.close_reason.startswith(f"suppressed by {s.id}")
    assert "admin jump host" in suppressed.close_reason and not suppressed.auto_closed
    assert other.status != AlertStatus.CLOSED  # the same rule on another host is not suppressed
    with db.read() as conn:
        (after,) = list_suppressions(conn, tenant)
        closed, _ = TenantScope(conn, tenant).alerts.list(status=AlertStatus.CLOSED)
    assert after.hits == 1 and after.last_hit is not None
    assert [a.id for a in closed] == [suppressed.id]


def test_suppress_similar_scopes_to_the_rule_and_host(db: Database) -> None:
    tenant = create_tenant(db, "acme")[0].id
    first = ingest_alerts(db, tenant, "pipeline", [_alert("WS01", 1)]).ids[0]
    with db.write() as conn:
        done = close_alert(
            TenantScope(conn, tenant),
            "user:ann",
            first,
            "false_positive",
            reason="backup job",
            suppress_similar=True,
        )
    assert done["suppression"] is not None
    again = ingest_alerts(
        db, tenant, "pipeline", [_alert("WS01", 2), _alert("WS09", 3), _alert("WS01", 4, rule="r-other")]
    ).ids
    same_host, other_host, other_rule = (_stored(db, tenant, i) for i in again)
    assert same_host.status == AlertStatus.CLOSED
    assert other_host.status != AlertStatus.CLOSED
    assert other_rule.status != AlertStatus.CLOSED
