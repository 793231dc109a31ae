"""Alerts from other tools: the generic alert document and the vendor webhook mappers.

``POST /api/v1/alerts`` takes an :class:`AlertDocument` (JSON); :func:`parse_alert_document` validates it
and returns an :class:`~bastion.model.Alert`, or raises :class:`AlertDocumentError` whose message starts
with the path of the offending field (``observables[2].value: '10.0.0.300' is not a valid ipv4 address``).

Other tools post their own alert shapes to ``/api/v1/webhooks/{source}``; :data:`WEBHOOK_MAPPERS` maps a
source id to a function turning one payload (which may hold several alerts) into Alerts:

* ``elastic`` (:mod:`bastion.ingest.alerts_elastic`): Elastic Security detection alerts
  (``kibana.alert.*`` plus the source event's ECS fields), dotted or nested keys, one alert, a list,
  ``{"alerts": [...]}`` or a search response's hits.
* ``sentinel`` / ``defender`` / ``microsoft`` (:mod:`bastion.ingest.alerts_microsoft`): rows of Sentinel's
  SecurityAlert table (``Entities`` as a JSON string or a list) and Microsoft Graph security alerts (v2,
  Defender XDR) with their ``evidence``, one alert, a list, a Graph ``{"value": [...]}`` page or a Log
  Analytics query result.
* ``generic``: the generic document, or a list of them.

This module holds what they share (errors, value validation, the payload and field helpers); each vendor
module imports those and adds its mapper to :data:`WEBHOOK_MAPPERS`, and is imported at the end of this one.

Vendor payloads are taken as they come: values that are not valid observables are skipped, unknown
severities become ``unknown``. What makes an alert unusable (no title, an unreadable time, a payload of
the wrong shape) raises :class:`AlertDocumentError` naming the field.
"""

from __future__ import annotations

import ipaddress
import json
import re
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import msgspec

from bastion.ingest.observables import refang
from bastion.model import Alert, Observable, ObservableType, Severity
from bastion.model.timefmt import parse_time

__all__ = [
    "WEBHOOK_MAPPERS",
    "AlertDocument",
    "AlertDocumentError",
    "ObservableDocument",
    "UnknownWebhookSource",
    "map_webhook",
    "normalize_observable",
    "parse_alert_document",
    "parse_time",
]

OT = ObservableType


