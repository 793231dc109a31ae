"""Assets and identities: the organisation's own hosts and people, which give alerts their context."""

from __future__ import annotations

from enum import IntEnum

import msgspec

__all__ = ["Asset", "Criticality", "Identity", "Software"]


class Criticality(IntEnum):
    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4


class Software(msgspec.Struct, omit_defaults=True):
    """An installed product; ``cpe`` (2.3) when known lets CVE intel match it exactly."""

    name: str
    version: str | None = None
    vendor: str | None = None
    cpe: str | None = None


class Asset(msgspec.Struct, omit_defaults=True):
    hostname: str
    id: str | None = None
    ips: list[str] = msgspec.field(default_factory=list)
    owner: str | None = None
    criticality: Criticality = Criticality.MEDIUM
    os: str | None = None
    tags: list[str] = msgspec.field(default_factory=list)
    business_unit: str | None = None
    software: list[Software] = msgspec.field(default_factory=list)


class Identity(msgspec.Struct, omit_defaults=True):
    username: str
    id: str | None = None
    email: str | None = None
    display_name: str | None = None
    privileged: bool = False
    groups: list[str] = msgspec.field(default_factory=list)
    manager: str | None = None
    status: str = "active"
    department: str | None = None
