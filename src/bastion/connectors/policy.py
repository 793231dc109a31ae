"""Policy around actions, applied by wrappers and never inside an action: approval (which calls need
one), tenant scoping (an action only ever gets its own tenant's secrets and connection), audit (the
engine appends an ``action.call`` entry with masked inputs for every call), per-connection rate
limits (shared by every worker: :mod:`bastion.connectors.ratelimit`), and secret masking in whatever is
recorded.

The tenant's policy is a small document (``respond_policies``): by default every ``high``-impact action
needs an approval by the ``approver`` role; ``waivers`` drop that requirement when their condition
holds, e.g. ``{"action": "edr.isolate_host", "condition": "${{ inputs.host is match('lab-') }}"}``.
"""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import orjson
from sqlalchemy import Connection, bindparam, insert, select, update

from bastion.connectors.cache import TtlCache
from bastion.connectors.ratelimit import RateLimits
from bastion.connectors.registry import ActionContext, ActionDef, ActionError
from bastion.store._util import first_prebuilt
from bastion.store.workflows import now_ms, respond_policies

__all__ = [
    "DEFAULT_POLICY",
    "MASK",
    "RESULTS",
    "approval_for",
    "get_policy",
    "invoke",
    "mask",
    "set_policy",
]

MASK = "***"
DEFAULT_POLICY: dict[str, Any] = {
    "require_approval": ["high"],
    "default_approval": {"roles": ["approver"], "quorum": 1, "on_timeout": "deny", "timeout_s": 86400.0},
    "waivers": [],
}


def mask(value: Any, secrets: list[str] | tuple[str, ...] | set[str]) -> Any:
    """``value`` with every occurrence of a secret value replaced by ``***`` (recursively)."""
    hidden = sorted((s for s in secrets if s and len(s) >= 3), key=len, reverse=True)
    if not hidden:
        return value

    def walk(v: Any) -> Any:
        if isinstance(v, str):
            for s in hidden:
                if s in v:
                    v = v.replace(s, MASK)
            return v
        if isinstance(v, list | tuple):
            return [walk(x) for x in v]
        if isinstance(v, dict):
            return {k: walk(x) for k, x in v.items()}
        return v

    return walk(value)


# Answers of read actions that declare ``cache_ttl_s``, by tenant, action, connection and inputs.
RESULTS = TtlCache()


async def invoke(
    defn: ActionDef,
    inputs: dict[str, Any],
    ctx: ActionContext,
    *,
    limits: RateLimits | None = None,
    timeout_s: float | None = None,
) -> Any:
    """Call an action under its connection's rate limit and the step's timeout. The limit is the
    connection's ``rate_limit``, else the action's default quota, counted across every worker on the store
    (``limits``; only a call without a limit may go without it); a wait is noted in the call's logs. A
    read action that declares ``cache_ttl_s`` answers from the cache first, which costs no quota."""
    cache_key: tuple[str, ...] | None = None
    if defn.cache_ttl_s:
        where = f"{ctx.connection.get('name', '')} {ctx.connection.get('base_url', '')}"
        asked = orjson.dumps(inputs, option=orjson.OPT_SORT_KEYS).decode()
        cache_key = (ctx.tenant_id, defn.id, where, asked)
        cached = RESULTS.get(cache_key)
        if cached is not None:
            ctx.log(f"{defn.id}: answered from the cache")
            return copy.deepcopy(cached)
    rl = ctx.connection.get("rate_limit")
    limit_period = (int(rl["limit"]), float(rl.get("period_s", 1))) if rl else defn.rate_limit
    if limit_period is not None:
        if limits is None:
            raise ActionError(f"{defn.id}: a rate-limited call needs the store's rate limits")
        name = str(ctx.connection.get("name") or defn.connection or defn.id)
        limit, period_s = limit_period
        _, waited = await limits.acquire(ctx.tenant_id, name, limit, period_s)
        if waited > 0:
            ctx.log(f"waited {waited:.2f} s for connection {name}'s rate limit ({limit} per {period_s:g} s)")
    call = defn.fn(**inputs, ctx=ctx)
    if timeout_s is None:
        output = await call
    else:
        try:
            output = await asyncio.wait_for(call, timeout_s)
        except TimeoutError:
            raise ActionError(f"{defn.id} timed out after {timeout_s:g}s") from None
    if cache_key is not None and defn.cache_ttl_s:
        RESULTS.put(cache_key, copy.deepcopy(output), defn.cache_ttl_s)
    return output


# Built once: every action call reads the policy.
_POLICY = select(respond_policies.c.document).where(respond_policies.c.tenant_id == bindparam("b_tenant"))


def get_policy(conn: Connection, tenant_id: str) -> dict[str, Any]:
    row = first_prebuilt(conn, _POLICY, {"b_tenant": tenant_id})  # every workflow step reads it
    if row is None:
        return dict(DEFAULT_POLICY)
    return {**DEFAULT_POLICY, **orjson.loads(row[0])}


def set_policy(conn: Connection, tenant_id: str, document: dict[str, Any]) -> None:
    unknown = set(document) - set(DEFAULT_POLICY)
    if unknown:
        raise ValueError(f"unknown policy keys: {', '.join(sorted(unknown))}")
    for impact in document.get("require_approval", []):
        if impact not in ("read", "low", "high"):
            raise ValueError(f"require_approval: unknown impact {impact!r}")
    text = orjson.dumps(document).decode()
    found = conn.execute(
        select(respond_policies.c.tenant_id).where(respond_policies.c.tenant_id == tenant_id)
    ).first()
    if found:
        conn.execute(
            update(respond_policies)
            .where(respond_policies.c.tenant_id == tenant_id)
            .values(document=text, updated=now_ms())
        )
    else:
        conn.execute(insert(respond_policies).values(tenant_id=tenant_id, document=text, updated=now_ms()))


def approval_for(
    policy: dict[str, Any], defn: ActionDef, step_approval: dict[str, Any] | None, context: dict[str, Any]
) -> dict[str, Any] | None:
    """The approval a call needs: the step's own block, else the policy's for the action's impact."""
    if step_approval is not None:
        return step_approval
    if defn.impact not in policy.get("require_approval", []):
        return None
    from bastion.respond.expr import ExpressionError, render

    for waiver in policy.get("waivers", []):
        if waiver.get("action") not in (None, defn.id):
            continue
        cond = waiver.get("condition")
        if cond is None:
            return None
        try:
            if render(cond, context):
                return None
        except ExpressionError:
            continue  # a waiver that cannot be evaluated does not waive
    return dict(policy.get("default_approval") or DEFAULT_POLICY["default_approval"])
