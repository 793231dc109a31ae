"""Tenants, users and API keys in the store.

These are the only lookups not scoped by a tenant: finding a tenant by name (the CLI, an admin) and an
API key by its hash (authentication, which is how the caller's tenant becomes known).
"""

from __future__ import annotations

import builtins
from typing import Any

import msgspec
from sqlalchemy import Connection, func, select, update
from sqlalchemy.exc import IntegrityError

from bastion.model import Role, Tenant
from bastion.model.tenant import User
from bastion.store._util import new_id, now_ms
from bastion.store.tables import api_keys, tenants, users

__all__ = ["ApiKeyRecord", "DuplicateError", "TenantRepository", "UserRepository"]


class DuplicateError(ValueError):
    """A name that must be unique is taken."""


class ApiKeyRecord(msgspec.Struct):
    id: str
    tenant_id: str
    tenant_name: str
    user_id: str | None
    user_name: str | None
    name: str
    role: Role
    prefix: str


def _tenant(row: Any) -> Tenant:
    return Tenant(id=row.id, name=row.name, parent_id=row.parent_id, created=row.created)


class TenantRepository:
    """Tenants and API keys: the unscoped, administrative part of the store."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def create(self, name: str, parent_id: str | None = None) -> Tenant:
        tenant = Tenant(id=new_id(), name=name, parent_id=parent_id, created=now_ms())
        try:
            with self.conn.begin_nested():
                num = self.conn.execute(select(func.coalesce(func.max(tenants.c.num), 0))).scalar_one()
                self.conn.execute(
                    tenants.insert().values(
                        id=tenant.id,
                        num=int(num) + 1,
                        name=name,
                        parent_id=parent_id,
                        created=tenant.created,
                        audit_seq=0,
                        audit_head="",
                    )
                )
        except IntegrityError:
            raise DuplicateError(f"tenant {name!r} already exists") from None
        return tenant

    def get(self, tenant_id: str) -> Tenant | None:
        row = self.conn.execute(select(tenants).where(tenants.c.id == tenant_id)).first()
        return _tenant(row) if row else None

    def by_name(self, name: str) -> Tenant | None:
        row = self.conn.execute(select(tenants).where(tenants.c.name == name)).first()
        return _tenant(row) if row else None

    def list(self) -> list[Tenant]:
        return [_tenant(r) for r in self.conn.execute(select(tenants).order_by(tenants.c.name))]

    def children(self, parent_id: str) -> builtins.list[Tenant]:
        q = select(tenants).where(tenants.c.parent_id == parent_id).order_by(tenants.c.name)
        return [_tenant(r) for r in self.conn.execute(q)]

    def add_api_key(
        self,
        tenant_id: str,
        *,
        key_hash: str,
        prefix: str,
        name: str,
        role: Role,
        user_id: str | None = None,
    ) -> str:
        key_id = new_id()
        self.conn.execute(
            api_keys.insert().values(
                id=key_id,
                tenant_id=tenant_id,
                user_id=user_id,
                name=name,
                role=role.value,
                key_hash=key_hash,
                prefix=prefix,
                created=now_ms(),
                revoked=False,
            )
        )
        return key_id

    def api_keys(self, tenant_id: str) -> builtins.list[dict[str, Any]]:
        """The tenant's keys, newest first, without their hashes."""
        q = (
            select(
                api_keys.c.id,
                api_keys.c.name,
                api_keys.c.role,
                api_keys.c.prefix,
                api_keys.c.created,
                api_keys.c.revoked,
                users.c.name.label("user"),
            )
            .outerjoin(users, users.c.id == api_keys.c.user_id)
            .where(api_keys.c.tenant_id == tenant_id)
            .order_by(api_keys.c.created.desc(), api_keys.c.id)
        )
        return [{str(k): v for k, v in r._mapping.items()} for r in self.conn.execute(q)]

    def revoke_api_key(self, tenant_id: str, key: str) -> str | None:
        """Revoke the tenant's key whose id or prefix is ``key``; returns its id, or None if none matched.

        A prefix that names several keys revokes none (the caller asks for the id instead)."""
        q = select(api_keys.c.id).where(
            api_keys.c.tenant_id == tenant_id, (api_keys.c.id == key) | (api_keys.c.prefix == key)
        )
        ids = list(self.conn.execute(q).scalars())
        if len(ids) != 1:
            if len(ids) > 1:
                raise DuplicateError(f"{key!r} names {len(ids)} keys; give the key id instead")
            return None
        self.conn.execute(update(api_keys).where(api_keys.c.id == ids[0]).values(revoked=True))
        return str(ids[0])

    def api_key_by_hash(self, key_hash: str) -> ApiKeyRecord | None:
        q = (
            select(
                api_keys.c.id,
                api_keys.c.tenant_id,
                tenants.c.name.label("tenant_name"),
                api_keys.c.user_id,
                users.c.name.label("user_name"),
                api_keys.c.name,
                api_keys.c.role,
                api_keys.c.prefix,
                users.c.disabled,
            )
            .join(tenants, tenants.c.id == api_keys.c.tenant_id)
            .outerjoin(users, users.c.id == api_keys.c.user_id)
            .where(api_keys.c.key_hash == key_hash, api_keys.c.revoked.is_(False))
        )
        row = self.conn.execute(q).first()
        if row is None or row.disabled:
            return None
        return ApiKeyRecord(
            id=row.id,
            tenant_id=row.tenant_id,
            tenant_name=row.tenant_name,
            user_id=row.user_id,
            user_name=row.user_name,
            name=row.name,
            role=Role(row.role),
            prefix=row.prefix,
        )

    def touch_api_key(self, key_id: str) -> None:
        self.conn.execute(update(api_keys).where(api_keys.c.id == key_id).values(last_used=now_ms()))


