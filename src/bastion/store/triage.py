"""Per-tenant triage settings and noise rules: the triage policy document and scoped suppressions.

The repository classes here read and write rows of their own tenant only; the services in
``bastion.triage`` add the audit entries.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, ForeignKey, Index, Integer, String, Table, Text

from bastion.store.tables import metadata

__all__ = ["triage_policies", "triage_suppressions"]

# One JSON document per tenant (``bastion.triage.policy.TriagePolicy``): weights, windows, fingerprints,
# auto-close, queues, SLA targets, manual-minute estimates and case templates. Absent means defaults.
triage_policies = Table(
    "triage_policies",
    metadata,
    Column("tenant_id", String(32), ForeignKey("tenants.id"), primary_key=True),
    Column("document", Text, nullable=False),
    Column("updated", BigInteger, nullable=False),
    Column("updated_by", String(200), nullable=False),
)

# A suppression closes matching alerts as they arrive (they stay stored and searchable, with the reason).
# It matches on any of: a rule id, a source, alert field values (JSON object) and one entity. Every
# suppression has an owner and an expiry.
triage_suppressions = Table(
    "triage_suppressions",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("tenant_id", String(32), ForeignKey("tenants.id"), nullable=False),
    Column("rule_id", String(200), nullable=True),
    Column("source", String(100), nullable=True),
    Column("fields", Text, nullable=False, default="{}"),
    Column("entity_type", String(20), nullable=True),
    Column("entity_value", String(2048), nullable=True),
    Column("reason", Text, nullable=True),
    Column("owner", String(200), nullable=False),
    Column("created", BigInteger, nullable=False),
    Column("created_by", String(200), nullable=False),
    Column("expires", BigInteger, nullable=False),
    Column("hits", Integer, nullable=False, default=0),
    Column("last_hit", BigInteger, nullable=True),
    Index(None, "tenant_id", "expires"),
)
