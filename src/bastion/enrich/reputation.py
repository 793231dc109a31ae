"""Reputation lookups: VirusTotal v3, AbuseIPDB v2 and GreyNoise (community API), as plain async
functions over an ``httpx.AsyncClient`` handed in from outside, each behind a TTL cache and a rate limit.

They are written as small typed functions so the action registry can wrap them (impact ``read``) without
this module depending on it. Each returns one normalized verdict dict: ``provider``, ``value``,
``found``, ``malicious`` (bool), ``score`` (0-100) and the provider's own key fields.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

__all__ = [
    "RateLimiter",
    "ReputationClient",
    "ReputationError",
    "TtlCache",
]

VT_BASE = "https://www.virustotal.com/api/v3"
ABUSEIPDB_BASE = "https://api.abuseipdb.com/api/v2"
GREYNOISE_BASE = "https://api.greynoise.io/v3"


class ReputationError(RuntimeError):
    """A provider answered with an error (bad key, quota, server error); the message names it."""


class TtlCache:
    """A small time-to-live cache."""

    def __init__(
        self, ttl_s: float = 3600, max_items: int = 100_000, clock: Callable[[], float] = time.monotonic
    ):
        self.ttl = ttl_s
        self.max = max_items
        self.clock = clock
        self._items: dict[tuple[str, str], tuple[float, dict[str, Any]]] = {}
        self.hits = 0

    def get(self, key: tuple[str, str]) -> dict[str, Any] | None:
        item = self._items.get(key)
        if item is None:
            return None
        if item[0] < self.clock():
            del self._items[key]
            return None
        self.hits += 1
        return item[1]

    def put(self, key: tuple[str, str], value: dict[str, Any]) -> None:
        if len(self._items) >= self.max:
            self._items.pop(next(iter(self._items)))
        self._items[key] = (self.clock() + self.ttl, value)


class RateLimiter:
    """At most ``rate`` calls per ``per`` seconds (a sliding window); ``acquire`` waits for a slot."""

    def __init__(
        self,
        rate: int,
        per: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if rate < 1 or per <= 0:
            raise ValueError("a rate limit needs rate >= 1 and a positive period")
        self.rate = rate
        self.per = per
        self.clock = clock
        self.sleep = sleep
        self._calls: list[float] = []
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        async with self._lock:
            while True:
                now = self.clock()
                self._calls = [t for t in self._calls if t > now - self.per]
                if len(self._calls) < self.rate:
                    self._calls.append(now)
                    return
                await self.sleep(self._calls[0] + self.per - now)


def _check(resp: httpx.Response, provider: str) -> None:
    if resp.status_code in (401, 403):
        raise ReputationError(f"{provider}: the API key was refused (HTTP {resp.status_code})")
    if resp.status_code == 429:
        raise ReputationError(f"{provider}: quota exceeded (HTTP 429)")
    if resp.status_code >= 400 and resp.status_code != 404:
        raise ReputationError(f"{provider}: HTTP {resp.status_code}")


class ReputationClient:
    """The three providers with shared cache; limits are per provider (defaults: VirusTotal's public 4/min,
    AbuseIPDB 1000/day, GreyNoise community 50/day — set your plan's limits)."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        keys: dict[str, str],
        bases: dict[str, str] | None = None,
        limits: dict[str, RateLimiter] | None = None,
        cache: TtlCache | None = None,
    ) -> None:
        self.client = client
        self.keys = keys
        self.bases = {
            "virustotal": VT_BASE,
            "abuseipdb": ABUSEIPDB_BASE,
            "greynoise": GREYNOISE_BASE,
            **(bases or {}),
        }
        self.limits = {
            "virustotal": RateLimiter(4, 60),
            "abuseipdb": RateLimiter(1000, 86_400),
            "greynoise": RateLimiter(50, 86_400),
            **(limits or {}),
        }
        self.cache = cache or TtlCache()
        self.calls = {"virustotal": 0, "abuseipdb": 0, "greynoise": 0}

    def _key(self, provider: str) -> str:
        key = self.keys.get(provider)
        if not key:
            raise ReputationError(f"{provider}: no API key configured")
        return key

    async def _cached(
        self, provider: str, value: str, fetch: Callable[[], Awaitable[dict[str, Any]]]
    ) -> dict[str, Any]:
        hit = self.cache.get((provider, value))
        if hit is not None:
            return hit
        await self.limits[provider].acquire()
        self.calls[provider] += 1
        verdict = await fetch()
        self.cache.put((provider, value), verdict)
        return verdict

    async def virustotal(self, value: str, kind: str) -> dict[str, Any]:
        """``kind``: ip, domain, url or hash."""
        paths = {"ip": "ip_addresses", "domain": "domains", "hash": "files", "url": "urls"}
        if kind not in paths:
            raise ValueError(f"VirusTotal looks up ip, domain, url or hash, not {kind!r}")
        ident = base64.urlsafe_b64encode(value.encode()).decode().rstrip("=") if kind == "url" else value

        async def fetch() -> dict[str, Any]:
            resp = await self.client.get(
                f"{self.bases['virustotal']}/{paths[kind]}/{ident}",
                headers={"x-apikey": self._key("virustotal")},
            )
            _check(resp, "virustotal")
            if resp.status_code == 404:
                return {
                    "provider": "virustotal",
                    "value": value,
                    "found": False,
                    "malicious": False,
                    "score": 0,
                }
            attrs = resp.json().get("data", {}).get("attributes", {})
            stats = attrs.get("last_analysis_stats") or {}
            bad = int(stats.get("malicious", 0)) + int(stats.get("suspicious", 0))
            total = sum(int(v) for v in stats.values() if isinstance(v, int)) or 1
            return {
                "provider": "virustotal",
                "value": value,
                "found": True,
                "malicious": int(stats.get("malicious", 0)) > 0,
                "score": round(100 * bad / total),
                "stats": stats,
                "reputation": attrs.get("reputation"),
            }

        return await self._cached("virustotal", f"{kind}:{value}", fetch)

    async def abuseipdb(self, ip: str, max_age_days: int = 90) -> dict[str, Any]:
        async def fetch() -> dict[str, Any]:
            resp = await self.client.get(
                f"{self.bases['abuseipdb']}/check",
                params={"ipAddress": ip, "maxAgeInDays": str(max_age_days)},
                headers={"Key": self._key("abuseipdb"), "Accept": "application/json"},
            )
            _check(resp, "abuseipdb")
            data = resp.json().get("data", {})
            score = int(data.get("abuseConfidenceScore") or 0)
            return {
                "provider": "abuseipdb",
                "value": ip,
                "found": bool(data.get("totalReports")),
                "malicious": score >= 50 and not data.get("isWhitelisted"),
                "score": score,
                "total_reports": data.get("totalReports"),
                "country": data.get("countryCode"),
                "isp": data.get("isp"),
                "whitelisted": data.get("isWhitelisted"),
            }

        return await self._cached("abuseipdb", ip, fetch)

    async def greynoise(self, ip: str) -> dict[str, Any]:
        async def fetch() -> dict[str, Any]:
            resp = await self.client.get(
                f"{self.bases['greynoise']}/community/{ip}", headers={"key": self._key("greynoise")}
            )
            _check(resp, "greynoise")
            body = resp.json()
            if resp.status_code == 404:
                return {"provider": "greynoise", "value": ip, "found": False, "malicious": False, "score": 0}
            cls = body.get("classification")
            return {
                "provider": "greynoise",
                "value": ip,
                "found": True,
                "malicious": cls == "malicious",
                "score": 90 if cls == "malicious" else 0,
                "classification": cls,
                "noise": body.get("noise"),
                "riot": body.get("riot"),
                "name": body.get("name"),
            }

        return await self._cached("greynoise", ip, fetch)
