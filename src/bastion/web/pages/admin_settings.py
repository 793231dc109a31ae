"""The console's administration, settings tab: connections and secrets, the approval policy, SLA targets
and score weights. Admins only, pages and forms alike.

Connections go through :mod:`bastion.tenancy.connections` and secrets through the vault
(:mod:`bastion.tenancy.secrets`), both audited. A secret's value is write-only here: the page lists
secret names and when they changed, and the form's value field is always empty, so a value typed once
is never sent back to a browser. A connection's ``headers`` may carry credentials too, so only their
names are shown, and saving the form keeps them as they are.

The approval policy is :func:`bastion.connectors.policy.set_policy` and the SLA targets and weights are
part of the triage policy (:func:`bastion.triage.policy.save_policy`); neither service audits, so this
module appends the audit entry in the same transaction, as the API does for the triage policy.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
import orjson
from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from bastion.connectors.policy import get_policy, set_policy
from bastion.model import Role
from bastion.store import Database, TenantScope
from bastion.tenancy.connections import ConnectionError_, list_connections, set_connection
from bastion.tenancy.secrets import SecretError, delete_secret, list_secrets, set_secret
from bastion.triage.policy import PolicyError, ScoreWeights, load_policy, save_policy
from bastion.web.render import flash_redirect, render
from bastion.web.session import AdminUser, SignedIn

__all__ = ["router", "settings_view"]

router = APIRouter()

SEVERITIES = ["critical", "high", "medium", "low", "informational"]  # the SLA target keys
WEIGHTS = list(ScoreWeights.__struct_fields__)
IMPACTS = ["read", "low", "high"]
APPROVER_ROLES = [Role.APPROVER.value, Role.ANALYST.value, Role.ENGINEER.value, Role.ADMIN.value]
SLA_PARTS = ["acknowledge_s", "contain_s", "resolve_s"]
_FORM_KEYS = {"base_url", "secrets", "settings", "allow_private", "verify_tls"}


class SettingsError(ValueError):
    """A settings form that cannot be saved; the message says which field and why."""


def settings_view(db: Database, tenant_id: str) -> dict[str, Any]:
    connections = list_connections(db, tenant_id)
    for c in connections:
        cfg = c["config"]
        # header values may be credentials: only their names leave the server
        c["header_names"] = sorted((cfg.get("headers") or {}).keys())
        c["settings_json"] = orjson.dumps(cfg.get("settings") or {}, option=orjson.OPT_INDENT_2).decode()
    with db.read() as conn:
        approval = get_policy(conn, tenant_id)
        triage = load_policy(conn, tenant_id)
    return {
        "connections": connections,
        "secrets": list_secrets(db, tenant_id),
        "approval": approval,
        "waivers_json": orjson.dumps(approval.get("waivers") or [], option=orjson.OPT_INDENT_2).decode(),
        "weights": msgspec.to_builtins(triage.weights),
        "sla": msgspec.to_builtins(triage.sla.targets),
        "severities": SEVERITIES,
        "weight_names": WEIGHTS,
        "impacts": IMPACTS,
        "approver_roles": APPROVER_ROLES,
    }


async def _page(
    request: Request,
    user: SignedIn,
    *,
    error: str | None = None,
    status_code: int = 200,
    edit: str | None = None,
    form: dict[str, Any] | None = None,
) -> Response:
    view = await run_in_threadpool(settings_view, request.app.state.db, user.tenant_id)
    if form is None:
        form = _connection_form(next((c for c in view["connections"] if c["name"] == edit), None))
    return render(
        request,
        "admin_settings.html",
        status_code=status_code,
        tab="settings",
        error=error,
        conn_form=form,
        **view,
    )


def _connection_form(found: dict[str, Any] | None) -> dict[str, Any]:
    """The connection form's fields: empty for a new connection, the stored values to change one."""
    if found is None:
        return {
            "name": "",
            "base_url": "",
            "secrets": "",
            "settings": "",
            "allow_private": False,
            "verify_tls": True,
        }
    cfg = found["config"]
    return {
        "name": found["name"],
        "base_url": cfg.get("base_url", ""),
        "secrets": ", ".join(cfg.get("secrets") or []),
        "settings": found["settings_json"] if cfg.get("settings") else "",
        "allow_private": bool(cfg.get("allow_private")),
        "verify_tls": cfg.get("verify_tls", True) is not False,
    }


