"""Threat-intelligence tables and their tenant-scoped repository: indicators (merged, one row per
canonical value), feeds with their polling state and health, the tenant's intel profile (owned domains,
sector, region), and the keys of preemptive triggers already raised (so each fires once).

An indicator row keeps the columns the matcher and the expiry sweep need; the rest of the indicator
(tags, links, sightings, details) is one JSON document. Row keys are integers so the in-memory matcher
can hold them cheaply.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import msgspec
import orjson
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    delete,
    func,
    or_,
    select,
    tuple_,
    update,
)

from bastion.model.intel import Indicator
from bastion.store._util import new_id, now_ms
from bastion.store.tables import ID, metadata

__all__ = [
    "FeedRow",
    "IntelRepository",
    "intel_feeds",
    "intel_indicators",
    "intel_profiles",
    "intel_triggers",
]

intel_indicators = Table(
    "intel_indicators",
    metadata,
    Column("pk", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("tenant_id", String(ID), ForeignKey("tenants.id"), nullable=False),
    Column("type", String(20), nullable=False),
    Column("value", String(2048), nullable=False),
    Column("exact", Boolean, nullable=False, default=False),
    Column("pattern", Boolean, nullable=False, default=False),
    Column("confidence", Integer, nullable=False),
    Column("tlp", String(20), nullable=False),
    Column("first_seen", BigInteger, nullable=True),
    Column("last_seen", BigInteger, nullable=True),
    Column("valid_until", BigInteger, nullable=True),
    Column("created", BigInteger, nullable=False),
    Column("updated", BigInteger, nullable=False),
    Column("document", Text, nullable=False),
    UniqueConstraint("tenant_id", "type", "value"),
    Index(None, "tenant_id", "updated"),
)

intel_feeds = Table(
    "intel_feeds",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("tenant_id", String(ID), ForeignKey("tenants.id"), nullable=False),
    Column("name", String(200), nullable=False),
    Column("format", String(40), nullable=False),
    Column("url", String(2048), nullable=False),
    Column("interval_s", Integer, nullable=False),
    Column("enabled", Boolean, nullable=False, default=True),
    Column("config", Text, nullable=False),
    Column("etag", String(500), nullable=True),
    Column("last_modified", String(100), nullable=True),
    Column("cursor", String(100), nullable=True),
    Column("last_poll", BigInteger, nullable=True),
    Column("last_success", BigInteger, nullable=True),
    Column("status", String(20), nullable=False),
    Column("last_error", Text, nullable=True),
    Column("loaded_total", BigInteger, nullable=False, default=0),
    Column("created", BigInteger, nullable=False),
    UniqueConstraint("tenant_id", "name"),
)

intel_profiles = Table(
    "intel_profiles",
    metadata,
    Column("tenant_id", String(ID), ForeignKey("tenants.id"), primary_key=True),
    Column("document", Text, nullable=False),
    Column("updated", BigInteger, nullable=False),
)

intel_triggers = Table(
    "intel_triggers",
    metadata,
    Column("tenant_id", String(ID), ForeignKey("tenants.id"), primary_key=True),
    Column("key", String(500), primary_key=True),
    Column("time", BigInteger, nullable=False),
    Column("type", String(40), nullable=False, default=""),
    # The whole trigger as JSON, so a process other than the one that loaded the intel (the workflow
    # engine) can pick up triggers raised elsewhere: ``IntelRepository.triggers(since)``.
    Column("document", Text, nullable=True),
    Index(None, "tenant_id", "time"),
)

_enc = msgspec.json.Encoder()
_dec = msgspec.json.Decoder(Indicator)


class FeedRow(msgspec.Struct, omit_defaults=True):
    id: str
    name: str
    format: str
    url: str
    interval_s: int
    enabled: bool
    config: dict[str, Any]
    status: str
    etag: str | None = None
    last_modified: str | None = None
    cursor: str | None = None
    last_poll: int | None = None
    last_success: int | None = None
    last_error: str | None = None
    loaded_total: int = 0


def _feed(row: Any) -> FeedRow:
    return FeedRow(
        id=row.id,
        name=row.name,
        format=row.format,
        url=row.url,
        interval_s=row.interval_s,
        enabled=bool(row.enabled),
        config=orjson.loads(row.config),
        status=row.status,
        etag=row.etag,
        last_modified=row.last_modified,
        cursor=row.cursor,
        last_poll=row.last_poll,
        last_success=row.last_success,
        last_error=row.last_error,
        loaded_total=int(row.loaded_total or 0),
    )


def _indicator(row: Any) -> Indicator:
    ind = _dec.decode(row.document)
    ind.id = str(row.pk)
    return ind


class IntelRepository:
    """The intel rows of one tenant."""

    def __init__(self, conn: Connection, tenant_id: str) -> None:
        self.conn = conn
        self.tenant_id = tenant_id

    # ------------------------------------------------------------------ indicators

    def find(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], Indicator]:
        """Stored indicators by (type, value)."""
        found: dict[tuple[str, str], Indicator] = {}
        t = intel_indicators.c
        for start in range(0, len(keys), 400):
            chunk = list(keys[start : start + 400])
            q = select(intel_indicators).where(
                t.tenant_id == self.tenant_id, tuple_(t.type, t.value).in_(chunk)
            )
            for row in self.conn.execute(q):
                found[(row.type, row.value)] = _indicator(row)
        return found

    def upsert(self, indicators: Sequence[Indicator]) -> list[Indicator]:
        """Insert new indicators (``id`` None) and update merged ones (``id`` set); return them with ids."""
        now = now_ms()
        out: list[Indicator] = []
        for ind in indicators:
            doc = _enc.encode(msgspec.structs.replace(ind, id=None)).decode()
            values = {
                "exact": ind.exact,
                "pattern": ind.pattern,
                "confidence": ind.confidence,
                "tlp": ind.tlp.value,
                "first_seen": ind.first_seen,
                "last_seen": ind.last_seen,
                "valid_until": ind.valid_until,
                "updated": now,
                "document": doc,
            }
            if ind.id is None:
                res = self.conn.execute(
                    intel_indicators.insert().values(
                        tenant_id=self.tenant_id, type=ind.type.value, value=ind.value, created=now, **values
                    )
                )
                pk = res.inserted_primary_key
                ind = msgspec.structs.replace(ind, id=str(pk[0]) if pk else None)
            else:
                self.conn.execute(
                    update(intel_indicators)
                    .where(
                        intel_indicators.c.tenant_id == self.tenant_id, intel_indicators.c.pk == int(ind.id)
                    )
                    .values(**values)
                )
            out.append(ind)
        return out

    def get(self, pk: int) -> Indicator | None:
        row = self.conn.execute(
            select(intel_indicators).where(
                intel_indicators.c.tenant_id == self.tenant_id, intel_indicators.c.pk == pk
            )
        ).first()
        return _indicator(row) if row else None

    def get_many(self, pks: Sequence[int]) -> dict[int, Indicator]:
        out: dict[int, Indicator] = {}
        for start in range(0, len(pks), 500):
            q = select(intel_indicators).where(
                intel_indicators.c.tenant_id == self.tenant_id,
                intel_indicators.c.pk.in_(list(pks[start : start + 500])),
            )
            for row in self.conn.execute(q):
                out[int(row.pk)] = _indicator(row)
        return out

    def iter_all(self, *, since: int | None = None) -> Iterator[Any]:
        """Rows (pk, type, value, exact, pattern, valid_until, updated), optionally changed since a time."""
        t = intel_indicators.c
        q = select(t.pk, t.type, t.value, t.exact, t.pattern, t.valid_until, t.updated).where(
            t.tenant_id == self.tenant_id
        )
        if since is not None:
            q = q.where(t.updated > since)
        yield from self.conn.execute(q.order_by(t.pk))

    def count(self) -> int:
        q = select(func.count()).select_from(intel_indicators)
        return int(self.conn.execute(q.where(intel_indicators.c.tenant_id == self.tenant_id)).scalar_one())

    def by_type(self, kind: str, *, limit: int = 100_000) -> list[Indicator]:
        q = (
            select(intel_indicators)
            .where(intel_indicators.c.tenant_id == self.tenant_id, intel_indicators.c.type == kind)
            .limit(limit)
        )
        return [_indicator(r) for r in self.conn.execute(q)]

    def live_cves_naming_software(self, now: int) -> list[Indicator]:
        """The CVE indicators, valid at ``now``, whose details name the software they affect: what a
        new asset is matched against. Filtered in the store, so an asset import does not decode every
        CVE of a tenant that loads a whole vulnerability database."""
        t = intel_indicators.c
        q = select(intel_indicators).where(
            t.tenant_id == self.tenant_id,
            t.type == "cve",
            t.document.like('%"affects"%'),
            or_(t.valid_until.is_(None), t.valid_until >= now),
        )
        return [i for i in map(_indicator, self.conn.execute(q)) if i.details.get("affects")]

    def last_change(self) -> int:
        q = select(func.max(intel_indicators.c.updated)).where(intel_indicators.c.tenant_id == self.tenant_id)
        return int(self.conn.execute(q).scalar() or 0)

    # ------------------------------------------------------------------ feeds

    def add_feed(self, name: str, fmt: str, url: str, interval_s: int, config: dict[str, Any]) -> FeedRow:
        fid = new_id()
        self.conn.execute(
            intel_feeds.insert().values(
                id=fid,
                tenant_id=self.tenant_id,
                name=name,
                format=fmt,
                url=url,
                interval_s=interval_s,
                enabled=True,
                config=orjson.dumps(config).decode(),
                status="new",
                loaded_total=0,
                created=now_ms(),
            )
        )
        feed = self.feed(name)
        assert feed is not None
        return feed

    def feed(self, name: str) -> FeedRow | None:
        row = self.conn.execute(
            select(intel_feeds).where(intel_feeds.c.tenant_id == self.tenant_id, intel_feeds.c.name == name)
        ).first()
        return _feed(row) if row else None

    def feeds(self) -> list[FeedRow]:
        q = select(intel_feeds).where(intel_feeds.c.tenant_id == self.tenant_id).order_by(intel_feeds.c.name)
        return [_feed(r) for r in self.conn.execute(q)]

    def update_feed(self, feed_id: str, **values: Any) -> None:
        self.conn.execute(
            update(intel_feeds)
            .where(intel_feeds.c.tenant_id == self.tenant_id, intel_feeds.c.id == feed_id)
            .values(**values)
        )

    def delete_feed(self, feed_id: str) -> None:
        self.conn.execute(
            delete(intel_feeds).where(intel_feeds.c.tenant_id == self.tenant_id, intel_feeds.c.id == feed_id)
        )

    # ------------------------------------------------------------------ profile, triggers

    def profile(self) -> dict[str, Any]:
        doc = self.conn.execute(
            select(intel_profiles.c.document).where(intel_profiles.c.tenant_id == self.tenant_id)
        ).scalar()
        return dict(orjson.loads(doc)) if doc else {}

    def set_profile(self, doc: dict[str, Any]) -> None:
        text = orjson.dumps(doc).decode()
        exists = self.conn.execute(
            select(intel_profiles.c.tenant_id).where(intel_profiles.c.tenant_id == self.tenant_id)
        ).first()
        if exists:
            self.conn.execute(
                update(intel_profiles)
                .where(intel_profiles.c.tenant_id == self.tenant_id)
                .values(document=text, updated=now_ms())
            )
        else:
            self.conn.execute(
                intel_profiles.insert().values(tenant_id=self.tenant_id, document=text, updated=now_ms())
            )

    def claim_trigger(self, key: str, kind: str = "", document: dict[str, Any] | None = None) -> bool:
        """Record that a trigger fired; False when it already had (so each fires once)."""
        exists = self.conn.execute(
            select(intel_triggers.c.key).where(
                intel_triggers.c.tenant_id == self.tenant_id, intel_triggers.c.key == key
            )
        ).first()
        if exists:
            return False
        self.conn.execute(
            intel_triggers.insert().values(
                tenant_id=self.tenant_id,
                key=key,
                time=now_ms(),
                type=kind,
                document=orjson.dumps(document).decode() if document is not None else None,
            )
        )
        return True

    def triggers(self, *, since: int = 0, limit: int = 1000) -> list[tuple[int, dict[str, Any]]]:
        """(time, trigger document) of triggers recorded after ``since``, oldest first."""
        t = intel_triggers.c
        q = (
            select(t.time, t.document)
            .where(t.tenant_id == self.tenant_id, t.time > since, t.document.is_not(None))
            .order_by(t.time, t.key)
            .limit(limit)
        )
        return [(int(r.time), orjson.loads(r.document)) for r in self.conn.execute(q)]
