"""The changes containment actions made (blocks, disabled accounts, contained hosts), and their undo.

``GET /api/v1/changes`` lists them (``?open=true``: not yet undone); ``POST /api/v1/changes/{id}/undo``
runs the recorded undo action now, as the caller (analyst or higher: lifting a block is a response
decision). A failed undo answers 502 with the vendor's message, which is also kept on the change.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from starlette.concurrency import run_in_threadpool

from bastion.api.deps import CurrentPrincipal, require_role
from bastion.api.errors import ApiError
from bastion.api.responses import JSON
from bastion.connectors.undo import AlreadyUndone, ChangeNotFound, list_changes, undo_change
from bastion.model import Role
from bastion.store import Database
from bastion.tenancy.service import Principal

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["changes"])
Analyst = Annotated[Principal, Depends(require_role(Role.ANALYST))]


def _list(db: Database, tenant_id: str, open_only: bool, limit: int) -> list[dict[str, object]]:
    with db.read() as conn:
        return list_changes(conn, tenant_id, open_only=open_only, limit=limit)


@router.get("/changes", summary="List the changes response actions made (newest first)")
async def list_(
    request: Request,
    principal: CurrentPrincipal,
    open: bool = False,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> JSON:
    found = await run_in_threadpool(_list, request.app.state.db, principal.tenant_id, open, limit)
    return JSON({"changes": found})


def _ensure_engine(db: Database) -> None:
    """Undo actions that write Bastion's own store (edl.remove) use the engine's store; an API-only
    process may not have configured it."""
    from bastion.respond.engine import configure, configured_store

    try:
        configured_store()
    except RuntimeError:
        configure(db)


@router.post("/changes/{change_id}/undo", summary="Undo a change now (runs its recorded undo action)")
async def undo(request: Request, change_id: str, principal: Analyst) -> JSON:
    await run_in_threadpool(_ensure_engine, request.app.state.db)
    try:
        result = await undo_change(
            request.app.state.db, principal.tenant_id, change_id, actor=principal.actor
        )
    except ChangeNotFound as exc:
        raise ApiError(404, str(exc)) from None
    except AlreadyUndone as exc:
        raise ApiError(409, str(exc)) from None
    if not result["undone"]:
        raise ApiError(502, f"undo failed: {result['error']}", change=result)
    return JSON(result)
