"""Threat intelligence indicators."""

from __future__ import annotations

from enum import StrEnum

import msgspec

__all__ = ["Indicator", "IndicatorType", "Sighting", "Tlp"]


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
    X509_SERIAL = "x509_serial"
    EMAIL_SUBJECT = "email_subject"


class Tlp(StrEnum):
    CLEAR = "clear"
    GREEN = "green"
    AMBER = "amber"
    AMBER_STRICT = "amber+strict"
    RED = "red"


class Sighting(msgspec.Struct, omit_defaults=True):
    """One source's report of an indicator; merged indicators keep one per source."""

    source: str
    confidence: int = 50
    first_seen: int | None = None
    last_seen: int | None = None
    count: int = 1
    half_life_days: float | None = None  # the source's decay policy; None = the default


class Indicator(msgspec.Struct, omit_defaults=True):
    """An indicator with its provenance. Times are epoch milliseconds; ``confidence`` is 0-100.

    ``pattern`` marks a value that is a regular expression (STIX ``MATCHES``) rather than a literal.
    ``details`` carries type-specific facts: for a leaked credential ``breach_source``, ``breach_date``
    and, at most, a salted ``password_hash`` (a plaintext password is never kept).
    """

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
    id: str | None = None
    pattern: bool = False
    description: str | None = None
    details: dict[str, str] = msgspec.field(default_factory=dict)
    sightings: list[Sighting] = msgspec.field(default_factory=list)
