"""External Dynamic Lists for firewalls: ``GET /edl/{tenant}/{list}.txt``.

No API key: firewalls poll with the list's own token (``?token=``, ``Authorization: Bearer``, or HTTP
Basic with the token as password, as PAN-OS and FortiGate send it). ``?type=ip|domain|url`` serves one
kind of entry (see :mod:`bastion.connectors.edl`). Unknown tenant or list: 404; wrong or missing token:
401. The body is plain text, one entry per line, and never cached. Prefer the header forms: a token in
the query string ends up in access logs and proxies.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import PlainTextResponse

from bastion.api.errors import ApiError
from bastion.connectors.edl import BlocklistError, serve_list
from bastion.store import Database, TenantRepository

__all__ = ["router"]

router = APIRouter(tags=["edl"])
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="bastion-edl", Basic realm="bastion-edl"'}


def _token(request: Request, query_token: str | None) -> str | None:
    if query_token:
        return query_token
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer" and value:
        return value
    if scheme.lower() == "basic" and value:
        try:
            decoded = base64.b64decode(value, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        return decoded.partition(":")[2] or None
    return None


def _serve(db: Database, tenant: str, name: str, token: str | None, kind: str) -> str | None:
    with db.read() as conn:
        repo = TenantRepository(conn)
        found = repo.by_name(tenant) or repo.get(tenant)
        if found is None:
            raise BlocklistError(f"no blocklist {name!r}")
        return serve_list(conn, found.id, name, token, kind=kind)


@router.get(
    "/edl/{tenant}/{name}.txt",
    summary="A blocklist as an External Dynamic List (firewalls poll it with the list token)",
    response_class=PlainTextResponse,
)
async def edl(
    request: Request,
    tenant: str,
    name: str,
    token: Annotated[str | None, Query(max_length=200)] = None,
    type: Literal["all", "ip", "domain", "url"] = "all",
) -> PlainTextResponse:
    try:
        body = await run_in_threadpool(
            _serve, request.app.state.db, tenant, name, _token(request, token), type
        )
    except BlocklistError:
        raise ApiError(404, f"no blocklist {name!r} for tenant {tenant!r}") from None
    if body is None:
        raise ApiError(401, "missing or wrong list token", headers=_CHALLENGE)
    return PlainTextResponse(body, headers={"Cache-Control": "no-store"})
