"""Event observable index in buckets: its key becomes (tenant, bucket, value hash, event row), the bucket
being the event's row key divided by 2**14, and ``event_buckets`` lists each tenant's buckets.

With the value hash first, every ingest batch inserted its index rows at random places in an index that
grows with the store: each batch dirtied (and wrote to the journal) pages all over it, so ingest slowed
as the store grew. Row keys rise with ingest, so a batch's rows now land in the newest bucket's pages. A
search looks its value up once per bucket of the tenant.

SQLite cannot change a primary key: the table is rebuilt (WITHOUT ROWID) and its rows copied.

Revision ID: 0015
Revises: 0014
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

BUCKET_BITS = 14  # as bastion.store.events.BUCKET_BITS when this revision was written


def _rebuild_sqlite(columns: str, key: str, select: str) -> None:
    op.execute(
        f"CREATE TABLE event_observables_new ({columns},"
        f" CONSTRAINT pk_event_observables PRIMARY KEY ({key})) WITHOUT ROWID"
    )
    op.execute(f"INSERT INTO event_observables_new ({key}) SELECT {select} FROM event_observables")
    op.execute("DROP TABLE event_observables")
    op.execute("ALTER TABLE event_observables_new RENAME TO event_observables")


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _rebuild_sqlite(
            "tenant_num INTEGER NOT NULL, bucket BIGINT NOT NULL, vhash BIGINT NOT NULL,"
            " event_pk BIGINT NOT NULL",
            "tenant_num, bucket, vhash, event_pk",
            f"tenant_num, event_pk >> {BUCKET_BITS}, vhash, event_pk",
        )
    else:
        op.add_column("event_observables", sa.Column("bucket", sa.BigInteger(), nullable=True))
        op.execute(f"UPDATE event_observables SET bucket = event_pk >> {BUCKET_BITS}")
        op.alter_column("event_observables", "bucket", nullable=False)
        op.drop_constraint("pk_event_observables", "event_observables", type_="primary")
        op.create_primary_key(
            "pk_event_observables", "event_observables", ["tenant_num", "bucket", "vhash", "event_pk"]
        )
    op.create_table(
        "event_buckets",
        sa.Column("tenant_num", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("bucket", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.PrimaryKeyConstraint("tenant_num", "bucket", name=op.f("pk_event_buckets")),
        sqlite_with_rowid=False,
    )
    op.execute(
        "INSERT INTO event_buckets (tenant_num, bucket)"
        " SELECT DISTINCT tenant_num, bucket FROM event_observables"
    )


def downgrade() -> None:
    op.drop_table("event_buckets")
    if op.get_bind().dialect.name == "sqlite":
        _rebuild_sqlite(
            "tenant_num INTEGER NOT NULL, vhash BIGINT NOT NULL, event_pk BIGINT NOT NULL",
            "tenant_num, vhash, event_pk",
            "tenant_num, vhash, event_pk",
        )
        return
    op.drop_constraint("pk_event_observables", "event_observables", type_="primary")
    op.drop_column("event_observables", "bucket")
    op.create_primary_key("pk_event_observables", "event_observables", ["tenant_num", "vhash", "event_pk"])
