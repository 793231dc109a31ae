"""Tables of the web console: signed-in sessions (only a hash of the cookie's value is kept) and the
failed sign-ins that throttle password guessing, shared by every process behind the same store."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, ForeignKey, Index, Integer, String, Table

from bastion.store.tables import metadata

__all__ = ["web_login_failures", "web_sessions"]

web_sessions = Table(
    "web_sessions",
    metadata,
    Column("id_hash", String(64), primary_key=True),  # SHA-256 of the session cookie's random value
    Column("tenant_id", String(32), ForeignKey("tenants.id"), nullable=False),
    Column("user_id", String(32), ForeignKey("users.id"), nullable=False),
    Column("csrf", String(64), nullable=False),  # the token every form and action must carry
    Column("created", BigInteger, nullable=False),
    Column("last_seen", BigInteger, nullable=False),
    Column("expires", BigInteger, nullable=False),
    Index(None, "expires"),
)

# Keyed by "tenant/user" and by client address, so a guesser is slowed per account and per source.
web_login_failures = Table(
    "web_login_failures",
    metadata,
    Column("key", String(300), primary_key=True),
    Column("failures", Integer, nullable=False),
    Column("first_failed", BigInteger, nullable=False),
    Column("locked_until", BigInteger, nullable=True),
)
