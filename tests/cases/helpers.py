"""Shared builders for the case tests: a tenant and alerts stored through the real repositories."""

from __future__ import annotations

from typing import Any

from bastion.model import Alert, Observable, ObservableType, Severity
from bastion.store import Database, TenantScope
from bastion.tenancy.service import create_tenant


def tenant(db: Database, name: str = "acme") -> str:
    return create_tenant(db, name)[0].id


def alert(
    scope: TenantScope,
    title: str,
    *,
    host: str = "ws-1",
    user: str = "bob",
    severity: Severity = Severity.HIGH,
    time: int = 1_700_000_000_000,
    **extra: Any,
) -> str:
    stored, _ = scope.alerts.insert(
        Alert(
            title=title,
            severity=severity,
            time=time,
            source="edr",
            observables=[Observable(ObservableType.HOST, host), Observable(ObservableType.USER, user)],
            **extra,
        )
    )
    assert stored.id is not None
    return stored.id
