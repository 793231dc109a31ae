"""MISP: event JSON, and the MISP feed format (``manifest.json`` + one ``<uuid>.json`` per event +
``hashes.csv``).

Events are read as plain JSON rather than through ``pymisp.MISPEvent`` objects: a feed can hold
thousands of events and only the attributes and tags matter here. Attribute types map to indicator
types (composite ``a|b`` types give both halves); tags give TLP (``tlp:*``), ATT&CK techniques
(``misp-galaxy:mitre-attack-pattern``), actors and malware families.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson

from bastion.intel.feeds.base import FeedError, InvalidIndicator, ParseResult, make_indicator, parse_time
from bastion.model.intel import IndicatorType

__all__ = ["parse_misp_event", "parse_misp_feed_dir", "parse_misp_manifest"]

_T = IndicatorType
_TYPES: dict[str, IndicatorType] = {
    "ip-src": _T.IPV4,
    "ip-dst": _T.IPV4,
    "domain": _T.DOMAIN,
    "hostname": _T.DOMAIN,
    "url": _T.URL,
    "uri": _T.URL,
    "md5": _T.MD5,
    "sha1": _T.SHA1,
    "sha256": _T.SHA256,
    "filename": _T.FILE_NAME,
    "email": _T.EMAIL,
    "email-src": _T.EMAIL,
    "email-dst": _T.EMAIL,
    "ja3-fingerprint-md5": _T.JA3,
    "ja4-fingerprint": _T.JA4,
    "vulnerability": _T.CVE,
    "x509-fingerprint-sha1": _T.SHA1,
    "x509-fingerprint-sha256": _T.SHA256,
}
_TECHNIQUE = re.compile(r"\b(T\d{4}(?:\.\d{3})?)\b")


class _Malformed(ValueError):
    """A part of an event that is not the shape MISP writes (``Attribute`` that is not a list, ...)."""


def _list(value: Any, what: str) -> list[Any]:
    """The list under an event key (absent: empty); :class:`_Malformed` naming the key otherwise."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise _Malformed(f"{what} is not a list")
    return value


def _tag_fields(tags: Any, what: str = "Tag") -> dict[str, Any]:
    out: dict[str, Any] = {"tags": [], "techniques": [], "actors": [], "malware": []}
    for tag in _list(tags, what):
        if not isinstance(tag, dict):
            raise _Malformed(f"{what} holds {tag!r}, not a tag object")
        name = str(tag.get("name", ""))
        low = name.lower()
        if low.startswith("tlp:"):
            out["tlp"] = low
        elif low.startswith("misp-galaxy:mitre-attack-pattern") or low.startswith("mitre-attack:"):
            out["techniques"].extend(_TECHNIQUE.findall(name))
        elif low.startswith("misp-galaxy:threat-actor") or low.startswith("misp-galaxy:mitre-intrusion-set"):
            out["actors"].append(name.split("=", 1)[-1].strip('"'))
        elif low.startswith(("misp-galaxy:malpedia", "misp-galaxy:mitre-malware", "misp-galaxy:ransomware")):
            out["malware"].append(name.split("=", 1)[-1].strip('"'))
        else:
            out["tags"].append(name)
    return out


# The right half of a composite type (``domain|ip``, ``filename|sha256``, ``ip-dst|port``): ``ip`` is an
# address (IPv4 or IPv6: normalizing tells), a port is no indicator.
_RIGHT_TYPES: dict[str, IndicatorType] = {**_TYPES, "ip": _T.IPV4}


def _attr_values(atype: str, value: str) -> list[tuple[IndicatorType, str]]:
    if "|" in atype:
        left, right = atype.split("|", 1)
        lv, _, rv = value.partition("|")
        pairs = []
        if left in ("domain", "hostname", "filename", "ip-src", "ip-dst") and left in _TYPES:
            pairs.append((_TYPES[left], lv))
        if right in _RIGHT_TYPES:
            pairs.append((_RIGHT_TYPES[right], rv))
        return pairs
    kind = _TYPES.get(atype)
    return [(kind, value)] if kind else []


