"""STIX 2.1 bundles (files, URLs, TAXII envelopes) into indicators.

Patterns are parsed with ``stix2patterns`` (the OASIS grammar), never with regexes of our own: every
comparison on an object path we can match (addresses, domains, URLs, hashes, e-mail, file names,
certificate serials) becomes one indicator value; ``MATCHES`` comparisons become pattern indicators.
Relationships (``indicates``) and ``kill_chain_phases``/external references link each indicator to
ATT&CK techniques, threat actors and malware. Vulnerability objects with a CVE id become CVE indicators.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson
from stix2patterns.v21.pattern import Pattern

from bastion.intel.feeds.base import FeedError, InvalidIndicator, ParseResult, make_indicator, parse_time
from bastion.model.intel import IndicatorType

__all__ = ["parse_stix", "parse_stix_objects"]

_T = IndicatorType
_PATHS: dict[tuple[str, str], IndicatorType] = {
    ("ipv4-addr", "value"): _T.IPV4,
    ("ipv6-addr", "value"): _T.IPV6,
    ("domain-name", "value"): _T.DOMAIN,
    ("url", "value"): _T.URL,
    ("email-addr", "value"): _T.EMAIL,
    ("email-message", "from_ref.value"): _T.EMAIL,
    ("email-message", "sender_ref.value"): _T.EMAIL,
    ("email-message", "subject"): _T.EMAIL_SUBJECT,
    ("email-message", "body_multipart.*.body_raw_ref.name"): _T.FILE_NAME,
    ("file", "name"): _T.FILE_NAME,
    ("file", "hashes.md5"): _T.MD5,
    ("file", "hashes.sha-1"): _T.SHA1,
    ("file", "hashes.sha1"): _T.SHA1,
    ("file", "hashes.sha-256"): _T.SHA256,
    ("file", "hashes.sha256"): _T.SHA256,
    ("x509-certificate", "serial_number"): _T.X509_SERIAL,
    ("network-traffic", "extensions.x-ja3.hash"): _T.JA3,
    ("vulnerability", "name"): _T.CVE,
}

# The four TLP 2.0 marking definitions of STIX 2.1 and the TLP 1 ones, by id.
_TLP_IDS = {
    "marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9": "clear",
    "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da": "green",
    "marking-definition--f88d31f6-486f-44da-b317-01333bde0b82": "amber",
    "marking-definition--5e57c739-391a-4eb3-b6be-7d15ca92d5ed": "red",
    "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487": "clear",
    "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb": "green",
    "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421": "amber",
    "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003": "amber+strict",
    "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1": "red",
}


def _literal(raw: Any) -> str:
    s = str(raw)
    if len(s) >= 2 and s[0] == "'" and s[-1] == "'":
        s = s[1:-1].replace("\\'", "'").replace("\\\\", "\\")
    return s


def _path(parts: list[Any]) -> str:
    return ".".join(p if isinstance(p, str) else "*" for p in parts).lower()


def _values(pattern: str) -> tuple[list[tuple[IndicatorType, str, bool]], list[str]]:
    """(type, value, is_regex) for every comparison we can match, and the paths we could not."""
    comparisons = Pattern(pattern).inspect().comparisons
    out: list[tuple[IndicatorType, str, bool]] = []
    skipped: list[str] = []
    for obj_type, comps in comparisons.items():
        for parts, op, raw in comps:
            path = _path(parts)
            kind = _PATHS.get((obj_type, path))
            op_name = str(op).upper().replace("NOT", "").strip()
            if kind is None or op_name not in ("=", "IN", "MATCHES"):
                skipped.append(f"{obj_type}:{path} {op}")
                continue
            if op_name == "IN":
                text = str(raw).strip("() ")
                for item in text.split(","):
                    out.append((kind, _literal(item.strip()), False))
            else:
                out.append((kind, _literal(raw), op_name == "MATCHES"))
    return out, skipped


def _links(
    objects: dict[str, dict[str, Any]], relationships: list[dict[str, Any]]
) -> dict[str, dict[str, set[str]]]:
    """For each indicator id: the techniques, actors and malware it indicates."""
    links: dict[str, dict[str, set[str]]] = {}
    for rel in relationships:
        src, dst = rel.get("source_ref", ""), rel.get("target_ref", "")
        if not src.startswith("indicator--"):
            continue
        target = objects.get(dst)
        if target is None:
            continue
        slot = links.setdefault(src, {"techniques": set(), "actors": set(), "malware": set(), "tags": set()})
        ttype = target.get("type")
        if ttype == "attack-pattern":  # techniques are ATT&CK ids; a pattern without one is kept as a tag
            ids = _attack_ids(target)
            slot["techniques"].update(ids)
            if not ids and target.get("name"):
                slot["tags"].add(f"attack-pattern:{target['name']}")
        elif ttype in ("threat-actor", "intrusion-set", "campaign"):
            slot["actors"].add(str(target.get("name", dst)))
        elif ttype in ("malware", "tool"):
            slot["malware"].add(str(target.get("name", dst)))
    return links


def _affected(
    objects: dict[str, dict[str, Any]], relationships: list[dict[str, Any]]
) -> dict[str, list[str]]:
    """For each vulnerability id: the software that a relationship (either way, any type, e.g.
    ``software has vulnerability``) ties it to, as its CPE or ``name@version``: what preemptive matching
    compares with the inventory's installed software."""
    out: dict[str, list[str]] = {}
    for rel in relationships:
        ends = [objects.get(str(rel.get("source_ref", ""))), objects.get(str(rel.get("target_ref", "")))]
        vuln = next((o for o in ends if o and o.get("type") == "vulnerability"), None)
        soft = next((o for o in ends if o and o.get("type") == "software"), None)
        if vuln is None or soft is None:
            continue
        name, version = str(soft.get("name") or "").strip(), str(soft.get("version") or "").strip()
        item = str(soft.get("cpe") or "") or (f"{name}@{version}" if version else name)
        if item:
            out.setdefault(str(vuln.get("id")), []).append(item)
    return out