@router.get("/admin/settings", summary="Administration: connections, secrets and policies")
async def settings_page(
    request: Request, user: AdminUser, edit: Annotated[str | None, Query(max_length=100)] = None
) -> Response:
    return await _page(request, user, edit=edit)


# ---------------------------------------------------------------- connections and secrets


def _json_object(text: str, what: str) -> dict[str, Any]:
    if not text.strip():
        return {}
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise SettingsError(f"{what} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise SettingsError(f'{what} must be a JSON object, like {{"key": "value"}}')
    return value


@router.post("/admin/connections", summary="Save a connection")
async def save_connection(
    request: Request,
    user: AdminUser,
    name: Annotated[str, Form(max_length=100)],
    base_url: Annotated[str, Form(max_length=2000)] = "",
    secrets: Annotated[str, Form(max_length=2000)] = "",
    settings: Annotated[str, Form(max_length=20000)] = "",
    allow_private: Annotated[str, Form(max_length=3)] = "",
    verify_tls: Annotated[str, Form(max_length=3)] = "",
) -> Response:
    db: Database = request.app.state.db
    conn_name = name.strip()

    def work() -> None:
        existing = {c["name"]: c["config"] for c in list_connections(db, user.tenant_id)}.get(conn_name, {})
        # the form shows (and so replaces) these; headers and the rate limit are kept as they are
        config: dict[str, Any] = {k: v for k, v in existing.items() if k not in _FORM_KEYS}
        if base_url.strip():
            config["base_url"] = base_url.strip()
        names = [s.strip() for s in secrets.replace("\n", ",").split(",") if s.strip()]
        if names:
            config["secrets"] = names
        extra = _json_object(settings, "settings")
        if extra:
            config["settings"] = extra
        config["allow_private"] = allow_private == "on"
        config["verify_tls"] = verify_tls == "on"
        set_connection(db, user.tenant_id, conn_name, config, actor=user.actor)

    try:
        await run_in_threadpool(work)
    except (ConnectionError_, SettingsError) as exc:
        form = {
            "name": name,
            "base_url": base_url,
            "secrets": secrets,
            "settings": settings,
            "allow_private": allow_private == "on",
            "verify_tls": verify_tls == "on",
        }
        return await _page(request, user, error=str(exc), status_code=400, form=form)
    return flash_redirect(request, "/admin/settings", f"connection {conn_name} saved")


@router.post("/admin/secrets", summary="Save a secret (its value is never shown again)")
async def save_secret(
    request: Request,
    user: AdminUser,
    name: Annotated[str, Form(max_length=200)],
    value: Annotated[str, Form(max_length=20000)],
) -> Response:
    try:
        if not value:
            raise SecretError("a secret needs a value")
        await run_in_threadpool(
            lambda: set_secret(request.app.state.db, user.tenant_id, name.strip(), value, actor=user.actor)
        )
    except SecretError as exc:
        return await _page(request, user, error=str(exc), status_code=400)
    return flash_redirect(request, "/admin/settings", f"secret {name.strip()} saved")


@router.post("/admin/secrets/{name}/delete", summary="Delete a secret")
async def remove_secret(request: Request, user: AdminUser, name: str) -> Response:
    gone = await run_in_threadpool(
        lambda: delete_secret(request.app.state.db, user.tenant_id, name, actor=user.actor)
    )
    if not gone:
        return await _page(request, user, error=f"no secret {name!r}", status_code=404)
    return flash_redirect(request, "/admin/settings", f"secret {name} deleted")


# ---------------------------------------------------------------- policies


@router.post("/admin/policy/approval", summary="Save the approval policy")
async def save_approval_policy(request: Request, user: AdminUser) -> Response:
    form = await request.form()
    db: Database = request.app.state.db

    def work() -> None:
        impacts = [str(v) for v in form.getlist("require_approval")]
        roles = [str(v) for v in form.getlist("roles")]
        if not roles:
            raise SettingsError("choose at least one role that may approve")
        try:
            quorum = int(str(form.get("quorum") or "1"))
            timeout_h = float(str(form.get("timeout_h") or "24"))
        except ValueError:
            raise SettingsError("quorum must be a whole number and the timeout a number of hours") from None
        if quorum < 1 or timeout_h <= 0:
            raise SettingsError("quorum must be at least 1 and the timeout longer than zero")
        on_timeout = str(form.get("on_timeout") or "deny")
        if on_timeout not in ("deny", "approve"):
            raise SettingsError("on timeout: deny or approve")
        waivers = orjson.loads(str(form.get("waivers") or "[]") or "[]")
        if not isinstance(waivers, list) or not all(isinstance(w, dict) for w in waivers):
            raise SettingsError('waivers must be a JSON list of {"action": ..., "condition": ...} objects')
        document = {
            "require_approval": impacts,
            "default_approval": {
                "roles": roles,
                "quorum": quorum,
                "on_timeout": on_timeout,
                "timeout_s": timeout_h * 3600.0,
            },
            "waivers": waivers,
        }
        with db.write() as conn:
            set_policy(conn, user.tenant_id, document)
            TenantScope(conn, user.tenant_id).audit.append(
                user.actor, "respond.policy.set", "respond_policy", user.tenant_id, {"document": document}
            )

    try:
        await run_in_threadpool(work)
    except orjson.JSONDecodeError as exc:
        return await _page(request, user, error=f"waivers are not valid JSON: {exc}", status_code=400)
    except ValueError as exc:  # SettingsError, and set_policy's own refusals
        return await _page(request, user, error=str(exc), status_code=400)
    return flash_redirect(request, "/admin/settings", "approval policy saved")


@router.post("/admin/policy/triage", summary="Save SLA targets and score weights")
async def save_triage_policy(request: Request, user: AdminUser) -> Response:
    form = await request.form()
    db: Database = request.app.state.db

    def number(key: str) -> float:
        raw = str(form.get(key) or "").strip()
        try:
            value = float(raw)
        except ValueError:
            raise SettingsError(f"{key}: {raw!r} is not a number") from None
        if value < 0:
            raise SettingsError(f"{key} cannot be negative")
        return value

    def work() -> None:
        weights = {w: number(f"weight.{w}") for w in WEIGHTS}
        targets = {
            sev: {part: round(number(f"sla.{sev}.{part}") * 60) for part in SLA_PARTS} for sev in SEVERITIES
        }
        for sev, t in targets.items():
            if not t["acknowledge_s"] <= t["contain_s"] <= t["resolve_s"]:
                raise SettingsError(f"SLA {sev}: acknowledge <= contain <= resolve, in minutes")
        with db.write() as conn:
            # the whole current policy with these two parts replaced: the other settings stay as they are
            document = msgspec.to_builtins(load_policy(conn, user.tenant_id))
            document["weights"] = weights
            document["sla"]["targets"].update(targets)
            save_policy(conn, user.tenant_id, document, user.actor)
            TenantScope(conn, user.tenant_id).audit.append(
                user.actor,
                "triage.policy.set",
                "triage_policy",
                user.tenant_id,
                {"document": {"weights": weights, "sla": {"targets": targets}}},
            )

    try:
        await run_in_threadpool(work)
    except (SettingsError, PolicyError) as exc:
        return await _page(request, user, error=str(exc), status_code=400)
    return flash_redirect(request, "/admin/settings", "SLA targets and score weights saved")
