"""Dedupe window index: triage finds the open alerts of a fingerprint last seen within its batch's dedupe
windows, so the fingerprint index also holds ``last_seen`` (it replaces the fingerprint-only index)

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        op.f("ix_alerts_tenant_id_fingerprint_last_seen"), "alerts", ["tenant_id", "fingerprint", "last_seen"]
    )
    op.drop_index(op.f("ix_alerts_tenant_id_fingerprint"), table_name="alerts")


def downgrade() -> None:
    op.create_index(op.f("ix_alerts_tenant_id_fingerprint"), "alerts", ["tenant_id", "fingerprint"])
    op.drop_index(op.f("ix_alerts_tenant_id_fingerprint_last_seen"), table_name="alerts")
