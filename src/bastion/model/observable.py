"""Observables: the typed values (addresses, hashes, names) that tie events, alerts and intel together."""

from __future__ import annotations

from enum import StrEnum

import msgspec

__all__ = ["OBSERVABLE_TYPE_NAMES", "Observable", "ObservableType"]


class ObservableType(StrEnum):
    """The kinds of value Bastion indexes and matches on."""

    IPV4 = "ipv4"
    IPV6 = "ipv6"
    DOMAIN = "domain"
    URL = "url"
    EMAIL = "email"
    MD5 = "md5"
    SHA1 = "sha1"
    SHA256 = "sha256"
    USER = "user"
    HOST = "host"
    FILE_PATH = "file_path"
    PROCESS_NAME = "process_name"
    REGISTRY_KEY = "registry_key"
    JA3 = "ja3"  # TLS client fingerprint (an MD5 of the hello)
    JA4 = "ja4"


# Each type's plain string. ``member.value`` is a Python-level property on an Enum, about four times the
# cost of this lookup; the hot paths (ingest rows, alert indexing, triage) pay it per observable.
OBSERVABLE_TYPE_NAMES: dict[ObservableType, str] = {t: t.value for t in ObservableType}


class Observable(msgspec.Struct, frozen=True, omit_defaults=True):
    """One typed value, with the event field it came from when known (``field``)."""

    type: ObservableType
    value: str
    field: str | None = None
