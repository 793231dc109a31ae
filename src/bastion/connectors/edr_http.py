"""Vendor HTTP for the EDR connectors (CrowdStrike, Defender for Endpoint, SentinelOne), written once.

The three speak JSON over HTTPS with the same needs: the connection's base URL and TLS setting, the SSRF
guard of :mod:`bastion.connectors.core` on every URL (a connection needs ``allow_private`` to reach an
internal address), polite bounded retries on ``429``/``503`` that honour ``Retry-After``, vendor error
bodies turned into one readable :class:`ActionError`, and (CrowdStrike, Defender) an OAuth2
client-credentials token cached until shortly before it expires and fetched again once if the API says
it is no longer valid.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

import httpx

from bastion.connectors.core import check_url
from bastion.connectors.registry import ActionContext, ActionError

__all__ = [
    "MAX_RETRIES",
    "MAX_RETRY_WAIT_S",
    "Reply",
    "VendorError",
    "base_url",
    "bearer_request",
    "earlier_change",
    "request",
    "secret",
    "segment",
    "step_key",
]

MAX_RETRIES = 3  # after the first attempt: four requests at most
MAX_RETRY_WAIT_S = 60.0  # a Retry-After longer than this is cut to it
_RETRY_STATUSES = (429, 503)
_TOKEN_MARGIN_S = 60.0

ErrorText = Callable[[Any], str]


class VendorError(ActionError):
    """The vendor refused a request; ``status`` is its HTTP status (a 401 means the token is stale)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Reply:
    status: int
    json: Any
    headers: httpx.Headers


def base_url(ctx: ActionContext, vendor: str) -> str:
    """The connection's base URL without a trailing slash; configuring it is the tenant's business."""
    base = str(ctx.connection.get("base_url") or "").rstrip("/")
    if not base:
        raise ActionError(f"{vendor}: the connection has no base_url (`bastion connection set {vendor}`)")
    return base


def secret(ctx: ActionContext, vendor: str, name: str) -> str:
    value = ctx.secrets.get(name)
    if not value:
        raise ActionError(f"{vendor}: secret {name!r} is not set (`bastion secret set {name}`)")
    return value


def step_key(ctx: ActionContext) -> dict[str, str]:
    """What a recorded change carries so a retry of the same call can find it (:func:`earlier_change`)."""
    return {"idempotency_key": ctx.idempotency_key} if ctx.idempotency_key else {}


def earlier_change(ctx: ActionContext, action: str, target: str) -> str | None:
    """The change an earlier attempt of this same call (same idempotency key) recorded for ``target``:
    when a retried step finds the host already contained, that attempt contained it, and the retry
    returns its change again."""
    from bastion.connectors.undo import find_step_change
    from bastion.respond.engine import configured_store

    if not ctx.idempotency_key:
        return None
    try:
        db = configured_store()
    except RuntimeError:
        return None
    with db.read() as conn:
        return find_step_change(conn, ctx, action, target)


def segment(value: str, what: str, vendor: str) -> str:
    """``value`` quoted as one path segment: an id can never walk to another endpoint."""
    if not value or not value.strip():
        raise ActionError(f"{vendor}: {what} must not be empty")
    return quote(value.strip(), safe="")


def _retry_after(headers: httpx.Headers, attempt: int) -> float:
    raw = headers.get("retry-after", "").strip()
    wait: float | None = None
    if raw:
        try:
            wait = float(raw)
        except ValueError:
            try:
                wait = parsedate_to_datetime(raw).timestamp() - time.time()
            except (TypeError, ValueError):
                wait = None
    if wait is None:
        wait = float(2**attempt)  # no usable header: back off 1, 2, 4 s
    return min(max(wait, 0.0), MAX_RETRY_WAIT_S)


def _parse(response: httpx.Response) -> Any:
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        return None


def _describe(vendor: str, status: int, body: Any, text: str, errors: ErrorText) -> str:
    detail = ""
    if body is not None:
        try:
            detail = errors(body)
        except (AttributeError, IndexError, KeyError, TypeError):
            detail = ""
    if not detail:
        detail = text.strip()[:200] or "(empty answer)"
    return f"{vendor}: {status} {detail}"


