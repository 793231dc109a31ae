"""Threat intelligence indicators."""

from __future__ import annotations

from enum import StrEnum

import msgspec

__all__ = ["Indicator", "IndicatorType", "Tlp"]


class IndicatorType(StrEnum):
    IPV4 = "ipv4"
    IPV6 = "ipv6"
    CIDR = "cidr"
    DOMAIN = "domain"
    URL = "url"
    MD5 = "md5"
    SHA1 = "sha1"
    SHA256 = "sha256"
    EMAIL = "email"
    FILE_NAME = "file_name"
    JA3 = "ja3"
    JA4 = "ja4"
    CVE = "cve"
    LEAKED_CREDENTIAL = "leaked_credential"


class Tlp(StrEnum):
    CLEAR = "clear"
    GREEN = "green"
    AMBER = "amber"
    AMBER_STRICT = "amber+strict"
    RED = "red"


class Indicator(msgspec.Struct, omit_defaults=True):
    """An indicator with its provenance. Times are epoch milliseconds; ``confidence`` is 0-100."""

    type: IndicatorType
    value: str
    source: str
    confidence: int = 50
    tlp: Tlp = Tlp.AMBER
    first_seen: int | None = None
    last_seen: int | None = None
    valid_until: int | None = None
    exact: bool = False  # a domain indicator matches its subdomains unless exact
    tags: list[str] = msgspec.field(default_factory=list)
    techniques: list[str] = msgspec.field(default_factory=list)
    actors: list[str] = msgspec.field(default_factory=list)
    malware: list[str] = msgspec.field(default_factory=list)
