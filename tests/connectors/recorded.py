"""A store for connector tests, and the changes containment actions recorded in it: one tenant whose
connection and vault secrets are a local vendor double's, in a migrated SQLite file the engine uses
(``record_change`` writes there; ``call_action`` and undo read the connection and secrets there)."""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import func, select

from bastion.store import Database
from bastion.store.connectors import action_changes

__all__ = ["change_count", "change_row", "changes", "tenant_store"]

_JSON = ("prior", "change", "undo_inputs")


def tenant_store(
    path: str, connection: str, config: dict[str, Any], secrets: dict[str, str]
) -> tuple[Database, str]:
    """The store at ``path`` with tenant ``acme``: ``connection`` set to ``config``, ``secrets`` in the
    vault; the engine is pointed at it."""
    from bastion.respond.engine import configure
    from bastion.tenancy.connections import set_connection
    from bastion.tenancy.secrets import set_secret
    from bastion.tenancy.service import create_tenant

    db = Database(f"sqlite:///{path}")
    db.migrate()
    configure(db)
    tenant, _ = create_tenant(db, "acme", actor="test")
    for name, value in secrets.items():
        set_secret(db, tenant.id, name, value, actor="test")
    set_connection(db, tenant.id, connection, config, actor="test")
    return db, tenant.id


def _decoded(row: Any) -> dict[str, Any]:
    out = dict(row)
    for key in _JSON:
        out[key] = orjson.loads(out[key])
    return out


def changes(db: Database, tenant_id: str) -> list[dict[str, Any]]:
    """The tenant's recorded changes, oldest first, JSON columns decoded."""
    with db.read() as conn:
        rows = conn.execute(
            select(action_changes)
            .where(action_changes.c.tenant_id == tenant_id)
            .order_by(action_changes.c.created, action_changes.c.id)
        ).mappings()
        return [_decoded(r) for r in rows]


def change_row(db: Database, change_id: str) -> dict[str, Any]:
    """One recorded change, JSON columns decoded."""
    with db.read() as conn:
        return _decoded(
            conn.execute(select(action_changes).where(action_changes.c.id == change_id)).mappings().one()
        )


def change_count(db: Database) -> int:
    with db.read() as conn:
        return int(conn.execute(select(func.count()).select_from(action_changes)).scalar_one())
