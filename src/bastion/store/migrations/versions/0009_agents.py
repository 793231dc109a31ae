"""Agents: the runs of the specialist agents, and the workflow drafts they write

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def _tenant_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f(f"fk_{table}_tenant_id_tenants"))


def upgrade() -> None:
    op.create_table(
        "agent_runs",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("tenant_id", sa.String(length=32), nullable=False),
        sa.Column("agent", sa.String(length=50), nullable=False),
        sa.Column("objective", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("case_id", sa.String(length=32), nullable=True),
        sa.Column("input", sa.Text(), nullable=False),
        sa.Column("plan", sa.Text(), nullable=True),
        sa.Column("result", sa.Text(), nullable=True),
        sa.Column("transcript", sa.Text(), nullable=True),
        sa.Column("usage", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created", sa.BigInteger(), nullable=False),
        sa.Column("finished", sa.BigInteger(), nullable=True),
        _tenant_fk("agent_runs"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agent_runs")),
    )
    with op.batch_alter_table("agent_runs", schema=None) as b:
        b.create_index(b.f("ix_agent_runs_tenant_id_created"), ["tenant_id", "created"], unique=False)
        b.create_index(b.f("ix_agent_runs_tenant_id_case_id"), ["tenant_id", "case_id"], unique=False)
    op.create_table(
        "agent_drafts",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("tenant_id", sa.String(length=32), nullable=False),
        sa.Column("workflow_id", sa.String(length=200), nullable=False),
        sa.Column("objective", sa.Text(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("plan", sa.Text(), nullable=True),
        sa.Column("validation", sa.Text(), nullable=True),
        sa.Column("dry_run", sa.Text(), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("approval_id", sa.String(length=200), nullable=True),
        sa.Column("published_version", sa.Integer(), nullable=True),
        sa.Column("agent_run_id", sa.String(length=32), nullable=True),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("created", sa.BigInteger(), nullable=False),
        sa.Column("updated", sa.BigInteger(), nullable=False),
        _tenant_fk("agent_drafts"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agent_drafts")),
    )
    with op.batch_alter_table("agent_drafts", schema=None) as b:
        b.create_index(b.f("ix_agent_drafts_tenant_id_created"), ["tenant_id", "created"], unique=False)


def downgrade() -> None:
    op.drop_table("agent_drafts")
    op.drop_table("agent_runs")
