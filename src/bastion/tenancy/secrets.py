"""The per-tenant secrets vault: values encrypted at rest with Fernet (AES-128-CBC + HMAC-SHA256).

The key comes from ``BASTION_SECRET_KEY`` (a Fernet key), or from a key file: ``BASTION_SECRET_KEY_FILE``,
else ``secret.key`` beside the SQLite store (its ``./var/`` folder), else ``./var/secret.key``. A missing
key file is created with mode 0600, unless the store already holds secrets (a new key could not read
them); a secret is only stored when the key reads the secrets already stored. Values are only ever
decrypted inside a running step; run records show them masked (see :mod:`bastion.connectors.policy`).
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import bindparam, delete, insert, inspect, select, update
from sqlalchemy.engine import make_url

from bastion.store import Database, TenantScope
from bastion.store.workflows import lock_tenant, now_ms, respond_secrets

__all__ = ["SecretError", "SecretsVault", "delete_secret", "list_secrets", "load_key", "set_secret"]

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,199}$")


class SecretError(ValueError):
    """A secret is missing or unreadable; the message says which and why."""


def _key_file(db: Database) -> Path:
    explicit = os.environ.get("BASTION_SECRET_KEY_FILE")
    if explicit:
        return Path(explicit)
    if db.dialect == "sqlite":
        database = make_url(db.url).database or ""
        if database and database != ":memory:" and not database.startswith("file:"):
            return Path(database).parent / "secret.key"
    return Path("var") / "secret.key"


def load_key(db: Database) -> bytes:
    env = os.environ.get("BASTION_SECRET_KEY")
    if env:
        try:
            Fernet(env.encode())
        except ValueError:
            raise SecretError("BASTION_SECRET_KEY is not a Fernet key (32 url-safe base64 bytes)") from None
        return env.encode()
    path = _key_file(db)
    if path.exists():
        return path.read_bytes().strip()
    if _store_has_secrets(db):
        raise SecretError(
            f"secret key file {path} does not exist, but the store holds secrets encrypted with another "
            "key: point BASTION_SECRET_KEY_FILE at that key file (a new key would not read them)"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    # Processes starting together (two workers) may all create the key: each writes a complete key to
    # its own file and links it into place, which succeeds for exactly one; the others read the winner's.
    # The key file therefore never exists half-written.
    fd, tmp = tempfile.mkstemp(prefix=".secret-key-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(Fernet.generate_key())
        os.chmod(tmp, 0o600)
        with contextlib.suppress(FileExistsError):  # another process won: use its key
            os.link(tmp, path)
    finally:
        os.unlink(tmp)
    return path.read_bytes().strip()


def _store_has_secrets(db: Database) -> bool:
    """Whether any tenant has a secret: they were encrypted with a key, so a new one must not be made.
    Looks at no tenant's data, only whether there is any (a store not migrated yet has none)."""
    with db.read() as conn:
        if not inspect(conn).has_table(respond_secrets.name):
            return False
        return conn.execute(select(respond_secrets.c.name).limit(1)).first() is not None


def _key_source(db: Database) -> str:
    if os.environ.get("BASTION_SECRET_KEY"):
        return "BASTION_SECRET_KEY"
    return f"the secret key file {_key_file(db)}"


# Built once: every action call reads the tenant's secrets.
_TENANT_SECRETS = select(respond_secrets.c.name, respond_secrets.c.ciphertext).where(
    respond_secrets.c.tenant_id == bindparam("b_tenant")
)


class SecretsVault:
    """Encrypt and decrypt one tenant's secrets inside the caller's transaction."""

    def __init__(self, key: bytes) -> None:
        self.fernet = Fernet(key)

    def put(self, scope: TenantScope, name: str, value: str) -> bool:
        """Store ``value``; True when the secret is new."""
        if not _NAME.match(name):
            raise SecretError(f"invalid secret name {name!r}: letters, digits, '_', '.', '-'")
        token = self.fernet.encrypt(value.encode()).decode()
        t = now_ms()
        found = scope.conn.execute(
            select(respond_secrets.c.name).where(
                respond_secrets.c.tenant_id == scope.tenant_id, respond_secrets.c.name == name
            )
        ).first()
        if found:
            scope.conn.execute(
                update(respond_secrets)
                .where(respond_secrets.c.tenant_id == scope.tenant_id, respond_secrets.c.name == name)
                .values(ciphertext=token, updated=t)
            )
            return False
        scope.conn.execute(
            insert(respond_secrets).values(
                tenant_id=scope.tenant_id, name=name, ciphertext=token, created=t, updated=t
            )
        )
        return True

    def check_key(self, scope: TenantScope) -> str | None:
        """Which secret this key cannot decrypt: one of the tenant's, else (a tenant with none yet) one of
        the store's, since one key serves every tenant; None when it reads it or there is none. One is
        enough: they were all encrypted with the same key. Another tenant's secret is not named."""
        q = select(respond_secrets.c.name, respond_secrets.c.ciphertext).limit(1)
        own = scope.conn.execute(q.where(respond_secrets.c.tenant_id == scope.tenant_id)).first()
        row = own or scope.conn.execute(q).first()
        if row is None:
            return None
        try:
            self.fernet.decrypt(row.ciphertext.encode())
        except InvalidToken:
            return f"secret {row.name!r}" if own else "the secrets of other tenants"
        return None

    def get_many(self, scope: TenantScope, names: list[str] | None = None) -> dict[str, str]:
        """Decrypted secrets (all of the tenant's, or ``names``; a missing name raises)."""
        q = _TENANT_SECRETS
        if names is not None:
            q = q.where(respond_secrets.c.name.in_(names))
        out: dict[str, str] = {}
        for row in scope.conn.execute(q, {"b_tenant": scope.tenant_id}):
            try:
                out[row.name] = self.fernet.decrypt(row.ciphertext.encode()).decode()
            except InvalidToken:
                raise SecretError(
                    f"secret {row.name!r} cannot be decrypted with this key (BASTION_SECRET_KEY changed?)"
                ) from None
        for name in names or []:
            if name not in out:
                raise SecretError(f"secret {name!r} is not set for this tenant (`bastion secret set`)")
        return out


def set_secret(db: Database, tenant_id: str, name: str, value: str, *, actor: str) -> None:
    vault = SecretsVault(load_key(db))
    with db.write() as conn:
        lock_tenant(conn, tenant_id)
        scope = TenantScope(conn, tenant_id)
        unreadable = vault.check_key(scope)
        if unreadable is not None:
            raise SecretError(
                f"{_key_source(db)} does not match this store's secrets ({unreadable} cannot be "
                "decrypted with it): use the key that encrypted them"
            )
        created = vault.put(scope, name, value)
        scope.audit.append(actor, "secret.create" if created else "secret.update", "secret", name, {})


def list_secrets(db: Database, tenant_id: str) -> list[dict[str, object]]:
    with db.read() as conn:
        rows = conn.execute(
            select(respond_secrets.c.name, respond_secrets.c.updated)
            .where(respond_secrets.c.tenant_id == tenant_id)
            .order_by(respond_secrets.c.name)
        )
        return [{"name": r.name, "updated": r.updated} for r in rows]


def delete_secret(db: Database, tenant_id: str, name: str, *, actor: str) -> bool:
    with db.write() as conn:
        gone = conn.execute(
            delete(respond_secrets).where(
                respond_secrets.c.tenant_id == tenant_id, respond_secrets.c.name == name
            )
        ).rowcount
        if gone:
            TenantScope(conn, tenant_id).audit.append(actor, "secret.delete", "secret", name, {})
    return bool(gone)
