"""Connectors: undoable action changes, and blocklists served as External Dynamic Lists

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def _tenant_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f(f"fk_{table}_tenant_id_tenants"))


def upgrade() -> None:
    op.create_table(
        "action_changes",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("tenant_id", sa.String(length=32), nullable=False),
        sa.Column("action", sa.String(length=200), nullable=False),
        sa.Column("target", sa.Text(), nullable=False),
        sa.Column("prior", sa.Text(), nullable=False),
        sa.Column("change", sa.Text(), nullable=False),
        sa.Column("undo_action", sa.String(length=200), nullable=False),
        sa.Column("undo_inputs", sa.Text(), nullable=False),
        sa.Column("connection", sa.String(length=100), nullable=True),
        sa.Column("run_id", sa.String(length=64), nullable=True),
        sa.Column("step_id", sa.String(length=200), nullable=True),
        sa.Column("created", sa.BigInteger(), nullable=False),
        sa.Column("expires", sa.BigInteger(), nullable=True),
        sa.Column("undone", sa.BigInteger(), nullable=True),
        sa.Column("undone_by", sa.String(length=200), nullable=True),
        sa.Column("undo_error", sa.Text(), nullable=True),
        _tenant_fk("action_changes"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_action_changes")),
    )
    with op.batch_alter_table("action_changes", schema=None) as b:
        b.create_index(b.f("ix_action_changes_tenant_id_created"), ["tenant_id", "created"], unique=False)
        b.create_index(b.f("ix_action_changes_expires"), ["expires"], unique=False)
    op.create_table(
        "blocklists",
        sa.Column("tenant_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created", sa.BigInteger(), nullable=False),
        _tenant_fk("blocklists"),
        sa.PrimaryKeyConstraint("tenant_id", "name", name=op.f("pk_blocklists")),
    )
    op.create_table(
        "blocklist_entries",
        sa.Column("tenant_id", sa.String(length=32), nullable=False),
        sa.Column("list", sa.String(length=100), nullable=False),
        sa.Column("value", sa.String(length=2048), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("added_by", sa.String(length=200), nullable=False),
        sa.Column("created", sa.BigInteger(), nullable=False),
        sa.Column("expires", sa.BigInteger(), nullable=True),
        _tenant_fk("blocklist_entries"),
        sa.PrimaryKeyConstraint("tenant_id", "list", "value", name=op.f("pk_blocklist_entries")),
    )
    with op.batch_alter_table("blocklist_entries", schema=None) as b:
        b.create_index(
            b.f("ix_blocklist_entries_tenant_id_list_expires"), ["tenant_id", "list", "expires"], unique=False
        )


def downgrade() -> None:
    op.drop_table("blocklist_entries")
    op.drop_table("blocklists")
    op.drop_table("action_changes")
