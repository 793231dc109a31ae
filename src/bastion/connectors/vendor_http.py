"""The one way connectors call a vendor's JSON API (identity, EDR, chat, paging, ticketing).

``core.http_request`` is a workflow action; vendor connectors need more, and all need the same:

* every attempt passes :func:`~bastion.connectors.core.check_url` (internal addresses need the
  connection's ``allow_private``) and connects through ``egress.guarded_client``, which checks the address
  it connects to again (no DNS rebinding); redirects are not followed, so no hop escapes that check;
* the connection's ``headers`` and ``verify_tls`` apply, a relative URL is joined to its ``base_url``;
* a 429 (or a 503 with ``Retry-After``) is retried at most :data:`MAX_RETRIES` times after the wait the
  vendor asks for (:func:`retry_delay`); a wait over :data:`MAX_WAIT_S` is refused at once, not slept;
* any other non-2xx raises :class:`VendorError` keeping status, vendor code and body, so callers branch
  on attributes, never on text; the connector's ``describe`` reads its vendor's error body;
* :func:`oauth_request` adds a cached OAuth2 client-credentials token, replaced once when refused.
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import hashlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from bastion.connectors.core import MAX_BODY, check_url
from bastion.connectors.egress import guarded_client
from bastion.connectors.registry import ActionContext, ActionError

__all__ = [
    "MAX_RETRIES",
    "MAX_WAIT_S",
    "Describe",
    "VendorError",
    "VendorRateLimited",
    "VendorResponse",
    "base_url",
    "basic_auth",
    "bearer",
    "clear_token_cache",
    "oauth_request",
    "request",
    "retry_delay",
    "secret",
    "segment",
]

MAX_RETRIES = 3  # after the first attempt: four requests at most
MAX_WAIT_S = 30.0
TOKEN_MARGIN_S = 60.0  # a cached token is dropped this long before the vendor says it expires

#: (status, parsed JSON body or None, raw text) -> (vendor error code or "", message); "" falls back to
#: the body's text.
Describe = Callable[[int, Any, str], tuple[str, str]]


@dataclass
class VendorResponse:
    status: int
    headers: dict[str, str]
    json: Any
    text: str


class VendorError(ActionError):
    """The vendor refused the request: ``status``, its ``code`` and ``body`` are kept for callers."""

    def __init__(self, vendor: str, status: int, code: str, message: str, body: Any = None) -> None:
        super().__init__(" ".join(p for p in (f"{vendor}:", str(status), code, message) if p))
        self.vendor = vendor
        self.status = status
        self.code = code
        self.vendor_message = message
        self.body = body


class VendorRateLimited(VendorError):
    """Still rate limited after the retries, or asked to wait longer than :data:`MAX_WAIT_S`."""

    def __init__(
        self, vendor: str, status: int, code: str, message: str, body: Any, retry_after_s: float
    ) -> None:
        super().__init__(vendor, status, code, message, body)
        self.retry_after_s = retry_after_s


def base_url(ctx: ActionContext, vendor: str, example: str | None = None) -> str:
    """The connection's base URL without a trailing slash; there is no default: each tenant names its own."""
    base = str(ctx.connection.get("base_url") or "").rstrip("/")
    if not base:
        hint = f", for example {example}" if example else ""
        raise ActionError(
            f"{vendor}: the connection has no base_url (`bastion connection set {vendor}`{hint})"
        )
    return base


def secret(ctx: ActionContext, vendor: str, name: str) -> str:
    value = ctx.secrets.get(name)
    if not value:
        raise ActionError(f"{vendor}: secret {name!r} is not set (`bastion secret set {name}`)")
    return value


def segment(vendor: str, value: str, what: str = "id", *, safe: str = "") -> str:
    """``value`` quoted as one path segment, so an id taken from an input cannot reach another endpoint."""
    value = str(value).strip()
    if not value:
        raise ActionError(f"{vendor}: {what} must not be empty")
    return quote(value, safe=safe)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def basic_auth(user: str, password: str) -> dict[str, str]:
    raw = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    return {"Authorization": f"Basic {raw}"}


def _header(headers: Mapping[str, str], name: str) -> str | None:
    return next((v for k, v in headers.items() if k.lower() == name), None)


def retry_delay(headers: Mapping[str, str], attempt: int, *, now: float | None = None) -> float:
    """Seconds to wait before retry ``attempt`` (0-based): ``Retry-After`` (seconds or HTTP date), else an
    epoch ``X-Rate-Limit-Reset`` (Okta) / ``X-RateLimit-Reset``, else a short backoff of 1, 2, 4, 8 s."""
    now = time.time() if now is None else now
    value = (_header(headers, "retry-after") or "").strip()
    if value:
        try:
            return max(0.0, float(value))
        except ValueError:
            try:
                return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - now)
            except (TypeError, ValueError):
                pass
    for name in ("x-rate-limit-reset", "x-ratelimit-reset"):
        try:
            return max(0.0, float(_header(headers, name) or "") - now)
        except ValueError:
            continue
    return float(min(2**attempt, 8))


def _parse(response: httpx.Response) -> tuple[Any, str]:
    content = response.content[:MAX_BODY]
    text = content.decode(response.encoding or "utf-8", errors="replace")
    if "json" in response.headers.get("content-type", "") and content.strip():
        try:
            return response.json(), text
        except ValueError:
            pass
    return None, text


