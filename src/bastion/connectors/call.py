"""Calling a registered action outside a workflow run (SLA notifications, undoing a change, expiring a
block), exactly as a workflow step would: the tenant's connection and secrets, checked inputs, and the
policy wrapper (rate limit, timeout). Approval is the caller's business: these callers act on decisions
already made (a policy, a person's undo, an expiry set when the change was approved)."""

from __future__ import annotations

from typing import Any

from bastion.connectors.policy import invoke
from bastion.connectors.ratelimit import RateLimits
from bastion.connectors.registry import ActionContext, ActionError, check_inputs, get_action
from bastion.store import Database, TenantScope
from bastion.tenancy.connections import get_connection

__all__ = ["call_action"]


async def call_action(
    db: Database,
    tenant_id: str,
    action_id: str,
    inputs: dict[str, Any],
    *,
    caller: str,
    key: str,
    connection_name: str | None = None,
    timeout_s: float = 60.0,
) -> Any:
    """Run ``action_id`` with ``inputs`` for the tenant and return its output. ``caller`` stands in the
    run id slot (``sla``, ``undo``), ``key`` is the idempotency key. Raises ActionError (and SecretError)
    with a message that says what is missing."""
    from bastion.tenancy.secrets import SecretError, SecretsVault, load_key

    defn = get_action(action_id)
    if defn is None:
        raise ActionError(f"unknown action {action_id!r}")
    name = connection_name or defn.connection
    with db.read() as conn:
        found = get_connection(conn, tenant_id, name) if name else None
        if connection_name and found is None:
            raise ActionError(f"no connection {connection_name!r} for this tenant (`bastion connection set`)")
        connection = {**(found or {}), "name": name} if name else {}
        wanted = sorted(set(defn.secrets) | set(connection.get("secrets", [])))
        secrets: dict[str, str] = {}
        if wanted:
            stored = SecretsVault(load_key(db)).get_many(TenantScope(conn, tenant_id))
            missing = [n for n in wanted if n not in stored]
            if missing:
                raise SecretError(f"{action_id} needs secret(s) {', '.join(missing)} (`bastion secret set`)")
            secrets = {n: stored[n] for n in wanted}
    problems = check_inputs(defn, inputs)
    if problems:
        raise ActionError("; ".join(m for _, m in problems))
    ctx = ActionContext(
        tenant_id=tenant_id,
        run_id=caller,
        step_id=caller,
        idempotency_key=key,
        secrets=secrets,
        connection=connection,
    )
    return await invoke(defn, inputs, ctx, limits=RateLimits(db), timeout_s=timeout_s)
