"""The built-in actions: ``core.http_request`` (with the SSRF guard), ``core.transform``, ``core.set``,
``core.sleep``, ``core.fail`` and ``core.log``.

The SSRF guard refuses loopback, private, link-local, multicast, reserved and unspecified addresses
unless the step's connection sets ``allow_private: true``. :func:`check_url` refuses such a URL before
the request with a clear reason, and the request itself goes through ``egress.guarded_client``, which
checks the address again where it connects, so a DNS answer that changes in between (rebinding) does not
get through. Redirects are followed by hand (at most five) so every hop passes the same check.
"""

from __future__ import annotations

import asyncio
from typing import Any, Literal
from urllib.parse import urljoin, urlsplit

import httpx
import jmespath

from bastion.connectors.egress import SSRFError, guarded_client, vetted_addresses
from bastion.connectors.registry import ActionContext, ActionError, action

__all__ = ["SSRFError", "check_url", "fail", "http_request", "log", "set_values", "sleep", "transform"]

MAX_REDIRECTS = 5
MAX_BODY = 10 * 1024 * 1024


async def check_url(url: str, *, allow_private: bool = False) -> None:
    """Raise :class:`SSRFError` unless ``url`` is http(s) and every address of its host is allowed."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise SSRFError(f"refused URL {url!r}: only http and https are allowed")
    host = parts.hostname
    if not host:
        raise SSRFError(f"refused URL {url!r}: no host")
    if allow_private:
        return
    await vetted_addresses(host, parts.port or 0, allow_private=False, subject=f"URL {url!r}")


@action("core.http_request", impact="low", idempotent=True)
async def http_request(
    url: str,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    params: dict[str, Any] | None = None,
    json: Any = None,
    body: str | None = None,
    timeout: float = 30.0,
    expect_status: list[int] | None = None,
    *,
    ctx: ActionContext,
) -> dict[str, Any]:
    """Send one HTTP request and return its status, headers and body (parsed when it is JSON).

    Args:
        url: absolute http(s) URL, or a path joined to the connection's base_url
        method: HTTP method
        headers: request headers
        params: query parameters
        json: a JSON body
        body: a text body (when json is not given)
        timeout: seconds before giving up
        expect_status: statuses that count as success (default: any 2xx)
    """
    conn = ctx.connection
    base = conn.get("base_url")
    if base and not urlsplit(url).scheme:
        url = urljoin(base.rstrip("/") + "/", url.lstrip("/"))
    allow_private = bool(conn.get("allow_private", False))
    send_headers = {str(k): str(v) for k, v in (conn.get("headers") or {}).items()}
    send_headers.update(headers or {})
    if ctx.idempotency_key and not any(k.lower() == "idempotency-key" for k in send_headers):
        send_headers["Idempotency-Key"] = ctx.idempotency_key
    verify = bool(conn.get("verify_tls", True))
    async with guarded_client(timeout=timeout, verify=verify, allow_private=allow_private) as client:
        current = url
        for _hop in range(MAX_REDIRECTS + 1):
            await check_url(current, allow_private=allow_private)
            try:
                response = await client.request(
                    method.upper(),
                    current,
                    headers=send_headers,
                    params=params,
                    json=json,
                    content=body if json is None else None,
                )
            except httpx.HTTPError as exc:
                raise ActionError(f"{method.upper()} {current} failed: {type(exc).__name__}: {exc}") from None
            if response.is_redirect and "location" in response.headers:
                current = urljoin(current, response.headers["location"])
                if response.status_code in (301, 302, 303):
                    method, json, body = "GET", None, None
                continue
            break
        else:
            raise ActionError(f"{url}: more than {MAX_REDIRECTS} redirects")
    content = response.content[:MAX_BODY]
    parsed: Any = None
    if "json" in response.headers.get("content-type", ""):
        try:
            parsed = response.json()
        except ValueError:
            parsed = None
    ok = response.status_code in expect_status if expect_status else response.is_success
    if not ok:
        raise ActionError(f"{method.upper()} {current} answered {response.status_code}: {content[:200]!r}")
    return {
        "status": response.status_code,
        "headers": dict(response.headers),
        "json": parsed,
        "text": content.decode(response.encoding or "utf-8", errors="replace") if parsed is None else None,
    }


@action("core.transform", impact="read")
async def transform(value: Any, jmespath_query: str | None = None, *, ctx: ActionContext) -> Any:
    """Return a value (already rendered from expressions), optionally reshaped by a JMESPath query.

    Args:
        value: any value, usually built with expressions
        jmespath_query: a JMESPath query applied to the value
    """
    if jmespath_query:
        try:
            return jmespath.search(jmespath_query, value)
        except jmespath.exceptions.JMESPathError as exc:
            raise ActionError(f"invalid JMESPath {jmespath_query!r}: {exc}") from None
    return value


@action("core.set", impact="read")
async def set_values(values: dict[str, Any], *, ctx: ActionContext) -> dict[str, Any]:
    """Name some values so later steps can use them as ``steps.<id>.output.<name>``.

    Args:
        values: the names and values to set
    """
    return values


@action("core.sleep", impact="read")
async def sleep(seconds: float, *, ctx: ActionContext) -> dict[str, float]:
    """Wait. In a workflow run the wait is durable: it survives a restart of the worker.

    Args:
        seconds: how long to wait
    """
    if seconds < 0:
        raise ActionError("seconds must not be negative")
    await asyncio.sleep(seconds)
    return {"slept": seconds}


@action("core.fail", impact="read")
async def fail(message: str = "failed by core.fail", *, ctx: ActionContext) -> None:
    """Fail the step with a message (for handlers and guard steps).

    Args:
        message: the error to report
    """
    raise ActionError(message)


@action("core.log", impact="read")
async def log(
    message: str, level: Literal["debug", "info", "warning", "error"] = "info", *, ctx: ActionContext
) -> dict[str, str]:
    """Write a line to the run's record.

    Args:
        message: the text to record
        level: debug, info, warning or error
    """
    ctx.log(f"{level}: {message}")
    return {"level": level, "message": message}
