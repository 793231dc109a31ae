"""Events without the foreign key to their tenant: every row is written by the ingest writer, which read
the tenant's number from ``tenants`` in the same transaction, and tenants are never deleted.

On SQLite the key cost more than its lookup: a multi-row INSERT into a table with an immediate foreign key
may abort half-way, so SQLite kept a statement journal of every page the statement touched (about 25 KB of
temporary-file writes per event with 32 KiB pages). SQLite cannot drop a constraint: the table is rebuilt
as it was created, its rows copied and its indexes made again.

Revision ID: 0016
Revises: 0015
"""

from __future__ import annotations

from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

_FK = "fk_events_tenant_num_tenants"
_COLUMNS = "pk, tenant_num, id, fp, time, ingested, class_uid, severity_id, format, normalized, raw"


def _rebuild_sqlite(foreign_key: str) -> None:
    op.execute(
        "CREATE TABLE events_new (pk INTEGER NOT NULL, tenant_num INTEGER NOT NULL, id VARCHAR(32) NOT NULL,"
        " fp BIGINT NOT NULL, time BIGINT NOT NULL, ingested BIGINT NOT NULL, class_uid INTEGER NOT NULL,"
        " severity_id INTEGER NOT NULL, format VARCHAR(40) NOT NULL, normalized TEXT NOT NULL,"
        f" raw TEXT NOT NULL, CONSTRAINT pk_events PRIMARY KEY (pk){foreign_key})"
    )
    op.execute(f"INSERT INTO events_new ({_COLUMNS}) SELECT {_COLUMNS} FROM events")
    op.execute("DROP TABLE events")
    op.execute("ALTER TABLE events_new RENAME TO events")
    op.create_index("ix_events_tenant_num_fp", "events", ["tenant_num", "fp"])
    op.create_index("ix_events_tenant_num_time", "events", ["tenant_num", "time"])


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _rebuild_sqlite("")
        return
    op.drop_constraint(_FK, "events", type_="foreignkey")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _rebuild_sqlite(f", CONSTRAINT {_FK} FOREIGN KEY(tenant_num) REFERENCES tenants (num)")
        return
    op.create_foreign_key(_FK, "events", "tenants", ["tenant_num"], ["num"])
