"""Intel operations the CLI, API and feed poller share: take parsed indicators into the store, then
retro-hunt and run preemptive matching on what is new; read and change the tenant's intel profile.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import httpx
import msgspec

from bastion.ingest.alerts import normalize_observable
from bastion.intel.feeds import FeedError, ParseResult, parse_bytes, parse_path
from bastion.intel.preemptive import run_preemptive
from bastion.intel.retrohunt import DEFAULT_RETRO_DAYS, retro_hunt
from bastion.intel.store import LoadResult, load_indicators
from bastion.model import ObservableType
from bastion.store import Database
from bastion.store.intel import IntelRepository
from bastion.store.scope import TenantScope

__all__ = ["IngestSummary", "get_profile", "ingest_parsed", "load_file", "load_url", "update_profile"]

_PROFILE_KEYS = {"owned_domains", "sector", "region", "regions", "retro_days", "decay"}


class IngestSummary(msgspec.Struct):
    load: LoadResult
    retro_alerts: int = 0
    triggers: int = 0
    warnings: list[str] = msgspec.field(default_factory=list)

    def contract(self) -> dict[str, Any]:
        return {
            **self.load.contract(),
            "retro_hunt_alerts": self.retro_alerts,
            "triggers": self.triggers,
            "problems": self.load.problems[:50],
            "warnings": self.warnings[:50],
        }


def get_profile(db: Database, tenant_id: str) -> dict[str, Any]:
    with db.read() as conn:
        return IntelRepository(conn, tenant_id).profile()


def update_profile(db: Database, tenant_id: str, changes: dict[str, Any], *, actor: str) -> dict[str, Any]:
    """Merge ``changes`` into the tenant's intel profile (owned domains, sector, region, retro_days,
    decay)."""
    unknown = set(changes) - _PROFILE_KEYS
    if unknown:
        raise ValueError(
            f"unknown intel profile field(s) {', '.join(sorted(unknown))}; "
            f"use {', '.join(sorted(_PROFILE_KEYS))}"
        )
    for key in ("owned_domains", "regions"):
        if key in changes:
            items = changes[key]
            if not isinstance(items, list) or not all(isinstance(d, str) for d in items):
                raise ValueError(f"{key} must be a list of strings, not {_shown(items)}")
    for key in ("sector", "region"):
        if key in changes and changes[key] is not None and not isinstance(changes[key], str):
            raise ValueError(f"{key} must be a string (or null to clear it), not {_shown(changes[key])}")
    if "owned_domains" in changes:  # matched against intel as domains: each must be one
        owned: set[str] = set()
        for d in changes["owned_domains"]:
            if d.strip():
                try:
                    owned.add(normalize_observable(ObservableType.DOMAIN, d.rstrip(".")))
                except ValueError as exc:
                    raise ValueError(f"owned_domains: {exc}") from None
        changes["owned_domains"] = sorted(owned)
    if "retro_days" in changes:
        days = changes["retro_days"]
        if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= 3650:
            raise ValueError(f"retro_days must be a whole number of days from 1 to 3650, not {_shown(days)}")
    if "decay" in changes:
        changes["decay"] = _decay_policy(changes["decay"])
    with db.write() as conn:
        repo = IntelRepository(conn, tenant_id)
        profile = {**repo.profile(), **changes}
        repo.set_profile(profile)
        TenantScope(conn, tenant_id).audit.append(
            actor, "intel.profile.update", "intel_profile", tenant_id, changes
        )
    return profile


def _shown(value: Any) -> str:
    """A wrong value as JSON, cut short, for an error message."""
    return msgspec.json.encode(value).decode()[:60]


def _decay_policy(raw: Any) -> dict[str, float]:
    """``{source: half-life in days}`` (``default`` for every other source), each 0.01-36500 days."""
    if not isinstance(raw, dict):
        raise ValueError("decay must map a source name (or 'default') to a half-life in days")
    out: dict[str, float] = {}
    for source, days in raw.items():
        half = None
        if isinstance(days, int | float | str) and not isinstance(days, bool):  # the CLI sends text
            with contextlib.suppress(ValueError, OverflowError):
                half = float(days)
        if half is None:
            raise ValueError(f"decay for {source!r} must be a number of days, not {_shown(days)}")
        if not 0.01 <= half <= 36_500:
            raise ValueError(f"decay for {source!r} must be between 0.01 and 36500 days")
        out[str(source)] = half
    return out


def ingest_parsed(
    db: Database,
    tenant_id: str,
    parsed: ParseResult,
    *,
    actor: str,
    feed: str | None = None,
    half_life_days: float | None = None,
) -> IngestSummary:
    load = load_indicators(
        db,
        tenant_id,
        parsed.indicators,
        actor=actor,
        rejected=parsed.rejected,
        half_life_days=half_life_days,
        feed=feed,
    )
    summary = IngestSummary(load=load, warnings=list(parsed.warnings))
    if load.new:
        profile = get_profile(db, tenant_id)
        days = int(profile.get("retro_days") or DEFAULT_RETRO_DAYS)
        hunted = retro_hunt(
            db, tenant_id, load.new, days=days, benign=_warning_lists_holding, decay=profile.get("decay")
        )
        summary.retro_alerts = len(hunted.alerts)
        summary.triggers = len(run_preemptive(db, tenant_id, load.new, actor=actor))
    return summary


def load_file(
    db: Database,
    tenant_id: str,
    path: Path,
    fmt: str,
    *,
    actor: str,
    source: str | None = None,
    options: dict[str, Any] | None = None,
) -> IngestSummary:
    parsed = parse_path(fmt, path, source=source, options=options)
    return ingest_parsed(db, tenant_id, parsed, actor=actor, feed=source or path.name)


def load_url(
    db: Database,
    tenant_id: str,
    url: str,
    fmt: str,
    *,
    actor: str,
    source: str | None = None,
    options: dict[str, Any] | None = None,
    timeout: float = 60,
) -> IngestSummary:
    """Fetch a feed document (a STIX bundle, a CSV export, ...) once and load it."""
    try:
        resp = httpx.get(url, timeout=timeout, follow_redirects=True)
        resp.raise_for_status()
    except httpx.HTTPError as exc:
        raise FeedError(f"could not fetch {url}: {exc}") from None
    parsed = parse_bytes(fmt, resp.content, source=source, options=options)
    return ingest_parsed(db, tenant_id, parsed, actor=actor, feed=source or url)


def _warning_lists_holding(value: str, obs_type: str) -> list[str]:
    """The names of the MISP warning lists (the configured folder) that hold ``value``; loaded once per
    process, on the first retro-hunt hit."""
    from bastion.config import load_settings
    from bastion.intel.warninglists import shared_warninglists

    lists = shared_warninglists(load_settings().warninglists_path)
    return [w.name for w in lists.check(value, obs_type)]
