"""MITRE ATT&CK (Enterprise): techniques, tactics, groups and software from the STIX bundle, indexed by
ATT&CK id (``T1059.001``, ``TA0002``, ``G0007``, ``S0154``) so alerts and indicators can link by id.

The bundle is read with ``orjson`` (not ``stix2``): it is 25k objects of STIX 2.0, and only names, ids,
tactics, platforms and the ``uses`` relationships between groups, software and techniques are needed.
Revoked and deprecated objects are skipped.
"""

from __future__ import annotations

import gzip
import re
import threading
import zlib
from pathlib import Path
from typing import Any

import msgspec
import orjson

__all__ = ["Attack", "AttackObject", "default_attack_path", "shared_attack"]

_ROOT = Path(__file__).resolve().parents[3]
_ID = re.compile(r"^(T\d{4}(\.\d{3})?|TA\d{4}|G\d{4}|S\d{4}|C\d{4}|M\d{4})$", re.IGNORECASE)


class AttackObject(msgspec.Struct, omit_defaults=True):
    id: str
    name: str
    kind: str  # technique | tactic | group | software
    description: str = ""
    url: str | None = None
    tactics: list[str] = msgspec.field(default_factory=list)
    platforms: list[str] = msgspec.field(default_factory=list)
    aliases: list[str] = msgspec.field(default_factory=list)
    parent: str | None = None
    subtechniques: list[str] = msgspec.field(default_factory=list)
    used_by: list[str] = msgspec.field(default_factory=list)
    uses: list[str] = msgspec.field(default_factory=list)


_KINDS = {
    "attack-pattern": "technique",
    "x-mitre-tactic": "tactic",
    "intrusion-set": "group",
    "malware": "software",
    "tool": "software",
    "campaign": "campaign",
}


def default_attack_path(configured: str | None = None) -> Path | None:
    candidates = [Path(configured)] if configured else []
    candidates += [
        Path.cwd().parent / "shared" / "data" / "attack" / "enterprise-attack.json.gz",
        _ROOT.parent / "shared" / "data" / "attack" / "enterprise-attack.json.gz",
    ]
    return next((c for c in candidates if c.is_file()), None)


class Attack:
    """The loaded matrix."""

    def __init__(self) -> None:
        self.objects: dict[str, AttackObject] = {}

    @classmethod
    def load(cls, path: Path) -> Attack:
        try:
            raw = path.read_bytes()
            if raw[:2] == b"\x1f\x8b":
                raw = gzip.decompress(raw)
            bundle = orjson.loads(raw)
        except (OSError, EOFError, zlib.error, orjson.JSONDecodeError) as exc:  # cut short, unreadable
            raise ValueError(f"{path} is not an ATT&CK STIX bundle: {exc}") from None
        if not isinstance(bundle, dict):
            raise ValueError(f"{path} is not an ATT&CK STIX bundle: not a JSON object")
        att = cls()
        by_stix: dict[str, str] = {}
        shortnames: dict[str, str] = {}
        objs = bundle.get("objects") or []
        for o in objs:
            kind = _KINDS.get(o.get("type", ""))
            if kind is None or o.get("revoked") or o.get("x_mitre_deprecated"):
                continue
            ref = next(
                (r for r in o.get("external_references") or () if r.get("source_name") == "mitre-attack"),
                None,
            )
            if not ref or not ref.get("external_id"):
                continue
            aid = str(ref["external_id"]).upper()
            item = AttackObject(
                id=aid,
                name=str(o.get("name", "")),
                kind=kind,
                description=str(o.get("description", "")),
                url=ref.get("url"),
                tactics=[
                    p["phase_name"]
                    for p in o.get("kill_chain_phases") or ()
                    if p.get("kill_chain_name") == "mitre-attack"
                ],
                platforms=list(o.get("x_mitre_platforms") or ()),
                aliases=[
                    a for a in (o.get("aliases") or o.get("x_mitre_aliases") or ()) if a != o.get("name")
                ],
                parent=aid.split(".")[0] if kind == "technique" and "." in aid else None,
            )
            if kind == "tactic" and o.get("x_mitre_shortname"):
                shortnames[o["x_mitre_shortname"]] = aid
            att.objects[aid] = item
            by_stix[o["id"]] = aid
        for item in att.objects.values():
            if item.parent and item.parent in att.objects:
                att.objects[item.parent].subtechniques.append(item.id)
        for o in objs:
            if o.get("type") != "relationship" or o.get("relationship_type") != "uses" or o.get("revoked"):
                continue
            src, dst = by_stix.get(o.get("source_ref", "")), by_stix.get(o.get("target_ref", ""))
            if src and dst:
                att.objects[src].uses.append(dst)
                att.objects[dst].used_by.append(src)
        for item in att.objects.values():
            item.uses.sort()
            item.used_by.sort()
            item.subtechniques.sort()
        return att

    def get(self, attack_id: str) -> AttackObject | None:
        return self.objects.get(attack_id.strip().upper())

    def show(self, attack_id: str) -> dict[str, Any]:
        """A technique (or tactic, group, software) with the names of what it links to."""
        if not _ID.match(attack_id.strip()):
            raise ValueError(
                f"not an ATT&CK id: {attack_id!r} (expected e.g. T1059.001, TA0002, G0007, S0154)"
            )
        item = self.get(attack_id)
        if item is None:
            raise ValueError(f"no ATT&CK object with id {attack_id.upper()!r} in the loaded matrix")
        doc: dict[str, Any] = msgspec.to_builtins(item)

        def named(ids: list[str]) -> list[dict[str, str]]:
            return [
                {"id": i, "name": self.objects[i].name, "kind": self.objects[i].kind}
                for i in ids
                if i in self.objects
            ]

        doc["uses"] = named(item.uses)
        doc["used_by"] = named(item.used_by)
        doc["subtechniques"] = named(item.subtechniques)
        if item.parent and item.parent in self.objects:
            doc["parent"] = {"id": item.parent, "name": self.objects[item.parent].name}
        return doc

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for o in self.objects.values():
            out[o.kind] = out.get(o.kind, 0) + 1
        return out


_lock = threading.Lock()
_shared: dict[str, Attack] = {}


def shared_attack(configured: str | None = None) -> Attack:
    """The process-wide matrix; raises ValueError naming the expected path when it is missing."""
    path = default_attack_path(configured)
    if path is None:
        raise ValueError(
            "ATT&CK data not found: expected ../shared/data/attack/enterprise-attack.json.gz "
            "(or set BASTION_ATTACK_PATH)"
        )
    with _lock:
        att = _shared.get(str(path))
        if att is None:
            att = _shared[str(path)] = Attack.load(path)
        return att
