"""Microsoft Defender for Endpoint: read a machine, isolate and release it, run an antivirus scan, collect an
investigation package.

Tokens come from Microsoft Entra (OAuth2 client credentials, scope
``https://api.securitycenter.microsoft.com/.default``) at ``{login_url}/{azure_tenant_id}/oauth2/v2.0/token``;
``login_url`` (default ``https://login.microsoftonline.com``) and ``azure_tenant_id`` are connection
settings, the API base URL is the connection's ``base_url``. Response actions answer a MachineAction
``{id, type, status, ...}``; errors are ``{"error": {"code", "message", "target"}}``. A machine has no
isolation flag, so whether it is isolated is read from its latest Isolate/Unisolate machine action.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from bastion.connectors.changes import record_change
from bastion.connectors.registry import ActionContext, ActionError, action
from bastion.connectors.undo import earlier_change, step_key
from bastion.connectors.vendor_http import oauth_request, secret, segment

__all__ = [
    "collect_investigation_package",
    "get_machine",
    "isolate_machine",
    "release_machine",
    "run_av_scan",
]

VENDOR = "defender"
SECRETS = ("defender_client_id", "defender_client_secret")
SCOPE = "https://api.securitycenter.microsoft.com/.default"
LOGIN_URL = "https://login.microsoftonline.com"
_MACHINE_ID = re.compile(r"^[A-Za-z0-9-]{1,64}$")
_LIVE = ("Pending", "InProgress", "Succeeded")
MAX_PAGES = 50


def _describe(status: int, body: Any, text: str) -> tuple[str, str]:
    err = body.get("error")
    if isinstance(err, dict):
        target = f" (target {err['target']})" if err.get("target") else ""
        return str(err.get("code") or ""), f"{err.get('message')}{target}"
    if isinstance(err, str):  # the Entra token endpoint: {"error", "error_description"}
        return "", f"{err}: {body.get('error_description', '')}".strip()
    return "", ""


def _token(ctx: ActionContext) -> tuple[str, dict[str, str]]:
    settings = ctx.connection.get("settings") or {}
    tenant = str(settings.get("azure_tenant_id") or "").strip()
    if not tenant:
        raise ActionError(f"{VENDOR}: the connection needs settings.azure_tenant_id (the Entra tenant)")
    login = str(settings.get("login_url") or LOGIN_URL).rstrip("/")
    form = {
        "grant_type": "client_credentials",
        "client_id": secret(ctx, VENDOR, SECRETS[0]),
        "client_secret": secret(ctx, VENDOR, SECRETS[1]),
        "scope": SCOPE,
    }
    return f"{login}/{segment(VENDOR, tenant, 'azure_tenant_id')}/oauth2/v2.0/token", form


async def _call(
    ctx: ActionContext, method: str, url: str, *, params: dict[str, Any] | None = None, json: Any = None
) -> Any:
    token_url, form = _token(ctx)
    reply = await oauth_request(
        ctx,
        VENDOR,
        method,
        url,
        token_url=token_url,
        token_form=form,
        describe=_describe,
        params=params,
        json=json,
    )
    return reply.json if isinstance(reply.json, dict) else {}


def _machine_id(machine_id: str) -> str:
    value = machine_id.strip()
    if not _MACHINE_ID.match(value):
        raise ActionError(f"{VENDOR}: invalid machine id {machine_id!r}")
    return value


async def _isolation(ctx: ActionContext, machine_id: str) -> str:
    """``isolated`` or ``released``, from the newest live Isolate/Unisolate action (every page)."""
    url: str | None = "/api/machineactions"
    params: dict[str, Any] | None = {"$filter": f"machineId eq '{machine_id}'"}
    latest: dict[str, Any] | None = None
    pages = 0
    while url:
        pages += 1
        if pages > MAX_PAGES:
            raise ActionError(f"{VENDOR}: more than {MAX_PAGES} pages of machine actions for {machine_id}")
        body = await _call(ctx, "GET", url, params=params)
        for item in body.get("value") or []:
            if item.get("type") not in ("Isolate", "Unisolate") or item.get("status") not in _LIVE:
                continue
            if latest is None or str(item.get("creationDateTimeUtc")) > str(latest["creationDateTimeUtc"]):
                latest = item
        url, params = body.get("@odata.nextLink"), None  # the link carries its own query
    return "isolated" if latest is not None and latest.get("type") == "Isolate" else "released"


def _action_out(machine_id: str, answer: dict[str, Any]) -> dict[str, Any]:
    return {
        "machine_id": machine_id,
        "action_id": answer.get("id"),
        "type": answer.get("type"),
        "status": answer.get("status"),
        "action": answer,
    }


@action("defender.find_machine", impact="read", secrets=SECRETS, connection=VENDOR)
async def find_machine(hostname: str, *, ctx: ActionContext) -> dict[str, Any]:
    """Find the ids of the Defender for Endpoint machines with a DNS name (the machine list filtered on
    ``computerDnsName``, every page): what isolate_machine and the other machine actions take.

    Args:
        hostname: the machine's DNS name as Defender shows it (e.g. ws-0142 or ws-0142.corp.example)
    """
    name = hostname.strip().lower()
    if not name or any(c in name for c in "'\\\r\n"):
        raise ActionError(f"{VENDOR}: invalid hostname {hostname!r}")
    url: str | None = "/api/machines"
    params: dict[str, Any] | None = {"$filter": f"computerDnsName eq '{name}'"}
    machines: list[dict[str, Any]] = []
    pages = 0
    while url:
        pages += 1
        if pages > MAX_PAGES:
            raise ActionError(f"{VENDOR}: more than {MAX_PAGES} pages of machines named {name}")
        body = await _call(ctx, "GET", url, params=params)
        machines.extend(m for m in body.get("value") or [] if isinstance(m, dict))
        url, params = body.get("@odata.nextLink"), None  # the link carries its own query
    ids = [str(m.get("id")) for m in machines if m.get("id")]
    return {"hostname": name, "machine_ids": ids, "found": bool(ids), "total": len(ids)}


@action("defender.get_machine", impact="read", secrets=SECRETS, connection=VENDOR)
async def get_machine(machine_id: str, *, ctx: ActionContext) -> dict[str, Any]:
    """Read one Defender for Endpoint machine: name, health, risk and exposure, and the full record.

    Args:
        machine_id: the Defender machine id
    """
    mid = _machine_id(machine_id)
    machine = await _call(ctx, "GET", f"/api/machines/{segment(VENDOR, mid, 'machine_id')}")
    return {
        "machine_id": machine.get("id", mid),
        "computer_name": machine.get("computerDnsName"),
        "health_status": machine.get("healthStatus"),
        "risk_score": machine.get("riskScore"),
        "machine": machine,
    }


@action("defender.isolate_machine", impact="high", secrets=SECRETS, idempotent=True, connection=VENDOR)
async def isolate_machine(
    machine_id: str,
    comment: str,
    isolation_type: Literal["Full", "Selective"] = "Full",
    *,
    ctx: ActionContext,
) -> dict[str, Any]:
    """Isolate a machine from the network (it keeps its Defender connection). Records the change with
    defender.release_machine as its undo; a machine already isolated is left alone and reported so.

    Args:
        machine_id: the Defender machine id
        comment: why, kept with the machine action
        isolation_type: Full, or Selective (Outlook, Teams and Skype keep working)
    """
    mid = _machine_id(machine_id)
    if await _isolation(ctx, mid) == "isolated":
        change = earlier_change(ctx, "defender.isolate_machine", mid)
        return {"machine_id": mid, "isolated": True, "already": True, "change_id": change}
    answer = await _call(
        ctx,
        "POST",
        f"/api/machines/{segment(VENDOR, mid, 'machine_id')}/isolate",
        json={"Comment": comment, "IsolationType": isolation_type},
    )
    change_id = record_change(
        ctx,
        action="defender.isolate_machine",
        target=mid,
        prior={"isolated": False},
        change={"IsolationType": isolation_type, "machine_action": answer.get("id"), **step_key(ctx)},
        undo_action="defender.release_machine",
        undo_inputs={"machine_id": mid, "comment": f"Undo of Bastion isolation: {comment}"[:1000]},
    )
    return {**_action_out(mid, answer), "isolated": True, "already": False, "change_id": change_id}


@action("defender.release_machine", impact="high", secrets=SECRETS, idempotent=True, connection=VENDOR)
async def release_machine(machine_id: str, comment: str, *, ctx: ActionContext) -> dict[str, Any]:
    """Release a machine from isolation (the undo of defender.isolate_machine); a machine that is not
    isolated is left alone and reported so.

    Args:
        machine_id: the Defender machine id
        comment: why, kept with the machine action
    """
    mid = _machine_id(machine_id)
    if await _isolation(ctx, mid) == "released":
        return {"machine_id": mid, "isolated": False, "already": True}
    answer = await _call(
        ctx,
        "POST",
        f"/api/machines/{segment(VENDOR, mid, 'machine_id')}/unisolate",
        json={"Comment": comment},
    )
    return {**_action_out(mid, answer), "isolated": False, "already": False}


@action("defender.run_av_scan", impact="low", secrets=SECRETS, connection=VENDOR)
async def run_av_scan(
    machine_id: str, comment: str, scan_type: Literal["Quick", "Full"] = "Quick", *, ctx: ActionContext
) -> dict[str, Any]:
    """Start a Microsoft Defender Antivirus scan on a machine.

    Args:
        machine_id: the Defender machine id
        comment: why, kept with the machine action
        scan_type: Quick or Full
    """
    mid = _machine_id(machine_id)
    answer = await _call(
        ctx,
        "POST",
        f"/api/machines/{segment(VENDOR, mid, 'machine_id')}/runAntiVirusScan",
        json={"Comment": comment, "ScanType": scan_type},
    )
    return _action_out(mid, answer)


@action("defender.collect_investigation_package", impact="low", secrets=SECRETS, connection=VENDOR)
async def collect_investigation_package(
    machine_id: str, comment: str, *, ctx: ActionContext
) -> dict[str, Any]:
    """Collect a forensic investigation package from a machine (fetch it later from the machine action).

    Args:
        machine_id: the Defender machine id
        comment: why, kept with the machine action
    """
    mid = _machine_id(machine_id)
    answer = await _call(
        ctx,
        "POST",
        f"/api/machines/{segment(VENDOR, mid, 'machine_id')}/collectInvestigationPackage",
        json={"Comment": comment},
    )
    return _action_out(mid, answer)
