"""The feed registry's poller: fetch each due feed, load what changed, and keep per-feed health.

Plain HTTP feeds are fetched with ``If-None-Match``/``If-Modified-Since`` from the last answer's
``ETag``/``Last-Modified``; a ``304`` loads nothing. TAXII 2.1 collections are read with
``taxii2-client`` incrementally: the cursor is the newest ``date_added`` seen in the collection's
manifest, sent as ``added_after`` next time. MISP feeds (``manifest.json`` + events) load only events
whose timestamp is newer than the cursor; a MISP server is asked through ``/events/restSearch`` with a
``timestamp`` filter. Any failure marks the feed ``error`` with the message and leaves the others alone.

Feeds are fetched through the SSRF guard (:mod:`bastion.connectors.egress`): a feed URL whose host
resolves to a loopback, private or reserved address is refused unless the feed's config says
``allow_private`` (an internal MISP, say). Every feed connects only to the addresses the guard checked,
redirects included: TAXII too, whose ``taxii2-client`` session on ``requests`` sends through the same
guarded client (:mod:`bastion.connectors.egress_requests`).
"""

from __future__ import annotations

import os
import time
from typing import Any

import httpx
import msgspec

from bastion.connectors.egress import guarded_sync_client
from bastion.connectors.egress_requests import guard_session
from bastion.intel.feeds import FORMATS, FeedError, ParseResult, parse_bytes
from bastion.intel.feeds.misp import parse_misp_event, parse_misp_manifest
from bastion.intel.feeds.stix import parse_stix_objects
from bastion.intel.service import ingest_parsed
from bastion.store import Database
from bastion.store._util import now_ms
from bastion.store.intel import FeedRow, IntelRepository
from bastion.store.scope import TenantScope

__all__ = ["FEED_FORMATS", "MAX_INTERVAL_S", "PollResult", "add_feed", "due", "poll_feed", "poll_feeds"]

FEED_FORMATS = sorted([*FORMATS, "taxii", "misp-feed", "misp-api"])
MAX_INTERVAL_S = 365 * 86_400  # longer is no schedule; the column is a 32-bit integer on PostgreSQL


class PollResult(msgspec.Struct, omit_defaults=True):
    feed: str
    status: str  # ok | not-modified | error
    loaded: int = 0
    merged: int = 0
    rejected: int = 0
    error: str | None = None


def add_feed(
    db: Database,
    tenant_id: str,
    name: str,
    *,
    url: str,
    fmt: str,
    interval_s: int = 3600,
    config: dict[str, Any] | None = None,
    actor: str,
) -> FeedRow:
    """Register a feed; ValueError says which argument is wrong."""
    if not name.strip() or len(name) > 200 or not name.isprintable():
        raise ValueError(f"feed name {name[:40]!r} must be 1-200 printable characters, not blank")
    if fmt not in FEED_FORMATS:
        raise ValueError(f"unknown feed format {fmt!r}; use one of {', '.join(FEED_FORMATS)}")
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"feed URL must be http:// or https://, got {url!r}")
    if len(url) > 2048 or not url.isprintable():
        raise ValueError("feed URL must be at most 2048 printable characters")
    if interval_s != 0 and not 60 <= interval_s <= MAX_INTERVAL_S:
        raise ValueError(
            f"interval must be 60 to {MAX_INTERVAL_S} seconds (a year), or 0 = only when polled by hand"
        )
    if fmt == "taxii" and not (config or {}).get("collection"):
        raise ValueError("a TAXII feed needs --collection (the collection id); the URL is the API root")
    with db.write() as conn:
        repo = IntelRepository(conn, tenant_id)
        if repo.feed(name) is not None:
            raise ValueError(f"a feed named {name!r} already exists")
        feed = repo.add_feed(name, fmt, url, interval_s, config or {})
        TenantScope(conn, tenant_id).audit.append(
            actor, "intel.feed.add", "intel_feed", feed.id, {"name": name, "format": fmt, "url": url}
        )
    return feed


def due(feed: FeedRow, now: int) -> bool:
    if not feed.enabled or feed.interval_s <= 0:
        return False
    return feed.last_poll is None or now - feed.last_poll >= feed.interval_s * 1000


