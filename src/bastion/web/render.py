"""Rendering console pages: one Jinja2 environment (autoescape on) over ``web/templates/``, the base
layout's context (the user, the CSRF token, the navigation, a one-time flash message), and redirects
that carry a flash message to the next page.

The flash message travels in a short-lived cookie rather than the URL, so a link cannot put words in
the console's mouth.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

from fastapi import Request
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup
from starlette.responses import HTMLResponse, RedirectResponse

from bastion.model import Role
from bastion.web.session import SignedIn, has_role, optional_user

__all__ = ["TEMPLATES", "NavItem", "env", "flash_redirect", "has_route", "local_path", "render"]

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"
_FLASH_COOKIE = "bastion_flash"


@dataclass(frozen=True)
class NavItem:
    """A link in the top navigation. Page modules declare ``nav = [NavItem(...)]``."""

    label: str
    href: str
    order: int = 100
    min_role: Role = Role.VIEWER


def _time(ms: int | None, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
    if ms is None or ms == "":
        return "-"
    return dt.datetime.fromtimestamp(int(ms) / 1000, tz=dt.UTC).strftime(fmt)


def _ago(ms: int | None) -> str:
    if not ms:
        return "-"
    s = int(dt.datetime.now(tz=dt.UTC).timestamp() - int(ms) / 1000)
    if s < 0:
        return "just now"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= size:
            return f"{s // size}{unit} ago"
    return f"{s}s ago"


def _tojson_pretty(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, default=str)


def _static_version() -> str:
    newest = max((p.stat().st_mtime_ns for p in STATIC.iterdir() if p.is_file()), default=0)
    return format(newest, "x")[-8:]


env = Environment(
    loader=FileSystemLoader(str(TEMPLATES)),
    autoescape=select_autoescape(["html", "svg", "xml"], default_for_string=True, default=True),
    trim_blocks=True,
    lstrip_blocks=True,
)
env.filters["time"] = _time
env.filters["ago"] = _ago
env.filters["pretty"] = _tojson_pretty
env.globals["STATIC_V"] = _static_version()
env.globals["Markup"] = Markup  # for trusted server-made SVG (report charts), never for user data

_nav: list[NavItem] = []


def add_nav(items: list[NavItem]) -> None:
    """Called by ``install_console`` with each page module's ``nav``."""
    for item in items:
        if item not in _nav:
            _nav.append(item)
    _nav.sort(key=lambda i: (i.order, i.label))


def _paths(routes: Any) -> Any:
    for route in routes:
        path = getattr(route, "path", None)
        if isinstance(path, str):
            yield path
        inner = getattr(route, "original_router", None) or getattr(route, "app", None)
        if inner is not None and hasattr(inner, "routes"):
            yield from _paths(inner.routes)


def has_route(request: Request, path: str) -> bool:
    """Whether the app serves the route ``path`` (as declared, e.g. ``"/runs/{run_id}"``): pages link to
    other areas of the console only when those are installed."""
    return path in set(_paths(request.app.routes))


def render(request: Request, template: str, *, status_code: int = 200, **context: Any) -> HTMLResponse:
    """The page ``template`` (a file under ``web/templates/``) with the base layout's context:
    ``request``, ``user`` (``SignedIn`` or None), ``csrf``, ``can(role)``, ``nav``, ``flash``, ``path``."""
    user: SignedIn | None = optional_user(request)
    flash = None
    raw = request.cookies.get(_FLASH_COOKIE)
    if raw:
        kind, _, text = unquote(raw).partition(":")
        flash = {"kind": kind if kind in ("ok", "error") else "ok", "text": text[:500]}

    def can(minimum: Role | str) -> bool:
        return user is not None and has_role(user.role, Role(minimum))

    csrf = context.pop("csrf", "")
    body = env.get_template(template).render(
        request=request,
        user=user,
        csrf=user.csrf if user else csrf,
        can=can,
        nav=[n for n in _nav if can(n.min_role)],
        flash=flash,
        path=request.url.path,
        **context,
    )
    response = HTMLResponse(body, status_code=status_code, headers={"Cache-Control": "no-store"})
    if raw:
        response.delete_cookie(_FLASH_COOKIE, path="/")
    return response


def local_path(value: str | None) -> str:
    """``value`` when it is a path on this site, else ``/``: redirects never leave the console (no
    ``//host``, no backslash or control characters, which browsers may turn into ``//``)."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in value):
        return "/"
    return value


def flash_redirect(
    request: Request, url: str, message: str | None = None, *, error: bool = False
) -> RedirectResponse:
    """A 303 redirect to ``url`` (a path in the console) showing ``message`` once on the next page."""
    response = RedirectResponse(local_path(url), status_code=303)
    if message:
        response.set_cookie(
            _FLASH_COOKIE,
            quote(f"{'error' if error else 'ok'}:{message[:500]}"),
            max_age=60,
            httponly=True,
            samesite="lax",
            secure=request.url.scheme == "https",
            path="/",
        )
    return response
