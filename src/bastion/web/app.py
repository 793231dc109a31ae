"""Adds the console's routes, static files and session handling to the API's FastAPI app.

Pages are found, not listed: every module of the package ``bastion.web.pages`` that has a ``router``
(a FastAPI ``APIRouter``) is included, with the CSRF check on all of its state-changing routes, and its
optional ``nav`` (a list of ``NavItem``) is added to the top navigation. A new area of the console is
therefore one new module under ``web/pages/`` (and its templates).
"""

from __future__ import annotations

import importlib
import inspect
import logging
import pkgutil
from collections.abc import Awaitable, Callable
from typing import Annotated
from urllib.parse import quote

from fastapi import Depends, FastAPI, Form, Request
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import FileResponse, HTMLResponse, PlainTextResponse, RedirectResponse, Response

from bastion.web import sse
from bastion.web.render import STATIC, add_nav, flash_redirect, local_path, render
from bastion.web.session import (
    SESSION_COOKIE,
    CurrentUser,
    Forbidden,
    NotSignedIn,
    SignInRefused,
    Throttled,
    check_csrf,
    cookie_args,
    end_session,
    only_tenant,
    optional_user,
    sign_in,
)

__all__ = ["install_console"]

log = logging.getLogger(__name__)
_LOGIN_COOKIE = "bastion_signin"  # double-submit token of the sign-in form (there is no session yet)
_API_PATHS = ("/api/", "/docs", "/redoc", "/openapi.json", "/healthz")
_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)


def _wants_html(request: Request) -> bool:
    if request.method not in ("GET", "HEAD") or request.url.path.startswith("/ui/"):
        return False  # /ui/ answers scripts (the event stream), which cannot follow a sign-in page
    return "text/event-stream" not in request.headers.get("accept", "")


def _page_modules() -> list[str]:
    import bastion.web.pages as pages

    return sorted(m.name for m in pkgutil.iter_modules(pages.__path__, pages.__name__ + "."))


def install_console(app: FastAPI) -> None:
    """Mount the console at ``/`` on ``app`` (the API keeps ``/api/v1``)."""
    import secrets

    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")

    @app.exception_handler(NotSignedIn)
    async def _not_signed_in(request: Request, _exc: NotSignedIn) -> Response:
        if _wants_html(request):
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)
        return PlainTextResponse("not signed in: sign in at /login", status_code=401)

    @app.exception_handler(Forbidden)
    async def _forbidden(request: Request, exc: Forbidden) -> Response:
        if request.method in ("GET", "HEAD"):
            return render(request, "error.html", status_code=403, title="Not allowed", message=exc.reason)
        if request.headers.get("accept", "").startswith("application/json") or request.headers.get(
            "x-csrf-token"
        ):
            return PlainTextResponse(exc.reason, status_code=403)
        return render(request, "error.html", status_code=403, title="Not allowed", message=exc.reason)

    api_http_error = app.exception_handlers.get(StarletteHTTPException)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        """Console paths get a page (a 404 for a mistyped link); the API keeps its JSON errors."""
        if request.url.path.startswith(_API_PATHS) or not _wants_html(request):
            if api_http_error is not None:
                result = api_http_error(request, exc)
                return await result if inspect.isawaitable(result) else result
            return PlainTextResponse(str(exc.detail), status_code=exc.status_code, headers=exc.headers)
        title = "Not found" if exc.status_code == 404 else "Error"
        message = "There is no such page." if exc.status_code == 404 else str(exc.detail)
        return render(request, "error.html", status_code=exc.status_code, title=title, message=message)

    @app.middleware("http")
    async def _headers(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response = await call_next(request)
        if not request.url.path.startswith(_API_PATHS):
            response.headers.setdefault("Content-Security-Policy", _CSP)
            response.headers.setdefault("X-Frame-Options", "DENY")
            response.headers.setdefault("X-Content-Type-Options", "nosniff")
            response.headers.setdefault("Referrer-Policy", "same-origin")
        return response

    @app.get("/", include_in_schema=False)
    def home(request: Request) -> Response:
        return RedirectResponse("/queue" if optional_user(request) else "/login", status_code=303)

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> FileResponse:
        return FileResponse(STATIC / "favicon.svg", media_type="image/svg+xml")

    @app.get("/login", include_in_schema=False)
    def login_page(request: Request, next: str = "/", tenant: str = "") -> Response:
        if optional_user(request):
            return RedirectResponse(local_path(next), status_code=303)
        return _login_form(request, next=local_path(next), tenant=tenant)

    def _login_form(
        request: Request,
        *,
        next: str,
        tenant: str,
        user: str = "",
        error: str | None = None,
        status: int = 200,
    ) -> HTMLResponse:
        token = secrets.token_urlsafe(24)
        default_tenant = tenant or only_tenant(request.app.state.db) or ""
        response = render(
            request,
            "login.html",
            status_code=status,
            csrf=token,
            next=next,
            tenant=default_tenant,
            user_name=user,
            error=error,
            title="Sign in",
        )
        response.set_cookie(_LOGIN_COOKIE, token, max_age=3600, **{**cookie_args(request), "path": "/login"})
        return response

    @app.post("/login", include_in_schema=False)
    async def login(
        request: Request,
        user: Annotated[str, Form(max_length=200)] = "",
        password: Annotated[str, Form(max_length=1000)] = "",
        tenant: Annotated[str, Form(max_length=200)] = "",
        csrf: Annotated[str, Form(max_length=200)] = "",
        next: Annotated[str, Form(max_length=2000)] = "/",
    ) -> Response:
        expected = request.cookies.get(_LOGIN_COOKIE, "")
        if not csrf or not expected or not secrets.compare_digest(csrf, expected):
            raise Forbidden("missing or wrong CSRF token: reload the sign-in page and try again")
        tenant_name = tenant.strip() or only_tenant(request.app.state.db) or ""
        client = request.client.host if request.client else "unknown"
        try:
            token, who = await run_in_threadpool(
                sign_in, request.app.state.db, tenant_name, user.strip(), password, client
            )
        except Throttled as exc:
            refused = _login_form(
                request, next=local_path(next), tenant=tenant, user=user, error=str(exc), status=429
            )
            refused.headers["Retry-After"] = str(exc.retry_after_s)
            return refused
        except SignInRefused as exc:
            return _login_form(
                request, next=local_path(next), tenant=tenant, user=user, error=str(exc), status=401
            )
        log.info("console sign-in: %s in tenant %s", who.user_name, who.tenant_name)
        response = RedirectResponse(local_path(next), status_code=303)
        response.set_cookie(SESSION_COOKIE, token, max_age=12 * 3600, **cookie_args(request))
        response.delete_cookie(_LOGIN_COOKIE, path="/login")
        return response

    @app.post("/logout", include_in_schema=False, dependencies=[Depends(check_csrf)])
    async def logout(request: Request, user: CurrentUser) -> Response:
        await run_in_threadpool(end_session, request.app.state.db, user)
        response = flash_redirect(request, "/login", "Signed out.")
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    app.include_router(sse.router)
    for name in _page_modules():
        try:
            module = importlib.import_module(name)
        except Exception:  # one broken page must not take the API (same process) down with it
            log.exception("console page %s failed to load; it is left out", name)
            continue
        router = getattr(module, "router", None)
        if router is None:
            continue
        app.include_router(router, dependencies=[Depends(check_csrf)], include_in_schema=False)
        add_nav(list(getattr(module, "nav", [])))
