"""The migrations build exactly the schema the code declares, on SQLite and PostgreSQL.

Tables are declared in several modules (``store/tables.py`` and one module per area); a column added to
a table without a migration, or a migration that drifts from the declaration, fails here rather than
on a user's upgraded database.
"""

from __future__ import annotations

import importlib
import pkgutil

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

import bastion.store
from bastion.store import Database
from bastion.store.tables import metadata
from tests.store.migrations import run_migration


def _differences(db: Database) -> list[object]:
    """What autogenerate would change to bring the store to the declared tables (every module's)."""
    for module in pkgutil.iter_modules(bastion.store.__path__):
        importlib.import_module(f"bastion.store.{module.name}")
    with db.read() as conn:
        return list(compare_metadata(MigrationContext.configure(conn), metadata))


def test_migrated_schema_matches_the_declared_tables(db: Database) -> None:
    assert _differences(db) == []


def test_the_alert_index_loses_its_foreign_keys_and_keeps_its_rows_on_sqlite(sqlite_db: Database) -> None:
    """Migration 0014 rebuilds the SQLite table (it cannot drop a constraint): rows, key and WITHOUT ROWID
    survive the way down (foreign keys back) and up again (none)."""
    from bastion.model import Alert, Observable, ObservableType, Severity
    from bastion.store import TenantScope
    from bastion.tenancy.service import create_tenant

    tenant, _ = create_tenant(sqlite_db, "acme", actor="test")
    alert = Alert(
        title="t",
        severity=Severity.HIGH,
        time=1,
        source="test",
        observables=[Observable(ObservableType.HOST, "WS1"), Observable(ObservableType.IPV4, "10.0.0.1")],
    )
    with sqlite_db.write() as conn:
        TenantScope(conn, tenant.id).alerts.insert_many([alert])

    def state() -> tuple[list[tuple[str, ...]], list[str], str]:
        with sqlite_db.read() as conn:
            rows = [tuple(r) for r in conn.exec_driver_sql("SELECT type, value FROM alert_observables")]
            fks = [r[2] for r in conn.exec_driver_sql("PRAGMA foreign_key_list(alert_observables)")]
            sql = conn.exec_driver_sql(
                "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'alert_observables'"
            ).scalar_one()
        return sorted(rows), sorted(fks), sql

    rows, fks, sql = state()
    assert rows == [("host", "ws1"), ("ipv4", "10.0.0.1")] and fks == [] and "WITHOUT ROWID" in sql
    run_migration(sqlite_db, "downgrade", "0013")
    rows_down, fks_down, sql_down = state()
    assert rows_down == rows and fks_down == ["alerts", "tenants"] and "WITHOUT ROWID" in sql_down
    run_migration(sqlite_db, "upgrade", "head")
    assert state() == (rows, [], sql)
    assert _differences(sqlite_db) == []
