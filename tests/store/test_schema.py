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


def test_migrated_schema_matches_the_declared_tables(db: Database) -> None:
    for module in pkgutil.iter_modules(bastion.store.__path__):
        importlib.import_module(f"bastion.store.{module.name}")
    with db.read() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), metadata)
    assert differences == []
