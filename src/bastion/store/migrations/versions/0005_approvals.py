"""Approvals: requests, decisions, single-use link tokens

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def _tenant_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f(f"fk_{table}_tenant_id_tenants"))


def upgrade() -> None:
    op.create_table(
        "approvals",
        sa.Column("tenant_id", sa.String(length=32), nullable=False),
        sa.Column("id", sa.String(length=200), nullable=False),
        sa.Column("run_id", sa.String(length=200), nullable=False),
        sa.Column("step_id", sa.String(length=200), nullable=False),
        sa.Column("action", sa.String(length=200), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("target", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("requested_by", sa.String(length=200), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("roles", sa.Text(), nullable=False),
        sa.Column("quorum", sa.Integer(), nullable=False),
        sa.Column("allow_requester", sa.Boolean(), nullable=False),
        sa.Column("timeout_s", sa.Float(), nullable=True),
        sa.Column("on_timeout", sa.String(length=20), nullable=False),
        sa.Column("escalate_to", sa.Text(), nullable=False),
        sa.Column("channels", sa.Text(), nullable=False),
        sa.Column("escalated", sa.Boolean(), nullable=False),
        sa.Column("requested_at", sa.BigInteger(), nullable=False),
        sa.Column("deadline", sa.BigInteger(), nullable=True),
        sa.Column("resolved_at", sa.BigInteger(), nullable=True),
        sa.Column("delivery", sa.Text(), nullable=False),
        _tenant_fk("approvals"),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_approvals")),
    )
    with op.batch_alter_table("approvals", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_approvals_tenant_id_status_requested_at"),
            ["tenant_id", "status", "requested_at"],
            unique=False,
        )
    op.create_table(
        "approval_decisions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.String(length=32), nullable=False),
        sa.Column("approval_id", sa.String(length=200), nullable=False),
        sa.Column("user", sa.String(length=200), nullable=False),
        sa.Column("decision", sa.String(length=10), nullable=False),
        sa.Column("channel", sa.String(length=20), nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("time", sa.BigInteger(), nullable=False),
        _tenant_fk("approval_decisions"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_approval_decisions")),
        sa.UniqueConstraint(
            "tenant_id", "approval_id", "user", name=op.f("uq_approval_decisions_tenant_id_approval_id_user")
        ),
    )
    op.create_table(
        "approval_link_tokens",
        sa.Column("tenant_id", sa.String(length=32), nullable=False),
        sa.Column("nonce", sa.String(length=64), nullable=False),
        sa.Column("approval_id", sa.String(length=200), nullable=False),
        sa.Column("user", sa.String(length=200), nullable=False),
        sa.Column("decision", sa.String(length=10), nullable=False),
        sa.Column("expires", sa.BigInteger(), nullable=False),
        sa.Column("used_at", sa.BigInteger(), nullable=True),
        _tenant_fk("approval_link_tokens"),
        sa.PrimaryKeyConstraint("tenant_id", "nonce", name=op.f("pk_approval_link_tokens")),
    )
    op.create_table(
        "approval_slack_users",
        sa.Column("tenant_id", sa.String(length=32), nullable=False),
        sa.Column("slack_user_id", sa.String(length=64), nullable=False),
        sa.Column("user", sa.String(length=200), nullable=False),
        _tenant_fk("approval_slack_users"),
        sa.PrimaryKeyConstraint("tenant_id", "slack_user_id", name=op.f("pk_approval_slack_users")),
    )
    op.create_table(
        "approval_settings",
        sa.Column("tenant_id", sa.String(length=32), nullable=False),
        sa.Column("slack_channel", sa.String(length=100), nullable=True),
        sa.Column("updated", sa.BigInteger(), nullable=False),
        _tenant_fk("approval_settings"),
        sa.PrimaryKeyConstraint("tenant_id", name=op.f("pk_approval_settings")),
    )


def downgrade() -> None:
    op.drop_table("approval_settings")
    op.drop_table("approval_slack_users")
    op.drop_table("approval_link_tokens")
    op.drop_table("approval_decisions")
    with op.batch_alter_table("approvals", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_approvals_tenant_id_status_requested_at"))
    op.drop_table("approvals")
