"""The SSRF guard for libraries built on ``requests`` (``taxii2-client``): a transport adapter that sends
each request through a guarded ``httpx`` client (:mod:`bastion.connectors.egress`).

A check of the host before handing a URL to such a library is not enough: ``requests`` resolves the name
again when it connects, and a DNS answer that changes in between (rebinding) would reach an internal
address after all. Mounted on the library's session, :class:`GuardedAdapter` makes every connection,
redirects included (``requests`` sends each hop through the adapter), go where the guard allowed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

import httpx
import requests
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict
from requests.utils import get_encoding_from_headers

__all__ = ["GuardedAdapter", "guard_session"]


class GuardedAdapter(BaseAdapter):
    """A ``requests`` transport over ``client``, a guarded client: redirects it follows itself pass the
    guard too, and those it leaves to ``requests`` come back through this adapter."""

    def __init__(self, client: httpx.Client) -> None:
        super().__init__()
        self._client = client

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: float | tuple[float | None, float | None] | None = None,
        verify: bool | str = True,
        cert: Any = None,
        proxies: Mapping[str, str] | None = None,
    ) -> requests.Response:
        body = request.body
        if body is not None and not isinstance(body, bytes | str):
            raise TypeError("the guarded transport takes request bodies as bytes or text, not streams")
        headers = {k: v if isinstance(v, str) else v.decode("latin-1") for k, v in request.headers.items()}
        try:
            answer = self._client.request(
                request.method or "GET",
                request.url or "",
                headers=headers,
                content=body,
                timeout=_timeout(timeout, self._client.timeout),
            )
        except httpx.TimeoutException as exc:
            raise requests.exceptions.Timeout(str(exc), request=request) from exc
        except httpx.TransportError as exc:
            raise requests.exceptions.ConnectionError(str(exc), request=request) from exc
        response = requests.Response()
        response.status_code = answer.status_code
        response.headers = CaseInsensitiveDict(dict(answer.headers))
        response._content = answer.content  # already decoded by httpx
        response.url = request.url or ""
        response.reason = answer.reason_phrase
        response.encoding = get_encoding_from_headers(response.headers)
        response.request = request
        response.connection = cast(Any, self)  # requests' own auth handlers re-send through it
        return response

    def close(self) -> None:
        """The client belongs to whoever made it."""


def _timeout(
    given: float | tuple[float | None, float | None] | None, default: httpx.Timeout
) -> httpx.Timeout:
    if given is None:
        return default
    if isinstance(given, tuple):
        connect, read = given
        return httpx.Timeout(connect=connect, read=read, write=read, pool=connect)
    return httpx.Timeout(given)


def guard_session(session: requests.Session, client: httpx.Client) -> None:
    """Send every request of ``session`` through ``client``; proxies from the environment are not used
    (through a proxy, the address checked would not be the address reached)."""
    session.trust_env = False
    adapter = GuardedAdapter(client)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