class AlertDocumentError(ValueError):
    """An alert document or webhook payload that cannot be read; ``path`` names the field."""

    def __init__(self, path: str, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(f"{path}: {problem}" if path else problem)


class UnknownWebhookSource(ValueError):
    """A webhook source id with no mapper; the message lists the known ones."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.known = sorted(WEBHOOK_MAPPERS)
        super().__init__(f"unknown webhook source {source!r}; known sources: {', '.join(self.known)}")


class ObservableDocument(msgspec.Struct, forbid_unknown_fields=True):
    type: str
    value: str
    field: str | None = None


class AlertDocument(msgspec.Struct, forbid_unknown_fields=True):
    """The generic alert document. ``time`` is ISO-8601 or epoch seconds/milliseconds (default: now);
    ``severity`` an OCSF id or name (default: unknown)."""

    title: str
    source: str
    severity: str | int = "unknown"
    time: str | int | float | None = None
    description: str | None = None
    external_id: str | None = None
    rule_id: str | None = None
    rule_name: str | None = None
    techniques: list[str] = msgspec.field(default_factory=list)
    tags: list[str] = msgspec.field(default_factory=list)
    observables: list[ObservableDocument] = msgspec.field(default_factory=list)
    raw: Any = None


# --- values -------------------------------------------------------------------------------------------

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_HASH_LENGTHS = {OT.MD5: 32, OT.SHA1: 40, OT.SHA256: 64}
_HEX = re.compile(r"[0-9a-f]+")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s.]+")
_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")
_TECHNIQUE = re.compile(r"T\d{4}(?:\.\d{3})?")


def normalize_observable(kind: ObservableType, value: str) -> str:
    """Validate ``value`` as an observable of ``kind`` and return its canonical form (defanged, lower-case
    hashes and domains, compressed IPv6). Raise ValueError saying why it is not valid."""
    text = value.strip()
    if not text:
        raise ValueError("empty value")
    if any(ord(c) < 32 for c in text):
        raise ValueError(f"{value!r} contains control characters")
    if kind in (OT.IPV4, OT.IPV6, OT.DOMAIN, OT.URL, OT.EMAIL):
        text = refang(text)
    if kind in (OT.IPV4, OT.IPV6):
        try:
            addr = ipaddress.ip_address(text)
        except ValueError:
            raise ValueError(f"{value!r} is not a valid {kind} address") from None
        if (addr.version == 4) != (kind is OT.IPV4):
            raise ValueError(f"{value!r} is not a valid {kind} address (it is ipv{addr.version})")
        return str(addr)
    if kind in _HASH_LENGTHS:
        text = text.lower()
        if len(text) != _HASH_LENGTHS[kind] or not _HEX.fullmatch(text):
            raise ValueError(f"{value!r} is not a valid {kind} hash ({_HASH_LENGTHS[kind]} hex digits)")
        return text
    if kind is OT.EMAIL:
        if not _EMAIL.fullmatch(text):
            raise ValueError(f"{value!r} is not a valid email address")
        local, _, domain = text.rpartition("@")
        return f"{local}@{domain.lower()}"
    if kind is OT.URL:
        parts = urlsplit(text)
        if not parts.scheme or not parts.netloc:
            raise ValueError(
                f"{value!r} is not a valid url (it needs a scheme and a host: https://host/path)"
            )
        return text
    if kind is OT.DOMAIN:
        name = text.rstrip(".").lower()
        try:
            ascii_name = name if name.isascii() else name.encode("idna").decode("ascii")
        except UnicodeError:
            ascii_name = ""
        labels = ascii_name.split(".")
        if len(labels) < 2 or not all(_LABEL.fullmatch(label) for label in labels):
            raise ValueError(f"{value!r} is not a valid domain name")
        return name
    return text


def _obs(kind: ObservableType | None, value: Any, field: str | None) -> Observable | None:
    """An observable from vendor data, or None when the value does not fit (vendor data is not rejected).
    ``kind`` None means an IP address, ipv4 or ipv6 by its form; loopback and link-local are skipped."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    if kind is None:
        try:
            addr = ipaddress.ip_address(str(value).strip())
        except ValueError:
            return None
        if addr.is_loopback or addr.is_link_local or addr.is_unspecified:
            return None
        return Observable(OT.IPV4 if addr.version == 4 else OT.IPV6, str(addr), field)
    try:
        return Observable(kind, normalize_observable(kind, str(value)), field)
    except ValueError:
        return None


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number")


def _join(prefix: str, path: str) -> str:
    if not prefix or not path:
        return prefix or path
    return prefix + path if path.startswith("[") else f"{prefix}.{path}"


def _unique(items: Iterable[Any]) -> list[Any]:
    return list(dict.fromkeys(item for item in items if item is not None))


def _unique_observables(items: Iterable[Observable | None]) -> list[Observable]:
    """One observable per (type, value), keeping the field it was first seen in."""
    seen: dict[tuple[str, str], Observable] = {}
    for obs in items:
        if obs is not None:
            seen.setdefault((obs.type, obs.value), obs)
    return list(seen.values())


def _text(value: Any, path: str) -> str | None:
    """A vendor's text field (a description, an id) as a string: a number is written out, empty is None.
    An object, array or boolean there is a payload of the wrong shape, refused naming the field, since an
    alert stored with one could not be read back."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise AlertDocumentError(path, f"expected a string, got {_json_type(value)}")


def _severity_or_unknown(value: Any) -> Severity:
    try:
        return Severity.parse(value)
    except ValueError:
        return Severity.UNKNOWN


# --- the generic document ------------------------------------------------------------------------------

_MSGSPEC_AT = re.compile(r"^(?P<msg>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)


def _validation_error(err: msgspec.ValidationError, prefix: str) -> AlertDocumentError:
    m = _MSGSPEC_AT.match(str(err))
    msg, path = (m["msg"], (m["path"] or "").lstrip(".")) if m else (str(err), "")
    if missing := re.fullmatch(r"Object missing required field `(.+)`", msg):
        return AlertDocumentError(_join(prefix, _join(path, missing[1])), "required")
    if unknown := re.fullmatch(r"Object contains unknown field `(.+)`", msg):
        struct = ObservableDocument if path.startswith("observables") else AlertDocument
        allowed = ", ".join(struct.__struct_fields__)
        where = _join(prefix, _join(path, unknown[1]))
        return AlertDocumentError(where, f"unknown field; allowed: {allowed}")
    return AlertDocumentError(_join(prefix, path), msg[:1].lower() + msg[1:])


def parse_alert_document(obj: Any, *, now_ms: int | None = None, path: str = "") -> Alert:
    """Validate one generic alert document and build its Alert (``time`` defaults to ``now_ms`` or now).
    ``path`` prefixes the field paths in errors (the document's place in a larger payload)."""
    if not isinstance(obj, dict):
        raise AlertDocumentError(path, f"an alert document must be a JSON object, got {_json_type(obj)}")
    try:
        doc = msgspec.convert(obj, AlertDocument)
    except msgspec.ValidationError as err:
        raise _validation_error(err, path) from None

    def fail(field: str, problem: str) -> AlertDocumentError:
        return AlertDocumentError(_join(path, field), problem)

    title, source = doc.title.strip(), doc.source.strip()
    if not title:
        raise fail("title", "required (got an empty string)")
    if not source:
        raise fail("source", "required (got an empty string)")
    try:
        severity = Severity.parse(doc.severity)
    except ValueError as err:
        raise fail("severity", str(err)) from None
    try:
        when = parse_time(doc.time) if doc.time is not None else (now_ms if now_ms is not None else _now_ms())
    except ValueError as err:
        raise fail("time", str(err)) from None
    techniques = [t.strip().upper() for t in doc.techniques]
    for i, technique in enumerate(techniques):
        if not _TECHNIQUE.fullmatch(technique):
            raise fail(
                f"techniques[{i}]",
                f"{doc.techniques[i]!r} is not an ATT&CK technique id (like T1059 or T1059.001)",
            )
    observables = []
    for i, item in enumerate(doc.observables):
        try:
            kind = ObservableType(item.type.strip().lower())
        except ValueError:
            known = ", ".join(t.value for t in ObservableType)
            raise fail(
                f"observables[{i}].type", f"{item.type!r} is not an observable type; use one of {known}"
            ) from None
        try:
            observables.append(Observable(kind, normalize_observable(kind, item.value), item.field))
        except ValueError as err:
            raise fail(f"observables[{i}].value", str(err)) from None
    return Alert(
        title=title,
        severity=severity,
        time=when,
        source=source,
        description=doc.description,
        external_id=doc.external_id,
        rule_id=doc.rule_id,
        rule_name=doc.rule_name,
        techniques=_unique(techniques),
        tags=_unique(tag.strip() for tag in doc.tags if tag.strip()),
        observables=_unique_observables(observables),
        raw=doc.raw,
    )


def _items(payload: Any, wrappers: tuple[str, ...], what: str) -> list[tuple[str, Any]]:
    """Split a payload into (path, alert) pairs: a list, a wrapper object (``{"alerts": [...]}``), an
    Elasticsearch search response, a Log Analytics query result, or one alert."""
    if isinstance(payload, list):
        return [(f"[{i}]", item) for i, item in enumerate(payload)]
    if not isinstance(payload, dict):
        raise AlertDocumentError(
            "", f'expected {what}, a list of them or {{"{wrappers[0]}": [...]}}, got {_json_type(payload)}'
        )
    for key in wrappers:
        if isinstance(payload.get(key), list):
            return [(f"{key}[{i}]", item) for i, item in enumerate(payload[key])]
    hits = payload.get("hits")
    if isinstance(hits, dict) and isinstance(hits.get("hits"), list):
        return [(f"hits.hits[{i}]", hit) for i, hit in enumerate(hits["hits"])]
    tables = payload.get("tables")
    if isinstance(tables, list) and tables:
        return _table_rows(tables[0])
    return [("", payload)]


def _table_rows(table: Any) -> list[tuple[str, Any]]:
    """The rows of a Log Analytics query result's first table as objects keyed by column name. A table
    of another shape raises AlertDocumentError naming the part that is wrong."""
    if not isinstance(table, dict):
        raise AlertDocumentError(
            "tables[0]",
            f"expected a query result table (an object with columns and rows), got {_json_type(table)}",
        )
    columns, rows = table.get("columns", []), table.get("rows")
    if not isinstance(columns, list):
        raise AlertDocumentError(
            "tables[0].columns", f"expected an array of columns, got {_json_type(columns)}"
        )
    names = []
    for i, col in enumerate(columns):
        if not isinstance(col, dict) or not isinstance(col.get("name"), str):
            raise AlertDocumentError(f"tables[0].columns[{i}]", 'expected a column object with a "name"')
        names.append(col["name"])
    if not isinstance(rows, list):
        raise AlertDocumentError("tables[0].rows", f"expected an array of rows, got {_json_type(rows)}")
    out = []
    for i, row in enumerate(rows):
        if not isinstance(row, list):
            raise AlertDocumentError(
                f"tables[0].rows[{i}]", f"expected a row (an array of values), got {_json_type(row)}"
            )
        out.append((f"tables[0].rows[{i}]", dict(zip(names, row, strict=False))))
    return out


def _map_generic(payload: Any) -> list[Alert]:
    return [
        parse_alert_document(item, path=path)
        for path, item in _items(payload, ("alerts",), "an alert document")
    ]


# --- shared vendor helpers ----------------------------------------------------------------------------


def _walk(node: Any, parts: list[str], out: list[Any]) -> None:
    if isinstance(node, list):
        for item in node:
            _walk(item, parts, out)
    elif not parts:
        out.append(node)
    elif isinstance(node, dict):
        for i in range(len(parts), 0, -1):
            key = ".".join(parts[:i])
            if key in node:
                _walk(node[key], parts[i:], out)


def _values(doc: Any, path: str) -> list[Any]:
    """Every non-empty scalar at a dotted ``path`` whether the document's keys are dotted, nested or
    both, passing through lists (``threat[].technique[].id``) and flattening list values."""
    out: list[Any] = []
    _walk(doc, path.split("."), out)
    return [v for v in out if v not in (None, "") and not isinstance(v, dict)]


def _first(doc: Any, *paths: str) -> Any:
    return next((found[0] for path in paths if (found := _values(doc, path))), None)


def _vendor_time(doc: Any, prefix: str, *paths: str) -> int:
    for path in paths:
        if found := _values(doc, path):
            try:
                return parse_time(found[0])
            except ValueError as err:
                raise AlertDocumentError(_join(prefix, path), str(err)) from None
    return _now_ms()


def _split_list(value: Any) -> list[str]:
    """A list given as a list, a JSON array string or a comma-separated string."""
    if isinstance(value, list):
        return [str(v).strip() for v in value if v not in (None, "")]
    text = str(value).strip()
    if text.startswith("["):
        try:
            return _split_list(json.loads(text))
        except ValueError:
            pass
    return [part.strip() for part in text.split(",") if part.strip()]


def _techniques(values: Iterable[Any]) -> list[str]:
    ids = (part.upper() for value in values for part in _split_list(value))
    return _unique(t for t in ids if _TECHNIQUE.fullmatch(t))


def _tactic_tag(name: str) -> str:
    """``attack.initial_access`` from "Initial Access", "InitialAccess" or "initial-access"."""
    snake = re.sub(r"(?<=[a-z])(?=[A-Z])", "_", name.strip())
    return "attack." + re.sub(r"[\s\-]+", "_", snake).lower()


# An observable spec: (path, kind) reads every value at the dotted path; ((dir, name), kind) joins a
# directory (or registry hive) and a name into one path. Kind None is an IP address.
_Spec = tuple[tuple[str | tuple[str, str], ObservableType | None], ...]


def _spec_observables(doc: Any, spec: _Spec, prefix: str) -> Iterator[Observable | None]:
    for path, kind in spec:
        if isinstance(path, str):
            for value in _values(doc, path):
                yield _obs(kind, value, _join(prefix, path))
            continue
        directory, name = _first(doc, path[0]), _first(doc, path[1])
        if name is not None:
            sep = "\\" if kind is OT.REGISTRY_KEY or "\\" in str(directory) or ":" in str(directory) else "/"
            full = f"{str(directory).rstrip(sep)}{sep}{name}" if directory is not None else name
            yield _obs(kind, full, _join(prefix, path[0] if directory is not None else path[1]))


# --- registry -----------------------------------------------------------------------------------------

# Source id -> mapper. The vendor modules imported at the end of this one add theirs.
WEBHOOK_MAPPERS: dict[str, Callable[[Any], list[Alert]]] = {"generic": _map_generic}


def map_webhook(source: str, payload: Any) -> list[Alert]:
    """Map a webhook payload from ``source`` (a key of :data:`WEBHOOK_MAPPERS`) to Alerts. ``payload`` is
    decoded JSON, or the raw JSON text or bytes."""
    mapper = WEBHOOK_MAPPERS.get(source.strip().lower())
    if mapper is None:
        raise UnknownWebhookSource(source)
    if isinstance(payload, str | bytes):
        try:
            payload = msgspec.json.decode(payload)
        except msgspec.DecodeError as err:
            raise AlertDocumentError("", f"payload is not valid JSON: {err}") from None
    return mapper(payload)


# Each vendor module registers its mappers on import.
from bastion.ingest import alerts_elastic, alerts_microsoft  # noqa: E402, F401
