"""Outbound HTTP for actions: a client that connects only to addresses the SSRF guard allowed.

``core.check_url`` refuses a URL whose host resolves to a loopback, private or reserved address. A check
made before the request is not enough on its own: the HTTP library resolves the name again to connect,
and a DNS answer that changes in between (rebinding) would reach the internal address after all. The
client made here resolves once, when it opens a connection, refuses the connection if any address in
that answer is not allowed, and connects to an address from that same answer. TLS still verifies the
certificate against the host name of the URL.

Outbound proxies from the environment (``HTTPS_PROXY``) are not used by these clients: through a proxy the
proxy would resolve the name, and the address checked would not be the address reached.

:func:`guarded_sync_client` is the same for synchronous code (the intel feed poller).
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
    "SyncResolver",
    "blocked_address",
    "guarded_client",
    "guarded_sync_client",
    "system_resolver",
    "system_resolver_sync",
    "vetted_addresses",
    "vetted_addresses_sync",
]

Resolver = Callable[[str, int], Awaitable[list[str]]]
SyncResolver = Callable[[str, int], list[str]]


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


def _addresses(infos: Iterable[Any]) -> list[str]:
    return list(dict.fromkeys(str(info[4][0]).split("%")[0] for info in infos))


async def system_resolver(host: str, port: int) -> list[str]:
    """The addresses the operating system's resolver gives for ``host``, in its order."""
    loop = asyncio.get_running_loop()
    try:
        return _addresses(await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM))
    except socket.gaierror as exc:
        raise ActionError(f"cannot resolve host {host!r}: {exc.strerror}") from None


def system_resolver_sync(host: str, port: int) -> list[str]:
    """:func:`system_resolver` for synchronous code."""
    try:
        return _addresses(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
    except socket.gaierror as exc:
        raise ActionError(f"cannot resolve host {host!r}: {exc.strerror}") from None


def _literal(host: str) -> list[str] | None:
    try:
        return [str(ipaddress.ip_address(host))]
    except ValueError:
        return None


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
    addresses = _literal(host) or await resolver(host, port)
    return _vet(host, addresses, allow_private=allow_private, subject=subject)


def vetted_addresses_sync(
    host: str,
    port: int,
    *,
    allow_private: bool,
    resolver: SyncResolver = system_resolver_sync,
    subject: str | None = None,
) -> list[str]:
    """:func:`vetted_addresses` for synchronous code."""
    addresses = _literal(host) or resolver(host, port)
    return _vet(host, addresses, allow_private=allow_private, subject=subject)


def _vet(host: str, addresses: list[str], *, allow_private: bool, subject: str | None) -> list[str]:
    if not addresses:
        raise ActionError(f"cannot resolve host {host!r}: no addresses")
    if not allow_private:
        for address in addresses:
            if blocked_address(ipaddress.ip_address(address)):
                raise SSRFError(
                    f"refused {subject or host}: {host} resolves to {address}, a loopback/private/reserved "
                    "address; "
                    "set allow_private on the connection (or feed) to reach internal services"
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


class _GuardedSyncBackend(httpcore.NetworkBackend):
    """:class:`_GuardedBackend` for httpcore's synchronous pool."""

    def __init__(self, *, allow_private: bool, resolver: SyncResolver) -> None:
        self._inner = httpcore.SyncBackend()
        self._allow_private = allow_private
        self._resolver = resolver

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        addresses = vetted_addresses_sync(
            host, port, allow_private=self._allow_private, resolver=self._resolver
        )
        failure: httpcore.ConnectError | None = None
        for address in addresses:
            try:
                return self._inner.connect_tcp(
                    address, port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except httpcore.ConnectError as exc:
                failure = exc
        assert failure is not None
        raise failure

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        raise SSRFError("refused: no connections to unix sockets")

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


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


class _GuardedSyncTransport(httpx.HTTPTransport):
    def __init__(self, *, verify: bool, allow_private: bool, resolver: SyncResolver) -> None:
        super().__init__(verify=verify, trust_env=False)
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(verify=verify, trust_env=False),
            network_backend=_GuardedSyncBackend(allow_private=allow_private, resolver=resolver),
        )


def guarded_sync_client(
    *,
    timeout: float,
    verify: bool = True,
    allow_private: bool = False,
    follow_redirects: bool = False,
    resolver: SyncResolver = system_resolver_sync,
) -> httpx.Client:
    """An ``httpx.Client`` whose every connection goes to an address :func:`vetted_addresses_sync`
    allowed; a redirect is safe to follow, since each hop connects through the same guard."""
    transport = _GuardedSyncTransport(verify=verify, allow_private=allow_private, resolver=resolver)
    return httpx.Client(
        timeout=timeout, follow_redirects=follow_redirects, transport=transport, trust_env=False
    )
