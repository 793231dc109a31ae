"""Observables: the typed values (addresses, hashes, names) that tie events, alerts and intel together."""

from __future__ import annotations

from enum import StrEnum

import msgspec

__all__ = ["Observable", "ObservableType"]


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


class Observable(msgspec.Struct, frozen=True, omit_defaults=True):
    """One typed value, with the event field it came from when known (``field``)."""

    type: ObservableType
    value: str
    field: str | None = None
