"""Fixtures for the triage engine's tests: a tenant on a real store, a way to ingest alerts through the
real pipeline path, and readers for what triage stored."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from sqlalchemy import select

from bastion.model import Alert, Observable, ObservableType, Severity
from bastion.pipeline import AlertResult, ingest_alerts
from bastion.store import Database, TenantScope
from bastion.store.tables import case_alerts, case_entities, cases
from bastion.tenancy.service import create_tenant
from bastion.triage.policy import save_policy

T0 = 1_780_000_000_000  # a fixed alert time (epoch ms); tests count from it
MIN = 60_000


class Tenant:
    """One tenant on a migrated store, with helpers to ingest and read back."""

    def __init__(self, db: Database, tenant_id: str) -> None:
        self.db = db
        self.id = tenant_id

    def policy(self, document: dict[str, Any]) -> None:
        with self.db.write() as conn:
            save_policy(conn, self.id, document, "test")

    def ingest(self, *alerts: Alert) -> AlertResult:
        return ingest_alerts(self.db, self.id, "test", list(alerts))

    def alert(self, alert_id: str) -> Alert:
        with self.db.read() as conn:
            found = TenantScope(conn, self.id).alerts.get(alert_id)
        assert found is not None
        return found

    def alerts(self) -> list[Alert]:
        with self.db.read() as conn:
            return TenantScope(conn, self.id).alerts.list(limit=1000)[0]

    def cases(self) -> list[Any]:
        with self.db.read() as conn:
            return list(
                conn.execute(select(cases).where(cases.c.tenant_id == self.id).order_by(cases.c.number))
            )

    def links(self) -> dict[str, tuple[str, str]]:
        """alert id -> (case id, reason)."""
        with self.db.read() as conn:
            rows = conn.execute(select(case_alerts).where(case_alerts.c.tenant_id == self.id))
            return {r.alert_id: (r.case_id, r.reason) for r in rows}

    def entities(self, case_id: str) -> dict[tuple[str, str], list[str]]:
        with self.db.read() as conn:
            rows = conn.execute(
                select(case_entities).where(
                    case_entities.c.tenant_id == self.id, case_entities.c.case_id == case_id
                )
            )
            return {(r.type, r.value): orjson.loads(r.tactics) for r in rows}


@pytest.fixture
def tenant(sqlite_db: Database) -> Tenant:
    t, _ = create_tenant(sqlite_db, "acme")
    return Tenant(sqlite_db, t.id)


@pytest.fixture
def any_tenant(db: Database) -> Tenant:
    """The same, on SQLite and on PostgreSQL."""
    t, _ = create_tenant(db, "acme")
    return Tenant(db, t.id)


def obs(kind: str, value: str) -> Observable:
    return Observable(ObservableType(kind), value)


def make_alert(
    title: str = "Suspicious PowerShell",
    *,
    at: int = T0,
    host: str | None = "WS01",
    user: str | None = "alice",
    severity: Severity = Severity.HIGH,
    source: str = "edr",
    rule_id: str | None = "r-1",
    tags: list[str] | None = None,
    techniques: list[str] | None = None,
    extra: list[Observable] | None = None,
    enrichment: dict[str, Any] | None = None,
    external_id: str | None = None,
    raw: Any = None,
) -> Alert:
    observables = [o for o in (host and obs("host", host), user and obs("user", user)) if o]
    return Alert(
        title=title,
        severity=severity,
        time=at,
        source=source,
        rule_id=rule_id,
        tags=tags or [],
        techniques=techniques or [],
        observables=[*observables, *(extra or [])],
        enrichment=enrichment,
        external_id=external_id,
        raw=raw,
    )
