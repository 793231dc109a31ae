"""Acknowledge, close (with scoped "suppress similar"), reopen and the triage-state search, on the real
store (SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest

from bastion.cases.service import open_case
from bastion.model import Alert, AlertStatus, Observable, ObservableType, Severity, Verdict
from bastion.store import Database, TenantScope
from bastion.store.alerts import AlertRepository
from bastion.tenancy.service import create_tenant
from bastion.triage.alerts import (
    AlertConflict,
    AlertError,
    UnknownAlert,
    acknowledge,
    close_alert,
    reopen_alert,
)
from bastion.triage.suppress import active_suppressions, list_suppressions, match

T0 = 1_796_000_000_000
DAY = 86_400_000


def make_alert(
    n: int,
    *,
    host: str | None = "WS01",
    user: str | None = "alice",
    rule: str | None = "r-1",
    title: str = "Suspicious PowerShell",
    auto_closed: bool = False,
    score: int = 50,
    queue: str = "tier1",
) -> Alert:
    obs = []
    if host:
        obs.append(Observable(ObservableType.HOST, host))
    if user:
        obs.append(Observable(ObservableType.USER, user))
    alert = Alert(
        title=title,
        severity=Severity.MEDIUM,
        time=T0 + n,
        source="edr",
        external_id=f"x-{n}",
        rule_id=rule,
        observables=obs,
        score=score,
        queue=queue,
    )
    if auto_closed:  # what the engine's auto-close writes
        alert.status = AlertStatus.CLOSED
        alert.auto_closed = True
        alert.closed = alert.acknowledged = T0 + n
        alert.close_reason = f"auto-closed: score {score} <= 20"
    return alert


def insert(db: Database, tenant: str, *alerts: Alert) -> list[str]:
    with db.write() as conn:
        scope = TenantScope(conn, tenant)
        return [str(scope.alerts.insert(a)[0].id) for a in alerts]


def get(db: Database, tenant: str, alert_id: str) -> Alert:
    with db.read() as conn:
        found = TenantScope(conn, tenant).alerts.get(alert_id)
    assert found is not None
    return found


def audit(db: Database, tenant: str, action: str) -> list:
    with db.read() as conn:
        return [e for e in TenantScope(conn, tenant).audit.entries() if e.action == action]


@pytest.fixture
def tenant(db: Database) -> str:
    return create_tenant(db, "acme")[0].id


def test_acknowledge_sets_the_first_time_once(db: Database, tenant: str) -> None:
    (aid,) = insert(db, tenant, make_alert(1))
    with db.write() as conn:
        acknowledge(TenantScope(conn, tenant), "user:ann", aid, now=T0 + 100)
    with db.write() as conn:
        acknowledge(TenantScope(conn, tenant), "user:bob", aid, now=T0 + 900)
    alert = get(db, tenant, aid)
    assert alert.status == AlertStatus.ACKNOWLEDGED and alert.acknowledged == T0 + 100
    entries = audit(db, tenant, "alert.acknowledge")
    assert [(e.actor, e.data["first"]) for e in entries] == [("user:ann", True), ("user:bob", False)]
    with db.write() as conn:
        scope = TenantScope(conn, tenant)
        with pytest.raises(UnknownAlert):
            acknowledge(scope, "user:ann", "nope")
        close_alert(scope, "user:ann", aid, Verdict.TRUE_POSITIVE)
        with pytest.raises(AlertConflict):
            acknowledge(scope, "user:ann", aid)


def test_close_records_verdict_reason_and_time(db: Database, tenant: str) -> None:
    (aid,) = insert(db, tenant, make_alert(1))
    with db.write() as conn:
        scope = TenantScope(conn, tenant)
        with pytest.raises(AlertError, match="unknown verdict"):
            close_alert(scope, "user:ann", aid, "maybe")
        with pytest.raises(AlertError, match="only for alerts closed as false_positive"):
            close_alert(scope, "user:ann", aid, "true_positive", suppress_similar=True)
        done = close_alert(scope, "user:ann", aid, "benign-true-positive", reason="pentest", now=T0 + 50)
        assert done["suppression"] is None
        with pytest.raises(AlertConflict, match="already closed"):
            close_alert(scope, "user:ann", aid, "true_positive")
    alert = get(db, tenant, aid)
    assert (alert.status, alert.verdict, alert.closed) == (
        AlertStatus.CLOSED,
        Verdict.BENIGN_TRUE_POSITIVE,
        T0 + 50,
    )
    assert alert.close_reason == "pentest" and alert.acknowledged == T0 + 50 and not alert.auto_closed
    (entry,) = audit(db, tenant, "alert.close")
    assert entry.actor == "user:ann" and entry.data["verdict"] == "benign_true_positive"


def test_suppress_similar_is_scoped_to_rule_and_host(db: Database, tenant: str) -> None:
    aid, no_rule = insert(db, tenant, make_alert(1), make_alert(2, rule=None, title="Odd login"))
    with db.write() as conn:
        scope = TenantScope(conn, tenant)
        s = close_alert(
            scope,
            "user:ann",
            aid,
            "false_positive",
            reason="admin script",
            suppress_similar=True,
            suppress_for="7d",
            now=T0,
        )["suppression"]
        s2 = close_alert(scope, "user:ann", no_rule, "false_positive", suppress_similar=True, now=T0 + 1)[
            "suppression"
        ]
    assert s is not None and s2 is not None
    assert (s.rule_id, s.source, s.entity, s.owner) == ("r-1", "edr", ("host", "WS01"), "user:ann")
    assert s.expires == T0 + 7 * DAY and "admin script" in (s.reason or "")
    assert (s2.rule_id, s2.fields, s2.entity) == (None, {"title": "Odd login"}, ("host", "WS01"))
    with db.read() as conn:
        active = active_suppressions(conn, tenant, T0 + 1)  # oldest first
    assert match(active[:1], make_alert(3)) is not None
    assert match(active[:1], make_alert(4, host="WS02")) is None  # another host: not suppressed
    assert match(active[:1], make_alert(5, rule="r-2")) is None  # another rule: not suppressed
    assert match(active[1:], make_alert(6, rule=None, title="Odd login")) is not None
    assert match(active[1:], make_alert(7, rule=None, title="Other")) is None
    assert match(active, make_alert(8, host="WS01")) is not None
    assert match(active, make_alert(9, host="DC1")) is None
    (entry,) = [e for e in audit(db, tenant, "alert.close") if e.target_id == aid]
    assert entry.data["suppression_id"] == s.id
    assert len(audit(db, tenant, "triage.suppression.add")) == 2


def test_suppress_similar_falls_back_to_the_user_and_refuses_without_an_entity(
    db: Database, tenant: str
) -> None:
    user_only, bare = insert(db, tenant, make_alert(1, host=None), make_alert(2, host=None, user=None))
    with db.write() as conn:
        s = close_alert(
            TenantScope(conn, tenant), "user:ann", user_only, "false_positive", suppress_similar=True
        )["suppression"]
    assert s is not None and s.entity == ("user", "alice")
    with pytest.raises(AlertError, match="no host or user"), db.write() as conn:
        close_alert(TenantScope(conn, tenant), "user:ann", bare, "false_positive", suppress_similar=True)
    assert get(db, tenant, bare).status == AlertStatus.NEW  # nothing half-done
    with db.read() as conn:
        assert len(list_suppressions(conn, tenant)) == 1


def test_reopen_an_auto_closed_alert_keeps_the_reason(db: Database, tenant: str) -> None:
    aid, open_id = insert(db, tenant, make_alert(1, auto_closed=True, score=8), make_alert(2))
    with db.write() as conn:
        scope = TenantScope(conn, tenant)
        with pytest.raises(AlertError, match="reason"):
            reopen_alert(scope, "user:ann", aid, reason="  ")
        with pytest.raises(AlertConflict, match="not closed"):
            reopen_alert(scope, "user:ann", open_id, reason="look")
        reopen_alert(scope, "user:ann", aid, reason="host is a domain controller")
    alert = get(db, tenant, aid)
    assert alert.status == AlertStatus.NEW and not alert.auto_closed
    assert alert.verdict is None and alert.closed is None
    assert (
        alert.close_reason is not None
        and "reopened by user:ann: host is a domain controller" in alert.close_reason
    )
    assert "auto-closed: score 8 <= 20" in alert.close_reason
    (entry,) = audit(db, tenant, "alert.reopen")
    assert entry.data["was_auto_closed"] is True
    assert entry.data["previous_close_reason"] == "auto-closed: score 8 <= 20"
    with db.read() as conn:
        found, _ = AlertRepository(conn, tenant).list(auto_closed=True)
    assert found == []


def test_close_and_reopen_are_on_the_case_timeline(db: Database, tenant: str) -> None:
    (aid,) = insert(db, tenant, make_alert(1))
    with db.write() as conn:
        scope = TenantScope(conn, tenant)
        case = open_case(scope, "user:ann", "PowerShell on WS01", Severity.MEDIUM, alert_ids=[aid])
        close_alert(scope, "user:ann", aid, "false_positive")
        reopen_alert(scope, "user:bob", aid, reason="same script on a server")
        assert case.id is not None
        stored = scope.cases.get(case.id)
    assert stored is not None
    kinds = [(t.kind, t.actor) for t in stored.timeline if t.kind.startswith("alert.")]
    assert ("alert.closed", "user:ann") in kinds and ("alert.reopened", "user:bob") in kinds
    reopened = next(t for t in stored.timeline if t.kind == "alert.reopened")
    assert reopened.data is not None and reopened.data["previous_verdict"] == "false_positive"


def test_search_by_triage_state(db: Database, tenant: str) -> None:
    ids = insert(
        db,
        tenant,
        make_alert(1, auto_closed=True, score=5),
        make_alert(2, auto_closed=True, score=12, queue="tier2"),
        make_alert(3, score=70, queue="tier2", rule="r-9"),
        make_alert(4, score=40),
    )
    with db.write() as conn:
        close_alert(TenantScope(conn, tenant), "user:ann", ids[3], "true_positive")

    def found(**kw: object) -> list[str]:
        with db.read() as conn:
            alerts, _ = AlertRepository(conn, tenant).list(**kw)  # type: ignore[arg-type]
        return [str(a.id) for a in alerts]

    assert found(auto_closed=True) == [ids[1], ids[0]]
    assert found(auto_closed=False) == [ids[3], ids[2]]
    assert found(status=AlertStatus.CLOSED) == [ids[3], ids[1], ids[0]]
    assert found(queue="tier2") == [ids[2], ids[1]]
    assert found(min_score=40) == [ids[3], ids[2]]
    assert found(rule_id="r-9") == [ids[2]]
    assert found(verdict=Verdict.TRUE_POSITIVE) == [ids[3]]
    assert found(auto_closed=True, queue="tier2") == [ids[1]]
    with db.read() as conn:
        page, cursor = AlertRepository(conn, tenant).list(auto_closed=False, limit=1)
        rest, end = AlertRepository(conn, tenant).list(auto_closed=False, limit=1, before=cursor)
    assert [a.id for a in page + rest] == [ids[3], ids[2]] and cursor is not None and end is None
    other = create_tenant(db, "beta")[0].id
    with db.read() as conn:
        assert AlertRepository(conn, other).list(auto_closed=True)[0] == []
