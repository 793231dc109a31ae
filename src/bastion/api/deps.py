"""Request dependencies: who is calling (Bearer API key), what they may do, and the request body."""

from __future__ import annotations

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
    chunks: list[bytes] = []
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise ApiError(413, f"request body is over the limit of {limit} bytes", limit=limit)
        chunks.append(chunk)
    return b"".join(chunks)
