"""The console's suppressions page: what the tenant mutes, who answers for it, and when it runs out.

Two kinds exist and both are listed: triage suppressions (:mod:`bastion.triage.suppress`: conditions on an
alert, an owner and a mandatory expiry; what the queue's "suppress similar" creates) and detection
suppressions (:mod:`bastion.detect.tenant`: field values of the event that stop a Sigma match from
becoming an alert at all). Adding and removing go through those services, which audit; reading needs any
role, changing needs analyst or higher, as in the API.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from bastion.detect.tenant import remove_suppression as remove_detect_suppression
from bastion.model import Role
from bastion.model.observable import ObservableType
from bastion.store import Database, TenantScope
from bastion.store._util import now_ms
from bastion.store.detection import DetectionRepository
from bastion.triage.suppress import (
    FIELD_NAMES,
    SuppressionError,
    UnknownSuppression,
    add_suppression,
    list_suppressions,
    remove_suppression,
)
from bastion.web.render import NavItem, flash_redirect, render
from bastion.web.session import AnalystUser, CurrentUser, SignedIn

__all__ = ["nav", "parse_field_lines", "router", "suppressions_view"]

router = APIRouter()
nav = [NavItem("Suppressions", "/suppressions", order=54, min_role=Role.VIEWER)]


def suppressions_view(db: Database, tenant_id: str, *, include_expired: bool = False) -> dict[str, Any]:
    now = now_ms()
    with db.read() as conn:
        triage = [s.to_dict() for s in list_suppressions(conn, tenant_id, include_expired, now=now)]
        detect = DetectionRepository(conn, tenant_id).suppressions(active_at=None if include_expired else now)
    for s in triage:
        s["expired"] = s["expires"] <= now
    return {
        "triage": triage,
        "detect": [
            {
                "id": r.id,
                "rule_id": r.rule_id,
                "fields": r.fields,
                "reason": r.reason,
                "expires": r.expires,
                "expired": r.expires is not None and r.expires <= now,
                "created": r.created,
                "created_by": r.created_by,
            }
            for r in detect
        ],
        "now": now,
    }


def parse_field_lines(text: str) -> dict[str, str]:
    """``severity=low`` / ``tag: attack.t1059`` lines (one per line) -> a fields mapping."""
    out: dict[str, str] = {}
    for n, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        sep = "=" if "=" in line else ":" if ":" in line else None
        if sep is None:
            raise SuppressionError(f"field line {n}: write NAME=VALUE, like severity=low")
        name, _, value = line.partition(sep)
        out[name.strip()] = value.strip()
    return out


async def _page(
    request: Request,
    user: SignedIn,
    *,
    expired: bool,
    error: str | None,
    form: dict[str, str],
    status_code: int = 200,
) -> Response:
    view = await run_in_threadpool(
        suppressions_view, request.app.state.db, user.tenant_id, include_expired=expired
    )
    return render(
        request,
        "suppressions.html",
        status_code=status_code,
        expired=expired,
        error=error,
        form=form,
        field_names=FIELD_NAMES,
        entity_types=[t.value for t in ObservableType],
        **view,
    )


@router.get("/suppressions", summary="Suppressions with owner and expiry")
async def suppressions_page(
    request: Request, user: CurrentUser, expired: Annotated[bool, Query()] = False
) -> Response:
    return await _page(request, user, expired=expired, error=None, form={})


@router.post("/suppressions", summary="Add a triage suppression")
async def suppressions_add(
    request: Request,
    user: AnalystUser,
    expires: Annotated[str, Form(max_length=40)] = "",
    owner: Annotated[str, Form(max_length=200)] = "",
    rule_id: Annotated[str, Form(max_length=200)] = "",
    source: Annotated[str, Form(max_length=100)] = "",
    entity_type: Annotated[str, Form(max_length=20)] = "",
    entity_value: Annotated[str, Form(max_length=2048)] = "",
    fields: Annotated[str, Form(max_length=4000)] = "",
    reason: Annotated[str, Form(max_length=4000)] = "",
) -> Response:
    form = {
        "expires": expires,
        "owner": owner,
        "rule_id": rule_id,
        "source": source,
        "entity_type": entity_type,
        "entity_value": entity_value,
        "fields": fields,
        "reason": reason,
    }
    db: Database = request.app.state.db

    def work() -> None:
        entity = (entity_type, entity_value) if entity_value.strip() else None
        with db.write() as conn:
            add_suppression(
                TenantScope(conn, user.tenant_id),
                user.actor,
                owner=owner.strip() or user.user_name,
                expires=expires.strip(),
                rule_id=rule_id,
                source=source,
                fields=parse_field_lines(fields),
                entity=entity,
                reason=reason,
            )

    try:
        await run_in_threadpool(work)
    except SuppressionError as exc:
        return await _page(request, user, expired=False, error=str(exc), form=form, status_code=400)
    return flash_redirect(request, "/suppressions", "suppression added")


@router.post("/suppressions/{suppression_id}/remove", summary="Remove a triage suppression")
async def suppressions_remove(request: Request, user: AnalystUser, suppression_id: str) -> Response:
    db: Database = request.app.state.db

    def work() -> None:
        with db.write() as conn:
            remove_suppression(TenantScope(conn, user.tenant_id), user.actor, suppression_id)

    try:
        await run_in_threadpool(work)
    except UnknownSuppression as exc:
        return await _page(request, user, expired=False, error=str(exc), form={}, status_code=404)
    return flash_redirect(request, "/suppressions", "suppression removed")


@router.post("/suppressions/detection/{suppression_id}/remove", summary="Remove a detection suppression")
async def detection_suppression_remove(request: Request, user: AnalystUser, suppression_id: str) -> Response:
    try:
        await run_in_threadpool(
            remove_detect_suppression,
            request.app.state.db,
            user.tenant_name,
            suppression_id,
            actor=user.actor,
        )
    except ValueError as exc:
        return await _page(request, user, expired=False, error=str(exc), form={}, status_code=404)
    return flash_redirect(request, "/suppressions", "suppression removed")
