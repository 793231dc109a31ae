"""Parked runs: find runs waiting for an approval, and approvals past their deadline, across tenants

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(op.f("ix_workflow_runs_status"), "workflow_runs", ["status"])
    op.create_index(op.f("ix_approvals_status_deadline"), "approvals", ["status", "deadline"])


def downgrade() -> None:
    op.drop_index(op.f("ix_approvals_status_deadline"), table_name="approvals")
    op.drop_index(op.f("ix_workflow_runs_status"), table_name="workflow_runs")
