"""SentinelOne: read agents, disconnect an endpoint from the network and reconnect it.

The management API (``/web/api/v2.1``) takes ``Authorization: ApiToken <token>``, pages lists with
``pagination.nextCursor`` and answers errors as ``{"errors": [{"code", "detail", "title"}]}``. The
agent's ``networkStatus`` (``connected``, ``connecting``, ``disconnecting``, ``disconnected``) is read
first, so disconnecting an agent already cut off succeeds without a second request and says so.
"""

from __future__ import annotations

from typing import Any

from bastion.connectors.changes import record_change
from bastion.connectors.registry import ActionContext, ActionError, action
from bastion.connectors.undo import earlier_change, step_key
from bastion.connectors.vendor_http import request, secret

__all__ = ["disconnect_agent", "get_agent", "reconnect_agent"]

VENDOR = "sentinelone"
SECRETS = ("sentinelone_api_token",)
API = "/web/api/v2.1"
MAX_PAGES = 50
_DISCONNECTED = ("disconnected", "disconnecting")
_CONNECTED = ("connected", "connecting")


def _describe(status: int, body: Any, text: str) -> tuple[str, str]:
    found = body.get("errors") or []
    parts = []
    for e in found:
        if isinstance(e, dict):
            detail = f": {e['detail']}" if e.get("detail") else ""
            parts.append(f"{e.get('code')} {e.get('title')}{detail}")
    return "", "; ".join(parts)


async def _call(
    ctx: ActionContext, method: str, path: str, *, params: dict[str, Any] | None = None, json: Any = None
) -> dict[str, Any]:
    token = secret(ctx, VENDOR, SECRETS[0])
    reply = await request(
        ctx,
        VENDOR,
        method,
        API + path,
        describe=_describe,
        params=params,
        json=json,
        headers={"Authorization": f"ApiToken {token}"},
    )
    return reply.json if isinstance(reply.json, dict) else {}


async def _agents(ctx: ActionContext, query: dict[str, Any]) -> list[dict[str, Any]]:
    agents: list[dict[str, Any]] = []
    params = dict(query)
    for _page in range(MAX_PAGES):
        body = await _call(ctx, "GET", "/agents", params=params)
        agents.extend(a for a in body.get("data") or [] if isinstance(a, dict))
        cursor = (body.get("pagination") or {}).get("nextCursor")
        if not cursor:
            return agents
        params = {**query, "cursor": cursor}
    ctx.log(f"{VENDOR}: stopped after {MAX_PAGES} pages of agents")
    return agents


def _summary(agent: dict[str, Any]) -> dict[str, Any]:
    return {
        "agent_id": agent.get("id"),
        "computer_name": agent.get("computerName"),
        "network_status": agent.get("networkStatus"),
    }


async def _agent(ctx: ActionContext, agent_id: str) -> dict[str, Any]:
    if not agent_id.strip():
        raise ActionError(f"{VENDOR}: agent_id must not be empty")
    for agent in await _agents(ctx, {"ids": agent_id.strip()}):
        if agent.get("id") == agent_id.strip():
            return agent
    raise ActionError(f"{VENDOR}: no agent with id {agent_id!r}")


@action("sentinelone.get_agent", impact="read", secrets=SECRETS, connection=VENDOR)
async def get_agent(
    agent_id: str | None = None, computer_name: str | None = None, *, ctx: ActionContext
) -> dict[str, Any]:
    """Find SentinelOne agents by id or by computer name (every page), with their network status.

    Args:
        agent_id: the agent id
        computer_name: the endpoint's computer name (when no agent_id is given)
    """
    if agent_id:
        query = {"ids": agent_id.strip()}
    elif computer_name:
        query = {"computerName": computer_name.strip()}
    else:
        raise ActionError(f"{VENDOR}: give agent_id or computer_name")
    agents = await _agents(ctx, query)
    first = (
        _summary(agents[0]) if agents else {"agent_id": None, "computer_name": None, "network_status": None}
    )
    return {**first, "found": bool(agents), "count": len(agents), "agents": agents}


async def _act(ctx: ActionContext, agent_id: str, verb: str) -> int:
    body = await _call(ctx, "POST", f"/agents/actions/{verb}", json={"filter": {"ids": [agent_id]}})
    affected = int((body.get("data") or {}).get("affected", 0))
    if affected < 1:
        raise ActionError(f"{VENDOR}: {verb} affected no agent (id {agent_id})")
    return affected


@action("sentinelone.disconnect_agent", impact="high", secrets=SECRETS, idempotent=True, connection=VENDOR)
async def disconnect_agent(agent_id: str, *, ctx: ActionContext) -> dict[str, Any]:
    """Disconnect an endpoint from the network (it keeps talking to the management console). Records the
    change with sentinelone.reconnect_agent as its undo; an agent already disconnected is left alone and
    reported so.

    Args:
        agent_id: the agent id
    """
    agent = await _agent(ctx, agent_id)
    prior = agent.get("networkStatus")
    target = f"{agent.get('computerName') or ''} ({agent['id']})".strip()
    if prior in _DISCONNECTED:
        change = earlier_change(ctx, "sentinelone.disconnect_agent", target)
        return {**_summary(agent), "disconnected": True, "already": True, "change_id": change}
    affected = await _act(ctx, agent["id"], "disconnect")
    change_id = record_change(
        ctx,
        action="sentinelone.disconnect_agent",
        target=target,
        prior={"networkStatus": prior},
        change={"action": "disconnect", **step_key(ctx)},
        undo_action="sentinelone.reconnect_agent",
        undo_inputs={"agent_id": agent["id"]},
    )
    return {
        **_summary(agent),
        "network_status": "disconnecting",
        "disconnected": True,
        "already": False,
        "affected": affected,
        "change_id": change_id,
    }


@action("sentinelone.reconnect_agent", impact="high", secrets=SECRETS, idempotent=True, connection=VENDOR)
async def reconnect_agent(agent_id: str, *, ctx: ActionContext) -> dict[str, Any]:
    """Reconnect an endpoint to the network (the undo of sentinelone.disconnect_agent); an agent that is
    connected is left alone and reported so.

    Args:
        agent_id: the agent id
    """
    agent = await _agent(ctx, agent_id)
    if agent.get("networkStatus") in _CONNECTED:
        return {**_summary(agent), "disconnected": False, "already": True}
    affected = await _act(ctx, agent["id"], "connect")
    return {
        **_summary(agent),
        "network_status": "connecting",
        "disconnected": False,
        "already": False,
        "affected": affected,
    }
