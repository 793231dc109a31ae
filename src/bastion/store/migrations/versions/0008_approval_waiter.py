"""Approvals remember which durable workflow waits on them (a run, or a for_each/parallel child)

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("approvals", schema=None) as b:
        b.add_column(sa.Column("waiter", sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("approvals", schema=None) as b:
        b.drop_column("waiter")