def _user(r: Any) -> User:
    return User(
        id=r.id, tenant_id=r.tenant_id, name=r.name, role=Role(r.role), email=r.email, created=r.created
    )


class UserRepository:
    """Users of one tenant."""

    def __init__(self, conn: Connection, tenant_id: str) -> None:
        self.conn = conn
        self.tenant_id = tenant_id

    def add(self, name: str, role: Role, *, email: str | None, password_hash: str | None) -> User:
        user = User(
            id=new_id(), tenant_id=self.tenant_id, name=name, role=role, email=email, created=now_ms()
        )
        try:
            with self.conn.begin_nested():
                self.conn.execute(
                    users.insert().values(
                        id=user.id,
                        tenant_id=self.tenant_id,
                        name=name,
                        email=email,
                        role=role.value,
                        password_hash=password_hash,
                        disabled=False,
                        created=user.created,
                    )
                )
        except IntegrityError:
            raise DuplicateError(f"user {name!r} already exists in this tenant") from None
        return user

    def by_name(self, name: str) -> User | None:
        row = self.conn.execute(
            select(users).where(users.c.tenant_id == self.tenant_id, users.c.name == name)
        ).first()
        return _user(row) if row else None

    def password_hash(self, name: str) -> str | None:
        return self.conn.execute(
            select(users.c.password_hash).where(
                users.c.tenant_id == self.tenant_id, users.c.name == name, users.c.disabled.is_(False)
            )
        ).scalar()

    def list(self) -> builtins.list[User]:
        q = select(users).where(users.c.tenant_id == self.tenant_id).order_by(users.c.name)
        return [_user(r) for r in self.conn.execute(q)]

    def accounts(self) -> builtins.list[dict[str, Any]]:
        """The tenant's users with their status (name, role, email, disabled, has a password), by name."""
        q = (
            select(
                users.c.id,
                users.c.name,
                users.c.role,
                users.c.email,
                users.c.disabled,
                users.c.created,
                users.c.password_hash.is_not(None).label("has_password"),
            )
            .where(users.c.tenant_id == self.tenant_id)
            .order_by(users.c.name)
        )
        return [
            {
                "id": r.id,
                "name": r.name,
                "role": Role(r.role),
                "email": r.email,
                "disabled": bool(r.disabled),
                "created": r.created,
                "has_password": bool(r.has_password),
            }
            for r in self.conn.execute(q)
        ]

    def set_role(self, name: str, role: Role) -> str | None:
        """Change a user's role, and the role of the API keys that act as them (a key made for a user
        takes the user's role); the user's id, or None when there is no such user."""
        found = self.by_name(name)
        if found is None:
            return None
        self.conn.execute(
            update(users)
            .where(users.c.tenant_id == self.tenant_id, users.c.id == found.id)
            .values(role=role.value)
        )
        self.conn.execute(
            update(api_keys)
            .where(api_keys.c.tenant_id == self.tenant_id, api_keys.c.user_id == found.id)
            .values(role=role.value)
        )
        return found.id

    def set_password_hash(self, name: str, password_hash: str) -> str | None:
        """Replace a user's password hash; the user's id, or None when there is no such user."""
        found = self.by_name(name)
        if found is None:
            return None
        self.conn.execute(
            update(users)
            .where(users.c.tenant_id == self.tenant_id, users.c.id == found.id)
            .values(password_hash=password_hash)
        )
        return found.id

    def set_disabled(self, name: str, disabled: bool) -> str | None:
        """Disable (or enable again) a user; the user's id, or None when there is no such user."""
        found = self.by_name(name)
        if found is None:
            return None
        self.conn.execute(
            update(users)
            .where(users.c.tenant_id == self.tenant_id, users.c.id == found.id)
            .values(disabled=disabled)
        )
        return found.id
