"""Reputation lookups: VirusTotal v3, AbuseIPDB v2 and GreyNoise (community API), as plain async
functions over an ``httpx.AsyncClient`` handed in from outside, each behind a TTL cache and a rate limit.

Each returns one normalized verdict dict: ``provider``, ``value``, ``found``, ``malicious`` (bool),
``score`` (0-100) and the provider's own key fields, made by the ``*_verdict`` functions that the
actions (``virustotal.lookup``, ``abuseipdb.check``, ``greynoise.lookup`` in
:mod:`bastion.connectors.reputation`) share with this client.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

import httpx

from bastion.connectors.cache import TtlCache

__all__ = [
    "RateLimiter",
    "ReputationClient",
    "ReputationError",
    "TtlCache",
    "abuseipdb_verdict",
    "greynoise_verdict",
    "virustotal_path",
    "virustotal_verdict",
]

VT_BASE = "https://www.virustotal.com/api/v3"
ABUSEIPDB_BASE = "https://api.abuseipdb.com/api/v2"
GREYNOISE_BASE = "https://api.greynoise.io/v3"


class ReputationError(RuntimeError):
    """A provider answered with an error (bad key, quota, server error); the message names it."""


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
        path = virustotal_path(value, kind)

        async def fetch() -> dict[str, Any]:
            resp = await self.client.get(
                f"{self.bases['virustotal']}/{path}", headers={"x-apikey": self._key("virustotal")}
            )
            _check(resp, "virustotal")
            return virustotal_verdict(value, None if resp.status_code == 404 else resp.json())

        return await self._cached("virustotal", f"{kind}:{value}", fetch)

    async def abuseipdb(self, ip: str, max_age_days: int = 90) -> dict[str, Any]:
        async def fetch() -> dict[str, Any]:
            resp = await self.client.get(
                f"{self.bases['abuseipdb']}/check",
                params={"ipAddress": ip, "maxAgeInDays": str(max_age_days)},
                headers={"Key": self._key("abuseipdb"), "Accept": "application/json"},
            )
            _check(resp, "abuseipdb")
            return abuseipdb_verdict(ip, resp.json())

        return await self._cached("abuseipdb", ip, fetch)

    async def greynoise(self, ip: str) -> dict[str, Any]:
        async def fetch() -> dict[str, Any]:
            url = f"{self.bases['greynoise']}/community/{quote(ip, safe='')}"
            resp = await self.client.get(url, headers={"key": self._key("greynoise")})
            _check(resp, "greynoise")
            return greynoise_verdict(ip, None if resp.status_code == 404 else resp.json())

        return await self._cached("greynoise", ip, fetch)


# ------------------------------------------------------------------ the vendors' answers as verdicts

VT_PATHS = {"ip": "ip_addresses", "domain": "domains", "hash": "files", "url": "urls"}


def virustotal_path(value: str, kind: str) -> str:
    """The v3 object path of a value (``ip_addresses/<ip>``, ``urls/<unpadded base64url of the URL>``)."""
    if kind not in VT_PATHS:
        raise ValueError(f"VirusTotal looks up ip, domain, url or hash, not {kind!r}")
    ident = base64.urlsafe_b64encode(value.encode()).decode().rstrip("=") if kind == "url" else value
    return f"{VT_PATHS[kind]}/{quote(ident, safe='')}"


def virustotal_verdict(value: str, doc: Any) -> dict[str, Any]:
    """A v3 object (``None``: VirusTotal answered 404, it has never seen the value)."""
    if doc is None:
        return {"provider": "virustotal", "value": value, "found": False, "malicious": False, "score": 0}
    data = doc.get("data") if isinstance(doc, dict) else None
    attrs = (data or {}).get("attributes") or {}
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


def abuseipdb_verdict(ip: str, doc: Any) -> dict[str, Any]:
    """An AbuseIPDB v2 ``check`` answer."""
    data = (doc.get("data") if isinstance(doc, dict) else None) or {}
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


def greynoise_verdict(ip: str, doc: Any) -> dict[str, Any]:
    """A GreyNoise community v3 answer (``None``: 404, the address was not seen scanning)."""
    if not isinstance(doc, dict):
        return {"provider": "greynoise", "value": ip, "found": False, "malicious": False, "score": 0}
    cls = doc.get("classification")
    return {
        "provider": "greynoise",
        "value": ip,
        "found": True,
        "malicious": cls == "malicious",
        "score": 90 if cls == "malicious" else 0,
        "classification": cls,
        "noise": doc.get("noise"),
        "riot": doc.get("riot"),
        "name": doc.get("name"),
    }
