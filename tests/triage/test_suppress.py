"""Suppression rules on the real store (SQLite and PostgreSQL): conditions, wildcards, expiry, hits, audit."""

from __future__ import annotations

import pytest

from bastion.model import Alert, Observable, ObservableType, Severity
from bastion.store import Database, TenantScope
from bastion.tenancy.service import create_tenant
from bastion.triage.suppress import (
    SuppressionError,
    UnknownSuppression,
    active_suppressions,
    add_suppression,
    list_suppressions,
    match,
    parse_expiry,
    record_hits,
    remove_suppression,
)

T0 = 1_796_000_000_000  # a fixed "now" (epoch ms)
HOUR = 3_600_000


def _alert(
    *,
    title: str = "Mimikatz use",
    host: str = "WS01",
    user: str = "alice",
    rule: str | None = "r-1",
    **kw: object,
) -> Alert:
    obs = [Observable(ObservableType.HOST, host), Observable(ObservableType.USER, user)]
    return Alert(
        title=title,
        severity=kw.pop("severity", Severity.HIGH),  # type: ignore[arg-type]
        time=T0,
        source=kw.pop("source", "sigma"),  # type: ignore[arg-type]
        rule_id=rule,
        observables=obs,
        tags=kw.pop("tags", ["attack.credential-access"]),  # type: ignore[arg-type]
        techniques=["T1003.001"],
    )


@pytest.fixture
def tenant(db: Database) -> str:
    return create_tenant(db, "acme")[0].id


def test_every_condition_must_hold_with_wildcards_and_case(db: Database, tenant: str) -> None:
    with db.write() as conn:
        scope = TenantScope(conn, tenant)
        s = add_suppression(
            scope,
            "user:ann",
            owner="ann",
            expires="7d",
            rule_id="R-1",
            fields={"title": "mimikatz*", "severity": "High", "tag": "attack.credential*"},
            entity="host:ws0?",
            reason="lab hosts",
            now=T0,
        )
        assert s.expires == T0 + 7 * 24 * HOUR and s.fields["severity"] == "high"
        active = active_suppressions(conn, tenant, T0 + 1)
    assert [x.id for x in active] == [s.id]
    assert match(active, _alert()) is not None
    assert match(active, _alert(title="MIMIKATZ dump")) is not None
    # each condition alone failing stops the match
    assert match(active, _alert(title="Other thing")) is None
    assert match(active, _alert(host="srv01")) is None
    assert match(active, _alert(rule="r-2")) is None
    assert match(active, _alert(rule=None)) is None
    assert match(active, _alert(severity=Severity.MEDIUM)) is None
    assert match(active, _alert(tags=["attack.execution"])) is None


def test_brackets_are_literal_and_entity_type_matters(db: Database, tenant: str) -> None:
    with db.write() as conn:
        scope = TenantScope(conn, tenant)
        add_suppression(scope, "cli", owner="ann", expires="1d", fields={"title": "[test] *"}, now=T0)
        add_suppression(scope, "cli", owner="ann", expires="1d", entity=("user", "WS01"), now=T0 + 1)
        active = active_suppressions(conn, tenant, T0 + 1)  # oldest first
    assert match(active[:1], _alert(title="[test] hello")) is not None
    assert match(active[:1], _alert(title="t hello")) is None  # "[test]" is not a character class
    assert match(active[1:], _alert(host="WS01", user="bob")) is None  # a host, not a user
    assert match(active[1:], _alert(user="ws01")) is not None


def test_expired_suppression_no_longer_matches(db: Database, tenant: str) -> None:
    with db.write() as conn:
        s = add_suppression(
            TenantScope(conn, tenant), "cli", owner="ann", expires="1h", source="sigma", now=T0
        )
    with db.read() as conn:
        assert match(active_suppressions(conn, tenant, T0 + HOUR - 1), _alert()) is not None
        assert active_suppressions(conn, tenant, T0 + HOUR) == []
        assert list_suppressions(conn, tenant, now=T0 + 2 * HOUR) == []
        assert [x.id for x in list_suppressions(conn, tenant, True, now=T0 + 2 * HOUR)] == [s.id]


