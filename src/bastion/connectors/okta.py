"""Okta connector (Users API): look up a user, suspend and unsuspend, clear sessions, reset factors.

The connection ``okta`` gives ``base_url`` (``https://<your-org>.okta.com``); the API token is the
vault secret ``okta_api_token``, sent as Okta documents it: ``Authorization: SSWS <token>``. Okta's
error body (``errorCode``, ``errorSummary``, ``errorCauses``) becomes the action's error message, and its
429s (``X-Rate-Limit-Reset``) are retried by :mod:`bastion.connectors.vendor_http`.

Suspending reads the user first so the prior status is recorded with the change (undo:
``okta.unsuspend_user``). Lifecycle calls converge: suspending a suspended user, or unsuspending an
active one, changes nothing and records nothing, so a repeated step or an undo of an undo is harmless;
a retried step (same idempotency key) gets back the change its first attempt recorded.
"""

from __future__ import annotations

from typing import Any

from bastion.connectors.changes import record_change
from bastion.connectors.registry import ActionContext, action
from bastion.connectors.undo import earlier_change, step_key
from bastion.connectors.vendor_http import VendorResponse, request, secret, segment
from bastion.store._util import now_ms

__all__ = ["clear_sessions", "get_user", "reset_factors", "suspend_user", "unsuspend_user"]

SECRET = "okta_api_token"  # noqa: S105  (the vault name of the secret, not its value)
SUSPENDED = "SUSPENDED"


def describe_error(status: int, body: Any, text: str) -> tuple[str, str]:
    """(errorCode, "errorSummary (cause; cause)") from Okta's error body."""
    if isinstance(body, dict) and ("errorCode" in body or "errorSummary" in body):
        causes = [
            str(c.get("errorSummary"))
            for c in body.get("errorCauses") or []
            if isinstance(c, dict) and c.get("errorSummary")
        ]
        summary = str(body.get("errorSummary") or "")
        if causes:
            summary += f" ({'; '.join(causes)})"
        return str(body.get("errorCode") or ""), summary
    return "", ""  # not Okta's shape: the error shows the body as it came


async def _call(
    ctx: ActionContext, method: str, path: str, *, params: dict[str, Any] | None = None
) -> VendorResponse:
    token = secret(ctx, "okta", SECRET)
    return await request(
        ctx,
        "okta",
        method,
        path,
        describe=describe_error,
        headers={"Authorization": f"SSWS {token}"},
        params=params,
    )


def _user_path(user: str, suffix: str = "") -> str:
    return f"/api/v1/users/{segment('okta', user, 'the user id or login', safe='@')}{suffix}"


def _summary(body: Any) -> dict[str, Any]:
    body = body if isinstance(body, dict) else {}
    profile = body.get("profile") or {}
    return {
        "id": body.get("id"),
        "status": body.get("status"),
        "login": profile.get("login"),
        "email": profile.get("email"),
        "first_name": profile.get("firstName"),
        "last_name": profile.get("lastName"),
        "last_login": body.get("lastLogin"),
        "status_changed": body.get("statusChanged"),
        "profile": profile,
    }


async def _fetch(ctx: ActionContext, user: str) -> dict[str, Any]:
    return _summary((await _call(ctx, "GET", _user_path(user))).json)


@action("okta.get_user", impact="read", secrets=(SECRET,), idempotent=True, connection="okta")
async def get_user(user: str, *, ctx: ActionContext) -> dict[str, Any]:
    """Look up an Okta user: id, status (ACTIVE, SUSPENDED, ...), login, e-mail and profile.

    Args:
        user: the user's Okta id, login, or unambiguous login short name
    """
    return await _fetch(ctx, user)


@action("okta.suspend_user", impact="high", secrets=(SECRET,), idempotent=True, connection="okta")
async def suspend_user(user: str, expires_in_s: int | None = None, *, ctx: ActionContext) -> dict[str, Any]:
    """Suspend an Okta user (no sign-in until unsuspended) and record the change; undo with
    okta.unsuspend_user.

    Args:
        user: the user's Okta id or login
        expires_in_s: unsuspend automatically after this many seconds (no expiry when empty)
    """
    found = await _fetch(ctx, user)
    target = f"okta:user:{found['id']}"
    if found["status"] == SUSPENDED:
        earlier = earlier_change(ctx, "okta.suspend_user", target)
        ctx.log(f"okta: {found['login'] or found['id']} is already suspended; nothing changed")
        return {**_out(found, SUSPENDED), "prior_status": SUSPENDED, "changed": False, "change_id": earlier}
    await _call(ctx, "POST", _user_path(found["id"], "/lifecycle/suspend"))
    change_id = record_change(
        ctx,
        action="okta.suspend_user",
        target=target,
        prior={"status": found["status"], "login": found["login"]},
        change={"status": SUSPENDED, **step_key(ctx)},
        undo_action="okta.unsuspend_user",
        undo_inputs={"user": found["id"]},
        expires=now_ms() + expires_in_s * 1000 if expires_in_s else None,
    )
    return {
        **_out(found, SUSPENDED),
        "prior_status": found["status"],
        "changed": True,
        "change_id": change_id,
    }


@action("okta.unsuspend_user", impact="high", secrets=(SECRET,), idempotent=True, connection="okta")
async def unsuspend_user(user: str, *, ctx: ActionContext) -> dict[str, Any]:
    """Unsuspend an Okta user (back to ACTIVE). A user who is not suspended is left as it is.

    Args:
        user: the user's Okta id or login
    """
    found = await _fetch(ctx, user)
    if found["status"] != SUSPENDED:
        ctx.log(f"okta: {found['login'] or found['id']} is {found['status']}, not suspended; nothing changed")
        return {**_out(found, found["status"]), "prior_status": found["status"], "changed": False}
    await _call(ctx, "POST", _user_path(found["id"], "/lifecycle/unsuspend"))
    return {**_out(found, "ACTIVE"), "prior_status": SUSPENDED, "changed": True}


@action("okta.clear_sessions", impact="high", secrets=(SECRET,), idempotent=True, connection="okta")
async def clear_sessions(
    user: str, revoke_oauth_tokens: bool = True, *, ctx: ActionContext
) -> dict[str, Any]:
    """End every Okta session of a user (all devices), and by default revoke the OAuth tokens issued to
    them, so a stolen session stops working. Not undoable: the user signs in again.

    Args:
        user: the user's Okta id or login
        revoke_oauth_tokens: also revoke the user's OAuth access and refresh tokens
    """
    params = {"oauthTokens": "true"} if revoke_oauth_tokens else None
    await _call(ctx, "DELETE", _user_path(user, "/sessions"), params=params)
    return {"user": user, "sessions_cleared": True, "oauth_tokens_revoked": revoke_oauth_tokens}


@action("okta.reset_factors", impact="high", secrets=(SECRET,), idempotent=True, connection="okta")
async def reset_factors(user: str, *, ctx: ActionContext) -> dict[str, Any]:
    """Reset every MFA factor a user enrolled, so an attacker's enrolled device no longer passes MFA;
    the user enrolls again at next sign-in. Not undoable.

    Args:
        user: the user's Okta id or login
    """
    await _call(ctx, "POST", _user_path(user, "/lifecycle/reset_factors"))
    return {"user": user, "factors_reset": True}


def _out(found: dict[str, Any], status: str | None) -> dict[str, Any]:
    return {"user": found["id"], "login": found["login"], "status": status}