def _external_refs(obj: dict[str, Any]) -> list[dict[str, Any]]:
    """The object's external references that are objects (a malformed list links nothing)."""
    refs = obj.get("external_references")
    return [r for r in refs if isinstance(r, dict)] if isinstance(refs, list) else []


def _attack_ids(obj: dict[str, Any]) -> set[str]:
    return {
        str(ref["external_id"])
        for ref in _external_refs(obj)
        if ref.get("source_name") == "mitre-attack" and ref.get("external_id")
    }


def parse_stix_objects(
    objs: Iterable[dict[str, Any]], *, source: str = "stix", confidence: int | None = None
) -> ParseResult:
    """Indicators from STIX objects (a bundle's ``objects`` or a TAXII envelope's)."""
    objects = {str(o.get("id")): o for o in objs if isinstance(o, dict)}
    result = ParseResult()
    identities = {k: v.get("name") for k, v in objects.items() if v.get("type") == "identity"}
    markings = {k: v for k, v in objects.items() if v.get("type") == "marking-definition"}
    relationships = [
        o
        for o in objects.values()
        if o.get("type") == "relationship"
        and isinstance(o.get("source_ref"), str)
        and isinstance(o.get("target_ref"), str)
    ]
    links = _links(objects, relationships)
    affected = _affected(objects, relationships)
    for oid, obj in objects.items():
        try:
            otype = obj.get("type")
            if otype == "vulnerability":
                cves = {
                    str(r["external_id"])
                    for r in _external_refs(obj)
                    if str(r.get("source_name", "")).lower() == "cve" and r.get("external_id")
                }
                name = str(obj.get("name", ""))
                if name.upper().startswith("CVE-"):
                    cves.add(name)
                details = {"affects": ", ".join(affected[oid])} if oid in affected else {}
                for cve in sorted(cves):
                    try:
                        result.indicators.append(
                            make_indicator(
                                _T.CVE,
                                cve,
                                source,
                                description=obj.get("description"),
                                tags=["vulnerability"],
                                details=details,
                            )
                        )
                    except InvalidIndicator as exc:
                        result.rejected.append(f"{oid}: {exc}")
                continue
            if otype != "indicator":
                continue
            if obj.get("revoked"):
                continue
            if obj.get("pattern_type", "stix") != "stix" or not obj.get("pattern"):
                result.rejected.append(f"{oid}: pattern type {obj.get('pattern_type')!r} is not supported")
                continue
            try:
                values, skipped = _values(str(obj["pattern"]))
            except Exception as exc:
                result.rejected.append(f"{oid}: unreadable STIX pattern ({type(exc).__name__}: {exc})")
                continue
            tlp = None
            for ref in obj.get("object_marking_refs") or ():
                tlp = _TLP_IDS.get(ref) or tlp
                mark = markings.get(ref)
                if mark and (
                    mark.get("definition_type") == "tlp"
                    or str(mark.get("name", "")).lower().startswith("tlp")
                ):
                    tlp = str((mark.get("definition") or {}).get("tlp") or mark.get("name", "")).lower()
            link = links.get(oid, {})
            techniques = set(link.get("techniques", set()))
            # ATT&CK kill-chain phases are tactics (command-and-control), not techniques: tags.
            tactics = {
                f"tactic:{phase.get('phase_name')}"
                for phase in obj.get("kill_chain_phases") or ()
                if str(phase.get("kill_chain_name", "")).startswith("mitre") and phase.get("phase_name")
            }
            src = identities.get(obj.get("created_by_ref", "")) or source
            fields: dict[str, Any] = {
                "confidence": obj.get("confidence", confidence),
                "tlp": tlp,
                "first_seen": parse_time(obj.get("valid_from"), "valid_from")
                or parse_time(obj.get("created"), "created"),
                "last_seen": parse_time(obj.get("modified"), "modified"),
                "valid_until": parse_time(obj.get("valid_until"), "valid_until"),
                "tags": [
                    *(obj.get("labels") or ()),
                    *(obj.get("indicator_types") or ()),
                    *sorted(tactics | link.get("tags", set())),
                ],
                "techniques": sorted(t for t in techniques if t),
                "actors": sorted(link.get("actors", set())),
                "malware": sorted(link.get("malware", set())),
                "description": obj.get("name") or obj.get("description"),
            }
            made = 0
            problems: list[str] = []
            for kind, value, regex in values:
                try:
                    result.indicators.append(
                        make_indicator(kind, value, str(src), pattern=regex, **dict(fields))
                    )
                    made += 1
                except InvalidIndicator as exc:
                    problems.append(str(exc))
            if not made:
                why = (
                    "; ".join(problems) or f"no matchable comparison (skipped {', '.join(skipped) or 'none'})"
                )
                result.rejected.append(f"{oid}: {why}")
            elif problems:
                result.warnings.extend(f"{oid}: skipped value: {p}" for p in problems)
        except InvalidIndicator as exc:  # a time outside the years 1-9999
            result.rejected.append(f"{oid}: {exc}")
        except (TypeError, AttributeError) as exc:  # a field of the wrong shape (labels that are a number)
            result.rejected.append(f"{oid}: not valid STIX ({exc})")

    return result