def _describe(describe: Describe | None, status: int, body: Any, text: str) -> tuple[str, str]:
    try:
        code, message = describe(status, body, text) if describe else ("", "")
    except (AttributeError, IndexError, KeyError, TypeError, ValueError):
        code, message = "", ""  # an error body of an unexpected shape must not hide the status
    if not code and not message:
        message = text.strip()[:300] or "no error body"
    return code, message


async def request(
    ctx: ActionContext,
    vendor: str,
    method: str,
    url: str,
    *,
    describe: Describe | None = None,
    headers: Mapping[str, str] | None = None,
    params: Mapping[str, Any] | None = None,
    json: Any = None,
    form: Mapping[str, str] | None = None,
    content: bytes | None = None,
    timeout: float = 30.0,
) -> VendorResponse:
    """Send one request (``url`` absolute or a path under ``base_url``) and return its 2xx answer.
    Without ``describe`` a refusal shows the vendor's body as it came.

    Raises :class:`VendorError` / :class:`VendorRateLimited`, :class:`~bastion.connectors.core.SSRFError`,
    or :class:`ActionError` when the vendor cannot be reached."""
    if not urlsplit(url).scheme:
        url = base_url(ctx, vendor) + "/" + url.lstrip("/")
    conn = ctx.connection
    allow_private = bool(conn.get("allow_private", False))
    send = {str(k): str(v) for k, v in (conn.get("headers") or {}).items()}
    send.update(headers or {})
    send.setdefault("Accept", "application/json")
    method = method.upper()
    verify = bool(conn.get("verify_tls", True))
    async with guarded_client(timeout=timeout, verify=verify, allow_private=allow_private) as client:
        attempt = 0
        while True:
            await check_url(url, allow_private=allow_private)
            try:
                response = await client.request(
                    method, url, headers=send, params=params, json=json, data=form, content=content
                )
            except httpx.HTTPError as exc:
                raise ActionError(f"{vendor}: {method} {url} failed: {type(exc).__name__}: {exc}") from None
            body, text = _parse(response)
            status = response.status_code
            if 200 <= status < 300:
                return VendorResponse(status, dict(response.headers), body, text)
            limited = status == 429 or (status == 503 and "retry-after" in response.headers)
            if not limited:
                raise VendorError(vendor, status, *_describe(describe, status, body, text), body)
            wait = retry_delay(response.headers, attempt)
            if attempt >= MAX_RETRIES or wait > MAX_WAIT_S:
                code, message = _describe(describe, status, body, text)
                note = (
                    f"(rate limited: gave up after {attempt + 1} attempt(s); "
                    f"the vendor asks to retry in {wait:.0f}s)"
                )
                raise VendorRateLimited(vendor, status, code, f"{message} {note}", body, wait)
            ctx.log(f"{vendor}: {status} rate limited on {method} {urlsplit(url).path}; retry in {wait:g}s")
            await asyncio.sleep(wait)
            attempt += 1


_tokens: dict[tuple[str, str, str], tuple[str, float]] = {}


def clear_token_cache() -> None:
    """Forget every cached access token (after rotating an app secret, or between tests)."""
    _tokens.clear()


async def _token(
    ctx: ActionContext, vendor: str, token_url: str, form: Mapping[str, str], describe: Describe
) -> tuple[tuple[str, str, str], str, bool]:
    """(cache key, access token, whether it came from the cache). The key holds a hash of the form (so
    of the secret): a rotated secret gets a new token."""
    digest = hashlib.sha256(repr(sorted(form.items())).encode()).hexdigest()
    key = (ctx.tenant_id, token_url, digest)
    cached = _tokens.get(key)
    if cached and cached[1] > time.monotonic():
        return key, cached[0], True
    answer = await request(ctx, vendor, "POST", token_url, describe=describe, form=form)
    body = answer.json if isinstance(answer.json, dict) else {}
    token = body.get("access_token")
    if not isinstance(token, str) or not token:
        raise ActionError(f"{vendor}: the token endpoint answered without an access_token")
    try:
        lifetime = float(body.get("expires_in", 300))
    except (TypeError, ValueError):
        lifetime = 300.0
    _tokens[key] = (token, time.monotonic() + max(lifetime - TOKEN_MARGIN_S, 0.0))
    return key, token, False


async def oauth_request(
    ctx: ActionContext,
    vendor: str,
    method: str,
    url: str,
    *,
    token_url: str,
    token_form: Mapping[str, str],
    describe: Describe,
    params: Mapping[str, Any] | None = None,
    json: Any = None,
) -> VendorResponse:
    """:func:`request` with an OAuth2 client-credentials bearer token (``token_form`` is the grant's
    form). A 401 drops the token; when it came from the cache (revoked, rotated) one fresh token is tried."""
    while True:
        key, token, cached = await _token(ctx, vendor, token_url, token_form, describe)
        try:
            return await request(
                ctx, vendor, method, url, describe=describe, headers=bearer(token), params=params, json=json
            )
        except VendorError as exc:
            if exc.status != 401:
                raise
            _tokens.pop(key, None)
            if not cached:
                raise
