"""Generic JSON normalizer: any JSON object mapped onto an :class:`Event` by a field-mapping config.

A :class:`GenericMapping` says, for each Event field (a dotted path such as ``src_endpoint.ip`` or
``actor.user.name``), which source field(s) feed it (dotted paths into the record; nested objects and
literal dotted keys both work). The registered ``generic`` normalizer is the fallback for any dict and
uses :data:`DEFAULT_MAPPING`, which tries the names common in home-grown JSON logs. A named mapping
registered with :func:`register_mapping` becomes its own normalizer, ``generic:<name>``: operators write
them in ``bastion.toml`` (``[ingest_mappings.NAME]``, registered by the API and the CLI at start) or give
one to ``bastion ingest --mapping FILE``.

Times are read by :func:`bastion.model.timefmt.to_epoch_ms` (epoch numbers of any unit, ISO-8601 /
RFC 3339; a time without an offset is UTC), re-exported here for the normalizers. A record
whose mapping finds no time gets ``time=0``: the normalizer does not invent one, the caller (the ingest
source) fills in its receive time.

This module also holds the small time and path helpers the other JSON normalizers share.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

from bastion.ingest.normalize import NormalizeError, register
from bastion.model import Event, EventClass, Severity
from bastion.model.timefmt import to_epoch_ms

__all__ = [
    "DEFAULT_MAPPING",
    "GenericMapping",
    "get_path",
    "mapping_from_document",
    "normalize_generic",
    "register_configured",
    "register_mapping",
    "to_epoch_ms",
]


def get_path(record: Any, path: str) -> Any:
    """Value at a dotted ``path`` in nested dicts, accepting literal dotted keys at any level
    (``{"source.ip": ..}``, ``{"source": {"ip": ..}}`` and ``{"source": {"geo.name": ..}}`` all work)."""
    if not isinstance(record, dict):
        return None
    value = record.get(path)
    if value is not None or "." not in path:
        return value
    return _walk(record, path.split("."))


def _walk(node: dict[str, Any], parts: list[str]) -> Any:
    for i in range(1, len(parts) + 1):
        key = parts[0] if i == 1 else ".".join(parts[:i])
        if key not in node:
            continue
        value = node[key]
        if i == len(parts):
            return value
        if isinstance(value, dict):
            found = _walk(value, parts[i:])
            if found is not None:
                return found
    return None


# ---------------------------------------------------------------------------------------------- mapping


class GenericMapping(msgspec.Struct, forbid_unknown_fields=True):
    """How to read one JSON source. ``fields`` maps an Event path to a source path, or to a list of
    source paths of which the first present one wins. ``time_format`` is as in :func:`to_epoch_ms`.
    ``strict`` mappings reject a record whose mapped value has the wrong type; lenient ones skip it."""

    fields: dict[str, str | list[str]]
    time_format: str | None = None
    strict: bool = True
    class_uid: int = EventClass.BASE


_STR, _INT, _TIME, _SEV, _CLASS = 0, 1, 2, 3, 4
_STR_TARGETS = (
    "message",
    "query",
    "registry_key",
    "metadata.product",
    "metadata.vendor",
    "metadata.log_name",
    "metadata.event_code",
    "metadata.uid",
    "metadata.original_time",
    "actor.user.name",
    "actor.user.uid",
    "actor.user.domain",
    "actor.user.email_addr",
    "device.hostname",
    "device.ip",
    "device.os",
    "device.uid",
    "device.domain",
    "file.name",
    "file.path",
    "url.url_string",
    "url.hostname",
    "url.path",
)
_PROCESS_STR = ("name", "path", "cmd_line", "uid", "user.name", "user.domain", "user.uid")
_ENDPOINT_STR = ("ip", "hostname", "domain")
_HASHES = ("md5", "sha1", "sha256", "sha512", "imphash")


def _target_kinds() -> dict[str, int]:
    kinds = dict.fromkeys(_STR_TARGETS, _STR)
    kinds.update({"time": _TIME, "severity_id": _SEV, "class_uid": _CLASS})
    for prefix in ("process", "actor.process", "process.parent_process"):
        kinds.update({f"{prefix}.{name}": _STR for name in _PROCESS_STR})
        kinds[f"{prefix}.pid"] = _INT
    for prefix in ("src_endpoint", "dst_endpoint"):
        kinds.update({f"{prefix}.{name}": _STR for name in _ENDPOINT_STR})
        kinds[f"{prefix}.port"] = _INT
    kinds.update({f"file.hashes.{name}": _STR for name in _HASHES})
    return kinds


_TARGETS = _target_kinds()

DEFAULT_MAPPING = GenericMapping(
    strict=False,
    fields={
        "time": ["@timestamp", "timestamp", "time", "eventTime", "event_time", "ts", "datetime", "date"],
        "message": ["message", "msg", "description", "summary"],
        "severity_id": ["severity", "level", "log_level", "sev"],
        "src_endpoint.ip": ["src_ip", "source_ip", "srcip", "sourceIp", "client_ip", "src", "source.ip"],
        "src_endpoint.port": ["src_port", "source_port", "srcport", "sport", "source.port"],
        "dst_endpoint.ip": [
            "dst_ip",
            "dest_ip",
            "destination_ip",
            "dstip",
            "destIp",
            "dst",
            "destination.ip",
        ],
        "dst_endpoint.port": ["dst_port", "dest_port", "destination_port", "dstport", "dport"],
        "dst_endpoint.domain": ["domain", "fqdn"],
        "actor.user.name": ["user", "username", "user_name", "userName", "account", "user.name"],
        "actor.user.email_addr": ["email", "user_email"],
        "device.hostname": ["host", "hostname", "computer", "computer_name", "device", "host.name"],
        "url.url_string": ["url", "uri", "request_url"],
        "query": ["query", "dns_query", "qname"],
        "file.path": ["file_path", "filepath", "path"],
        "file.name": ["file_name", "filename"],
        "file.hashes.md5": ["md5", "hash_md5"],
        "file.hashes.sha1": ["sha1", "hash_sha1"],
        "file.hashes.sha256": ["sha256", "hash_sha256"],
        "process.name": ["process", "process_name"],
        "process.pid": ["pid", "process_id"],
        "process.cmd_line": ["command_line", "cmdline", "commandline", "cmd"],
        "metadata.product": ["product", "app", "application"],
        "metadata.vendor": ["vendor"],
        "metadata.event_code": ["event_id", "eventid", "event_code", "eventCode"],
    },
)


def _coerce(kind: int, value: Any, mapping: GenericMapping) -> Any:
    """Target-typed value, or None when it does not fit (the caller decides whether that is an error)."""
    if kind == _STR:
        if isinstance(value, str):
            return value or None
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        return None
    if kind in (_INT, _CLASS):
        if isinstance(value, bool):
            return None
        if isinstance(value, int):
            return value
        try:
            return int(value)
        except (TypeError, ValueError):
            return None
    if kind == _TIME:
        return to_epoch_ms(value, mapping.time_format)
    try:
        return int(Severity.parse(value))
    except ValueError:
        return None


def _first(record: dict[str, Any], source: str | list[str]) -> tuple[str, Any]:
    if isinstance(source, str):
        return source, get_path(record, source)
    for path in source:
        value = get_path(record, path)
        if value is not None and value != "":
            return path, value
    return "", None


def normalize_generic(record: Any, mapping: GenericMapping = DEFAULT_MAPPING, fmt: str = "generic") -> Event:
    """Build an Event from ``record`` as ``mapping`` says. ``time`` is 0 when no mapped time is present:
    the caller fills in the receive time."""
    if not isinstance(record, dict):
        raise NormalizeError(f"the generic normalizer needs a JSON object, got {type(record).__name__}")
    tree: dict[str, Any] = {"class_uid": mapping.class_uid, "format": fmt}
    for target, source in mapping.fields.items():
        kind = _TARGETS.get(target)
        if kind is None:
            raise NormalizeError(
                f"mapping target {target!r} is not an Event field; use one of: " + ", ".join(sorted(_TARGETS))
            )
        path, value = _first(record, source)
        if value is None or value == "":
            continue
        coerced = _coerce(kind, value, mapping)
        if coerced is None:
            if mapping.strict:
                shown = repr(value)
                shown = shown if len(shown) <= 80 else shown[:77] + "..."
                raise NormalizeError(
                    f"field {path!r} = {shown} cannot be read as the event's {target}; "
                    "fix the source or map that target to another field"
                )
            continue
        node = tree
        parts = target.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = coerced
    time_source = mapping.fields.get("time")
    if time_source is not None and "time" in tree:
        _, original = _first(record, time_source)
        tree.setdefault("metadata", {}).setdefault("original_time", str(original))
    try:
        event = msgspec.convert(tree, Event)
    except msgspec.ValidationError as exc:  # a mapped value of the wrong shape slipped through
        raise NormalizeError(f"record does not fit the event: {exc}") from None
    event.raw = record
    return event


@register("generic", detect=lambda record: isinstance(record, dict), priority=1000)
def normalize_default_generic(record: Any) -> Event:
    """The fallback for any JSON object: :data:`DEFAULT_MAPPING`'s common field names."""
    return normalize_generic(record, DEFAULT_MAPPING)


