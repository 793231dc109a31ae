"""Triage settings over HTTP: the tenant's triage policy and its suppression rules.

Reading needs any role (viewer up); changing needs analyst or higher. Every change is audited by the
services it calls.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
import orjson
from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

from bastion.api.deps import CurrentPrincipal, read_limited_body, require_role
from bastion.api.errors import ApiError
from bastion.api.responses import JSON
from bastion.model import Role
from bastion.store import TenantScope
from bastion.tenancy.service import Principal
from bastion.triage.policy import PolicyError, TriagePolicy, load_policy, save_policy
from bastion.triage.suppress import (
    SuppressionError,
    UnknownSuppression,
    add_suppression,
    list_suppressions,
    remove_suppression,
)

router = APIRouter(prefix="/api/v1", tags=["triage"])
Analyst = Annotated[Principal, Depends(require_role(Role.ANALYST))]
_LIMIT = 1024 * 1024


def _policy(policy: TriagePolicy) -> dict[str, Any]:
    return {"policy": msgspec.to_builtins(policy)}


@router.get("/triage/policy", summary="The tenant's triage policy (defaults merged in)")
def get_policy(request: Request, principal: CurrentPrincipal) -> JSON:
    with request.app.state.db.read() as conn:
        return JSON(_policy(load_policy(conn, principal.tenant_id)))


@router.put(
    "/triage/policy", summary="Replace the tenant's triage policy (a partial document over the defaults)"
)
async def put_policy(request: Request, principal: Analyst) -> JSON:
    raw = await read_limited_body(request, _LIMIT)
    try:
        document = orjson.loads(raw) if raw.strip() else None
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, f"body is not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise ApiError(400, "body must be a JSON object: a (partial) triage policy document")
    try:
        with request.app.state.db.write() as conn:
            policy = save_policy(conn, principal.tenant_id, document, principal.actor)
            TenantScope(conn, principal.tenant_id).audit.append(
                principal.actor,
                "triage.policy.set",
                "triage_policy",
                principal.tenant_id,
                {"document": document},
            )
    except PolicyError as exc:
        raise ApiError(400, str(exc)) from None
    return JSON(_policy(policy))


class EntityBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: str = Field(max_length=20)
    value: str = Field(min_length=1, max_length=2048)


class SuppressionBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # strict: JSON true is refused, not read as the epoch millisecond 1
    expires: StrictStr | StrictInt = Field(
        description="a duration (7d, 12h, 2w), an ISO date or time, or epoch ms"
    )
    owner: str | None = Field(None, max_length=200, description="who answers for it (default: the caller)")
    rule_id: str | None = Field(None, max_length=200)
    source: str | None = Field(None, max_length=100)
    fields: dict[str, str] = Field(default_factory=dict)
    entity: EntityBody | str | None = Field(
        None, description='{"type": "host", "value": "ws01"} or "host:ws01"'
    )
    reason: str | None = Field(None, max_length=4000)


@router.get("/triage/suppressions", summary="List suppression rules (active ones unless asked)")
def get_suppressions(
    request: Request,
    principal: CurrentPrincipal,
    include_expired: Annotated[bool, Query(description="also list expired suppressions")] = False,
) -> JSON:
    with request.app.state.db.read() as conn:
        found = list_suppressions(conn, principal.tenant_id, include_expired)
    return JSON({"suppressions": [s.to_dict() for s in found]})


@router.post("/triage/suppressions", summary="Add a suppression rule", status_code=201)
def post_suppression(request: Request, principal: Analyst, body: SuppressionBody) -> JSON:
    entity = body.entity.model_dump() if isinstance(body.entity, EntityBody) else body.entity
    try:
        with request.app.state.db.write() as conn:
            s = add_suppression(
                TenantScope(conn, principal.tenant_id),
                principal.actor,
                owner=body.owner or principal.user or principal.actor,
                expires=body.expires,
                rule_id=body.rule_id,
                source=body.source,
                fields=body.fields,
                entity=entity,
                reason=body.reason,
            )
    except SuppressionError as exc:
        raise ApiError(400, str(exc)) from None
    return JSON(s.to_dict(), status_code=201)


@router.delete("/triage/suppressions/{suppression_id}", summary="Remove a suppression rule")
def delete_suppression(request: Request, principal: Analyst, suppression_id: str) -> JSON:
    try:
        with request.app.state.db.write() as conn:
            s = remove_suppression(TenantScope(conn, principal.tenant_id), principal.actor, suppression_id)
    except UnknownSuppression as exc:
        raise ApiError(404, str(exc)) from None
    return JSON({"deleted": s.to_dict()})
