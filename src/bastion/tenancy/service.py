"""Tenancy operations: tenants, API keys, users and authentication, each state change audited."""

from __future__ import annotations

import re
from typing import Any

import msgspec

from bastion.model import Role, Tenant
from bastion.model.tenant import User
from bastion.store import Database, TenantRepository, TenantScope
from bastion.tenancy.keys import hash_api_key, hash_password, new_api_key

__all__ = [
    "MIN_PASSWORD",
    "NotFoundError",
    "Principal",
    "TenancyError",
    "add_user",
    "authenticate",
    "check_password",
    "create_api_key",
    "create_tenant",
    "list_api_keys",
    "list_users",
    "require_tenant",
    "revoke_api_key",
    "set_user_disabled",
    "set_user_password",
    "set_user_role",
]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


class TenancyError(ValueError):
    """A user's mistake in a tenancy operation; the message says what to do."""


class NotFoundError(TenancyError):
    pass


class Principal(msgspec.Struct, frozen=True):
    """Who is calling: the tenant, the role, and the key (and user, when the key acts as one)."""

    tenant_id: str
    tenant_name: str
    role: Role
    key_id: str | None = None
    user: str | None = None

    @property
    def actor(self) -> str:
        """How this caller is named in the audit log."""
        return f"user:{self.user}" if self.user else f"apikey:{self.key_id}"