_MAPPING_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")


def mapping_from_document(name: str, doc: Any) -> str:
    """Register a mapping written as a plain document (``{"fields": {EVENT_PATH: SOURCE_PATH or
    [SOURCE_PATH, ...]}, "time_format": ..., "strict": ..., "class_uid": ...}``: a ``bastion.toml``
    ``[ingest_mappings.NAME]`` table or a ``--mapping`` file) as ``generic:<name>``; what is wrong with it
    is said now, by name."""
    if not _MAPPING_NAME.fullmatch(name):
        raise NormalizeError(f"mapping name {name!r}: use lower-case letters, digits, '-' and '_'")
    try:
        mapping = msgspec.convert(doc, GenericMapping)
    except msgspec.ValidationError as exc:
        raise NormalizeError(f"mapping {name!r}: {exc}") from None
    return register_mapping(name, mapping)


def register_configured(mappings: dict[str, Any]) -> list[str]:
    """Register every mapping of the settings' ``ingest_mappings``; their normalizer ids."""
    return [mapping_from_document(name, doc) for name, doc in sorted(mappings.items())]


def register_mapping(name: str, mapping: GenericMapping) -> str:
    """Register ``mapping`` as the normalizer ``generic:<name>`` (used by id, never auto-detected) and
    return that id. Unknown targets are reported now rather than on the first record."""
    unknown = sorted(set(mapping.fields) - set(_TARGETS))
    if unknown:
        raise NormalizeError(f"mapping {name!r} has targets that are not Event fields: {', '.join(unknown)}")
    fmt = f"generic:{name}"

    def normalize_named(record: Any) -> Event:
        return normalize_generic(record, mapping, fmt)

    register(fmt)(normalize_named)
    return fmt