def _headers(feed: FeedRow) -> dict[str, str]:
    headers = {"User-Agent": "bastion-intel/1"}
    if feed.etag:
        headers["If-None-Match"] = feed.etag
    if feed.last_modified:
        headers["If-Modified-Since"] = feed.last_modified
    key_env = feed.config.get("api_key_env")
    if key_env:
        key = os.environ.get(str(key_env))
        if not key:
            raise FeedError(f"environment variable {key_env} (the feed's API key) is not set")
        headers[str(feed.config.get("api_key_header", "Authorization"))] = key
    return headers


def _fetch_http(feed: FeedRow, client: httpx.Client) -> tuple[ParseResult | None, dict[str, Any]]:
    resp = client.get(feed.url, headers=_headers(feed))
    if resp.status_code == 304:
        return None, {}
    resp.raise_for_status()
    state = {"etag": resp.headers.get("ETag"), "last_modified": resp.headers.get("Last-Modified")}
    parsed = parse_bytes(
        feed.format, resp.content, source=feed.config.get("source") or feed.name, options=feed.config
    )
    return parsed, state


def _fetch_taxii(feed: FeedRow, client: httpx.Client) -> tuple[ParseResult, dict[str, Any]]:
    from taxii2client.common import _HTTPConnection
    from taxii2client.v21 import Collection, as_pages

    base = feed.url.rstrip("/")
    coll_url = f"{base}/collections/{feed.config['collection']}/"
    user = feed.config.get("user")
    password = (
        os.environ.get(str(feed.config.get("password_env", ""))) if feed.config.get("password_env") else None
    )
    # taxii2-client takes a connection of its own making (its documented ``conn`` argument); its requests
    # session then sends everything through the guarded client.
    conn = _HTTPConnection(user, password, version="2.1")
    guard_session(conn.session, client)
    coll = Collection(coll_url, conn=conn)
    kwargs: dict[str, Any] = {}
    if feed.cursor:
        kwargs["added_after"] = feed.cursor
    newest = feed.cursor
    per_request = int(feed.config.get("page_size", 500))
    # The cursor is the newest date_added over every page of the manifest, read before the objects: an
    # object added meanwhile is after it, so the next poll fetches it (at worst twice: merged, not lost).
    for manifest in as_pages(coll.get_manifest, per_request=per_request, **kwargs):
        for entry in manifest.get("objects", []) or []:
            added = entry.get("date_added")
            if added and (newest is None or added > newest):
                newest = added
    objects: list[dict[str, Any]] = []
    for page in as_pages(coll.get_objects, per_request=per_request, **kwargs):
        objects.extend(page.get("objects", []) or [])
    parsed = parse_stix_objects(objects, source=feed.config.get("source") or feed.name)
    return parsed, {"cursor": newest}


def _fetch_misp_feed(feed: FeedRow, client: httpx.Client) -> tuple[ParseResult | None, dict[str, Any]]:
    base = feed.url.rstrip("/")
    if base.endswith("manifest.json"):
        base = base.rsplit("/", 1)[0]
    resp = client.get(f"{base}/manifest.json", headers=_headers(feed))
    if resp.status_code == 304:
        return None, {}
    resp.raise_for_status()
    manifest = parse_misp_manifest(resp.content)
    since = int(feed.cursor or 0)
    newest = since
    result = ParseResult()
    for uuid, meta in manifest.items():
        stamp = int((meta or {}).get("timestamp") or 0)
        if stamp and stamp <= since:
            continue
        newest = max(newest, stamp)
        ev = client.get(f"{base}/{uuid}.json")
        if ev.status_code != 200:
            result.rejected.append(f"event {uuid}: HTTP {ev.status_code}")
            continue
        try:
            parse_misp_event(ev.content, source=feed.config.get("source") or feed.name, result=result)
        except FeedError as exc:
            result.rejected.append(f"event {uuid}: {exc}")
    state = {
        "etag": resp.headers.get("ETag"),
        "last_modified": resp.headers.get("Last-Modified"),
        "cursor": str(newest),
    }
    return result, state


