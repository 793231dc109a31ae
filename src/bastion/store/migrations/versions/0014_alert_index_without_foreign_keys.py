"""Alert observable index without foreign keys: every row is written with its alert, in the same
statement batch, and alerts are never deleted, so the two parent lookups per row (tenant, alert) that
SQLite made on each insert guarded nothing (about 2% of triage's instructions). The event observable
index has none either.

SQLite cannot drop a constraint: the table is rebuilt as it was created (WITHOUT ROWID, the same primary
key) and its rows copied.

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

_FKS = (
    ("fk_alert_observables_alert_id_alerts", "alerts", ["alert_id"], ["id"]),
    ("fk_alert_observables_tenant_id_tenants", "tenants", ["tenant_id"], ["id"]),
)


def _rebuild_sqlite(foreign_keys: str) -> None:
    op.execute(
        "CREATE TABLE alert_observables_new (tenant_id VARCHAR(32) NOT NULL, value VARCHAR(2048) NOT NULL,"
        " type VARCHAR(20) NOT NULL, alert_id VARCHAR(32) NOT NULL,"
        " CONSTRAINT pk_alert_observables PRIMARY KEY (tenant_id, value, type, alert_id)"
        f"{foreign_keys}) WITHOUT ROWID"
    )
    op.execute(
        "INSERT INTO alert_observables_new (tenant_id, value, type, alert_id)"
        " SELECT tenant_id, value, type, alert_id FROM alert_observables"
    )
    op.execute("DROP TABLE alert_observables")
    op.execute("ALTER TABLE alert_observables_new RENAME TO alert_observables")


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _rebuild_sqlite("")
        return
    for name, _parent, _local, _remote in _FKS:
        op.drop_constraint(name, "alert_observables", type_="foreignkey")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _rebuild_sqlite(
            "".join(
                f", CONSTRAINT {name} FOREIGN KEY({local[0]}) REFERENCES {parent} ({remote[0]})"
                for name, parent, local, remote in _FKS
            )
        )
        return
    for name, parent, local, remote in _FKS:
        op.create_foreign_key(name, "alert_observables", parent, local, remote)
