"""Request dependencies: who is calling (Bearer API key), what they may do, and the request body."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from bastion.api.errors import ApiError
from bastion.config import Settings
from bastion.ingest.queue import IngestQueue
from bastion.model import ROLE_RANK, Role
from bastion.store import Database
from bastion.tenancy.service import Principal, authenticate

__all__ = ["CurrentPrincipal", "get_db", "get_queue", "read_limited_body", "require_role"]


def get_db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


def get_queue(request: Request) -> IngestQueue:
    q: IngestQueue = request.app.state.ingest_queue
    return q


def get_settings(request: Request) -> Settings:
    s: Settings = request.app.state.settings
    return s


async def _principal(request: Request) -> Principal:
    header = request.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise ApiError(
            401, "missing API key: send 'Authorization: Bearer <key>'", headers={"WWW-Authenticate": "Bearer"}
        )
    principal = await run_in_threadpool(authenticate, request.app.state.db, key.strip())
    if principal is None:
        raise ApiError(401, "invalid or revoked API key", headers={"WWW-Authenticate": "Bearer"})
    return principal


CurrentPrincipal = Annotated[Principal, Depends(_principal)]


def require_role(minimum: Role) -> Callable[[Principal], Principal]:
    """A dependency that lets through callers whose role ranks at least ``minimum`` (admin always)."""

    def check(principal: CurrentPrincipal) -> Principal:
        if ROLE_RANK[principal.role] < ROLE_RANK[minimum]:
            raise ApiError(
                403, f"role {principal.role.value!r} may not do this; it needs {minimum.value} or higher"
            )
        return principal

    return check


async def read_limited_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it passes ``limit`` bytes (declared or actual)."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise ApiError(400, f"invalid Content-Length {declared!r}") from None
        if size > limit:
            raise ApiError(
                413, f"request body of {size} bytes is over the limit of {limit} bytes", limit=limit
            )
    # A client that stops sending mid-body would otherwise hold what the route reserved for it (an ingest
    # queue place) for as long as it keeps the connection open.
    settings = request.app.state.settings
    idle_s, whole_s = settings.body_idle_timeout_s, settings.body_timeout_s
    loop = asyncio.get_running_loop()
    deadline = loop.time() + whole_s
    chunks: list[bytes] = []
    total = 0
    stream = request.stream()
    while True:
        wait = min(idle_s, deadline - loop.time())
        try:
            if wait <= 0:
                raise TimeoutError
            chunk = await asyncio.wait_for(anext(stream), wait)
        except StopAsyncIteration:
            break
        except TimeoutError:
            why = f"sent nothing for {idle_s:g} s" if wait == idle_s else f"took over {whole_s:g} s"
            raise ApiError(408, f"request body incomplete: the client {why}") from None
        total += len(chunk)
        if total > limit:
            raise ApiError(413, f"request body is over the limit of {limit} bytes", limit=limit)
        chunks.append(chunk)
    return b"".join(chunks)