def _fetch_misp_api(feed: FeedRow, client: httpx.Client) -> tuple[ParseResult, dict[str, Any]]:
    headers = _headers(feed)
    headers.pop("If-None-Match", None)
    headers.pop("If-Modified-Since", None)
    headers["Accept"] = "application/json"
    body: dict[str, Any] = {"returnFormat": "json", "published": True}
    if feed.cursor:
        body["timestamp"] = feed.cursor
    if feed.config.get("tags"):
        body["tags"] = feed.config["tags"]
    started = int(time.time())
    resp = client.post(f"{feed.url.rstrip('/')}/events/restSearch", json=body, headers=headers)
    resp.raise_for_status()
    parsed = parse_misp_event(resp.content, source=feed.config.get("source") or feed.name)
    return parsed, {"cursor": str(started)}


def poll_feed(
    db: Database,
    tenant_id: str,
    feed: FeedRow,
    *,
    actor: str = "intel:poller",
    client: httpx.Client | None = None,
) -> PollResult:
    """Poll one feed now, whatever its schedule; record health either way."""
    own = client is None
    http = client or guarded_sync_client(
        timeout=float(feed.config.get("timeout", 60)),
        allow_private=bool(feed.config.get("allow_private")),
        follow_redirects=True,
    )
    now = now_ms()
    parsed: ParseResult | None
    try:
        if feed.format == "taxii":
            parsed, state = _fetch_taxii(feed, http)
        elif feed.format == "misp-feed":
            parsed, state = _fetch_misp_feed(feed, http)
        elif feed.format == "misp-api":
            parsed, state = _fetch_misp_api(feed, http)
        else:
            parsed, state = _fetch_http(feed, http)
    except Exception as exc:
        message = f"{type(exc).__name__}: {exc}".splitlines()[0][:1000]
        with db.write() as conn:
            IntelRepository(conn, tenant_id).update_feed(
                feed.id, status="error", last_error=message, last_poll=now
            )
            TenantScope(conn, tenant_id).audit.append(
                actor,
                "intel.feed.poll",
                "intel_feed",
                feed.id,
                {"name": feed.name, "status": "error", "error": message},
            )
        return PollResult(feed=feed.name, status="error", error=message)
    finally:
        if own:
            http.close()
    if parsed is None:
        with db.write() as conn:
            IntelRepository(conn, tenant_id).update_feed(
                feed.id, status="ok", last_error=None, last_poll=now, last_success=now
            )
        return PollResult(feed=feed.name, status="not-modified")
    summary = ingest_parsed(
        db, tenant_id, parsed, actor=actor, feed=feed.name, half_life_days=feed.config.get("half_life_days")
    )
    load = summary.load
    values: dict[str, Any] = {
        "status": "ok" if not load.rejected else "partial",
        "last_error": "; ".join(load.problems[:3]) if load.rejected else None,
        "last_poll": now,
        "last_success": now,
        "loaded_total": feed.loaded_total + load.loaded,
    }
    for key in ("etag", "last_modified", "cursor"):
        if key in state:
            values[key] = state[key]
    with db.write() as conn:
        IntelRepository(conn, tenant_id).update_feed(feed.id, **values)
    return PollResult(
        feed=feed.name,
        status=values["status"],
        loaded=load.loaded,
        merged=load.merged,
        rejected=load.rejected,
    )


def poll_feeds(
    db: Database, tenant_id: str, *, name: str | None = None, force: bool = False, actor: str = "intel:poller"
) -> list[PollResult]:
    """Poll the named feed, or every feed that is due (all of them with ``force``)."""
    with db.read() as conn:
        repo = IntelRepository(conn, tenant_id)
        if name is not None:
            feed = repo.feed(name)
            if feed is None:
                raise ValueError(f"no feed named {name!r}; `bastion intel feeds list` shows them")
            feeds = [feed]
        else:
            now = now_ms()
            feeds = [f for f in repo.feeds() if force or due(f, now)]
    return [poll_feed(db, tenant_id, f, actor=actor) for f in feeds]
