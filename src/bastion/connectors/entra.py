"""Microsoft Entra ID connector (Microsoft Graph v1.0): look up a user, disable and enable the account,
revoke sign-in sessions, confirm a user compromised in Identity Protection.

The connection ``entra`` gives ``base_url`` (``https://graph.microsoft.com``; paths carry ``/v1.0``) and
``settings``: ``tenant`` (the directory id or domain; ``tenant_id`` also works), ``client_id``, and
optionally ``login_url`` (default the public cloud's ``https://login.microsoftonline.com``) and ``scope``
(default ``https://graph.microsoft.com/.default``); sovereign clouds set all three URLs. The app's
secret is the vault secret ``entra_client_secret``. Tokens come from the OAuth2 client-credentials
grant, cached and refreshed by :func:`bastion.connectors.vendor_http.oauth_request`, which also retries
429s. Graph's error body (``{"error": {"code", "message"}}``) becomes the action's message.
"""

from __future__ import annotations

from typing import Any

from bastion.connectors.changes import record_change
from bastion.connectors.registry import ActionContext, ActionError, action
from bastion.connectors.undo import earlier_change, step_key
from bastion.connectors.vendor_http import VendorResponse, oauth_request, secret, segment
from bastion.store._util import now_ms

__all__ = [
    "confirm_compromised",
    "disable_user",
    "enable_user",
    "get_user",
    "revoke_sessions",
]

SECRET = "entra_client_secret"  # noqa: S105  (the vault name of the secret, not its value)
DEFAULT_LOGIN_URL = "https://login.microsoftonline.com"
DEFAULT_SCOPE = "https://graph.microsoft.com/.default"
USER_FIELDS = "id,displayName,userPrincipalName,mail,accountEnabled"


def describe_error(status: int, body: Any, text: str) -> tuple[str, str]:
    """(code, message) from a Graph error body or an identity-platform token error."""
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            return str(error.get("code") or ""), str(error.get("message") or "")
        if isinstance(error, str):
            description = str(body.get("error_description") or "").strip().splitlines()
            return error, description[0] if description else ""
    return "", ""


async def _graph(
    ctx: ActionContext,
    method: str,
    path: str,
    *,
    json: Any = None,
    params: dict[str, Any] | None = None,
) -> VendorResponse:
    settings = ctx.connection.get("settings") or {}
    tenant = str(settings.get("tenant") or settings.get("tenant_id") or "")
    client_id = str(settings.get("client_id") or "")
    if not tenant or not client_id:
        raise ActionError("entra: the connection needs settings.tenant and settings.client_id")
    login = str(settings.get("login_url") or DEFAULT_LOGIN_URL).rstrip("/")
    form = {
        "client_id": client_id,
        "client_secret": secret(ctx, "entra", SECRET),
        "scope": str(settings.get("scope") or DEFAULT_SCOPE),
        "grant_type": "client_credentials",
    }
    return await oauth_request(
        ctx,
        "entra",
        method,
        path,
        token_url=f"{login}/{segment('entra', tenant, 'settings.tenant')}/oauth2/v2.0/token",
        token_form=form,
        describe=describe_error,
        json=json,
        params=params,
    )


def _user_path(user: str) -> str:
    return f"/v1.0/users/{segment('entra', user, 'the user object id or userPrincipalName', safe='@')}"


def _summary(body: Any) -> dict[str, Any]:
    body = body if isinstance(body, dict) else {}
    return {
        "id": body.get("id"),
        "user_principal_name": body.get("userPrincipalName"),
        "display_name": body.get("displayName"),
        "mail": body.get("mail"),
        "account_enabled": body.get("accountEnabled"),
    }


async def _fetch(ctx: ActionContext, user: str) -> dict[str, Any]:
    answer = await _graph(ctx, "GET", _user_path(user), params={"$select": USER_FIELDS})
    return _summary(answer.json)


async def _set_enabled(ctx: ActionContext, user_id: str, enabled: bool) -> None:
    await _graph(ctx, "PATCH", _user_path(user_id), json={"accountEnabled": enabled})


