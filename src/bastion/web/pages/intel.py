"""The console's intel page: how the tenant's feeds are doing, and a lookup box.

Feed health is read from the feed rows the poller keeps (status, last poll and success, last error,
indicators loaded); a feed whose last success is older than three of its intervals is shown as stale,
because a feed that silently stopped is the failure people miss. The lookup answers exactly what
``GET /api/v1/intel/lookup`` answers (:func:`bastion.intel.store.lookup`: matches with source, decayed
confidence and TLP, and the warning lists), plus links to the tenant's alerts that carry the value, so
an analyst can go from "is this bad?" to "where have we seen it?" in one click. Engineers can poll a
feed now (the API's ``POST /api/v1/intel/feeds/{name}/poll``, same role) to check a fix at once.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from bastion.intel.polling import poll_feeds
from bastion.intel.store import lookup
from bastion.intel.warninglists import shared_warninglists
from bastion.model import Role
from bastion.model.intel import IndicatorType
from bastion.store import Database, TenantScope
from bastion.store._util import now_ms
from bastion.store.intel import IntelRepository
from bastion.web.render import NavItem, flash_redirect, render
from bastion.web.session import CurrentUser, EngineerUser

__all__ = ["feed_health", "lookup_value", "nav", "router"]

router = APIRouter()
nav = [NavItem("Intel", "/intel", order=50, min_role=Role.VIEWER)]

_STALE_INTERVALS = 3
_ALERT_LINKS = 10


def _health(feed: dict[str, Any], now: int) -> str:
    """ok | stale | error | never (not polled yet) | disabled."""
    if not feed["enabled"]:
        return "disabled"
    if feed["status"] == "error":
        return "error"
    last = feed.get("last_success")
    if last is None:
        return "never"
    if now - int(last) > _STALE_INTERVALS * int(feed["interval_s"]) * 1000:
        return "stale"
    return "ok"


def feed_health(db: Database, tenant_id: str, *, now: int | None = None) -> dict[str, Any]:
    """The tenant's feeds with a health word each, and how many indicators the tenant holds."""
    now = now if now is not None else now_ms()
    with db.read() as conn:
        repo = IntelRepository(conn, tenant_id)
        feeds = [msgspec.to_builtins(f) for f in repo.feeds()]
        total = repo.count()
    for f in feeds:
        f["health"] = _health(f, now)
        f.pop("config", None)  # may hold credentials for the feed; never shown
        f.pop("etag", None)
        f.pop("cursor", None)
    return {"feeds": feeds, "indicators": total}


def lookup_value(
    db: Database, tenant_id: str, value: str, kind: str | None, warninglists_path: str | None
) -> dict[str, Any]:
    """The lookup answer for ``value`` plus the tenant's latest alerts carrying it; ``error`` when the
    value or type is not acceptable."""
    value = value.strip()
    if not value:
        return {"error": "type a value to look up: an IP address, domain, URL, hash, e-mail..."}
    try:
        itype = IndicatorType(kind) if kind else None
    except ValueError:
        return {"error": f"unknown indicator type {kind!r}"}
    try:
        answer = lookup(db, tenant_id, value, kind=itype, warninglists=shared_warninglists(warninglists_path))
    except ValueError as exc:  # a value that cannot be read as the given type
        return {"error": str(exc)}
    with db.read() as conn:
        found, _ = TenantScope(conn, tenant_id).alerts.list(value=answer["value"], limit=_ALERT_LINKS)
    answer["alerts"] = [
        {
            "id": a.id,
            "title": a.title,
            "time": a.time,
            "severity": a.severity.name.lower(),
            "case_id": a.case_id,
        }
        for a in found
    ]
    return answer


def technique_url(technique: str) -> str:
    """The ATT&CK page of ``T1059.001``."""
    return "https://attack.mitre.org/techniques/" + technique.strip().upper().replace(".", "/") + "/"


@router.post("/intel/feeds/poll", summary="Poll one feed now")
async def intel_poll(
    request: Request, user: EngineerUser, name: Annotated[str, Form(max_length=200)]
) -> Response:
    """What ``POST /api/v1/intel/feeds/{name}/poll`` does: fetch the feed now, whatever its schedule; its
    health row records the outcome either way (audited by the poller)."""
    try:
        results = await run_in_threadpool(
            lambda: poll_feeds(request.app.state.db, user.tenant_id, name=name, actor=user.actor)
        )
    except ValueError as exc:
        return flash_redirect(request, "/intel", str(exc), error=True)
    r = results[0]
    if r.status == "error":
        return flash_redirect(request, "/intel", f"feed {name}: {r.error}", error=True)
    return flash_redirect(request, "/intel", f"feed {name} polled: {r.status}, {r.loaded} new indicators")


@router.get("/intel", summary="Intel: feed health and lookup")
async def intel_page(
    request: Request,
    user: CurrentUser,
    q: Annotated[str | None, Query(max_length=2048)] = None,
    type: Annotated[str | None, Query(max_length=30)] = None,
) -> Response:
    db: Database = request.app.state.db
    health = await run_in_threadpool(feed_health, db, user.tenant_id)
    result = None
    if q is not None:
        result = await run_in_threadpool(
            lookup_value, db, user.tenant_id, q, type or None, request.app.state.settings.warninglists_path
        )
    return render(
        request,
        "intel.html",
        q=q or "",
        qtype=type or "",
        types=[t.value for t in IndicatorType],
        result=result,
        technique_url=technique_url,
        **health,
    )