def _check_name(kind: str, name: str) -> None:
    if not _NAME.match(name):
        raise TenancyError(
            f"invalid {kind} name {name!r}: use 1-100 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )


def require_tenant(repo: TenantRepository, name: str) -> Tenant:
    tenant = repo.by_name(name)
    if tenant is None:
        raise NotFoundError(f"no tenant named {name!r}; `bastion tenant list` shows the tenants")
    return tenant


def create_tenant(
    db: Database, name: str, *, actor: str = "cli", parent: str | None = None
) -> tuple[Tenant, str]:
    """Create a tenant and its first (admin) API key; the key is returned once and stored hashed."""
    _check_name("tenant", name)
    key = new_api_key()
    with db.write() as conn:
        repo = TenantRepository(conn)
        parent_id = require_tenant(repo, parent).id if parent else None
        tenant = repo.create(name, parent_id)
        key_id = repo.add_api_key(
            tenant.id, key_hash=hash_api_key(key), prefix=key[:12], name="initial", role=Role.ADMIN
        )
        audit = TenantScope(conn, tenant.id).audit
        audit.append(actor, "tenant.create", "tenant", tenant.id, {"name": name, "parent": parent})
        audit.append(actor, "apikey.create", "apikey", key_id, {"name": "initial", "role": "admin"})
    return tenant, key


def create_api_key(
    db: Database,
    tenant_name: str,
    *,
    role: Role = Role.ADMIN,
    name: str = "cli",
    user: str | None = None,
    actor: str = "cli",
) -> str:
    """Another key for a tenant. With ``user``, the key acts as that user and takes the user's role."""
    key = new_api_key()
    with db.write() as conn:
        repo = TenantRepository(conn)
        tenant = require_tenant(repo, tenant_name)
        scope = TenantScope(conn, tenant.id)
        user_id = None
        if user is not None:
            found = scope.users.by_name(user)
            if found is None:
                raise NotFoundError(f"no user {user!r} in tenant {tenant_name!r}")
            user_id, role = found.id, found.role
        key_id = repo.add_api_key(
            tenant.id, key_hash=hash_api_key(key), prefix=key[:12], name=name, role=role, user_id=user_id
        )
        scope.audit.append(
            actor, "apikey.create", "apikey", key_id, {"name": name, "role": role.value, "user": user}
        )
    return key


def list_api_keys(db: Database, tenant_name: str) -> list[dict[str, Any]]:
    """The tenant's API keys (id, label, role, user, prefix, created, revoked); never the key or its hash."""
    with db.read() as conn:
        repo = TenantRepository(conn)
        return repo.api_keys(require_tenant(repo, tenant_name).id)


def revoke_api_key(db: Database, tenant_name: str, key: str, *, actor: str = "cli") -> str:
    """Revoke a key by its id or its printed prefix (``bst_...``): it stops authenticating at once."""
    with db.write() as conn:
        repo = TenantRepository(conn)
        tenant = require_tenant(repo, tenant_name)
        key_id = repo.revoke_api_key(tenant.id, key)
        if key_id is None:
            raise NotFoundError(
                f"no API key {key!r} in tenant {tenant_name!r}; `bastion apikey list` shows them"
            )
        TenantScope(conn, tenant.id).audit.append(actor, "apikey.revoke", "apikey", key_id, {})
    return key_id


#: The shortest password Bastion takes, however it is set (CLI, API, console).
MIN_PASSWORD = 10


def check_password(password: str) -> None:
    """Raise TenancyError when ``password`` is too short: one rule for every way a password is set."""
    if len(password) < MIN_PASSWORD:
        raise TenancyError(f"a password needs at least {MIN_PASSWORD} characters")


def add_user(
    db: Database,
    tenant_name: str,
    name: str,
    role: Role,
    *,
    email: str | None = None,
    password: str | None = None,
    actor: str = "cli",
) -> User:
    _check_name("user", name)
    if password is not None:
        check_password(password)
    if email is not None and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", email):
        raise TenancyError(f"invalid e-mail address {email!r}")
    with db.write() as conn:
        tenant = require_tenant(TenantRepository(conn), tenant_name)
        scope = TenantScope(conn, tenant.id)
        user = scope.users.add(
            name, role, email=email, password_hash=hash_password(password) if password else None
        )
        scope.audit.append(
            actor, "user.create", "user", user.id, {"name": name, "role": role.value, "email": email}
        )
    return user


def list_users(db: Database, tenant_id: str) -> list[dict[str, Any]]:
    """The tenant's users with role and status (never a password hash)."""
    with db.read() as conn:
        return TenantScope(conn, tenant_id).users.accounts()


def set_user_role(db: Database, tenant_id: str, name: str, role: Role, *, actor: str) -> None:
    """Give a user another role; their API keys that act as them take it at once."""
    with db.write() as conn:
        scope = TenantScope(conn, tenant_id)
        before = scope.users.by_name(name)
        user_id = scope.users.set_role(name, role)
        if before is None or user_id is None:
            raise NotFoundError(f"no user {name!r} in this tenant")
        scope.audit.append(
            actor, "user.role", "user", user_id, {"name": name, "from": before.role.value, "role": role.value}
        )


def set_user_password(db: Database, tenant_id: str, name: str, password: str, *, actor: str) -> str:
    """Give a user a new password (argon2-hashed; the audit entry holds no trace of it). Returns the
    user's id."""
    check_password(password)
    with db.write() as conn:
        scope = TenantScope(conn, tenant_id)
        user_id = scope.users.set_password_hash(name, hash_password(password))
        if user_id is None:
            raise NotFoundError(f"no user {name!r} in this tenant")
        scope.audit.append(actor, "user.password", "user", user_id, {"name": name})
    return user_id


def set_user_disabled(db: Database, tenant_id: str, name: str, disabled: bool, *, actor: str) -> None:
    """Disable a user (no sign-in, their API keys stop working) or enable them again."""
    with db.write() as conn:
        scope = TenantScope(conn, tenant_id)
        user_id = scope.users.set_disabled(name, disabled)
        if user_id is None:
            raise NotFoundError(f"no user {name!r} in this tenant")
        scope.audit.append(
            actor, "user.disable" if disabled else "user.enable", "user", user_id, {"name": name}
        )


def authenticate(db: Database, key: str) -> Principal | None:
    """The caller behind an API key, or None for an unknown or revoked key."""
    with db.read() as conn:
        record = TenantRepository(conn).api_key_by_hash(hash_api_key(key))
    if record is None:
        return None
    return Principal(
        tenant_id=record.tenant_id,
        tenant_name=record.tenant_name,
        role=record.role,
        key_id=record.id,
        user=record.user_name,
    )
