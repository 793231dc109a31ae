"""The normalized event: OCSF-aligned, the common shape every source is mapped into.

Field names follow OCSF (https://schema.ocsf.io) where it has one: ``class_uid``, ``time`` in epoch
milliseconds, ``severity_id``, ``actor``, ``device``, ``process``, ``file``, ``src_endpoint``,
``dst_endpoint``, ``url``. These are msgspec structs because normalization is a hot path: they build and
encode several times faster than validated models. They are not tracked by the garbage collector
(``gc=False``: none can take part in a reference cycle, they only nest downwards), so building them does
not bring the next collection closer. ``raw`` keeps the original event untouched.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any

import msgspec

from bastion.model.observable import Observable

__all__ = [
    "ActionId",
    "Actor",
    "Device",
    "Endpoint",
    "Event",
    "EventClass",
    "File",
    "Metadata",
    "Process",
    "Severity",
    "Url",
    "User",
]


class Severity(IntEnum):
    """OCSF ``severity_id``."""

    UNKNOWN = 0
    INFORMATIONAL = 1
    LOW = 2
    MEDIUM = 3
    HIGH = 4
    CRITICAL = 5
    FATAL = 6
    OTHER = 99

    @classmethod
    def parse(cls, value: object) -> Severity:
        """Read a severity given as an OCSF id, a name ("high") or a common synonym ("warning")."""
        if isinstance(value, Severity):
            return value
        if isinstance(value, bool):
            raise ValueError(f"not a severity: {value!r}")
        if isinstance(value, int):
            try:
                return cls(value)
            except ValueError:
                raise ValueError(f"unknown severity id {value}; use 0-6 or 99") from None
        if isinstance(value, str):
            key = value.strip().lower()
            if key.isdigit():
                return cls.parse(int(key))
            found = _SEVERITY_NAMES.get(key)
            if found is not None:
                return found
        raise ValueError(f"unknown severity {value!r}; use one of informational, low, medium, high, critical")


_SEVERITY_NAMES: dict[str, Severity] = {
    "unknown": Severity.UNKNOWN,
    "info": Severity.INFORMATIONAL,
    "informational": Severity.INFORMATIONAL,
    "information": Severity.INFORMATIONAL,
    "low": Severity.LOW,
    "medium": Severity.MEDIUM,
    "moderate": Severity.MEDIUM,
    "warning": Severity.MEDIUM,
    "high": Severity.HIGH,
    "critical": Severity.CRITICAL,
    "fatal": Severity.FATAL,
    "other": Severity.OTHER,
}


class EventClass(IntEnum):
    """The OCSF event classes Bastion's normalizers produce (``class_uid``)."""

    BASE = 0
    FILE_ACTIVITY = 1001
    KERNEL_EXTENSION = 1002
    KERNEL_ACTIVITY = 1003
    MEMORY_ACTIVITY = 1004
    MODULE_ACTIVITY = 1005
    SCHEDULED_JOB = 1006
    PROCESS_ACTIVITY = 1007
    EVENT_LOG_ACTIVITY = 1008
    REGISTRY_KEY_ACTIVITY = 201001
    REGISTRY_VALUE_ACTIVITY = 201002
    SECURITY_FINDING = 2001
    DETECTION_FINDING = 2004
    ACCOUNT_CHANGE = 3001
    AUTHENTICATION = 3002
    AUTHORIZE_SESSION = 3003
    ENTITY_MANAGEMENT = 3004
    GROUP_MANAGEMENT = 3006
    NETWORK_ACTIVITY = 4001
    HTTP_ACTIVITY = 4002
    DNS_ACTIVITY = 4003
    SMB_ACTIVITY = 4006
    EMAIL_ACTIVITY = 4009
    DEVICE_CONFIG_STATE = 5002
    API_ACTIVITY = 6003


class User(msgspec.Struct, omit_defaults=True, gc=False):
    name: str | None = None
    uid: str | None = None
    domain: str | None = None
    email_addr: str | None = None


class Process(msgspec.Struct, omit_defaults=True, gc=False):
    name: str | None = None
    pid: int | None = None
    path: str | None = None
    cmd_line: str | None = None
    uid: str | None = None
    user: User | None = None
    parent_process: Process | None = None


class File(msgspec.Struct, omit_defaults=True, gc=False):
    name: str | None = None
    path: str | None = None
    hashes: dict[str, str] | None = None  # algorithm (md5, sha1, sha256, imphash) -> hex value


class Endpoint(msgspec.Struct, omit_defaults=True, gc=False):
    ip: str | None = None
    port: int | None = None
    hostname: str | None = None
    domain: str | None = None


class Device(msgspec.Struct, omit_defaults=True, gc=False):
    hostname: str | None = None
    ip: str | None = None
    os: str | None = None
    uid: str | None = None
    domain: str | None = None


class Url(msgspec.Struct, omit_defaults=True, gc=False):
    url_string: str | None = None
    hostname: str | None = None
    path: str | None = None


class Actor(msgspec.Struct, omit_defaults=True, gc=False):
    user: User | None = None
    process: Process | None = None


class Metadata(msgspec.Struct, omit_defaults=True, gc=False):
    """Where the event came from: product, log name (a Windows channel), the source's own event code."""

    product: str | None = None
    vendor: str | None = None
    log_name: str | None = None
    event_code: str | None = None
    uid: str | None = None
    original_time: str | None = None


class ActionId(IntEnum):
    """OCSF ``action_id``: whether a security control let the activity through."""

    UNKNOWN = 0
    ALLOWED = 1
    DENIED = 2
    OTHER = 99

    @classmethod
    def from_word(cls, word: str | None) -> ActionId:
        """Read a product's action word (CEF ``act``, a firewall log's action) as an ActionId."""
        if not word:
            return cls.UNKNOWN
        w = word.strip().lower()
        if w in _ALLOW_WORDS:
            return cls.ALLOWED
        if w in _DENY_WORDS:
            return cls.DENIED
        return cls.OTHER


_ALLOW_WORDS = frozenset({"allow", "allowed", "accept", "accepted", "permit", "permitted", "pass", "passed"})
_DENY_WORDS = frozenset(
    {
        "deny",
        "denied",
        "drop",
        "dropped",
        "block",
        "blocked",
        "reject",
        "rejected",
        "reset",
        "quarantined",
        "prevented",
        "cleaned",
        "deleted",
        "terminated",
    }
)


class Event(msgspec.Struct, omit_defaults=True, gc=False):
    """One normalized event. ``time`` is epoch milliseconds (OCSF ``timestamp_t``)."""

    class_uid: int = EventClass.BASE
    time: int = 0
    severity_id: int = Severity.UNKNOWN
    message: str | None = None
    format: str | None = None  # the normalizer that produced it, e.g. "windows", "ecs", "cef"
    metadata: Metadata | None = None
    actor: Actor | None = None
    device: Device | None = None
    process: Process | None = None
    file: File | None = None
    src_endpoint: Endpoint | None = None
    dst_endpoint: Endpoint | None = None
    url: Url | None = None
    query: str | None = None  # DNS query name, for DNS activity
    registry_key: str | None = None
    # What a security control did, as OCSF's ``action`` (the product's word, e.g. "blocked") and
    # ``action_id`` (one of the ActionId values).
    action: str | None = None
    action_id: int = 0
    observables: list[Observable] = msgspec.field(default_factory=list)
    raw: Any = None
