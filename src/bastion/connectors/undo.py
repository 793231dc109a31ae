"""Undoing the changes containment actions recorded (:mod:`bastion.connectors.changes`): a person undoes
one by id (API, CLI), and a change whose expiry has passed is undone by :func:`expire_changes` (run on
a schedule by the server, or ``bastion changes expire`` from cron).

An undo runs the recorded undo action with its inputs through :func:`~bastion.connectors.call.call_action`,
exactly like a workflow step (the tenant's connection and secrets, the policy wrapper), without asking
for an approval again: the decision to lift the block was made by the person undoing it, or when the
expiry was approved. The outcome is stored on the change (``undone``/``undone_by`` or ``undo_error``)
and audited (``change.undo``, ``change.expired``). A failed expiry stays due and is tried again on the
next run.
"""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import Connection, select, update

from bastion.connectors.call import call_action
from bastion.connectors.registry import ActionContext
from bastion.store import Database
from bastion.store._util import now_ms
from bastion.store.audit import AuditRepository
from bastion.store.connectors import action_changes

__all__ = [
    "AlreadyUndone",
    "ChangeNotFound",
    "UndoError",
    "earlier_change",
    "expire_changes",
    "find_step_change",
    "get_change",
    "list_changes",
    "step_key",
    "undo_change",
]


class UndoError(Exception):
    """An undo that cannot start (unknown change, already undone); the message says why."""


class ChangeNotFound(UndoError):
    pass


class AlreadyUndone(UndoError):
    pass


def _row(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "action": row.action,
        "target": row.target,
        "prior": orjson.loads(row.prior),
        "change": orjson.loads(row.change),
        "undo_action": row.undo_action,
        "undo_inputs": orjson.loads(row.undo_inputs),
        "connection": row.connection,
        "run_id": row.run_id,
        "step_id": row.step_id,
        "created": row.created,
        "expires": row.expires,
        "undone": row.undone,
        "undone_by": row.undone_by,
        "undo_error": row.undo_error,
        "open": row.undone is None,
    }


def list_changes(
    conn: Connection, tenant_id: str, *, open_only: bool = False, limit: int = 500
) -> list[dict[str, Any]]:
    """The tenant's recorded changes, newest first; ``open_only`` leaves out the undone ones."""
    query = select(action_changes).where(action_changes.c.tenant_id == tenant_id)
    if open_only:
        query = query.where(action_changes.c.undone.is_(None))
    query = query.order_by(action_changes.c.created.desc(), action_changes.c.id).limit(limit)
    return [_row(r) for r in conn.execute(query)]


def get_change(conn: Connection, tenant_id: str, change_id: str) -> dict[str, Any] | None:
    row = conn.execute(
        select(action_changes).where(
            action_changes.c.tenant_id == tenant_id, action_changes.c.id == change_id
        )
    ).first()
    return _row(row) if row else None


def find_step_change(conn: Connection, ctx: ActionContext, action: str, target: str) -> str | None:
    """The open change a previous attempt of this same call (same idempotency key) recorded for
    ``target``: a retried step returns it instead of recording nothing (its first attempt made the
    change). Recording actions put the key in the change as ``idempotency_key``."""
    if not ctx.idempotency_key:
        return None
    query = select(action_changes.c.id, action_changes.c.change).where(
        action_changes.c.tenant_id == ctx.tenant_id,
        action_changes.c.action == action,
        action_changes.c.target == target,
        action_changes.c.undone.is_(None),
    )
    if ctx.run_id:
        query = query.where(action_changes.c.run_id == ctx.run_id)
    for row in conn.execute(query):
        if orjson.loads(row.change).get("idempotency_key") == ctx.idempotency_key:
            return str(row.id)
    return None


def step_key(ctx: ActionContext) -> dict[str, str | None]:
    """What a recorded change carries so a retry of the same step finds it (:func:`find_step_change`)."""
    return {"idempotency_key": ctx.idempotency_key or None}


def earlier_change(ctx: ActionContext, action: str, target: str) -> str | None:
    """:func:`find_step_change` in the engine's store, for an action that finds its target already
    changed: the change is this step's when a first attempt made it. Without a key, or without a store
    (so nothing could have been recorded), None."""
    if not ctx.idempotency_key:
        return None
    from bastion.respond.engine import configured_store

    try:
        db = configured_store()
    except RuntimeError:
        return None
    with db.read() as conn:
        return find_step_change(conn, ctx, action, target)


async def _run_undo(
    db: Database, tenant_id: str, change: dict[str, Any], *, actor: str, audit_action: str
) -> dict[str, Any]:
    error: str | None = None
    output: Any = None
    try:
        output = await call_action(
            db,
            tenant_id,
            change["undo_action"],
            change["undo_inputs"],
            caller="undo",
            key=f"undo:{change['id']}",
            connection_name=change["connection"],
        )
    except Exception as exc:  # an undo that fails is recorded on the change, whatever went wrong
        error = str(exc) or type(exc).__name__
    t = now_ms()
    with db.write() as conn:
        values: dict[str, Any] = (
            {"undone": t, "undone_by": actor, "undo_error": None} if error is None else {"undo_error": error}
        )
        conn.execute(
            update(action_changes)
            .where(action_changes.c.tenant_id == tenant_id, action_changes.c.id == change["id"])
            .values(**values)
        )
        AuditRepository(conn, tenant_id).append(
            actor,
            audit_action,
            "change",
            change["id"],
            {
                "action": change["action"],
                "target": change["target"],
                "undo_action": change["undo_action"],
                "ok": error is None,
                **({"error": error} if error else {}),
            },
        )
    return {
        "id": change["id"],
        "action": change["action"],
        "target": change["target"],
        "undo_action": change["undo_action"],
        "undone": error is None,
        "undone_by": actor if error is None else None,
        "error": error,
        "output": output,
    }


async def undo_change(db: Database, tenant_id: str, change_id: str, *, actor: str) -> dict[str, Any]:
    """Run the change's undo action now. Raises ChangeNotFound or AlreadyUndone; a failing undo action
    is returned (``undone: false`` with ``error``) and stored on the change as ``undo_error``."""
    with db.read() as conn:
        change = get_change(conn, tenant_id, change_id)
    if change is None:
        raise ChangeNotFound(f"no change {change_id!r} in this tenant")
    if change["undone"] is not None:
        raise AlreadyUndone(f"change {change_id} was already undone by {change['undone_by']}")
    return await _run_undo(db, tenant_id, change, actor=actor, audit_action="change.undo")


async def expire_changes(
    db: Database, *, now: int | None = None, tenant_id: str | None = None
) -> list[dict[str, Any]]:
    """Undo every open change whose expiry has passed (all tenants, or one); the outcomes, oldest first."""
    t = now if now is not None else now_ms()
    query = select(action_changes).where(
        action_changes.c.undone.is_(None),
        action_changes.c.expires.is_not(None),
        action_changes.c.expires <= t,
    )
    if tenant_id is not None:
        query = query.where(action_changes.c.tenant_id == tenant_id)
    with db.read() as conn:
        due = [(r.tenant_id, _row(r)) for r in conn.execute(query.order_by(action_changes.c.expires))]
    results = []
    for tenant, change in due:
        result = await _run_undo(db, tenant, change, actor="expiry", audit_action="change.expired")
        results.append({**result, "tenant_id": tenant, "expires": change["expires"]})
    return results
