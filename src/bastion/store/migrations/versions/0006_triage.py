"""Triage and cases: dedupe and score columns on alerts, lifecycle and score columns on cases, the case
entity index, attachments, triage policies and suppressions, and run-to-alert/case links

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def _tenant_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f(f"fk_{table}_tenant_id_tenants"))


def _case_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(["case_id"], ["cases.id"], name=op.f(f"fk_{table}_case_id_cases"))


def upgrade() -> None:
    with op.batch_alter_table("alerts", schema=None) as b:
        b.add_column(sa.Column("fingerprint", sa.String(length=64), nullable=True))
        b.add_column(sa.Column("count", sa.Integer(), nullable=False, server_default="1"))
        b.add_column(sa.Column("last_seen", sa.BigInteger(), nullable=True))
        b.add_column(sa.Column("score", sa.Integer(), nullable=False, server_default="0"))
        b.add_column(sa.Column("queue", sa.String(length=100), nullable=True))
        b.add_column(sa.Column("verdict", sa.String(length=30), nullable=True))
        b.add_column(sa.Column("auto_closed", sa.Boolean(), nullable=False, server_default="0"))
        b.add_column(sa.Column("acknowledged", sa.BigInteger(), nullable=True))
        b.add_column(sa.Column("closed", sa.BigInteger(), nullable=True))
        b.create_index(b.f("ix_alerts_tenant_id_fingerprint"), ["tenant_id", "fingerprint"], unique=False)
        b.create_index(b.f("ix_alerts_tenant_id_created"), ["tenant_id", "created"], unique=False)

    with op.batch_alter_table("cases", schema=None) as b:
        b.add_column(sa.Column("score", sa.Integer(), nullable=False, server_default="0"))
        b.add_column(sa.Column("score_components", sa.Text(), nullable=False, server_default="[]"))
        b.add_column(sa.Column("queue", sa.String(length=100), nullable=True))
        b.add_column(sa.Column("tier", sa.Integer(), nullable=False, server_default="1"))
        b.add_column(sa.Column("escalations", sa.Integer(), nullable=False, server_default="0"))
        b.add_column(sa.Column("sla_breaches", sa.Text(), nullable=False, server_default="[]"))
        b.add_column(sa.Column("techniques", sa.Text(), nullable=False, server_default="[]"))
        b.add_column(sa.Column("tactics", sa.Text(), nullable=False, server_default="[]"))
        b.add_column(sa.Column("last_alert", sa.BigInteger(), nullable=True))
        b.add_column(sa.Column("verdict", sa.String(length=30), nullable=True))
        b.add_column(sa.Column("custom_fields", sa.Text(), nullable=False, server_default="{}"))
        b.add_column(sa.Column("acknowledged", sa.BigInteger(), nullable=True))
        b.add_column(sa.Column("contained", sa.BigInteger(), nullable=True))
        b.add_column(sa.Column("resolved", sa.BigInteger(), nullable=True))
        b.add_column(sa.Column("closed", sa.BigInteger(), nullable=True))
        b.create_index(b.f("ix_cases_tenant_id_status"), ["tenant_id", "status"], unique=False)
    # The lifecycle now starts at "new" (then triaged, in progress, contained, resolved, closed).
    op.execute("UPDATE cases SET status = 'new' WHERE status = 'open'")

    with op.batch_alter_table("case_tasks", schema=None) as b:
        b.add_column(sa.Column("position", sa.Integer(), nullable=False, server_default="0"))

    op.create_table(
        "case_entities",
        sa.Column("tenant_id", sa.String(length=32), nullable=False),
        sa.Column("type", sa.String(length=20), nullable=False),
        sa.Column("value", sa.String(length=2048), nullable=False),
        sa.Column("case_id", sa.String(length=32), nullable=False),
        sa.Column("first_seen", sa.BigInteger(), nullable=False),
        sa.Column("last_seen", sa.BigInteger(), nullable=False),
        sa.Column("tactics", sa.Text(), nullable=False),
        _case_fk("case_entities"),
        _tenant_fk("case_entities"),
        sa.PrimaryKeyConstraint("tenant_id", "type", "value", "case_id", name=op.f("pk_case_entities")),
    )
    with op.batch_alter_table("case_entities", schema=None) as b:
        b.create_index(b.f("ix_case_entities_case_id"), ["case_id"], unique=False)

    op.create_table(
        "case_attachments",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("case_id", sa.String(length=32), nullable=False),
        sa.Column("tenant_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=500), nullable=False),
        sa.Column("content_type", sa.String(length=200), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("author", sa.String(length=200), nullable=False),
        sa.Column("added", sa.BigInteger(), nullable=False),
        _case_fk("case_attachments"),
        _tenant_fk("case_attachments"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_case_attachments")),
    )
    with op.batch_alter_table("case_attachments", schema=None) as b:
        b.create_index(b.f("ix_case_attachments_case_id"), ["case_id"], unique=False)

    op.create_table(
        "triage_policies",
        sa.Column("tenant_id", sa.String(length=32), nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.Column("updated", sa.BigInteger(), nullable=False),
        sa.Column("updated_by", sa.String(length=200), nullable=False),
        _tenant_fk("triage_policies"),
        sa.PrimaryKeyConstraint("tenant_id", name=op.f("pk_triage_policies")),
    )
    op.create_table(
        "triage_suppressions",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("tenant_id", sa.String(length=32), nullable=False),
        sa.Column("rule_id", sa.String(length=200), nullable=True),
        sa.Column("source", sa.String(length=100), nullable=True),
        sa.Column("fields", sa.Text(), nullable=False),
        sa.Column("entity_type", sa.String(length=20), nullable=True),
        sa.Column("entity_value", sa.String(length=2048), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("owner", sa.String(length=200), nullable=False),
        sa.Column("created", sa.BigInteger(), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("expires", sa.BigInteger(), nullable=False),
        sa.Column("hits", sa.Integer(), nullable=False),
        sa.Column("last_hit", sa.BigInteger(), nullable=True),
        _tenant_fk("triage_suppressions"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_triage_suppressions")),
    )
    with op.batch_alter_table("triage_suppressions", schema=None) as b:
        b.create_index(
            b.f("ix_triage_suppressions_tenant_id_expires"), ["tenant_id", "expires"], unique=False
        )

    with op.batch_alter_table("workflow_runs", schema=None) as b:
        b.add_column(sa.Column("alert_id", sa.String(length=32), nullable=True))
        b.add_column(sa.Column("case_id", sa.String(length=32), nullable=True))
        b.create_index(b.f("ix_workflow_runs_tenant_id_case_id"), ["tenant_id", "case_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("workflow_runs", schema=None) as b:
        b.drop_index(b.f("ix_workflow_runs_tenant_id_case_id"))
        b.drop_column("case_id")
        b.drop_column("alert_id")
    op.drop_table("triage_suppressions")
    op.drop_table("triage_policies")
    op.drop_table("case_attachments")
    op.drop_table("case_entities")
    with op.batch_alter_table("case_tasks", schema=None) as b:
        b.drop_column("position")
    op.execute("UPDATE cases SET status = 'open' WHERE status = 'new'")
    with op.batch_alter_table("cases", schema=None) as b:
        b.drop_index(b.f("ix_cases_tenant_id_status"))
        for col in (
            "closed", "resolved", "contained", "acknowledged", "custom_fields", "verdict", "last_alert",
            "tactics", "techniques", "sla_breaches", "escalations", "tier", "queue", "score_components",
            "score",
        ):
            b.drop_column(col)
    with op.batch_alter_table("alerts", schema=None) as b:
        b.drop_index(b.f("ix_alerts_tenant_id_created"))
        b.drop_index(b.f("ix_alerts_tenant_id_fingerprint"))
        for col in (
            "closed", "acknowledged", "auto_closed", "verdict", "queue", "score", "last_seen", "count",
            "fingerprint",
        ):
            b.drop_column(col)
