"""Asset and identity inventories: import from CSV or JSON, and store through the inventory repository.

CSV columns for assets: ``hostname`` (required), ``ips``, ``owner``, ``business_unit``, ``criticality``
(low/medium/high/critical or 1-4), ``os``, ``tags``, ``software`` (``name@version`` items). For
identities: ``username`` (required), ``email``, ``display_name``, ``groups``, ``privileged``, ``manager``,
``status``, ``department``. List cells are separated by ``;`` or ``|``. JSON is a list of objects with the
same fields (lists as JSON arrays, software as ``{"name", "version", "cpe"}`` objects or strings). A bad
row (a missing key, a field of the wrong type: text fields are strings) is skipped and reported with its
number and the field; the rest are stored.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

import msgspec
import orjson

from bastion.model.asset import Asset, Criticality, Identity
from bastion.store import Database
from bastion.store.assets import InventoryRepository
from bastion.store.scope import TenantScope

__all__ = [
    "ImportResult",
    "import_file",
    "parse_assets",
    "parse_identities",
    "store_assets",
    "store_identities",
]

_TRUE = {"1", "true", "yes", "y", "t"}
_M = TypeVar("_M", Asset, Identity)


class ImportResult(msgspec.Struct):
    imported: int = 0
    rejected: int = 0
    problems: list[str] = msgspec.field(default_factory=list)
    removed: int = 0  # an LDAP sync: identities the directory no longer holds


def _records(data: bytes, key: str) -> list[Any]:
    """The records of a JSON document or a CSV with a header row naming ``key``; ValueError for a body
    that is neither (empty, a JSON scalar, a CSV without the key column)."""
    text = data.decode("utf-8-sig", errors="replace")
    if not text.strip():
        raise ValueError(f"nothing to import: send a JSON array of objects or CSV with a {key} column")
    try:
        doc = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        if text.lstrip()[:1] in ("[", "{"):
            raise ValueError(f"not valid JSON: {exc}") from None
    else:
        if isinstance(doc, dict):
            doc = doc.get("assets") or doc.get("identities") or doc.get("items") or [doc]
        if not isinstance(doc, list):
            raise ValueError("expected a JSON array of objects")
        return doc
    reader = csv.DictReader(io.StringIO(text))
    if key not in (reader.fieldnames or ()):
        raise ValueError(f"the CSV header has no {key} column")
    return list(reader)


def _blank(v: Any) -> Any:
    """None for an absent or empty cell; a number as its text (a CMDB's numeric id, a version 1.24); any
    other value as given, for the model to check its type."""
    if v is None or v == "":
        return None
    if isinstance(v, int | float) and not isinstance(v, bool):
        return str(v)
    return v


def _list(v: Any) -> Any:
    """A list field: a JSON array (strings stripped, empty ones dropped) or a ``;``/``|`` separated
    string. Anything else is passed on as it is, for the model to refuse."""
    if v is None:
        return []
    if isinstance(v, list):
        items = [_blank(x.strip() if isinstance(x, str) else x) for x in v]
        return [x for x in items if x is not None]
    if isinstance(v, str):
        return [x.strip() for x in v.replace("|", ";").split(";") if x.strip()]
    return v


def _criticality(v: Any) -> Criticality:
    if v in (None, ""):
        return Criticality.MEDIUM
    s = str(v).strip().lower()
    if not isinstance(v, bool) and s.isdigit() and 1 <= int(s) <= 4:
        return Criticality(int(s))
    try:
        return Criticality[s.upper()]
    except KeyError:
        raise ValueError(f"criticality {v!r} is not low, medium, high, critical or 1-4") from None


def _software(v: Any) -> Any:
    items = _list(v)
    if not isinstance(items, list):
        return items
    out: list[Any] = []
    for item in items:
        if isinstance(item, dict):
            if not item.get("name"):
                raise ValueError("a software entry has no name")
            out.append({k: _blank(item.get(k)) for k in ("name", "version", "vendor", "cpe")})
        elif isinstance(item, str):
            name, _, version = item.partition("@")
            out.append({"name": name.strip(), "version": version.strip() or None})
        else:
            out.append(item)
    return out


def _checked(model: type[_M], fields: dict[str, Any]) -> _M:
    """``fields`` as the model the store reads back, so a record that would not read back (an ``id``
    that is an object, a tag that is a number) is refused here, with the field's path, not stored."""
    try:
        return msgspec.convert(fields, model)
    except msgspec.ValidationError as exc:
        raise ValueError(str(exc)) from None


def _fits(name: str, value: str | None, limit: int) -> None:
    """Key columns hold ``limit`` characters and no NUL (PostgreSQL refuses one in text)."""
    if value is not None and (len(value) > limit or "\x00" in value):
        raise ValueError(f"{name} must be at most {limit} characters, without NUL")


def _key(rec: Any, key: str) -> Any:
    """The record's key (hostname, username), stripped and lower-cased when it is a string."""
    if (
        not isinstance(rec, dict)
        or rec.get(key) is None
        or (isinstance(rec[key], str) and not rec[key].strip())
    ):
        raise ValueError(f"no {key}")
    v = rec[key]
    return v.strip().lower() if isinstance(v, str) else v


def parse_assets(data: bytes) -> tuple[list[Asset], list[str]]:
    """Assets from JSON or CSV, and a line for each record refused (its number and why)."""
    assets: list[Asset] = []
    problems: list[str] = []
    for n, rec in enumerate(_records(data, "hostname"), 1):
        try:
            host = _key(rec, "hostname")
            fields = {
                "hostname": host,
                "id": _blank(rec.get("id")),
                "ips": _list(rec.get("ips") or rec.get("ip")),
                "owner": _blank(rec.get("owner")),
                "business_unit": _blank(rec.get("business_unit")),
                "criticality": _criticality(rec.get("criticality")),
                "os": _blank(rec.get("os")),
                "tags": _list(rec.get("tags")),
                "software": _software(rec.get("software")),
            }
            asset = _checked(Asset, fields)
            _fits("hostname", asset.hostname, 255)
            for ip in asset.ips:
                _fits("an address in ips", ip, 64)
            assets.append(asset)
        except ValueError as exc:
            problems.append(f"record {n}: {exc}")
    return assets, problems


def parse_identities(data: bytes) -> tuple[list[Identity], list[str]]:
    """Identities from JSON or CSV, and a line for each record refused (its number and why)."""
    out: list[Identity] = []
    problems: list[str] = []
    for n, rec in enumerate(_records(data, "username"), 1):
        try:
            user = _key(rec, "username")
            email = _blank(rec.get("email"))
            if isinstance(email, str):
                email = email.strip().lower() or None
                if email and "@" not in email:
                    raise ValueError(f"{email!r} is not an e-mail address")
            priv = rec.get("privileged")
            if priv is None or isinstance(priv, str):
                priv = (priv or "").strip().lower() in _TRUE
            fields = {
                "username": user,
                "id": _blank(rec.get("id")),
                "email": email,
                "display_name": _blank(rec.get("display_name")),
                "privileged": priv,
                "groups": _list(rec.get("groups")),
                "manager": _blank(rec.get("manager")),
                "status": _blank(rec.get("status")) or "active",
                "department": _blank(rec.get("department")),
            }
            ident = _checked(Identity, fields)
            _fits("username", ident.username, 255)
            _fits("email", ident.email, 320)
            out.append(ident)
        except ValueError as exc:
            problems.append(f"record {n}: {exc}")
    return out, problems


def store_assets(
    db: Database, tenant_id: str, assets: Sequence[Asset], *, actor: str, source: str = "import"
) -> None:
    """Store assets; intel that came before them (a CVE of software they run) is matched now."""
    from bastion.intel.preemptive import recheck_inventory

    with db.write() as conn:
        InventoryRepository(conn, tenant_id).put_assets(assets)
        TenantScope(conn, tenant_id).audit.append(
            actor, "inventory.assets.import", "asset", None, {"count": len(assets), "source": source}
        )
    recheck_inventory(db, tenant_id, assets=assets, actor=actor)


def store_identities(
    db: Database, tenant_id: str, items: Sequence[Identity], *, actor: str, source: str = "import"
) -> None:
    """Store identities; intel that came before them (a leak of their credentials) is matched now."""
    from bastion.intel.preemptive import recheck_inventory

    with db.write() as conn:
        InventoryRepository(conn, tenant_id).put_identities(items)
        TenantScope(conn, tenant_id).audit.append(
            actor, "inventory.identities.import", "identity", None, {"count": len(items), "source": source}
        )
    recheck_inventory(db, tenant_id, identities=items, actor=actor)


def remove_inventory(db: Database, tenant_id: str, kind: str, name: str, *, actor: str) -> bool:
    """Forget one asset (by hostname) or identity (by username), audited; False when there is none."""
    if kind not in ("assets", "identities"):
        raise ValueError(f"unknown inventory kind {kind!r}")
    with db.write() as conn:
        repo = InventoryRepository(conn, tenant_id)
        gone = repo.remove_asset(name) if kind == "assets" else repo.remove_identity(name)
        if gone:
            target = "asset" if kind == "assets" else "identity"
            TenantScope(conn, tenant_id).audit.append(
                actor, f"inventory.{kind}.remove", target, name.lower(), {}
            )
    return gone


def import_file(db: Database, tenant_id: str, path: Path, kind: str, *, actor: str) -> ImportResult:
    """Import ``assets`` or ``identities`` from a CSV or JSON file."""
    if not path.is_file():
        raise ValueError(f"no such file: {path}")
    data = path.read_bytes()
    if kind == "assets":
        assets, problems = parse_assets(data)
        store_assets(db, tenant_id, assets, actor=actor, source=path.name)
        return ImportResult(imported=len(assets), rejected=len(problems), problems=problems)
    identities, problems = parse_identities(data)
    store_identities(db, tenant_id, identities, actor=actor, source=path.name)
    return ImportResult(imported=len(identities), rejected=len(problems), problems=problems)
