"""CrowdStrike Falcon: find and read hosts, network-contain them and lift the containment.

Falcon's API takes an OAuth2 token from ``POST /oauth2/token`` (client id and secret as a form) and
answers ``{"meta", "resources", "errors": [{"code", "message"}]}``. Containment is asynchronous on
Falcon's side (``containment_pending`` then ``contained``); the actions read the host's ``status`` first,
so containing a host that is already contained (or being contained) succeeds without a second request
and says so, and only a real change is recorded with its undo.
"""

from __future__ import annotations

from typing import Any

from bastion.connectors.changes import record_change
from bastion.connectors.registry import ActionContext, ActionError, action
from bastion.connectors.undo import earlier_change, step_key
from bastion.connectors.vendor_http import base_url, oauth_request, secret

__all__ = ["contain_host", "find_device", "get_device", "lift_containment"]

VENDOR = "crowdstrike"
SECRETS = ("crowdstrike_client_id", "crowdstrike_client_secret")
PAGE_SIZE = 100  # the connection's settings.page_size overrides it (Falcon allows up to 5000)
_CONTAINED = ("contained", "containment_pending")
_RELEASED = ("normal", "lift_containment_pending")


def _errors(body: Any) -> str:
    # Falcon's error code repeats the HTTP status, which the message already starts with.
    found = [e for e in body.get("errors") or [] if isinstance(e, dict)]
    return "; ".join(str(e.get("message") or e.get("code")) for e in found)


def _describe(status: int, body: Any, text: str) -> tuple[str, str]:
    return "", _errors(body)


async def _call(
    ctx: ActionContext, method: str, path: str, *, params: dict[str, Any] | None = None, json: Any = None
) -> Any:
    base = base_url(ctx, VENDOR)
    form = {"client_id": secret(ctx, VENDOR, SECRETS[0]), "client_secret": secret(ctx, VENDOR, SECRETS[1])}
    reply = await oauth_request(
        ctx,
        VENDOR,
        method,
        base + path,
        token_url=base + "/oauth2/token",
        token_form=form,
        describe=_describe,
        params=params,
        json=json,
    )
    return reply.json if isinstance(reply.json, dict) else {}


async def _device(ctx: ActionContext, device_id: str) -> dict[str, Any]:
    if not device_id.strip():
        raise ActionError(f"{VENDOR}: device_id must not be empty")
    body = await _call(ctx, "GET", "/devices/entities/devices/v2", params={"ids": device_id.strip()})
    for device in body.get("resources") or []:
        if isinstance(device, dict) and device.get("device_id") == device_id.strip():
            return device
    raise ActionError(f"{VENDOR}: no device with id {device_id!r}")


def _summary(device: dict[str, Any]) -> dict[str, Any]:
    return {
        "device_id": device.get("device_id"),
        "hostname": device.get("hostname"),
        "status": device.get("status"),
    }


@action("crowdstrike.get_device", impact="read", secrets=SECRETS, connection=VENDOR)
async def get_device(device_id: str, *, ctx: ActionContext) -> dict[str, Any]:
    """Read one Falcon host: its hostname, containment status and full device record.

    Args:
        device_id: the Falcon device id (aid)
    """
    device = await _device(ctx, device_id)
    return {**_summary(device), "device": device}


@action("crowdstrike.find_device", impact="read", secrets=SECRETS, connection=VENDOR)
async def find_device(hostname: str, *, ctx: ActionContext) -> dict[str, Any]:
    """Find the ids of the Falcon hosts with a hostname (every page of the query).

    Args:
        hostname: the exact hostname to look for
    """
    name = hostname.strip()
    if not name or any(c in name for c in "'\\\r\n"):
        raise ActionError(f"{VENDOR}: invalid hostname {hostname!r}")
    limit = int((ctx.connection.get("settings") or {}).get("page_size", PAGE_SIZE))
    ids: list[str] = []
    offset, total = 0, None
    while total is None or offset < total:
        body = await _call(
            ctx,
            "GET",
            "/devices/queries/devices/v1",
            params={"filter": f"hostname:'{name}'", "offset": offset, "limit": limit},
        )
        page = [str(i) for i in body.get("resources") or []]
        ids.extend(page)
        paging = (body.get("meta") or {}).get("pagination") or {}
        total = int(paging.get("total", len(ids)))
        if not page:
            break
        offset = int(paging.get("offset", offset)) + len(page)
    return {"hostname": name, "device_ids": ids, "found": bool(ids), "total": total or 0}


async def _act(ctx: ActionContext, device_id: str, action_name: str) -> dict[str, Any]:
    body = await _call(
        ctx,
        "POST",
        "/devices/entities/devices-actions/v2",
        params={"action_name": action_name},
        json={"ids": [device_id]},
    )
    done = [r for r in body.get("resources") or [] if isinstance(r, dict) and r.get("id") == device_id]
    if not done:
        raise ActionError(f"{VENDOR}: {action_name} of {device_id} was not accepted: {_errors(body) or body}")
    return done[0]


@action("crowdstrike.contain_host", impact="high", secrets=SECRETS, idempotent=True, connection=VENDOR)
async def contain_host(device_id: str, *, ctx: ActionContext) -> dict[str, Any]:
    """Network-contain a Falcon host (it keeps talking to the Falcon cloud only). Records the change with
    crowdstrike.lift_containment as its undo; a host already contained is left alone and reported so.

    Args:
        device_id: the Falcon device id (aid)
    """
    device = await _device(ctx, device_id)
    prior = device.get("status")
    target = f"{device.get('hostname') or ''} ({device['device_id']})".strip()
    if prior in _CONTAINED:
        ctx.log(f"{VENDOR}: {device_id} is already {prior}")
        change = earlier_change(ctx, "crowdstrike.contain_host", target)
        return {**_summary(device), "contained": True, "already": True, "change_id": change}
    await _act(ctx, device["device_id"], "contain")
    change_id = record_change(
        ctx,
        action="crowdstrike.contain_host",
        target=target,
        prior={"status": prior},
        change={"action_name": "contain", **step_key(ctx)},
        undo_action="crowdstrike.lift_containment",
        undo_inputs={"device_id": device["device_id"]},
    )
    return {
        **_summary(device),
        "status": "containment_pending",
        "contained": True,
        "already": False,
        "change_id": change_id,
    }


@action("crowdstrike.lift_containment", impact="high", secrets=SECRETS, idempotent=True, connection=VENDOR)
async def lift_containment(device_id: str, *, ctx: ActionContext) -> dict[str, Any]:
    """Lift the network containment of a Falcon host (the undo of crowdstrike.contain_host); a host that
    is not contained is left alone and reported so.

    Args:
        device_id: the Falcon device id (aid)
    """
    device = await _device(ctx, device_id)
    if device.get("status") in _RELEASED:
        return {**_summary(device), "contained": False, "already": True}
    await _act(ctx, device["device_id"], "lift_containment")
    return {**_summary(device), "status": "lift_containment_pending", "contained": False, "already": False}
