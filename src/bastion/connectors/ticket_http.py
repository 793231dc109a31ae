"""One way to call a SaaS vendor's REST API for the chat, paging and ticketing connectors.

Every request goes through ``core.http_request`` (so the SSRF guard, the connection's headers, TLS
setting and redirect checks apply), asks it to accept any status, and then decides here: a 429 (and a
503 that names a Retry-After) is retried politely, at most :data:`MAX_RETRIES` times and never waiting
longer than :data:`MAX_WAIT_S` per wait; any other non-2xx becomes an :class:`ActionError` that carries
the vendor's status and its own error text, read by the connector's ``describe`` function.
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from bastion.connectors.core import http_request
from bastion.connectors.registry import ActionContext, ActionError

__all__ = [
    "MAX_RETRIES",
    "MAX_WAIT_S",
    "Answer",
    "RateLimited",
    "VendorError",
    "base_url",
    "basic_auth",
    "bearer",
    "path_part",
    "retry_after_s",
    "secret",
    "text_of",
    "vendor_request",
]

MAX_RETRIES = 3
MAX_WAIT_S = 30.0
DEFAULT_WAIT_S = 1.0
_ANY_STATUS = list(range(100, 600))


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    json: Any
    text: str | None


class VendorError(ActionError):
    """The vendor refused the request; ``answer`` keeps its status and body so callers branch on those."""

    def __init__(self, message: str, answer: Answer) -> None:
        super().__init__(message)
        self.answer = answer

    @property
    def status(self) -> int:
        return self.answer.status


class RateLimited(VendorError):
    """The vendor still refused for rate limits after the polite retries (or asked for too long a wait)."""


def base_url(ctx: ActionContext, vendor: str, example: str) -> str:
    """The connection's base URL; there is no built-in default, so each tenant names its own endpoint."""
    found = ctx.connection.get("base_url")
    if not found:
        raise ActionError(f"{vendor}: the connection has no base_url (for example {example})")
    return str(found).rstrip("/")


def secret(ctx: ActionContext, vendor: str, name: str) -> str:
    value = ctx.secrets.get(name)
    if not value:
        raise ActionError(f"{vendor}: secret {name!r} is not set for this connection")
    return value


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def basic_auth(user: str, password: str) -> dict[str, str]:
    raw = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    return {"Authorization": f"Basic {raw}"}


def path_part(value: str) -> str:
    """One URL path segment, so an id taken from an input cannot walk to another endpoint."""
    value = str(value).strip()
    if not value:
        raise ActionError("an empty id was given")
    return quote(value, safe="")


def retry_after_s(headers: dict[str, str], now: float | None = None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date); None when absent or unreadable."""
    value = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


async def vendor_request(
    ctx: ActionContext,
    vendor: str,
    method: str,
    url: str,
    *,
    describe: Callable[[Answer], str],
    headers: dict[str, str] | None = None,
    json: Any = None,
    body: str | None = None,
    params: dict[str, Any] | None = None,
    timeout: float = 30.0,
) -> Answer:
    """Send one request; retry rate limits; return a 2xx answer or raise ``"<vendor>: <status> <text>"``."""
    attempt = 0
    while True:
        raw = await http_request(
            url,
            method=method,
            headers=headers,
            json=json,
            body=body,
            params=params,
            timeout=timeout,
            expect_status=_ANY_STATUS,
            ctx=ctx,
        )
        answer = Answer(raw["status"], raw["headers"], raw["json"], raw["text"])
        if 200 <= answer.status < 300:
            return answer
        wait = retry_after_s(answer.headers)
        limited = answer.status == 429 or (answer.status == 503 and wait is not None)
        if not limited:
            raise VendorError(f"{vendor}: {answer.status} {describe(answer)}".rstrip(), answer)
        wait = DEFAULT_WAIT_S * (2**attempt) if wait is None else wait
        if attempt >= MAX_RETRIES or wait > MAX_WAIT_S:
            raise RateLimited(
                f"{vendor}: {answer.status} rate limited after {attempt + 1} attempt(s) "
                f"(Retry-After {wait:g}s): {describe(answer)}".rstrip(),
                answer,
            )
        ctx.log(f"{vendor}: {answer.status}, retrying in {wait:g}s")
        await asyncio.sleep(wait)
        attempt += 1


def text_of(answer: Answer, limit: int = 300) -> str:
    """A fallback description: the body as text, shortened."""
    if answer.json is not None:
        import orjson

        return orjson.dumps(answer.json).decode()[:limit]
    return (answer.text or "").strip()[:limit]
