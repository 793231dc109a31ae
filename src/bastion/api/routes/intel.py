"""Intel, inventory and ATT&CK over HTTP: load and look up indicators, manage feeds and the tenant's intel
profile, keep the asset and identity inventories current, show ATT&CK objects, and enrich an alert."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from fastapi import APIRouter, Depends, Query, Request
from starlette.concurrency import run_in_threadpool

from bastion.api.deps import CurrentPrincipal, read_limited_body, require_role
from bastion.api.errors import ApiError
from bastion.api.responses import JSON
from bastion.enrich.enricher import enrich_alert
from bastion.enrich.geoip import GeoIp
from bastion.enrich.inventory import (
    parse_assets,
    parse_identities,
    remove_inventory,
    store_assets,
    store_identities,
)
from bastion.intel.attack import shared_attack
from bastion.intel.feeds import FeedError, parse_bytes
from bastion.intel.polling import add_feed, poll_feeds
from bastion.intel.service import get_profile, ingest_parsed, update_profile
from bastion.intel.store import lookup
from bastion.intel.warninglists import shared_warninglists
from bastion.model import Role
from bastion.model.intel import IndicatorType
from bastion.store import TenantScope
from bastion.store.assets import InventoryRepository
from bastion.store.intel import IntelRepository
from bastion.tenancy.service import Principal

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["intel"])
Engineer = Annotated[Principal, Depends(require_role(Role.ENGINEER))]
Analyst = Annotated[Principal, Depends(require_role(Role.ANALYST))]


def _wl(request: Request) -> Any:
    return shared_warninglists(request.app.state.settings.warninglists_path)


@router.post("/intel/indicators", summary="Load indicators from a feed document")
async def load(
    request: Request,
    principal: Engineer,
    format: Annotated[str, Query(description="stix, misp-event, csv, json, urlhaus, ...")] = "stix",
    source: str | None = None,
) -> JSON:
    """The body is the feed file itself. Answers ``{"loaded", "merged", "rejected", ...}``."""
    body = await read_limited_body(request, request.app.state.settings.max_body_bytes)

    def work() -> dict[str, Any]:
        try:
            parsed = parse_bytes(format, body, source=source)
        except FeedError as exc:
            raise ApiError(400, str(exc)) from None
        summary = ingest_parsed(
            request.app.state.db, principal.tenant_id, parsed, actor=principal.actor, feed=source
        )
        return summary.contract()

    return JSON(await run_in_threadpool(work))


@router.get("/intel/lookup", summary="Look a value up in the tenant's intel and the warning lists")
def intel_lookup(request: Request, principal: CurrentPrincipal, value: str, type: str | None = None) -> JSON:
    kind = None
    if type:
        try:
            kind = IndicatorType(type)
        except ValueError:
            raise ApiError(400, f"unknown indicator type {type!r}") from None
    if not value.strip():
        raise ApiError(400, "value is empty")
    return JSON(
        lookup(request.app.state.db, principal.tenant_id, value, kind=kind, warninglists=_wl(request))
    )


@router.get("/intel/feeds", summary="Feeds with schedule and health")
def list_feeds(request: Request, principal: CurrentPrincipal) -> JSON:
    with request.app.state.db.read() as conn:
        feeds = IntelRepository(conn, principal.tenant_id).feeds()
    return JSON({"feeds": [msgspec.to_builtins(f) for f in feeds]})


class FeedBody(msgspec.Struct):
    name: str
    url: str
    format: str
    interval_s: int = 3600
    config: dict[str, Any] = msgspec.field(default_factory=dict)


@router.post("/intel/feeds", summary="Register a feed", status_code=201)
async def create_feed(request: Request, principal: Engineer) -> JSON:
    body = await read_limited_body(request, 1 << 20)
    try:
        spec = msgspec.json.decode(body, type=FeedBody)
    except msgspec.ValidationError as exc:
        raise ApiError(400, f"invalid feed: {exc}") from None
    except msgspec.DecodeError:
        raise ApiError(400, "body is not JSON") from None
    try:
        feed = add_feed(
            request.app.state.db,
            principal.tenant_id,
            spec.name,
            url=spec.url,
            fmt=spec.format,
            interval_s=spec.interval_s,
            config=spec.config,
            actor=principal.actor,
        )
    except ValueError as exc:
        raise ApiError(400, str(exc)) from None
    return JSON({"feed": msgspec.to_builtins(feed)}, status_code=201)


@router.post("/intel/feeds/{name}/poll", summary="Poll one feed now")
def poll(request: Request, principal: Engineer, name: str) -> JSON:
    try:
        results = poll_feeds(request.app.state.db, principal.tenant_id, name=name, actor=principal.actor)
    except ValueError as exc:
        raise ApiError(404, str(exc)) from None
    return JSON({"polled": [msgspec.to_builtins(r) for r in results]})


@router.get("/intel/profile", summary="The tenant's intel profile")
def read_profile(request: Request, principal: CurrentPrincipal) -> JSON:
    return JSON({"profile": get_profile(request.app.state.db, principal.tenant_id)})


@router.patch("/intel/profile", summary="Change owned domains, sector, region, retro-hunt window")
async def patch_profile(request: Request, principal: Engineer) -> JSON:
    body = await read_limited_body(request, 1 << 20)
    try:
        changes = msgspec.json.decode(body)
    except msgspec.DecodeError:
        raise ApiError(400, "body is not JSON") from None
    if not isinstance(changes, dict):
        raise ApiError(400, "body must be a JSON object of profile fields")
    try:
        profile = update_profile(request.app.state.db, principal.tenant_id, changes, actor=principal.actor)
    except (ValueError, TypeError) as exc:
        raise ApiError(400, str(exc)) from None
    return JSON({"profile": profile})


@router.put("/assets", summary="Import or update assets (JSON array or CSV)")
async def put_assets(request: Request, principal: Engineer) -> JSON:
    body = await read_limited_body(request, request.app.state.settings.max_body_bytes)
    try:
        assets, problems = parse_assets(body)
    except ValueError as exc:
        raise ApiError(400, str(exc)) from None
    await run_in_threadpool(
        store_assets, request.app.state.db, principal.tenant_id, assets, actor=principal.actor
    )
    return JSON({"imported": len(assets), "rejected": len(problems), "problems": problems[:50]})


@router.put("/identities", summary="Import or update identities (JSON array or CSV)")
async def put_identities(request: Request, principal: Engineer) -> JSON:
    body = await read_limited_body(request, request.app.state.settings.max_body_bytes)
    try:
        items, problems = parse_identities(body)
    except ValueError as exc:
        raise ApiError(400, str(exc)) from None
    await run_in_threadpool(
        store_identities, request.app.state.db, principal.tenant_id, items, actor=principal.actor
    )
    return JSON({"imported": len(items), "rejected": len(problems), "problems": problems[:50]})


@router.delete("/assets/{hostname}", summary="Forget an asset (a decommissioned host)")
def delete_asset(request: Request, principal: Engineer, hostname: str) -> JSON:
    removed = remove_inventory(
        request.app.state.db, principal.tenant_id, "assets", hostname, actor=principal.actor
    )
    if not removed:
        raise ApiError(404, f"no asset {hostname!r}")
    return JSON({"removed": hostname.lower()})


@router.delete("/identities/{username}", summary="Forget an identity (a user who left)")
def delete_identity(request: Request, principal: Engineer, username: str) -> JSON:
    removed = remove_inventory(
        request.app.state.db, principal.tenant_id, "identities", username, actor=principal.actor
    )
    if not removed:
        raise ApiError(404, f"no identity {username!r}")
    return JSON({"removed": username.lower()})


@router.get("/assets/{hostname}", summary="One asset")
def get_asset(request: Request, principal: CurrentPrincipal, hostname: str) -> JSON:
    with request.app.state.db.read() as conn:
        asset = InventoryRepository(conn, principal.tenant_id).asset(hostname)
    if asset is None:
        raise ApiError(404, f"no asset {hostname!r}")
    return JSON(msgspec.to_builtins(asset))


@router.get("/identities/{username}", summary="One identity")
def get_identity(request: Request, principal: CurrentPrincipal, username: str) -> JSON:
    with request.app.state.db.read() as conn:
        ident = InventoryRepository(conn, principal.tenant_id).identity(username)
    if ident is None:
        raise ApiError(404, f"no identity {username!r}")
    return JSON(msgspec.to_builtins(ident))


@router.get("/attack/{attack_id}", summary="An ATT&CK technique, tactic, group or software")
def attack(request: Request, principal: CurrentPrincipal, attack_id: str) -> JSON:
    try:
        matrix = shared_attack(request.app.state.settings.attack_path)
    except ValueError as exc:
        raise ApiError(503, str(exc)) from None
    try:
        return JSON(matrix.show(attack_id))
    except ValueError as exc:
        raise ApiError(404, str(exc)) from None


@router.get("/alerts/{alert_id}/enrichment", summary="Intel, asset, identity and GeoIP context of an alert")
def enrichment(request: Request, principal: Analyst, alert_id: str) -> JSON:
    db = request.app.state.db
    with db.read() as conn:
        alert = TenantScope(conn, principal.tenant_id).alerts.get(alert_id)
    if alert is None:
        raise ApiError(404, f"no alert {alert_id!r}")
    settings = request.app.state.settings
    geo = (
        GeoIp(settings.geoip_db, settings.geoip_asn_db)
        if settings.geoip_db or settings.geoip_asn_db
        else None
    )
    result = enrich_alert(db, principal.tenant_id, alert, warninglists=_wl(request), geoip=geo)
    if geo is not None:
        geo.close()
    return JSON(msgspec.to_builtins(result))
