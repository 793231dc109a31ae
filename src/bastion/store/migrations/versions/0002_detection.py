"""Detection: tenant rule packs, rule overrides, suppressions, correlation state

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "detection_packs",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("tenant_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_detection_packs_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_detection_packs")),
        sa.UniqueConstraint("tenant_id", "name", name=op.f("uq_detection_packs_tenant_id_name")),
    )
    op.create_table(
        "detection_rule_overrides",
        sa.Column("tenant_id", sa.String(length=32), nullable=False),
        sa.Column("rule_id", sa.String(length=200), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("updated", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_detection_rule_overrides_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("tenant_id", "rule_id", name=op.f("pk_detection_rule_overrides")),
    )
    op.create_table(
        "detection_suppressions",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("tenant_id", sa.String(length=32), nullable=False),
        sa.Column("rule_id", sa.String(length=200), nullable=True),
        sa.Column("fields", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("expires", sa.BigInteger(), nullable=True),
        sa.Column("created", sa.BigInteger(), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_detection_suppressions_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_detection_suppressions")),
    )


def downgrade() -> None:
    op.drop_table("detection_suppressions")
    op.drop_table("detection_rule_overrides")
    op.drop_table("detection_packs")
