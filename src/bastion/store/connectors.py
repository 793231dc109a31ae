"""Tables of the response connectors: the changes containment actions made (so each can be undone, by a
person or by its expiry), and the blocklists Bastion serves to firewalls as External Dynamic Lists.

Repositories for them live in the modules that own the behaviour (``bastion.connectors.changes``,
``bastion.connectors.edl``); every query filters on the tenant.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, ForeignKey, Index, String, Table, Text

from bastion.store.tables import metadata

__all__ = ["action_changes", "blocklist_entries", "blocklists"]

# What a high-impact action changed on a real system, and how to put it back: the undo is another
# registered action with its inputs. ``expires`` undoes it automatically (a block for 24 hours).
action_changes = Table(
    "action_changes",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("tenant_id", String(32), ForeignKey("tenants.id"), nullable=False),
    Column("action", String(200), nullable=False),
    Column("target", Text, nullable=False),
    Column("prior", Text, nullable=False),  # JSON: the state before the change
    Column("change", Text, nullable=False),  # JSON: what was changed
    Column("undo_action", String(200), nullable=False),
    Column("undo_inputs", Text, nullable=False),  # JSON
    Column("connection", String(100), nullable=True),
    Column("run_id", String(64), nullable=True),
    Column("step_id", String(200), nullable=True),
    Column("created", BigInteger, nullable=False),
    Column("expires", BigInteger, nullable=True),
    Column("undone", BigInteger, nullable=True),
    Column("undone_by", String(200), nullable=True),
    Column("undo_error", Text, nullable=True),
    Index(None, "tenant_id", "created"),
    Index(None, "expires"),
)

# A named blocklist of a tenant, served at /edl/{tenant}/{list}.txt to holders of its token.
blocklists = Table(
    "blocklists",
    metadata,
    Column("tenant_id", String(32), ForeignKey("tenants.id"), primary_key=True),
    Column("name", String(100), primary_key=True),
    Column("token_hash", String(64), nullable=False),  # SHA-256 of the random token
    Column("created", BigInteger, nullable=False),
)

blocklist_entries = Table(
    "blocklist_entries",
    metadata,
    Column("tenant_id", String(32), ForeignKey("tenants.id"), primary_key=True),
    Column("list", String(100), primary_key=True),
    Column("value", String(2048), primary_key=True),
    Column("kind", String(20), nullable=False),  # ip, cidr, domain, url
    Column("reason", Text, nullable=True),
    Column("added_by", String(200), nullable=False),
    Column("created", BigInteger, nullable=False),
    Column("expires", BigInteger, nullable=True),
    Index(None, "tenant_id", "list", "expires"),
)
