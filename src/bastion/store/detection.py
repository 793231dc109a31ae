"""Per-tenant detection settings: enabled rule packs, single-rule overrides, and suppressions.

A pack is a named path (file, folder or zip of Sigma rules) a tenant enables; a rule override turns one
rule (by id) off or back on; a suppression drops matches of a rule (or any rule) whose event carries
given field values, until it expires. The repository only reads and writes rows of its own tenant;
services (``bastion.detect.tenant``) add the audit entries.
"""

from __future__ import annotations

from typing import Any

import msgspec
import orjson
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    ForeignKey,
    String,
    Table,
    Text,
    UniqueConstraint,
    delete,
    select,
    update,
)

from bastion.store._util import new_id, now_ms
from bastion.store.tables import metadata

__all__ = [
    "DetectionRepository",
    "PackRow",
    "SuppressionRow",
    "detection_packs",
    "detection_rule_overrides",
    "detection_suppressions",
]

detection_packs = Table(
    "detection_packs",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("tenant_id", String(32), ForeignKey("tenants.id"), nullable=False),
    Column("name", String(200), nullable=False),
    Column("path", Text, nullable=False),
    Column("enabled", Boolean, nullable=False),
    Column("created", BigInteger, nullable=False),
    UniqueConstraint("tenant_id", "name"),
)

detection_rule_overrides = Table(
    "detection_rule_overrides",
    metadata,
    Column("tenant_id", String(32), ForeignKey("tenants.id"), primary_key=True),
    Column("rule_id", String(200), primary_key=True),
    Column("enabled", Boolean, nullable=False),
    Column("updated", BigInteger, nullable=False),
)

detection_suppressions = Table(
    "detection_suppressions",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("tenant_id", String(32), ForeignKey("tenants.id"), nullable=False),
    Column("rule_id", String(200), nullable=True),
    Column("fields", Text, nullable=False),
    Column("reason", Text, nullable=True),
    Column("expires", BigInteger, nullable=True),
    Column("created", BigInteger, nullable=False),
    Column("created_by", String(200), nullable=False),
)


class PackRow(msgspec.Struct):
    id: str
    name: str
    path: str
    enabled: bool
    created: int


class SuppressionRow(msgspec.Struct):
    id: str
    rule_id: str | None
    fields: dict[str, str]
    reason: str | None
    expires: int | None
    created: int
    created_by: str


class DetectionRepository:
    """Detection settings of one tenant."""

    def __init__(self, conn: Connection, tenant_id: str) -> None:
        self.conn = conn
        self.tenant_id = tenant_id

    # packs
    def add_pack(self, name: str, path: str, enabled: bool = True) -> PackRow:
        row = PackRow(id=new_id(), name=name, path=path, enabled=enabled, created=now_ms())
        self.conn.execute(
            detection_packs.insert().values(tenant_id=self.tenant_id, **msgspec.structs.asdict(row))
        )
        return row

    def pack(self, name: str) -> PackRow | None:
        r = self.conn.execute(
            select(detection_packs).where(
                detection_packs.c.tenant_id == self.tenant_id, detection_packs.c.name == name
            )
        ).first()
        return PackRow(r.id, r.name, r.path, bool(r.enabled), int(r.created)) if r else None

    def set_pack_enabled(self, name: str, enabled: bool) -> bool:
        res = self.conn.execute(
            update(detection_packs)
            .where(detection_packs.c.tenant_id == self.tenant_id, detection_packs.c.name == name)
            .values(enabled=enabled)
        )
        return bool(res.rowcount)

    def packs(self) -> list[PackRow]:
        rows = self.conn.execute(
            select(detection_packs)
            .where(detection_packs.c.tenant_id == self.tenant_id)
            .order_by(detection_packs.c.name)
        )
        return [PackRow(r.id, r.name, r.path, bool(r.enabled), int(r.created)) for r in rows]

    # single rules
    def set_rule_enabled(self, rule_id: str, enabled: bool) -> None:
        t = detection_rule_overrides
        self.conn.execute(delete(t).where(t.c.tenant_id == self.tenant_id, t.c.rule_id == rule_id))
        self.conn.execute(
            t.insert().values(tenant_id=self.tenant_id, rule_id=rule_id, enabled=enabled, updated=now_ms())
        )

    def disabled_rules(self) -> set[str]:
        t = detection_rule_overrides
        q = select(t.c.rule_id).where(t.c.tenant_id == self.tenant_id, t.c.enabled.is_(False))
        return set(self.conn.execute(q).scalars())

    # suppressions
    def add_suppression(
        self,
        fields: dict[str, str],
        *,
        rule_id: str | None,
        reason: str | None,
        expires: int | None,
        actor: str,
    ) -> SuppressionRow:
        row = SuppressionRow(
            id=new_id(),
            rule_id=rule_id,
            fields=dict(fields),
            reason=reason,
            expires=expires,
            created=now_ms(),
            created_by=actor,
        )
        values: dict[str, Any] = msgspec.structs.asdict(row)
        values["fields"] = orjson.dumps(row.fields, option=orjson.OPT_SORT_KEYS).decode()
        self.conn.execute(detection_suppressions.insert().values(tenant_id=self.tenant_id, **values))
        return row

    def remove_suppression(self, sid: str) -> bool:
        t = detection_suppressions
        res = self.conn.execute(delete(t).where(t.c.tenant_id == self.tenant_id, t.c.id == sid))
        return bool(res.rowcount)

    def suppressions(self, *, active_at: int | None = None) -> list[SuppressionRow]:
        t = detection_suppressions
        q = select(t).where(t.c.tenant_id == self.tenant_id)
        if active_at is not None:
            q = q.where((t.c.expires.is_(None)) | (t.c.expires > active_at))
        rows = self.conn.execute(q.order_by(t.c.created, t.c.id))
        return [
            SuppressionRow(
                r.id,
                r.rule_id,
                orjson.loads(r.fields),
                r.reason,
                int(r.expires) if r.expires is not None else None,
                int(r.created),
                r.created_by,
            )
            for r in rows
        ]
