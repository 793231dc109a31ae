"""The console's rules page: the tenant's Sigma rule packs, each rule in them on or off, and the switches.

Turning a pack or a single rule on or off goes through :mod:`bastion.detect.tenant` (``set_pack_enabled``,
``set_rule_enabled``), which audits the change; the ingest pipeline's detector cache is keyed by the
tenant's (packs, disabled rules), so the next batch runs with the change, no restart needed.

Listing a pack's rules parses its files with pySigma (:func:`bastion.detect.rules.load_rules`), which
takes seconds for a few thousand rules, so the parsed list of each pack is kept in memory until the pack's
path changes on disk (its modification time or size). Only id, title, level, status and tags are kept.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from bastion.detect.rules import load_rules
from bastion.detect.tenant import set_pack_enabled, set_rule_enabled
from bastion.model import Role
from bastion.store import Database
from bastion.store.detection import DetectionRepository
from bastion.web.render import NavItem, flash_redirect, render
from bastion.web.session import CurrentUser, EngineerUser

__all__ = ["PackRules", "nav", "pack_rules", "router", "rules_view"]

router = APIRouter()
nav = [NavItem("Rules", "/rules", order=52, min_role=Role.VIEWER)]

_PAGE = 200  # rules shown per pack at once; the search box narrows the rest


@dataclass(frozen=True)
class RuleInfo:
    rule_id: str
    title: str
    level: str | None
    status: str | None
    tags: tuple[str, ...]


@dataclass(frozen=True)
class PackRules:
    rules: tuple[RuleInfo, ...]
    problems: int  # files or rules pySigma could not read


_cache: dict[str, tuple[tuple[float, int], PackRules]] = {}
_lock = threading.Lock()


def _stamp(path: Path) -> tuple[float, int]:
    st = path.stat()
    return st.st_mtime, st.st_size


def pack_rules(path: str) -> PackRules:
    """The rules of the pack at ``path`` (cached until the path changes); empty when it vanished."""
    p = Path(path)
    try:
        stamp = _stamp(p)
    except OSError:
        return PackRules((), 1)
    with _lock:
        hit = _cache.get(path)
        if hit is not None and hit[0] == stamp:
            return hit[1]
    try:
        loaded = load_rules([p])
    except (OSError, ValueError):
        return PackRules((), 1)
    infos = []
    for rule, _source in loaded.rules:
        # the rule id exactly as the detector keys it (bastion.detect.engine): the Sigma id, else the title
        rid = str(rule.id) if rule.id is not None else (rule.title or "")
        infos.append(
            RuleInfo(
                rule_id=rid,
                title=rule.title or rid,
                level=rule.level.name.lower() if rule.level is not None else None,
                status=rule.status.name.lower() if rule.status is not None else None,
                tags=tuple(str(t) for t in rule.tags),
            )
        )
    infos.sort(key=lambda r: (r.title.lower(), r.rule_id))
    found = PackRules(tuple(infos), len(loaded.problems))
    with _lock:
        _cache[path] = (stamp, found)
    return found


def rules_view(db: Database, tenant_id: str, *, q: str = "", only_disabled: bool = False) -> dict[str, Any]:
    """The packs with their rules (matching ``q`` in id, title or tags), each marked on or off."""
    with db.read() as conn:
        repo = DetectionRepository(conn, tenant_id)
        packs = repo.packs()
        disabled = repo.disabled_rules()
    needle = q.strip().lower()
    out = []
    for p in packs:
        found = pack_rules(p.path)
        rows = []
        for r in found.rules:
            off = r.rule_id in disabled
            if only_disabled and not off:
                continue
            if needle and not (
                needle in r.title.lower() or needle in r.rule_id.lower() or any(needle in t for t in r.tags)
            ):
                continue
            rows.append({"rule": r, "enabled": not off})
        out.append(
            {
                "name": p.name,
                "path": p.path,
                "enabled": p.enabled,
                "total": len(found.rules),
                "disabled": sum(1 for r in found.rules if r.rule_id in disabled),
                "problems": found.problems,
                "matching": len(rows),
                "rules": rows[:_PAGE],
            }
        )
    in_packs = {r.rule_id for p in packs for r in pack_rules(p.path).rules}
    return {
        "packs": out,
        "orphans": sorted(disabled - in_packs),  # disabled ids no pack holds (any more)
        "page": _PAGE,
    }


@router.get("/rules", summary="Rule packs and rules")
async def rules_page(
    request: Request,
    user: CurrentUser,
    q: Annotated[str, Query(max_length=200)] = "",
    disabled: Annotated[bool, Query()] = False,
) -> Response:
    view = await run_in_threadpool(
        rules_view, request.app.state.db, user.tenant_id, q=q, only_disabled=disabled
    )
    return render(request, "rules.html", q=q, only_disabled=disabled, **view)


@router.post("/rules/packs", summary="Turn a rule pack on or off")
async def toggle_pack(
    request: Request,
    user: EngineerUser,
    name: Annotated[str, Form(max_length=200)],
    enabled: Annotated[str, Form(max_length=1)],
) -> Response:
    on = enabled == "1"
    try:
        await run_in_threadpool(
            lambda: set_pack_enabled(request.app.state.db, user.tenant_name, name, on, actor=user.actor)
        )
    except ValueError as exc:
        return flash_redirect(request, "/rules", str(exc), error=True)
    return flash_redirect(request, "/rules", f"pack {name} {'enabled' if on else 'disabled'}")


@router.post("/rules/rule", summary="Turn one rule on or off")
async def toggle_rule(
    request: Request,
    user: EngineerUser,
    rule_id: Annotated[str, Form(max_length=200)],
    enabled: Annotated[str, Form(max_length=1)],
    q: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    on = enabled == "1"
    back = "/rules" + ("?" + urlencode({"q": q}) if q else "")
    try:
        await run_in_threadpool(
            lambda: set_rule_enabled(request.app.state.db, user.tenant_name, rule_id, on, actor=user.actor)
        )
    except ValueError as exc:
        return flash_redirect(request, back, str(exc), error=True)
    return flash_redirect(request, back, f"rule {rule_id} {'enabled' if on else 'disabled'}")
