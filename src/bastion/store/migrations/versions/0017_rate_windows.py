"""Rate windows: a connection's rate limit is shared by every worker on the store, so the call times
inside its window live in a table rather than in each process

Revision ID: 0017
Revises: 0016
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "respond_rate_windows",
        sa.Column("tenant_id", sa.String(length=32), nullable=False),
        sa.Column("connection", sa.String(length=200), nullable=False),
        sa.Column("calls", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_respond_rate_windows_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("tenant_id", "connection", name=op.f("pk_respond_rate_windows")),
    )


def downgrade() -> None:
    op.drop_table("respond_rate_windows")
