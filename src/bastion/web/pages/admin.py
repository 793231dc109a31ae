"""The console's administration: users and roles, and API keys. Admins only, pages and forms alike.

Everything goes through the tenancy services (:mod:`bastion.tenancy.service`), which audit each change.
An API key is shown once and never again (only its hash is stored). The form that creates it redirects
to the page, handing the key over in a cookie encrypted with the store's secret key, bound to the session,
scoped to ``/admin``, valid for a minute and deleted by the page that shows it: reloading that page neither
shows the key again nor creates another (answering the POST with the key did both). Pages are
``no-store``, so the browser keeps no copy. An admin cannot disable or demote themself here, so a tenant
cannot lose its last way in from the console by a slip of the mouse.

Connections, secrets and the policies are on the settings tab (:mod:`bastion.web.pages.admin_settings`).
"""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from cryptography.fernet import Fernet, InvalidToken
from fastapi import APIRouter, Form, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from bastion.model import Role
from bastion.store import Database
from bastion.store.tenancy import DuplicateError
from bastion.tenancy.secrets import load_key
from bastion.tenancy.service import (
    TenancyError,
    add_user,
    check_password,
    create_api_key,
    list_api_keys,
    list_users,
    revoke_api_key,
    set_user_disabled,
    set_user_role,
)
from bastion.web.render import NavItem, flash_redirect, render
from bastion.web.session import AdminUser, SignedIn

__all__ = ["nav", "router"]

router = APIRouter()
nav = [NavItem("Admin", "/admin", order=90, min_role=Role.ADMIN)]

ROLES = [r.value for r in sorted(Role, key=lambda r: r.value)]
_NEW_KEY_COOKIE = "bastion_new_key"
_NEW_KEY_TTL_S = 60


def _sealed_key(db: Database, user: SignedIn, name: str, key: str) -> str:
    payload = {"session": user.session_hash, "name": name, "key": key}
    return Fernet(load_key(db)).encrypt(orjson.dumps(payload)).decode()


def _unsealed_key(db: Database, user: SignedIn, sealed: str | None) -> dict[str, str] | None:
    """The key handed over by :func:`_sealed_key`, if the cookie is fresh and from this session."""
    if not sealed:
        return None
    try:
        payload = orjson.loads(Fernet(load_key(db)).decrypt(sealed.encode(), ttl=_NEW_KEY_TTL_S))
    except (InvalidToken, orjson.JSONDecodeError, ValueError):
        return None
    if not isinstance(payload, dict) or payload.get("session") != user.session_hash:
        return None
    return {"name": str(payload.get("name", "")), "key": str(payload.get("key", ""))}


def _role(value: str) -> Role:
    try:
        return Role(value.strip().lower())
    except ValueError:
        raise TenancyError(f"unknown role {value!r}; use one of {', '.join(ROLES)}") from None


def admin_view(db: Database, user: SignedIn) -> dict[str, Any]:
    return {
        "users": list_users(db, user.tenant_id),
        "keys": list_api_keys(db, user.tenant_name),
        "roles": ROLES,
    }


async def _page(
    request: Request,
    user: SignedIn,
    *,
    error: str | None = None,
    new_key: dict[str, str] | None = None,
    form: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    view = await run_in_threadpool(admin_view, request.app.state.db, user)
    return render(
        request,
        "admin.html",
        status_code=status_code,
        tab="access",
        error=error,
        new_key=new_key,
        form=form or {},
        **view,
    )


@router.get("/admin", summary="Administration: users and API keys")
async def admin_page(request: Request, user: AdminUser) -> Response:
    sealed = request.cookies.get(_NEW_KEY_COOKIE)
    new_key = _unsealed_key(request.app.state.db, user, sealed)
    response = await _page(request, user, new_key=new_key)
    if sealed is not None:
        response.delete_cookie(_NEW_KEY_COOKIE, path="/admin")
    return response


@router.post("/admin/users", summary="Add a user")
async def admin_add_user(
    request: Request,
    user: AdminUser,
    name: Annotated[str, Form(max_length=100)],
    role: Annotated[str, Form(max_length=20)],
    password: Annotated[str, Form(max_length=1000)],
    email: Annotated[str, Form(max_length=320)] = "",
) -> Response:
    form = {"name": name, "role": role, "email": email}
    try:
        check_password(password)
        await run_in_threadpool(
            add_user,
            request.app.state.db,
            user.tenant_name,
            name.strip(),
            _role(role),
            email=email.strip() or None,
            password=password,
            actor=user.actor,
        )
    except (TenancyError, DuplicateError) as exc:
        return await _page(request, user, error=str(exc), form=form, status_code=400)
    return flash_redirect(request, "/admin", f"user {name.strip()} added as {role}")


def _not_self(user: SignedIn, name: str, what: str) -> None:
    if name == user.user_name:
        raise TenancyError(f"you cannot {what} yourself; ask another admin")


@router.post("/admin/users/{name}/role", summary="Change a user's role")
async def admin_user_role(
    request: Request, user: AdminUser, name: str, role: Annotated[str, Form(max_length=20)]
) -> Response:
    try:
        _not_self(user, name, "change the role of")
        await run_in_threadpool(
            set_user_role, request.app.state.db, user.tenant_id, name, _role(role), actor=user.actor
        )
    except TenancyError as exc:
        return await _page(request, user, error=str(exc), status_code=400)
    return flash_redirect(request, "/admin", f"{name} is now {role}")


@router.post("/admin/users/{name}/disable", summary="Disable or enable a user")
async def admin_user_disable(
    request: Request, user: AdminUser, name: str, disabled: Annotated[str, Form(max_length=1)]
) -> Response:
    off = disabled == "1"
    try:
        _not_self(user, name, "disable")
        await run_in_threadpool(
            set_user_disabled, request.app.state.db, user.tenant_id, name, off, actor=user.actor
        )
    except TenancyError as exc:
        return await _page(request, user, error=str(exc), status_code=400)
    return flash_redirect(request, "/admin", f"{name} {'disabled' if off else 'enabled'}")


@router.post("/admin/keys", summary="Create an API key (shown once)")
async def admin_create_key(
    request: Request,
    user: AdminUser,
    name: Annotated[str, Form(max_length=100)],
    role: Annotated[str, Form(max_length=20)] = "viewer",
    as_user: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    label = name.strip()
    form = {"key_name": name, "key_role": role, "as_user": as_user}
    try:
        if not label:
            raise TenancyError("give the key a name that says what uses it")
        key = await run_in_threadpool(
            lambda: create_api_key(
                request.app.state.db,
                user.tenant_name,
                role=_role(role),
                name=label,
                user=as_user.strip() or None,
                actor=user.actor,
            )
        )
    except TenancyError as exc:
        return await _page(request, user, error=str(exc), form=form, status_code=400)
    response = flash_redirect(request, "/admin")
    response.set_cookie(
        _NEW_KEY_COOKIE,
        _sealed_key(request.app.state.db, user, label, key),
        max_age=_NEW_KEY_TTL_S,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/admin",
    )
    return response


@router.post("/admin/keys/{key_id}/revoke", summary="Revoke an API key")
async def admin_revoke_key(request: Request, user: AdminUser, key_id: str) -> Response:
    try:
        await run_in_threadpool(
            lambda: revoke_api_key(request.app.state.db, user.tenant_name, key_id, actor=user.actor)
        )
    except (TenancyError, DuplicateError) as exc:
        return await _page(request, user, error=str(exc), status_code=404)
    return flash_redirect(request, "/admin", "API key revoked: it stops working at once")
