"""The database schema, as SQLAlchemy Core tables. Alembic migrations in ``migrations/`` create it.

Every table but ``tenants`` carries the tenant: ``tenant_id``, or in the two high-volume event tables the
tenant's small integer ``tenant_num``. Repositories filter on it in every query. Times are
epoch milliseconds (``BigInteger``), the same unit as OCSF ``time``, so range searches are integer
comparisons on both SQLite and PostgreSQL. JSON documents are stored as text written by orjson/msgspec.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects import postgresql

__all__ = [
    "alert_observables",
    "alerts",
    "api_keys",
    "audit_log",
    "case_alerts",
    "case_attachments",
    "case_comments",
    "case_entities",
    "case_observables",
    "case_tasks",
    "case_timeline",
    "cases",
    "event_buckets",
    "event_postings",
    "events",
    "metadata",
    "tenants",
    "users",
]

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

ID = 32  # 32 hex digits (store._util.new_id)


def _tenant_fk() -> Column[str]:
    return Column("tenant_id", String(ID), ForeignKey("tenants.id"), nullable=False)


tenants = Table(
    "tenants",
    metadata,
    Column("id", String(ID), primary_key=True),
    # A small integer for the same tenant, used as the key of the high-volume event tables so that their
    # indexes stay compact (a 32-character id in every index entry cost a third of ingest time).
    Column("num", Integer, nullable=False, unique=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("parent_id", String(ID), ForeignKey("tenants.id"), nullable=True),
    Column("created", BigInteger, nullable=False),
    # The head of this tenant's audit chain, moved in the same transaction as each append, so that
    # deleting the newest audit rows is detected too.
    Column("audit_seq", BigInteger, nullable=False, default=0),
    Column("audit_head", String(64), nullable=False, default=""),
)

users = Table(
    "users",
    metadata,
    Column("id", String(ID), primary_key=True),
    _tenant_fk(),
    Column("name", String(200), nullable=False),
    Column("email", String(320), nullable=True),
    Column("role", String(20), nullable=False),
    Column("password_hash", String(200), nullable=True),
    Column("disabled", Boolean, nullable=False, default=False),
    Column("created", BigInteger, nullable=False),
    UniqueConstraint("tenant_id", "name"),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(ID), primary_key=True),
    _tenant_fk(),
    Column("user_id", String(ID), ForeignKey("users.id"), nullable=True),
    Column("name", String(200), nullable=False),
    Column("role", String(20), nullable=False),
    # SHA-256 of the whole key: keys are 256 random bits, so a fast hash is safe and keeps auth cheap.
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("prefix", String(16), nullable=False),
    Column("created", BigInteger, nullable=False),
    Column("last_used", BigInteger, nullable=True),
    Column("revoked", Boolean, nullable=False, default=False),
)

events = Table(
    "events",
    metadata,
    # Assigned by the writer in blocks (store/events.py) so the observable index can point at it.
    Column("pk", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    # No foreign key: only the ingest writer adds rows, with the number it read from ``tenants`` in the same
    # transaction, and tenants are never deleted (on SQLite the key made every multi-row insert keep a
    # statement journal: see migration 0016).
    Column("tenant_num", Integer, nullable=False),
    # The event id is its content fingerprint (hex): re-ingesting the same event finds the same id.
    # ``fp`` is its first 64 bits, indexed: a compact integer key for the duplicate check and get-by-id,
    # which then compare the full id, so a 64-bit collision can never drop or return a wrong event.
    Column("id", String(32), nullable=False),
    Column("fp", BigInteger, nullable=False),
    Column("time", BigInteger, nullable=False),
    Column("ingested", BigInteger, nullable=False),
    Column("class_uid", Integer, nullable=False),
    Column("severity_id", Integer, nullable=False),
    Column("format", String(40), nullable=False),
    Column("normalized", Text, nullable=False),
    Column("raw", Text, nullable=False),
    Index(None, "tenant_num", "fp"),
    Index(None, "tenant_num", "time"),
)

# The observable index: which events carry a value, as posting lists behind the tenant, so ingest stays
# fast. A row is one value's events within one stored batch: ``vhash`` is a 64-bit BLAKE2b of the
# indexed value (see store/events.py), ``pks`` the row keys of the batch's events that carry it (a JSON
# array on SQLite, ``bigint[]`` on PostgreSQL) and ``first_pk`` the batch's first row key. Values repeat
# from event to event (hosts, users, images), so a batch writes a row per distinct value rather than one
# per event and value: about a seventh as many on the attack samples. Searches confirm the value on the
# event itself, so a hash collision can never return a wrong event. ``bucket`` (the event's row key
# divided by 2**14, see store/events.py) leads the key so that a batch's rows land in the newest bucket's
# few pages: with the hash first, every batch touched pages all over an index that grows with the store.
event_postings = Table(
    "event_postings",
    metadata,
    # No foreign key: every row points at event rows of the same tenant, which has one.
    Column("tenant_num", Integer, primary_key=True, autoincrement=False),
    Column("bucket", BigInteger, primary_key=True, autoincrement=False),
    Column("vhash", BigInteger, primary_key=True, autoincrement=False),
    Column("first_pk", BigInteger, primary_key=True, autoincrement=False),
    Column("pks", Text().with_variant(postgresql.ARRAY(BigInteger), "postgresql"), nullable=False),
    sqlite_with_rowid=False,
)

# The buckets each tenant's index rows are in: a search looks its value up in each of them.
event_buckets = Table(
    "event_buckets",
    metadata,
    Column("tenant_num", Integer, primary_key=True, autoincrement=False),
    Column("bucket", BigInteger, primary_key=True, autoincrement=False),
    sqlite_with_rowid=False,
)

alerts = Table(
    "alerts",
    metadata,
    Column("id", String(ID), primary_key=True),
    _tenant_fk(),
    Column("title", String(500), nullable=False),
    Column("severity_id", Integer, nullable=False),
    Column("time", BigInteger, nullable=False),
    Column("source", String(100), nullable=False),
    Column("external_id", String(200), nullable=True),
    Column("rule_id", String(200), nullable=True),
    Column("status", String(20), nullable=False),
    Column("case_id", String(ID), nullable=True),
    Column("created", BigInteger, nullable=False),
    Column("updated", BigInteger, nullable=False),
    Column("document", Text, nullable=False),
    # Triage (bastion.triage): the dedupe key and counters, the explained score's total, the queue it was
    # routed to, and the timestamps the metrics are computed from. ``acknowledged`` is the first
    # acknowledgement or automated action; ``closed`` the resolution, with its verdict.
    Column("fingerprint", String(64), nullable=True),
    Column("count", Integer, nullable=False, default=1, server_default="1"),
    Column("last_seen", BigInteger, nullable=True),
    Column("score", Integer, nullable=False, default=0, server_default="0"),
    Column("queue", String(100), nullable=True),
    Column("verdict", String(30), nullable=True),
    Column("auto_closed", Boolean, nullable=False, default=False, server_default="0"),
    Column("acknowledged", BigInteger, nullable=True),
    Column("closed", BigInteger, nullable=True),
    UniqueConstraint("tenant_id", "source", "external_id"),
    Index(None, "tenant_id", "time"),
    Index(None, "tenant_id", "fingerprint", "last_seen"),  # open alerts in a dedupe window
    Index(None, "tenant_id", "created"),
)

alert_observables = Table(
    "alert_observables",
    metadata,
    # No foreign keys (migration 0014): every row is written with its alert, which is never deleted.
    Column("tenant_id", String(ID), primary_key=True),
    Column("value", String(2048), primary_key=True),
    Column("type", String(20), primary_key=True),
    Column("alert_id", String(ID), primary_key=True),
    sqlite_with_rowid=False,
)

cases = Table(
    "cases",
    metadata,
    Column("id", String(ID), primary_key=True),
    _tenant_fk(),
    Column("number", Integer, nullable=False),
    Column("title", String(500), nullable=False),
    Column("description", Text, nullable=True),
    Column("severity_id", Integer, nullable=False),
    Column("status", String(20), nullable=False),
    Column("assignee", String(200), nullable=True),
    Column("created", BigInteger, nullable=False),
    Column("updated", BigInteger, nullable=False),
    # Triage: the explained score (total here, components in ``score_components``), the queue and tier
    # it is routed to, how often an SLA breach escalated it, the ATT&CK techniques and tactics its
    # alerts span, and when its newest alert fired (the correlation window is measured from it).
    Column("score", Integer, nullable=False, default=0, server_default="0"),
    Column("score_components", Text, nullable=False, default="[]", server_default="[]"),
    Column("queue", String(100), nullable=True),
    Column("tier", Integer, nullable=False, default=1, server_default="1"),
    Column("escalations", Integer, nullable=False, default=0, server_default="0"),
    Column("sla_breaches", Text, nullable=False, default="[]", server_default="[]"),
    Column("techniques", Text, nullable=False, default="[]", server_default="[]"),
    Column("tactics", Text, nullable=False, default="[]", server_default="[]"),
    Column("last_alert", BigInteger, nullable=True),
    Column("verdict", String(30), nullable=True),
    Column("custom_fields", Text, nullable=False, default="{}", server_default="{}"),
    # Lifecycle timestamps, set the first time the case reaches each state: the metrics read them.
    Column("acknowledged", BigInteger, nullable=True),
    Column("contained", BigInteger, nullable=True),
    Column("resolved", BigInteger, nullable=True),
    Column("closed", BigInteger, nullable=True),
    UniqueConstraint("tenant_id", "number"),
    Index(None, "tenant_id", "updated"),
    Index(None, "tenant_id", "status"),
)

# The correlation index: which open case has seen which entity (host, user, significant observable), when,
# and in which ATT&CK tactics. Triage looks alerts' entities up here to join them to a case.
case_entities = Table(
    "case_entities",
    metadata,
    Column("tenant_id", String(ID), ForeignKey("tenants.id"), primary_key=True),
    Column("type", String(20), primary_key=True),
    Column("value", String(2048), primary_key=True),
    Column("case_id", String(ID), ForeignKey("cases.id"), primary_key=True),
    Column("first_seen", BigInteger, nullable=False),
    Column("last_seen", BigInteger, nullable=False),
    Column("tactics", Text, nullable=False, default="[]"),
    Index(None, "case_id"),
)

# Evidence attached to a case: stored with its SHA-256 so it can be shown to be unchanged.
case_attachments = Table(
    "case_attachments",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("case_id", String(ID), ForeignKey("cases.id"), nullable=False, index=True),
    _tenant_fk(),
    Column("name", String(500), nullable=False),
    Column("content_type", String(200), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("data", LargeBinary, nullable=False),
    Column("author", String(200), nullable=False),
    Column("added", BigInteger, nullable=False),
)

case_alerts = Table(
    "case_alerts",
    metadata,
    Column("case_id", String(ID), ForeignKey("cases.id"), primary_key=True),
    Column("alert_id", String(ID), ForeignKey("alerts.id"), primary_key=True),
    _tenant_fk(),
    Column("reason", Text, nullable=True),
    Column("added", BigInteger, nullable=False),
)

case_observables = Table(
    "case_observables",
    metadata,
    Column("case_id", String(ID), ForeignKey("cases.id"), primary_key=True),
    Column("type", String(20), primary_key=True),
    Column("value", String(2048), primary_key=True),
    _tenant_fk(),
    Column("added", BigInteger, nullable=False),
)

case_comments = Table(
    "case_comments",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("case_id", String(ID), ForeignKey("cases.id"), nullable=False, index=True),
    _tenant_fk(),
    Column("author", String(200), nullable=False),
    Column("body", Text, nullable=False),
    Column("time", BigInteger, nullable=False),
)

case_tasks = Table(
    "case_tasks",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("case_id", String(ID), ForeignKey("cases.id"), nullable=False, index=True),
    _tenant_fk(),
    Column("title", String(500), nullable=False),
    Column("status", String(20), nullable=False),
    Column("assignee", String(200), nullable=True),
    Column("created", BigInteger, nullable=False),
    # The checklist order: tasks created in the same millisecond (a template's) keep their order.
    Column("position", Integer, nullable=False, default=0, server_default="0"),
)

case_timeline = Table(
    "case_timeline",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("case_id", String(ID), ForeignKey("cases.id"), nullable=False, index=True),
    _tenant_fk(),
    Column("time", BigInteger, nullable=False),
    Column("kind", String(40), nullable=False),
    Column("summary", Text, nullable=False),
    Column("actor", String(200), nullable=True),
    Column("data", Text, nullable=True),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    _tenant_fk(),
    Column("seq", BigInteger, nullable=False),
    Column("time", BigInteger, nullable=False),
    Column("actor", String(200), nullable=False),
    Column("action", String(100), nullable=False),
    Column("target_type", String(40), nullable=False),
    Column("target_id", String(200), nullable=True),
    Column("data", Text, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    UniqueConstraint("tenant_id", "seq"),
)