def parse_stix(data: bytes, *, source: str = "stix", confidence: int | None = None) -> ParseResult:
    """A bundle, an envelope (``objects``), a list of objects, or one object. Anything else (``{}``,
    ``[]``, a number) is :class:`FeedError`: a body that holds no STIX is a mistake, not an empty feed."""
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise FeedError(f"not STIX JSON: {exc}") from None
    if isinstance(doc, dict) and "objects" in doc:
        objs = doc["objects"]
    elif isinstance(doc, dict) and doc.get("type") == "bundle":
        objs = []  # a bundle with no objects: valid STIX, nothing to load
    elif isinstance(doc, dict) and isinstance(doc.get("type"), str) and doc["type"]:
        objs = [doc]
    elif isinstance(doc, list) and doc:
        objs = doc
    else:
        raise FeedError(
            "not STIX: expected a bundle (a JSON object with 'objects'), a list of STIX objects "
            "or one STIX object (with a 'type')"
        )
    if not isinstance(objs, list):
        raise FeedError("not a STIX bundle: 'objects' is not a list")
    result = parse_stix_objects(objs, source=source, confidence=confidence)
    result.rejected[:0] = [
        f"item {n}: not a STIX object (a JSON object with a 'type')"
        for n, o in enumerate(objs, 1)
        if not (isinstance(o, dict) and isinstance(o.get("type"), str) and o["type"])
    ]
    return result
