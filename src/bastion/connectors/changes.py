"""Reversibility: what a high-impact action changed on a real system, and the action that puts it back.

A containment action (disable an account, contain a host, block an address) calls :func:`record_change`
with the prior state, what it changed, and the undo as another registered action with its inputs
(``ldap.enable_user`` with ``{"username": ...}``). People undo a change by id (API, CLI); a change with
an expiry is undone when it expires. Both go through the registry like any step, and are audited.
"""

from __future__ import annotations

from typing import Any

import orjson

from bastion.connectors.registry import ActionContext, ActionError
from bastion.store._util import new_id, now_ms
from bastion.store.connectors import action_changes

__all__ = ["record_change"]


def record_change(
    ctx: ActionContext,
    *,
    action: str,
    target: str,
    prior: dict[str, Any],
    change: dict[str, Any],
    undo_action: str,
    undo_inputs: dict[str, Any],
    expires: int | None = None,
) -> str:
    """Store the change an action just made (in its own transaction, so it survives the step) and return
    its id, which the action puts in its output (``change_id``). Needs the engine's store."""
    from bastion.respond.engine import configured_store

    try:
        db = configured_store()
    except RuntimeError as exc:
        raise ActionError(str(exc)) from None
    change_id = new_id()
    with db.write() as conn:
        conn.execute(
            action_changes.insert().values(
                id=change_id,
                tenant_id=ctx.tenant_id,
                action=action,
                target=target,
                prior=orjson.dumps(prior).decode(),
                change=orjson.dumps(change).decode(),
                undo_action=undo_action,
                undo_inputs=orjson.dumps(undo_inputs).decode(),
                connection=ctx.connection.get("name"),
                run_id=ctx.run_id or None,
                step_id=ctx.step_id or None,
                created=now_ms(),
                expires=expires,
            )
        )
    ctx.log(f"recorded change {change_id}: undo with {undo_action}")
    return change_id