async def request(
    ctx: ActionContext,
    vendor: str,
    method: str,
    url: str,
    *,
    errors: ErrorText,
    headers: dict[str, str] | None = None,
    params: dict[str, Any] | None = None,
    json: Any = None,
    form: dict[str, str] | None = None,
    timeout: float = 30.0,
) -> Reply:
    """Send one vendor request (retrying throttled answers) and return its JSON; raise ActionError with the
    vendor's own error text on any other non-2xx answer. ``url`` may be a path under the base URL."""
    if not urlsplit(url).scheme:
        url = urljoin(base_url(ctx, vendor) + "/", url.lstrip("/"))
    conn = ctx.connection
    await check_url(url, allow_private=bool(conn.get("allow_private", False)))
    send = {str(k): str(v) for k, v in (conn.get("headers") or {}).items()}
    send.update(headers or {})
    send.setdefault("Accept", "application/json")
    verify = bool(conn.get("verify_tls", True))
    async with httpx.AsyncClient(timeout=timeout, follow_redirects=False, verify=verify) as client:
        for attempt in range(MAX_RETRIES + 1):
            try:
                response = await client.request(
                    method, url, headers=send, params=params, json=json, data=form
                )
            except httpx.HTTPError as exc:
                raise ActionError(f"{vendor}: {method} {url} failed: {type(exc).__name__}: {exc}") from None
            if response.status_code in _RETRY_STATUSES and attempt < MAX_RETRIES:
                wait = _retry_after(response.headers, attempt)
                ctx.log(
                    f"{vendor}: {response.status_code} on {method} {urlsplit(url).path}, retry in {wait:g}s"
                )
                await asyncio.sleep(wait)
                continue
            break
    body = _parse(response)
    if not response.is_success:
        raise VendorError(
            _describe(vendor, response.status_code, body, response.text, errors), response.status_code
        )
    return Reply(response.status_code, body, response.headers)


_TOKENS: dict[tuple[str, str, str], tuple[str, float]] = {}


def _token_key(ctx: ActionContext, token_url: str, form: dict[str, str]) -> tuple[str, str, str]:
    digest = hashlib.sha256(repr(sorted(form.items())).encode()).hexdigest()
    return (ctx.tenant_id, token_url, digest)


async def _token(
    ctx: ActionContext, vendor: str, token_url: str, form: dict[str, str], errors: ErrorText
) -> tuple[str, bool]:
    """(access token, whether it came from the cache)."""
    key = _token_key(ctx, token_url, form)
    cached = _TOKENS.get(key)
    if cached and cached[1] > time.monotonic():
        return cached[0], True
    reply = await request(ctx, vendor, "POST", token_url, errors=errors, form=form)
    body = reply.json if isinstance(reply.json, dict) else {}
    token = body.get("access_token")
    if not isinstance(token, str) or not token:
        raise ActionError(f"{vendor}: the token endpoint answered without an access_token")
    try:
        lifetime = float(body.get("expires_in", 300))
    except (TypeError, ValueError):
        lifetime = 300.0
    _TOKENS[key] = (token, time.monotonic() + max(lifetime - _TOKEN_MARGIN_S, 0.0))
    return token, False


async def bearer_request(
    ctx: ActionContext,
    vendor: str,
    method: str,
    url: str,
    *,
    token_url: str,
    token_form: dict[str, str],
    errors: ErrorText,
    token_errors: ErrorText | None = None,
    params: dict[str, Any] | None = None,
    json: Any = None,
) -> Reply:
    """:func:`request` with an OAuth2 client-credentials bearer token. A 401 on a cached token (revoked,
    rotated) drops it and tries once more with a fresh one."""
    token, cached = await _token(ctx, vendor, token_url, token_form, token_errors or errors)
    try:
        return await request(
            ctx,
            vendor,
            method,
            url,
            errors=errors,
            params=params,
            json=json,
            headers={"Authorization": f"Bearer {token}"},
        )
    except VendorError as exc:
        if not (cached and exc.status == 401):
            raise
    _TOKENS.pop(_token_key(ctx, token_url, token_form), None)
    token, _ = await _token(ctx, vendor, token_url, token_form, token_errors or errors)
    return await request(
        ctx,
        vendor,
        method,
        url,
        errors=errors,
        params=params,
        json=json,
        headers={"Authorization": f"Bearer {token}"},
    )
