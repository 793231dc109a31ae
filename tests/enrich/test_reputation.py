"""Reputation lookups against local HTTP servers that speak the vendors' documented APIs (VirusTotal
v3, AbuseIPDB v2 check, GreyNoise community v3), over real sockets; cache and rate limit."""

from __future__ import annotations

import asyncio
import base64
import json
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from bastion.enrich.reputation import RateLimiter, ReputationClient, ReputationError
from tests.intel.servers import http_server


def _vendor(
    method: str, path: str, headers: dict[str, str], body: bytes
) -> tuple[int, dict[str, str], bytes]:
    url = urlsplit(path)
    ctype = {"Content-Type": "application/json"}
    if url.path.startswith("/vt/"):
        if headers.get("x-apikey") != "vt-key":
            return 401, ctype, b'{"error": {"code": "WrongCredentialsError"}}'
        if url.path == "/vt/ip_addresses/203.0.113.66":
            stats = {"malicious": 7, "suspicious": 1, "harmless": 50, "undetected": 22}
            attrs = {"last_analysis_stats": stats, "reputation": -12}
            doc = {"data": {"id": "203.0.113.66", "type": "ip_address", "attributes": attrs}}
            return 200, ctype, json.dumps(doc).encode()
        url_id = base64.urlsafe_b64encode(b"http://bad.example/x").decode().rstrip("=")
        if url.path == f"/vt/urls/{url_id}":
            stats = {"malicious": 0, "suspicious": 0, "harmless": 70, "undetected": 10}
            return 200, ctype, json.dumps({"data": {"attributes": {"last_analysis_stats": stats}}}).encode()
        return 404, ctype, b'{"error": {"code": "NotFoundError"}}'
    if url.path == "/abuseipdb/check":
        q = parse_qs(url.query)
        if headers.get("key") != "abuse-key" or headers.get("accept") != "application/json":
            return 401, ctype, b'{"errors": [{"detail": "Authentication failed"}]}'
        data = {"ipAddress": q["ipAddress"][0], "abuseConfidenceScore": 100, "totalReports": 42,
                "countryCode": "NL", "isp": "Example", "isWhitelisted": False}  # fmt: skip
        return 200, ctype, json.dumps({"data": data}).encode()
    if url.path.startswith("/greynoise/community/"):
        ip = url.path.rsplit("/", 1)[1]
        if ip == "192.0.2.1":
            message = "IP not observed scanning the internet or contained in RIOT data set."
            return (
                404,
                ctype,
                json.dumps({"ip": ip, "noise": False, "riot": False, "message": message}).encode(),
            )
        doc = {"ip": ip, "noise": True, "riot": False, "classification": "malicious", "name": "unknown"}
        return 200, ctype, json.dumps({**doc, "link": "", "last_seen": "2026-11-29"}).encode()
    return 404, ctype, b"{}"


def test_reputation_providers_with_cache() -> None:
    async def run(base: str) -> None:
        async with httpx.AsyncClient(timeout=10) as http:
            rep = ReputationClient(
                http,
                keys={"virustotal": "vt-key", "abuseipdb": "abuse-key", "greynoise": "gn-key"},
                bases={
                    "virustotal": f"{base}/vt",
                    "abuseipdb": f"{base}/abuseipdb",
                    "greynoise": f"{base}/greynoise",
                },
            )
            vt = await rep.virustotal("203.0.113.66", "ip")
            assert vt["found"] and vt["malicious"] and vt["score"] == 10 and vt["reputation"] == -12
            assert (await rep.virustotal("http://bad.example/x", "url"))["malicious"] is False
            assert (await rep.virustotal("a" * 64, "hash"))["found"] is False
            ab = await rep.abuseipdb("203.0.113.66")
            assert ab["malicious"] and ab["score"] == 100 and ab["total_reports"] == 42
            gn = await rep.greynoise("203.0.113.66")
            assert gn["classification"] == "malicious" and gn["noise"] is True
            assert (await rep.greynoise("192.0.2.1"))["found"] is False
            # Cached: a second ask does not reach the server.
            await rep.virustotal("203.0.113.66", "ip")
            await rep.abuseipdb("203.0.113.66")
            assert rep.calls == {"virustotal": 3, "abuseipdb": 1, "greynoise": 2}
            assert rep.cache.hits == 2
            bad = ReputationClient(http, keys={"virustotal": "wrong"}, bases={"virustotal": f"{base}/vt"})
            with pytest.raises(ReputationError, match="API key was refused"):
                await bad.virustotal("203.0.113.66", "ip")
            with pytest.raises(ReputationError, match="no API key"):
                await bad.greynoise("203.0.113.66")
            with pytest.raises(ValueError, match="not 'email'"):
                await rep.virustotal("x@y.z", "email")

    with http_server(_vendor) as (base, rec):
        asyncio.run(run(base))
    assert len(rec.requests) == 7


def test_rate_limiter_waits_for_a_slot() -> None:
    clock = [100.0]
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)
        clock[0] += seconds

    async def run() -> None:
        limiter = RateLimiter(2, 60, clock=lambda: clock[0], sleep=fake_sleep)
        await limiter.acquire()
        await limiter.acquire()
        assert slept == []
        await limiter.acquire()  # the third call in the window waits until the first one leaves it

    asyncio.run(run())
    assert slept == [60.0]
    with pytest.raises(ValueError, match="rate limit"):
        RateLimiter(0, 1)
