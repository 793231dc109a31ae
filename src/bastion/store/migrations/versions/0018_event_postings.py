"""The observable index as posting lists: one row per value and stored batch, listing the batch's events
that carry it, instead of one row per event and value.

Values repeat from event to event (hosts, users, images): on the attack samples a 2,000-event batch has
about 7,000 (value, event) pairs but 1,000 distinct values, so a batch now writes a seventh as many index
rows. The key stays (tenant, bucket, value hash) first, then the batch's first row key; ``pks`` is a JSON
array on SQLite and ``bigint[]`` on PostgreSQL, which a search expands in SQL (``json_each``,
``unnest``). Existing rows are grouped into one list per (tenant, bucket, value hash), keyed by its
lowest row key.

Revision ID: 0018
Revises: 0017
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

_KEY = ("tenant_num", "bucket", "vhash")


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    op.create_table(
        "event_postings",
        sa.Column("tenant_num", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("bucket", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("vhash", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("first_pk", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("pks", sa.Text() if sqlite else postgresql.ARRAY(sa.BigInteger()), nullable=False),
        sa.PrimaryKeyConstraint(*_KEY, "first_pk", name=op.f("pk_event_postings")),
        sqlite_with_rowid=False,
    )
    # The old table is read in its key order, so each group's row keys come in rising order.
    listed = "json_group_array(event_pk)" if sqlite else "array_agg(event_pk ORDER BY event_pk)"
    op.execute(
        "INSERT INTO event_postings (tenant_num, bucket, vhash, first_pk, pks)"
        f" SELECT tenant_num, bucket, vhash, min(event_pk), {listed}"
        " FROM (SELECT tenant_num, bucket, vhash, event_pk FROM event_observables"
        " ORDER BY tenant_num, bucket, vhash, event_pk) AS ordered"
        " GROUP BY tenant_num, bucket, vhash"
    )
    op.drop_table("event_observables")


def downgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    op.create_table(
        "event_observables",
        sa.Column("tenant_num", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("bucket", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("vhash", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("event_pk", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.PrimaryKeyConstraint(*_KEY, "event_pk", name=op.f("pk_event_observables")),
        sqlite_with_rowid=False,
    )
    expanded = (
        "SELECT DISTINCT p.tenant_num, p.bucket, p.vhash, e.value"
        " FROM event_postings AS p, json_each(p.pks) AS e"
        if sqlite
        else "SELECT DISTINCT tenant_num, bucket, vhash, unnest(pks) FROM event_postings"
    )
    op.execute(f"INSERT INTO event_observables (tenant_num, bucket, vhash, event_pk) {expanded}")
    op.drop_table("event_postings")
