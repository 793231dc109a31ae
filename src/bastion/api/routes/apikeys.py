"""The tenant's API keys: list them (never the key or its hash) and revoke one. Admins only."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from bastion.api.deps import require_role
from bastion.api.errors import ApiError
from bastion.api.responses import JSON
from bastion.model import Role
from bastion.store.tenancy import DuplicateError
from bastion.tenancy.service import NotFoundError, Principal, list_api_keys, revoke_api_key

router = APIRouter(prefix="/api/v1", tags=["api keys"])
Admin = Annotated[Principal, Depends(require_role(Role.ADMIN))]


@router.get("/apikeys", summary="List the tenant's API keys")
def list_keys(request: Request, principal: Admin) -> JSON:
    return JSON({"api_keys": list_api_keys(request.app.state.db, principal.tenant_name)})


@router.delete("/apikeys/{key_id}", summary="Revoke an API key")
def revoke_key(request: Request, principal: Admin, key_id: str) -> JSON:
    try:
        revoked = revoke_api_key(request.app.state.db, principal.tenant_name, key_id, actor=principal.actor)
    except NotFoundError:
        raise ApiError(404, f"no API key {key_id} in this tenant") from None
    except DuplicateError as exc:  # a prefix that names several keys
        raise ApiError(409, str(exc)) from None
    return JSON({"revoked": revoked})
