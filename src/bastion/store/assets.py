"""The asset and identity inventories of a tenant: hosts and people that give alerts their context.

Assets are keyed by hostname and identities by username (both lower-cased); an import or sync replaces
the stored document for a key. Lookups by address or e-mail go through small side tables so enrichment
stays one indexed query per observable.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec
from sqlalchemy import BigInteger, Column, Connection, ForeignKey, String, Table, Text, delete, func, select

from bastion.model.asset import Asset, Identity
from bastion.store._util import now_ms
from bastion.store.tables import ID, metadata

__all__ = ["InventoryRepository", "asset_ips", "assets", "identities"]

assets = Table(
    "assets",
    metadata,
    Column("tenant_id", String(ID), ForeignKey("tenants.id"), primary_key=True),
    Column("hostname", String(255), primary_key=True),
    Column("updated", BigInteger, nullable=False),
    Column("document", Text, nullable=False),
)

asset_ips = Table(
    "asset_ips",
    metadata,
    Column("tenant_id", String(ID), ForeignKey("tenants.id"), primary_key=True),
    Column("ip", String(64), primary_key=True),
    Column("hostname", String(255), primary_key=True),
)

identities = Table(
    "identities",
    metadata,
    Column("tenant_id", String(ID), ForeignKey("tenants.id"), primary_key=True),
    Column("username", String(255), primary_key=True),
    Column("email", String(320), nullable=True, index=True),
    Column("updated", BigInteger, nullable=False),
    Column("document", Text, nullable=False),
)

_enc = msgspec.json.Encoder()
_asset = msgspec.json.Decoder(Asset)
_identity = msgspec.json.Decoder(Identity)


def _document(item: Asset | Identity, key: str) -> str:
    """The stored JSON of an asset or identity, read back once before it is written: a record built
    with a wrong-typed field would otherwise be stored and break every later read of its key."""
    doc = _enc.encode(item)
    try:
        (_asset if isinstance(item, Asset) else _identity).decode(doc)
    except msgspec.ValidationError as exc:
        raise ValueError(f"{key}: {exc}") from None
    return doc.decode()


class InventoryRepository:
    """Assets and identities of one tenant."""

    def __init__(self, conn: Connection, tenant_id: str) -> None:
        self.conn = conn
        self.tenant_id = tenant_id

    def put_assets(self, items: Sequence[Asset]) -> None:
        now = now_ms()
        for a in items:
            host = a.hostname.lower()
            doc = _document(a, host)
            self.conn.execute(
                delete(assets).where(assets.c.tenant_id == self.tenant_id, assets.c.hostname == host)
            )
            self.conn.execute(
                delete(asset_ips).where(asset_ips.c.tenant_id == self.tenant_id, asset_ips.c.hostname == host)
            )
            self.conn.execute(
                assets.insert().values(tenant_id=self.tenant_id, hostname=host, updated=now, document=doc)
            )
            ips = sorted(set(a.ips))
            if ips:
                self.conn.execute(
                    asset_ips.insert(),
                    [{"tenant_id": self.tenant_id, "ip": ip, "hostname": host} for ip in ips],
                )

    def put_identities(self, items: Sequence[Identity]) -> None:
        now = now_ms()
        for i in items:
            user = i.username.lower()
            doc = _document(i, user)
            self.conn.execute(
                delete(identities).where(
                    identities.c.tenant_id == self.tenant_id, identities.c.username == user
                )
            )
            self.conn.execute(
                identities.insert().values(
                    tenant_id=self.tenant_id,
                    username=user,
                    email=i.email.lower() if i.email else None,
                    updated=now,
                    document=doc,
                )
            )

    def remove_asset(self, hostname: str) -> bool:
        """Forget an asset (a decommissioned host); True when there was one."""
        host = hostname.lower()
        mine = asset_ips.c.tenant_id == self.tenant_id
        self.conn.execute(delete(asset_ips).where(mine, asset_ips.c.hostname == host))
        q = delete(assets).where(assets.c.tenant_id == self.tenant_id, assets.c.hostname == host)
        return bool(self.conn.execute(q).rowcount)

    def remove_identity(self, username: str) -> bool:
        """Forget an identity (a user who left); True when there was one."""
        q = delete(identities).where(
            identities.c.tenant_id == self.tenant_id, identities.c.username == username.lower()
        )
        return bool(self.conn.execute(q).rowcount)

    def asset(self, hostname: str) -> Asset | None:
        doc = self.conn.execute(
            select(assets.c.document).where(
                assets.c.tenant_id == self.tenant_id, assets.c.hostname == hostname.lower()
            )
        ).scalar()
        return _asset.decode(doc) if doc else None

    def assets_by_ip(self, ip: str) -> list[Asset]:
        q = select(assets.c.document).join(
            asset_ips,
            (asset_ips.c.tenant_id == assets.c.tenant_id) & (asset_ips.c.hostname == assets.c.hostname),
        )
        q = q.where(asset_ips.c.tenant_id == self.tenant_id, asset_ips.c.ip == ip)
        return [_asset.decode(d) for d in self.conn.execute(q).scalars()]

    def all_assets(self) -> list[Asset]:
        q = select(assets.c.document).where(assets.c.tenant_id == self.tenant_id).order_by(assets.c.hostname)
        return [_asset.decode(d) for d in self.conn.execute(q).scalars()]

    def identity(self, username: str) -> Identity | None:
        doc = self.conn.execute(
            select(identities.c.document).where(
                identities.c.tenant_id == self.tenant_id, identities.c.username == username.lower()
            )
        ).scalar()
        return _identity.decode(doc) if doc else None

    def identity_by_email(self, email: str) -> Identity | None:
        doc = self.conn.execute(
            select(identities.c.document).where(
                identities.c.tenant_id == self.tenant_id, identities.c.email == email.lower()
            )
        ).first()
        return _identity.decode(doc[0]) if doc else None

    def all_identities(self) -> list[Identity]:
        q = select(identities.c.document).where(identities.c.tenant_id == self.tenant_id)
        return [_identity.decode(d) for d in self.conn.execute(q.order_by(identities.c.username)).scalars()]

    def counts(self) -> tuple[int, int]:
        a = self.conn.execute(
            select(func.count()).select_from(assets).where(assets.c.tenant_id == self.tenant_id)
        ).scalar_one()
        i = self.conn.execute(
            select(func.count()).select_from(identities).where(identities.c.tenant_id == self.tenant_id)
        ).scalar_one()
        return int(a), int(i)