@action("entra.get_user", impact="read", secrets=(SECRET,), idempotent=True, connection="entra")
async def get_user(user: str, *, ctx: ActionContext) -> dict[str, Any]:
    """Look up an Entra ID user: object id, userPrincipalName, display name, mail, whether the account is
    enabled.

    Args:
        user: the user's object id or userPrincipalName
    """
    return await _fetch(ctx, user)


@action("entra.disable_user", impact="high", secrets=(SECRET,), idempotent=True, connection="entra")
async def disable_user(user: str, expires_in_s: int | None = None, *, ctx: ActionContext) -> dict[str, Any]:
    """Disable an Entra ID account (accountEnabled=false: no new sign-ins) and record the change; undo
    with entra.enable_user. Existing sessions live on: add entra.revoke_sessions to end them.

    Args:
        user: the user's object id or userPrincipalName
        expires_in_s: enable the account again automatically after this many seconds (no expiry when empty)
    """
    found = await _fetch(ctx, user)
    out = {"user": found["id"], "user_principal_name": found["user_principal_name"], "account_enabled": False}
    target = f"entra:user:{found['id']}"
    if found["account_enabled"] is False:
        # Already disabled: by a first attempt of this step (its change is returned) or by someone else.
        ctx.log(f"entra: {found['user_principal_name']} is already disabled; nothing changed")
        return {**out, "changed": False, "change_id": earlier_change(ctx, "entra.disable_user", target)}
    await _set_enabled(ctx, found["id"], False)
    change_id = record_change(
        ctx,
        action="entra.disable_user",
        target=target,
        prior={"accountEnabled": found["account_enabled"], "userPrincipalName": found["user_principal_name"]},
        change={"accountEnabled": False, **step_key(ctx)},
        undo_action="entra.enable_user",
        undo_inputs={"user": found["id"]},
        expires=now_ms() + expires_in_s * 1000 if expires_in_s else None,
    )
    return {**out, "changed": True, "change_id": change_id}


@action("entra.enable_user", impact="high", secrets=(SECRET,), idempotent=True, connection="entra")
async def enable_user(user: str, *, ctx: ActionContext) -> dict[str, Any]:
    """Enable an Entra ID account again (accountEnabled=true). An enabled account is left as it is.

    Args:
        user: the user's object id or userPrincipalName
    """
    found = await _fetch(ctx, user)
    out = {"user": found["id"], "user_principal_name": found["user_principal_name"], "account_enabled": True}
    if found["account_enabled"] is True:
        return {**out, "changed": False}
    await _set_enabled(ctx, found["id"], True)
    return {**out, "changed": True}


@action("entra.revoke_sessions", impact="high", secrets=(SECRET,), idempotent=True, connection="entra")
async def revoke_sessions(user: str, *, ctx: ActionContext) -> dict[str, Any]:
    """Invalidate every refresh token and browser session of a user (revokeSignInSessions), so stolen
    sessions must sign in again. Microsoft notes it can take a few minutes. Not undoable.

    Args:
        user: the user's object id or userPrincipalName
    """
    answer = await _graph(ctx, "POST", _user_path(user) + "/revokeSignInSessions")
    body = answer.json if isinstance(answer.json, dict) else {}
    return {"user": user, "revoked": bool(body.get("value", True))}


@action("entra.confirm_compromised", impact="high", secrets=(SECRET,), idempotent=True, connection="entra")
async def confirm_compromised(users: list[str], *, ctx: ActionContext) -> dict[str, Any]:
    """Confirm users compromised in Entra ID Protection (their risk level becomes high, so risk-based
    Conditional Access applies). Needs an Entra ID P2 licence. Not undoable here (an admin can dismiss
    the risk in the portal).

    Args:
        users: object ids or userPrincipalNames (names are resolved to object ids first)
    """
    if not users:
        raise ActionError("entra: give at least one user")
    ids = [u if "@" not in u else (await _fetch(ctx, u))["id"] for u in users]
    await _graph(ctx, "POST", "/v1.0/identityProtection/riskyUsers/confirmCompromised", json={"userIds": ids})
    return {"user_ids": ids, "confirmed": True}
