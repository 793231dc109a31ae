"""Outbound HTTP for actions: a client that connects only to addresses the SSRF guard allowed.

``core.check_url`` refuses a URL whose host resolves to a loopback, private or reserved address. A check
made before the request is not enough on its own: the HTTP library resolves the name again to connect,
and a DNS answer that changes in between (rebinding) would reach the internal address after all. The
client made here resolves once, when it opens a connection, refuses the connection if any address in
that answer is not allowed, and connects to an address from that same answer. TLS still verifies the
certificate against the host name of the URL.

Outbound proxies from the environment (``HTTPS_PROXY``) are not used by these clients: through a proxy the
proxy would resolve the name, and the address checked would not be the address reached.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import httpcore
import httpx

from bastion.connectors.registry import ActionError

__all__ = [
    "Resolver",
    "SSRFError",
    "blocked_address",
    "guarded_client",
    "system_resolver",
    "vetted_addresses",
]

Resolver = Callable[[str, int], Awaitable[list[str]]]


class SSRFError(ActionError):
    """The request would reach an address the connection does not allow."""


def blocked_address(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Loopback, private, link-local, multicast, reserved, unspecified or otherwise not global."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return (
        ip.is_loopback
        or ip.is_private
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or not ip.is_global
    )


async def system_resolver(host: str, port: int) -> list[str]:
    """The addresses the operating system's resolver gives for ``host``, in its order."""
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ActionError(f"cannot resolve host {host!r}: {exc.strerror}") from None
    return list(dict.fromkeys(str(info[4][0]).split("%")[0] for info in infos))


async def vetted_addresses(
    host: str,
    port: int,
    *,
    allow_private: bool,
    resolver: Resolver = system_resolver,
    subject: str | None = None,
) -> list[str]:
    """The addresses to connect to for ``host``; raises :class:`SSRFError` when any of them is not
    allowed (one bad answer refuses the name: a resolver may rotate which answer comes first).
    ``subject`` names what is refused in the message (default: the host)."""
    try:
        addresses = [str(ipaddress.ip_address(host))]
    except ValueError:
        addresses = await resolver(host, port)
        if not addresses:
            raise ActionError(f"cannot resolve host {host!r}: no addresses") from None
    if not allow_private:
        for address in addresses:
            if blocked_address(ipaddress.ip_address(address)):
                raise SSRFError(
                    f"refused {subject or host}: {host} resolves to {address}, a loopback/private/reserved "
                    "address; "
                    "set allow_private on the connection to reach internal services"
                )
    return addresses


class _GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend with the guard at the one place a name becomes an address."""

    def __init__(self, *, allow_private: bool, resolver: Resolver) -> None:
        self._inner = httpcore.AnyIOBackend()
        self._allow_private = allow_private
        self._resolver = resolver

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await vetted_addresses(
            host, port, allow_private=self._allow_private, resolver=self._resolver
        )
        failure: httpcore.ConnectError | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    address, port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except httpcore.ConnectError as exc:
                failure = exc
        assert failure is not None
        raise failure

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.AsyncNetworkStream:
        raise SSRFError("refused: actions do not connect to unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class _GuardedTransport(httpx.AsyncHTTPTransport):
    def __init__(self, *, verify: bool, allow_private: bool, resolver: Resolver) -> None:
        super().__init__(verify=verify, trust_env=False)
        # httpx builds its connection pool without a way to name the network backend; the replacement
        # pool is configured as httpx's own, plus the guarded backend.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(verify=verify, trust_env=False),
            network_backend=_GuardedBackend(allow_private=allow_private, resolver=resolver),
        )


def guarded_client(
    *, timeout: float, verify: bool = True, allow_private: bool = False, resolver: Resolver = system_resolver
) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` (redirects not followed: callers check each hop) whose every connection
    goes to an address :func:`vetted_addresses` allowed."""
    transport = _GuardedTransport(verify=verify, allow_private=allow_private, resolver=resolver)
    return httpx.AsyncClient(timeout=timeout, follow_redirects=False, transport=transport, trust_env=False)
