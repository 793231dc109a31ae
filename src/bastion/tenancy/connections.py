"""Per-tenant connection settings: where an integration lives and what it is allowed.

A connection is a name (``abuseipdb``, ``edr``) and a small document: ``base_url``, ``headers``,
``allow_private`` (lets ``core.http_request`` reach loopback/private addresses, off by default),
``verify_tls``, ``rate_limit`` (``{"limit": N, "period_s": S}``, shared by every worker on the store:
:mod:`bastion.connectors.ratelimit`) and ``secrets`` (names in the vault the connection uses). Secrets
themselves live in the vault.
"""

from __future__ import annotations

import re
from typing import Any

import orjson
from sqlalchemy import Connection, bindparam, insert, select, update

from bastion.store import Database, TenantScope
from bastion.store._util import all_prebuilt, first_prebuilt
from bastion.store.tables import tenants
from bastion.store.workflows import lock_tenant, now_ms, respond_connections

__all__ = [
    "ConnectionError_",
    "connection_names",
    "get_connection",
    "list_connections",
    "set_connection",
    "workflow_tenant",
]

_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,99}$")
_KEYS = {"base_url", "headers", "allow_private", "verify_tls", "rate_limit", "secrets", "settings"}


class ConnectionError_(ValueError):
    """A connection document is invalid; the message names the field."""


def _check(name: str, config: dict[str, Any]) -> None:
    if not _NAME.match(name):
        raise ConnectionError_(f"invalid connection name {name!r}: lower-case letters, digits, '_', '-'")
    unknown = set(config) - _KEYS
    if unknown:
        raise ConnectionError_(f"unknown connection settings: {', '.join(sorted(unknown))}")
    if "base_url" in config and not str(config["base_url"]).startswith(
        ("http://", "https://", "ldap://", "ldaps://")
    ):
        raise ConnectionError_("base_url must start with http://, https://, ldap:// or ldaps://")
    rl = config.get("rate_limit")
    if rl is not None and (
        not isinstance(rl, dict)
        or not isinstance(rl.get("limit"), int)
        or rl["limit"] < 1
        or not isinstance(rl.get("period_s", 1), int | float)
        or rl.get("period_s", 1) <= 0
    ):
        raise ConnectionError_("rate_limit must be {limit: N >= 1, period_s: seconds > 0}")


def set_connection(db: Database, tenant_id: str, name: str, config: dict[str, Any], *, actor: str) -> None:
    _check(name, config)
    with db.write() as conn:
        lock_tenant(conn, tenant_id)
        found = get_connection(conn, tenant_id, name)
        text = orjson.dumps(config).decode()
        if found is None:
            conn.execute(
                insert(respond_connections).values(
                    tenant_id=tenant_id, name=name, config=text, updated=now_ms()
                )
            )
        else:
            conn.execute(
                update(respond_connections)
                .where(respond_connections.c.tenant_id == tenant_id, respond_connections.c.name == name)
                .values(config=text, updated=now_ms())
            )
        TenantScope(conn, tenant_id).audit.append(
            actor, "connection.set", "connection", name, {k: v for k, v in config.items() if k != "headers"}
        )


# Built once: every action call and every run start reads these.
_CONNECTION = select(respond_connections.c.config).where(
    respond_connections.c.tenant_id == bindparam("b_tenant"),
    respond_connections.c.name == bindparam("b_name"),
)
_TENANT_NAME = select(tenants.c.name).where(tenants.c.id == bindparam("b_tenant"))
_NAMES = (
    select(respond_connections.c.name)
    .where(respond_connections.c.tenant_id == bindparam("b_tenant"))
    .order_by(respond_connections.c.name)
)


def get_connection(conn: Connection, tenant_id: str, name: str) -> dict[str, Any] | None:
    row = conn.execute(_CONNECTION, {"b_tenant": tenant_id, "b_name": name}).first()
    return orjson.loads(row.config) if row else None


def connection_names(conn: Connection, tenant_id: str) -> list[str]:
    """The names of the tenant's connections, sorted: what a workflow sees as ``tenant.connections``."""
    return [str(name) for (name,) in all_prebuilt(conn, _NAMES, {"b_tenant": tenant_id})]


def workflow_tenant(conn: Connection, tenant_id: str) -> dict[str, Any]:
    """What a run's expressions see as ``tenant``: id, name and connection names. The connection names
    let a workflow act only where the tenant has the product: ``if: 'okta' in tenant.connections``."""
    return {
        "id": tenant_id,
        "name": (first_prebuilt(conn, _TENANT_NAME, {"b_tenant": tenant_id}) or (None,))[0],
        "connections": connection_names(conn, tenant_id),
    }


def list_connections(db: Database, tenant_id: str) -> list[dict[str, Any]]:
    with db.read() as conn:
        rows = conn.execute(
            select(respond_connections)
            .where(respond_connections.c.tenant_id == tenant_id)
            .order_by(respond_connections.c.name)
        )
        return [{"name": r.name, "config": orjson.loads(r.config), "updated": r.updated} for r in rows]
