"""A small async JSON client for SaaS vendor APIs, behind the same SSRF guard as ``core.http_request``.

Vendor connectors (Okta, Microsoft Graph, ...) need more than ``core.http_request`` gives: the status and
the vendor's own error code on failure (so the message says what the vendor said, and callers branch on
:class:`VendorHTTPError` attributes, never on text), and polite handling of rate limits. This module
does exactly that and nothing vendor-specific:

* every attempt passes :func:`bastion.connectors.core.check_url` (loopback/private addresses need the
  connection's ``allow_private``); redirects are not followed, so no hop escapes the check;
* the connection's ``headers`` and ``verify_tls`` apply as in ``core.http_request``;
* a 429 (or a 503 that carries ``Retry-After``) is retried at most ``max_retries`` times, waiting what the
  vendor asks (``Retry-After`` in seconds or as an HTTP date, else an epoch ``X-Rate-Limit-Reset`` /
  ``X-RateLimit-Reset``, else a short backoff); a wait longer than ``max_wait_s`` is not slept through:
  the call fails at once and says when to try again;
* any other non-success status raises :class:`VendorHTTPError` whose message the connector builds from
  the vendor's error body with its ``describe`` function.

:func:`earlier_change` is the one non-HTTP helper: vendor state changes converge (suspending a suspended
user does nothing), so a retried step must find the change its first attempt recorded.
"""

from __future__ import annotations

import asyncio
import email.utils
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx

from bastion.connectors.core import MAX_BODY, check_url
from bastion.connectors.registry import ActionContext, ActionError

__all__ = [
    "DescribeError",
    "VendorHTTPError",
    "VendorRateLimited",
    "VendorResponse",
    "earlier_change",
    "join_url",
    "request_json",
    "retry_delay",
]

#: Builds the human message from (status, parsed JSON body or None, raw text): returns (code, message).
DescribeError = Callable[[int, Any, str], tuple[str, str]]

DEFAULT_RETRIES = 3
DEFAULT_MAX_WAIT_S = 30.0


@dataclass
class VendorResponse:
    status: int
    headers: dict[str, str]
    json: Any
    text: str


class VendorHTTPError(ActionError):
    """The vendor refused the request: ``status`` and the vendor's ``code`` are kept for callers."""

    def __init__(self, vendor: str, status: int, code: str, message: str, body: Any = None) -> None:
        super().__init__(f"{vendor}: {status} {code} {message}".replace("  ", " ").strip())
        self.vendor = vendor
        self.status = status
        self.code = code
        self.vendor_message = message
        self.body = body


class VendorRateLimited(VendorHTTPError):
    """Still rate limited after the allowed retries, or asked to wait longer than we will."""

    def __init__(
        self, vendor: str, status: int, code: str, message: str, retry_after_s: float | None
    ) -> None:
        super().__init__(vendor, status, code, message)
        self.retry_after_s = retry_after_s


def earlier_change(ctx: ActionContext, action: str, target: str) -> str | None:
    """The open change a previous attempt of this same step (same idempotency key) recorded for
    ``target``, so a retried containment step that finds the vendor already changed still returns the
    ``change_id`` (the key is stored in the change as ``idempotency_key``). None without a key."""
    if not ctx.idempotency_key:
        return None
    from bastion.connectors.undo import find_step_change
    from bastion.respond.engine import configured_store

    try:
        db = configured_store()
    except RuntimeError as exc:
        raise ActionError(str(exc)) from None
    with db.read() as conn:
        return find_step_change(conn, ctx, action, target)


def join_url(base: str, path: str) -> str:
    """``path`` under the connection's ``base``; an absolute ``path`` is used as it is."""
    if urlsplit(path).scheme:
        return path
    return urljoin(base.rstrip("/") + "/", path.lstrip("/"))


def retry_delay(headers: Mapping[str, str], attempt: int, *, now: float | None = None) -> float:
    """Seconds to wait before retrying, from the vendor's headers; ``attempt`` (0-based) sets a short
    exponential fallback when the vendor says nothing."""
    now = time.time() if now is None else now
    value = headers.get("retry-after")
    if value:
        value = value.strip()
        try:
            return max(0.0, float(value))
        except ValueError:
            try:
                return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - now)
            except (TypeError, ValueError):
                pass
    for name in ("x-rate-limit-reset", "x-ratelimit-reset"):
        reset = headers.get(name)
        if reset:
            try:
                return max(0.0, float(reset) - now)
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
            return None, text
    return None, text


async def request_json(
    vendor: str,
    ctx: ActionContext,
    method: str,
    url: str,
    *,
    describe: DescribeError,
    headers: Mapping[str, str] | None = None,
    params: Mapping[str, Any] | None = None,
    json: Any = None,
    form: Mapping[str, str] | None = None,
    ok: Collection[int] | None = None,
    timeout: float = 30.0,
    max_retries: int = DEFAULT_RETRIES,
    max_wait_s: float = DEFAULT_MAX_WAIT_S,
) -> VendorResponse:
    """Send one request to a vendor API and return its parsed answer, retrying rate limits politely.

    ``url`` is absolute or a path under the connection's ``base_url``. ``ok`` lists the statuses that
    count as success (default: any 2xx). Raises :class:`VendorHTTPError` (message from ``describe``),
    :class:`VendorRateLimited`, :class:`~bastion.connectors.core.SSRFError`, or :class:`ActionError` when
    the vendor cannot be reached.
    """
    conn = ctx.connection
    base = conn.get("base_url")
    if not urlsplit(url).scheme:
        if not base:
            raise ActionError(f"{vendor}: the connection has no base_url (`bastion connection set`)")
        url = join_url(str(base), url)
    allow_private = bool(conn.get("allow_private", False))
    verify = bool(conn.get("verify_tls", True))
    send_headers = {str(k): str(v) for k, v in (conn.get("headers") or {}).items()}
    send_headers.setdefault("Accept", "application/json")
    send_headers.update(headers or {})
    method = method.upper()
    async with httpx.AsyncClient(timeout=timeout, follow_redirects=False, verify=verify) as client:
        attempt = 0
        while True:
            await check_url(url, allow_private=allow_private)
            try:
                response = await client.request(
                    method, url, headers=send_headers, params=params, json=json, data=form
                )
            except httpx.HTTPError as exc:
                raise ActionError(f"{vendor}: {method} {url} failed: {type(exc).__name__}: {exc}") from None
            parsed, text = _parse(response)
            status = response.status_code
            success = status in ok if ok is not None else 200 <= status < 300
            if success:
                return VendorResponse(status, dict(response.headers), parsed, text)
            limited = status == 429 or (status == 503 and "retry-after" in response.headers)
            if not limited:
                code, message = describe(status, parsed, text)
                raise VendorHTTPError(vendor, status, code, message, parsed)
            wait = retry_delay(response.headers, attempt)
            if attempt >= max_retries or wait > max_wait_s:
                code, message = describe(status, parsed, text)
                raise VendorRateLimited(
                    vendor,
                    status,
                    code,
                    f"{message} (rate limited: gave up after {attempt + 1} attempt(s); "
                    f"the vendor asks to retry in {wait:.0f}s)",
                    wait,
                )
            ctx.log(
                f"{vendor}: {status} rate limited on {method} {urlsplit(url).path}; retrying in {wait:.1f}s"
            )
            await asyncio.sleep(wait)
            attempt += 1
