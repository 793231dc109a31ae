"""Response: workflow definitions and versions, runs, step records

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def _tenant_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f(f"fk_{table}_tenant_id_tenants"))


def upgrade() -> None:
    op.create_table(
        "workflow_defs",
        sa.Column("tenant_id", sa.String(length=32), nullable=False),
        sa.Column("workflow_id", sa.String(length=100), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False, autoincrement=False),
        sa.Column("title", sa.String(length=500), nullable=False),
        sa.Column("triggers", sa.Text(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("created", sa.BigInteger(), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        _tenant_fk("workflow_defs"),
        sa.PrimaryKeyConstraint("tenant_id", "workflow_id", "version", name=op.f("pk_workflow_defs")),
    )
    op.create_table(
        "workflow_webhooks",
        sa.Column("tenant_id", sa.String(length=32), nullable=False),
        sa.Column("workflow_id", sa.String(length=100), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created", sa.BigInteger(), nullable=False),
        _tenant_fk("workflow_webhooks"),
        sa.PrimaryKeyConstraint("tenant_id", "workflow_id", name=op.f("pk_workflow_webhooks")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_workflow_webhooks_token_hash")),
    )
    op.create_table(
        "workflow_runs",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("tenant_id", sa.String(length=32), nullable=False),
        sa.Column("workflow_id", sa.String(length=100), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("trigger", sa.Text(), nullable=False),
        sa.Column("inputs", sa.Text(), nullable=False),
        sa.Column("outputs", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("waiting_step", sa.String(length=200), nullable=True),
        sa.Column("parent_run_id", sa.String(length=32), nullable=True),
        sa.Column("retry_of", sa.String(length=32), nullable=True),
        sa.Column("requested_by", sa.String(length=200), nullable=True),
        sa.Column("created", sa.BigInteger(), nullable=False),
        sa.Column("updated", sa.BigInteger(), nullable=False),
        sa.Column("finished", sa.BigInteger(), nullable=True),
        _tenant_fk("workflow_runs"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workflow_runs")),
    )
    op.create_index(op.f("ix_workflow_runs_tenant_id_created"), "workflow_runs", ["tenant_id", "created"])
    op.create_table(
        "workflow_run_steps",
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("key", sa.String(length=300), nullable=False),
        sa.Column("tenant_id", sa.String(length=32), nullable=False),
        sa.Column("step_id", sa.String(length=100), nullable=False),
        sa.Column("iteration", sa.Integer(), nullable=True),
        sa.Column("action", sa.String(length=200), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("inputs", sa.Text(), nullable=True),
        sa.Column("output", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("logs", sa.Text(), nullable=True),
        sa.Column("approval_id", sa.String(length=100), nullable=True),
        sa.Column("started", sa.BigInteger(), nullable=False),
        sa.Column("finished", sa.BigInteger(), nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=True),
        _tenant_fk("workflow_run_steps"),
        sa.ForeignKeyConstraint(
            ["run_id"], ["workflow_runs.id"], name=op.f("fk_workflow_run_steps_run_id_workflow_runs")
        ),
        sa.PrimaryKeyConstraint("run_id", "key", name=op.f("pk_workflow_run_steps")),
    )
    op.create_table(
        "respond_secrets",
        sa.Column("tenant_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("ciphertext", sa.Text(), nullable=False),
        sa.Column("created", sa.BigInteger(), nullable=False),
        sa.Column("updated", sa.BigInteger(), nullable=False),
        _tenant_fk("respond_secrets"),
        sa.PrimaryKeyConstraint("tenant_id", "name", name=op.f("pk_respond_secrets")),
    )
    op.create_table(
        "respond_connections",
        sa.Column("tenant_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("config", sa.Text(), nullable=False),
        sa.Column("updated", sa.BigInteger(), nullable=False),
        _tenant_fk("respond_connections"),
        sa.PrimaryKeyConstraint("tenant_id", "name", name=op.f("pk_respond_connections")),
    )
    op.create_table(
        "respond_policies",
        sa.Column("tenant_id", sa.String(length=32), nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.Column("updated", sa.BigInteger(), nullable=False),
        _tenant_fk("respond_policies"),
        sa.PrimaryKeyConstraint("tenant_id", name=op.f("pk_respond_policies")),
    )
    op.create_table(
        "respond_workers",
        sa.Column("executor_id", sa.String(length=100), nullable=False),
        sa.Column("host", sa.String(length=200), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started", sa.BigInteger(), nullable=False),
        sa.Column("heartbeat", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("executor_id", name=op.f("pk_respond_workers")),
    )


def downgrade() -> None:
    op.drop_table("respond_workers")
    op.drop_table("respond_policies")
    op.drop_table("respond_connections")
    op.drop_table("respond_secrets")
    op.drop_table("workflow_run_steps")
    op.drop_index(op.f("ix_workflow_runs_tenant_id_created"), table_name="workflow_runs")
    op.drop_table("workflow_runs")
    op.drop_table("workflow_webhooks")
    op.drop_table("workflow_defs")