def _event_indicators(event: dict[str, Any], source: str, result: ParseResult) -> None:
    """The event's indicators into ``result``; an event of the wrong shape is rejected whole, a bad
    attribute alone."""
    try:
        base = _tag_fields(event.get("Tag"))
        attrs: list[Any] = list(_list(event.get("Attribute"), "Attribute"))
        for n, obj in enumerate(_list(event.get("Object"), "Object")):
            if not isinstance(obj, dict):
                raise _Malformed(f"Object {n} is not an object")
            attrs.extend(_list(obj.get("Attribute"), f"Object {n} Attribute"))
    except _Malformed as exc:
        result.rejected.append(f"event {event.get('uuid') or '?'}: {exc}")
        return
    info = event.get("info")
    for attr in attrs:
        if not isinstance(attr, dict):
            result.rejected.append(f"event {event.get('uuid') or '?'}: attribute is not an object")
            continue
        atype, value = str(attr.get("type", "")), str(attr.get("value", ""))
        pairs = _attr_values(atype, value)
        if not pairs:
            continue  # a type that is not an indicator (comment, text, ...): not a broken record
        try:
            tags = _tag_fields(attr.get("Tag"))
            fields: dict[str, Any] = {
                "tlp": tags.get("tlp") or base.get("tlp"),
                "tags": base["tags"]
                + tags["tags"]
                + ([str(attr["category"])] if attr.get("category") else []),
                "techniques": base["techniques"] + tags["techniques"],
                "actors": base["actors"] + tags["actors"],
                "malware": base["malware"] + tags["malware"],
                "confidence": 80 if attr.get("to_ids") else 50,
                "first_seen": parse_time(attr.get("first_seen"), "first_seen")
                or parse_time(attr.get("timestamp"), "timestamp"),
                "last_seen": parse_time(attr.get("last_seen"), "last_seen")
                or parse_time(attr.get("timestamp"), "timestamp"),
                "description": info,
            }
        except (_Malformed, InvalidIndicator) as exc:
            result.rejected.append(f"attribute {attr.get('uuid', '?')} ({atype}): {exc}")
            continue
        for kind, v in pairs:
            if kind is _T.IPV4 and ":" in v and "." not in v:
                kind = _T.IPV6
            try:
                result.indicators.append(make_indicator(kind, v, source, **dict(fields)))
            except InvalidIndicator as exc:
                result.rejected.append(f"attribute {attr.get('uuid', '?')} ({atype}): {exc}")


def parse_misp_event(data: bytes, *, source: str = "misp", result: ParseResult | None = None) -> ParseResult:
    """One event (``{"Event": {...}}``), a list of them, or a ``{"response": [...]}`` search answer."""
    result = result or ParseResult()
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise FeedError(f"not MISP event JSON: {exc}") from None
    if isinstance(doc, dict) and "response" in doc:
        doc = doc["response"]
    events = doc if isinstance(doc, list) else [doc]
    for item in events:
        event = item.get("Event", item) if isinstance(item, dict) else None
        if not isinstance(event, dict) or not ("Attribute" in event or "Object" in event or "info" in event):
            result.rejected.append("an item is not a MISP event (no Event/Attribute)")
            continue
        name = (event.get("Orgc") or {}).get("name") if isinstance(event.get("Orgc"), dict) else None
        _event_indicators(event, str(name or source), result)
    return result


def parse_misp_manifest(data: bytes) -> dict[str, Any]:
    try:
        manifest = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise FeedError(f"manifest.json is not JSON: {exc}") from None
    if not isinstance(manifest, dict):
        raise FeedError("manifest.json should map event uuids to event summaries")
    return manifest


def parse_misp_feed_dir(path: Path, *, source: str = "misp-feed") -> ParseResult:
    """A MISP feed on disk: the folder (or its ``manifest.json``)."""
    folder = path.parent if path.name == "manifest.json" else path
    manifest_file = folder / "manifest.json"
    if not manifest_file.is_file():
        raise FeedError(f"{folder} is not a MISP feed: manifest.json is missing")
    manifest = parse_misp_manifest(manifest_file.read_bytes())
    result = ParseResult()
    for uuid in manifest:
        event_file = folder / f"{uuid}.json"
        if not event_file.is_file():
            result.rejected.append(f"event {uuid}: listed in manifest.json but {event_file.name} is missing")
            continue
        try:
            parse_misp_event(event_file.read_bytes(), source=source, result=result)
        except FeedError as exc:
            result.rejected.append(f"event {uuid}: {exc}")
    hashes = folder / "hashes.csv"
    if hashes.is_file():
        # hashes.csv holds MD5s of attribute values (for MISP's own cache lookups), not the values
        # themselves; it is checked for shape only.
        for n, line in enumerate(hashes.read_text(errors="replace").splitlines(), 1):
            if line and len(line.split(",")) < 2:
                result.warnings.append(f"hashes.csv line {n}: expected 'md5,event_uuid'")
    return result
