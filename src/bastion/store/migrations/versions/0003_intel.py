"""Threat intelligence: indicators, sightings, feeds, watch lists

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _tenant() -> sa.Column[str]:
    return sa.Column("tenant_id", sa.String(length=32), nullable=False)


def _tenant_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f(f"fk_{table}_tenant_id_tenants"))


def upgrade() -> None:
    op.create_table(
        "intel_indicators",
        sa.Column(
            "pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        _tenant(),
        sa.Column("type", sa.String(length=20), nullable=False),
        sa.Column("value", sa.String(length=2048), nullable=False),
        sa.Column("exact", sa.Boolean(), nullable=False),
        sa.Column("pattern", sa.Boolean(), nullable=False),
        sa.Column("confidence", sa.Integer(), nullable=False),
        sa.Column("tlp", sa.String(length=20), nullable=False),
        sa.Column("first_seen", sa.BigInteger(), nullable=True),
        sa.Column("last_seen", sa.BigInteger(), nullable=True),
        sa.Column("valid_until", sa.BigInteger(), nullable=True),
        sa.Column("created", sa.BigInteger(), nullable=False),
        sa.Column("updated", sa.BigInteger(), nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        _tenant_fk("intel_indicators"),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_intel_indicators")),
        sa.UniqueConstraint(
            "tenant_id", "type", "value", name=op.f("uq_intel_indicators_tenant_id_type_value")
        ),
    )
    op.create_index(
        op.f("ix_intel_indicators_tenant_id_updated"),
        "intel_indicators",
        ["tenant_id", "updated"],
        unique=False,
    )
    op.create_table(
        "intel_feeds",
        sa.Column("id", sa.String(length=32), nullable=False),
        _tenant(),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("format", sa.String(length=40), nullable=False),
        sa.Column("url", sa.String(length=2048), nullable=False),
        sa.Column("interval_s", sa.Integer(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("config", sa.Text(), nullable=False),
        sa.Column("etag", sa.String(length=500), nullable=True),
        sa.Column("last_modified", sa.String(length=100), nullable=True),
        sa.Column("cursor", sa.String(length=100), nullable=True),
        sa.Column("last_poll", sa.BigInteger(), nullable=True),
        sa.Column("last_success", sa.BigInteger(), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("loaded_total", sa.BigInteger(), nullable=False),
        sa.Column("created", sa.BigInteger(), nullable=False),
        _tenant_fk("intel_feeds"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_intel_feeds")),
        sa.UniqueConstraint("tenant_id", "name", name=op.f("uq_intel_feeds_tenant_id_name")),
    )
    op.create_table(
        "intel_profiles",
        _tenant(),
        sa.Column("document", sa.Text(), nullable=False),
        sa.Column("updated", sa.BigInteger(), nullable=False),
        _tenant_fk("intel_profiles"),
        sa.PrimaryKeyConstraint("tenant_id", name=op.f("pk_intel_profiles")),
    )
    op.create_table(
        "intel_triggers",
        _tenant(),
        sa.Column("key", sa.String(length=500), nullable=False),
        sa.Column("time", sa.BigInteger(), nullable=False),
        sa.Column("type", sa.String(length=40), nullable=False),
        sa.Column("document", sa.Text(), nullable=True),
        _tenant_fk("intel_triggers"),
        sa.PrimaryKeyConstraint("tenant_id", "key", name=op.f("pk_intel_triggers")),
    )
    op.create_index(
        op.f("ix_intel_triggers_tenant_id_time"), "intel_triggers", ["tenant_id", "time"], unique=False
    )
    op.create_table(
        "assets",
        _tenant(),
        sa.Column("hostname", sa.String(length=255), nullable=False),
        sa.Column("updated", sa.BigInteger(), nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        _tenant_fk("assets"),
        sa.PrimaryKeyConstraint("tenant_id", "hostname", name=op.f("pk_assets")),
    )
    op.create_table(
        "asset_ips",
        _tenant(),
        sa.Column("ip", sa.String(length=64), nullable=False),
        sa.Column("hostname", sa.String(length=255), nullable=False),
        _tenant_fk("asset_ips"),
        sa.PrimaryKeyConstraint("tenant_id", "ip", "hostname", name=op.f("pk_asset_ips")),
    )
    op.create_table(
        "identities",
        _tenant(),
        sa.Column("username", sa.String(length=255), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("updated", sa.BigInteger(), nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        _tenant_fk("identities"),
        sa.PrimaryKeyConstraint("tenant_id", "username", name=op.f("pk_identities")),
    )
    op.create_index(op.f("ix_identities_email"), "identities", ["email"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_identities_email"), table_name="identities")
    op.drop_index(op.f("ix_intel_triggers_tenant_id_time"), table_name="intel_triggers")
    for table in ("identities", "asset_ips", "assets", "intel_triggers", "intel_profiles", "intel_feeds"):
        op.drop_table(table)
    op.drop_index(op.f("ix_intel_indicators_tenant_id_updated"), table_name="intel_indicators")
    op.drop_table("intel_indicators")
