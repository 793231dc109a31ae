"""Tables of the agent layer: every agent run (its objective, plan, result, transcript and budget use),
and the workflow drafts the construction agent saves, which need an approval before they are published.

Repositories live with the behaviour (``bastion.agents``); every query filters on the tenant.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, ForeignKey, Index, Integer, String, Table, Text

from bastion.store.tables import metadata

__all__ = ["agent_drafts", "agent_runs"]

# One run of one agent. ``status``: running, waiting_approval, succeeded, failed, stopped (a budget or a
# guardrail ended it). JSON columns are text written by orjson.
agent_runs = Table(
    "agent_runs",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("tenant_id", String(32), ForeignKey("tenants.id"), nullable=False),
    Column("agent", String(50), nullable=False),  # intel, malware, troubleshoot, design, construct, docs, ...
    Column("objective", Text, nullable=False),
    Column("status", String(20), nullable=False),
    Column("model", String(200), nullable=False),  # "offline" for the deterministic reasoner
    Column("actor", String(200), nullable=False),
    Column("case_id", String(32), nullable=True),
    Column("input", Text, nullable=False),  # JSON: what the agent was given
    Column("plan", Text, nullable=True),  # JSON
    Column("result", Text, nullable=True),  # JSON: the validated typed output
    Column("transcript", Text, nullable=True),  # JSON: messages, tool calls and results
    Column("usage", Text, nullable=True),  # JSON: steps, tokens, seconds against the budgets
    Column("error", Text, nullable=True),
    Column("created", BigInteger, nullable=False),
    Column("finished", BigInteger, nullable=True),
    Index(None, "tenant_id", "created"),
    Index(None, "tenant_id", "case_id"),
)

# A workflow the construction agent wrote and validated. ``status``: draft, pending (publishing asked,
# waiting for its approval), published, rejected.
agent_drafts = Table(
    "agent_drafts",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("tenant_id", String(32), ForeignKey("tenants.id"), nullable=False),
    Column("workflow_id", String(200), nullable=False),
    Column("objective", Text, nullable=False),
    Column("source", Text, nullable=False),  # the YAML
    Column("plan", Text, nullable=True),  # JSON
    Column("validation", Text, nullable=True),  # JSON: problems found (empty when valid)
    Column("dry_run", Text, nullable=True),  # JSON: the simulated run
    Column("status", String(20), nullable=False),
    Column("approval_id", String(200), nullable=True),
    Column("published_version", Integer, nullable=True),
    Column("agent_run_id", String(32), nullable=True),
    Column("created_by", String(200), nullable=False),
    Column("created", BigInteger, nullable=False),
    Column("updated", BigInteger, nullable=False),
    Index(None, "tenant_id", "created"),
)