def test_refuses_unsafe_or_malformed_suppressions(db: Database, tenant: str) -> None:
    with db.write() as conn:
        scope = TenantScope(conn, tenant)
        with pytest.raises(SuppressionError, match="at least one condition"):
            add_suppression(scope, "cli", owner="ann", expires="7d", now=T0)
        with pytest.raises(SuppressionError, match="owner"):
            add_suppression(scope, "cli", owner=" ", expires="7d", source="x", now=T0)
        with pytest.raises(SuppressionError, match="in the past"):
            add_suppression(scope, "cli", owner="ann", expires="2020-01-01", source="x", now=T0)
        with pytest.raises(SuppressionError, match="not an expiry"):
            add_suppression(scope, "cli", owner="ann", expires="soon", source="x", now=T0)
        with pytest.raises(SuppressionError, match="unknown suppression field"):
            add_suppression(scope, "cli", owner="ann", expires="7d", fields={"colour": "red"}, now=T0)
        with pytest.raises(SuppressionError, match="unknown entity type"):
            add_suppression(scope, "cli", owner="ann", expires="7d", entity="planet:mars", now=T0)
        with pytest.raises(SuppressionError, match="severity"):
            add_suppression(scope, "cli", owner="ann", expires="7d", fields={"severity": "huge"}, now=T0)
        assert list_suppressions(conn, tenant, True) == []


def test_expiry_forms() -> None:
    assert parse_expiry("12h", T0) == T0 + 12 * HOUR
    assert parse_expiry("2w", T0) == T0 + 14 * 24 * HOUR
    assert parse_expiry("2030-01-01", T0) == 1_893_456_000_000
    assert parse_expiry("2030-01-01T06:00:00Z", T0) == 1_893_456_000_000 + 6 * HOUR
    with pytest.raises(SuppressionError):
        parse_expiry("0d", T0)


def test_hits_are_recorded_and_changes_audited(db: Database, tenant: str) -> None:
    with db.write() as conn:
        scope = TenantScope(conn, tenant)
        s = add_suppression(
            scope, "user:ann", owner="ann", expires="7d", rule_id="r-1", reason="noisy", now=T0
        )
        record_hits(conn, tenant, {s.id: 3}, T0 + 5)
        record_hits(conn, tenant, {s.id: 2}, T0 + 9)
    with db.read() as conn:
        (stored,) = list_suppressions(conn, tenant, now=T0)
        assert (stored.hits, stored.last_hit) == (5, T0 + 9)
    with db.write() as conn:
        scope = TenantScope(conn, tenant)
        removed = remove_suppression(scope, "user:bob", s.id)
        assert removed.id == s.id
        with pytest.raises(UnknownSuppression):
            remove_suppression(scope, "user:bob", s.id)
    with db.read() as conn:
        assert list_suppressions(conn, tenant, True) == []
        entries = [e for e in TenantScope(conn, tenant).audit.entries() if e.target_type == "suppression"]
    assert [(e.action, e.actor) for e in entries] == [
        ("triage.suppression.add", "user:ann"),
        ("triage.suppression.remove", "user:bob"),
    ]
    assert entries[0].data["rule_id"] == "r-1" and entries[0].data["owner"] == "ann"
    assert entries[1].data["hits"] == 5


def test_suppressions_are_tenant_scoped(db: Database, tenant: str) -> None:
    other = create_tenant(db, "beta")[0].id
    with db.write() as conn:
        s = add_suppression(
            TenantScope(conn, tenant), "cli", owner="ann", expires="7d", source="sigma", now=T0
        )
        record_hits(conn, other, {s.id: 4}, T0)  # another tenant cannot count hits on it
        with pytest.raises(UnknownSuppression):
            remove_suppression(TenantScope(conn, other), "cli", s.id)
    with db.read() as conn:
        assert active_suppressions(conn, other, T0) == []
        assert active_suppressions(conn, tenant, T0)[0].hits == 0
