"""Reputation lookups as actions: ``virustotal.lookup`` (v3 objects), ``abuseipdb.check`` (v2 ``check``) and
``greynoise.lookup`` (community v3), impact ``read``.

Each answers the normalized verdict of :mod:`bastion.enrich.reputation` (``provider``, ``value``,
``found``, ``malicious``, ``score`` and the vendor's own fields). The policy layer keeps answers an hour
(per tenant, connection and inputs; a cached answer costs no quota) and holds calls to the vendor's free
quota (VirusTotal public API 4 a minute, AbuseIPDB 1,000 a day, GreyNoise community 50 a day) across every
worker, unless the connection sets its own ``rate_limit`` for a paid plan. The connection's ``base_url``
defaults to the vendor's public API; the API key is the tenant's secret. Requests go through
:mod:`bastion.connectors.vendor_http` (SSRF guard, the vendor's 429 answers).
"""

from __future__ import annotations

from typing import Any, Literal
from urllib.parse import quote

from bastion.connectors.registry import ActionContext, action
from bastion.connectors.vendor_http import VendorError, request, secret
from bastion.enrich.reputation import (
    ABUSEIPDB_BASE,
    GREYNOISE_BASE,
    VT_BASE,
    abuseipdb_verdict,
    greynoise_verdict,
    virustotal_path,
    virustotal_verdict,
)

__all__ = ["abuseipdb_check", "greynoise_lookup", "virustotal_lookup"]

_HOUR = 3600.0


def _base(ctx: ActionContext, default: str) -> str:
    return str(ctx.connection.get("base_url") or default).rstrip("/")


async def _get(
    ctx: ActionContext, vendor: str, url: str, headers: dict[str, str], **params: str
) -> Any | None:
    """The vendor's JSON answer, or None when it answered 404 (it does not know the value)."""
    try:
        answer = await request(ctx, vendor, "GET", url, headers=headers, params=params or None)
    except VendorError as exc:
        if exc.status == 404:
            return None
        raise
    return answer.json


@action(
    "virustotal.lookup",
    impact="read",
    secrets=("virustotal_api_key",),
    connection="virustotal",
    cache_ttl_s=_HOUR,
    rate_limit=(4, 60.0),
)
async def virustotal_lookup(
    value: str, kind: Literal["ip", "domain", "url", "hash"], *, ctx: ActionContext
) -> dict[str, Any]:
    """VirusTotal's verdict on an IP address, domain, URL or file hash: how many engines call it
    malicious or suspicious (``score`` 0-100), its community reputation and the engines' counts.

    Args:
        value: the address, domain, URL or MD5/SHA-1/SHA-256 hash
        kind: what the value is: ip, domain, url or hash
    """
    url = f"{_base(ctx, VT_BASE)}/{virustotal_path(value, kind)}"
    key = secret(ctx, "virustotal", "virustotal_api_key")
    return virustotal_verdict(value, await _get(ctx, "virustotal", url, {"x-apikey": key}))


@action(
    "abuseipdb.check",
    impact="read",
    secrets=("abuseipdb_api_key",),
    connection="abuseipdb",
    cache_ttl_s=_HOUR,
    rate_limit=(1000, 86_400.0),
)
async def abuseipdb_check(ip: str, max_age_days: int = 90, *, ctx: ActionContext) -> dict[str, Any]:
    """AbuseIPDB's abuse confidence for an IP address (``score`` 0-100; malicious from 50 unless the
    address is whitelisted), with its report count, country and ISP.

    Args:
        ip: the IPv4 or IPv6 address
        max_age_days: count reports of the last N days (1-365)
    """
    if not 1 <= max_age_days <= 365:
        raise ValueError(f"max_age_days must be 1-365, not {max_age_days}")
    headers = {"Key": secret(ctx, "abuseipdb", "abuseipdb_api_key")}
    url = f"{_base(ctx, ABUSEIPDB_BASE)}/check"
    doc = await _get(ctx, "abuseipdb", url, headers, ipAddress=ip, maxAgeInDays=str(max_age_days))
    return abuseipdb_verdict(ip, doc)


@action(
    "greynoise.lookup",
    impact="read",
    secrets=("greynoise_api_key",),
    connection="greynoise",
    cache_ttl_s=_HOUR,
    rate_limit=(50, 86_400.0),
)
async def greynoise_lookup(ip: str, *, ctx: ActionContext) -> dict[str, Any]:
    """GreyNoise's classification of an IP address: a mass scanner (``noise``), a known benign service
    (``riot``), malicious, or not seen at all (``found`` false).

    Args:
        ip: the IPv4 address
    """
    url = f"{_base(ctx, GREYNOISE_BASE)}/community/{quote(ip, safe='')}"
    key = secret(ctx, "greynoise", "greynoise_api_key")
    return greynoise_verdict(ip, await _get(ctx, "greynoise", url, {"key": key}))
