"""Asset and identity inventories: import from CSV or JSON, and store through the inventory repository.

CSV columns for assets: ``hostname`` (required), ``ips``, ``owner``, ``business_unit``, ``criticality``
(low/medium/high/critical or 1-4), ``os``, ``tags``, ``software`` (``name@version`` items). For
identities: ``username`` (required), ``email``, ``display_name``, ``groups``, ``privileged``, ``manager``,
``status``, ``department``. List cells are separated by ``;`` or ``|``. JSON is a list of objects with the
same fields (lists as JSON arrays, software as ``{"name", "version", "cpe"}`` objects or strings). A bad
row is skipped and reported; the rest are stored.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec
import orjson

from bastion.model.asset import Asset, Criticality, Identity, Software
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


class ImportResult(msgspec.Struct):
    imported: int = 0
    rejected: int = 0
    problems: list[str] = msgspec.field(default_factory=list)
    removed: int = 0  # an LDAP sync: identities the directory no longer holds


def _records(data: bytes) -> list[Any]:
    text = data.decode("utf-8-sig", errors="replace")
    if text.lstrip()[:1] in ("[", "{"):
        try:
            doc = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise ValueError(f"not valid JSON: {exc}") from None
        if isinstance(doc, dict):
            doc = doc.get("assets") or doc.get("identities") or doc.get("items") or [doc]
        if not isinstance(doc, list):
            raise ValueError("expected a JSON array of objects")
        return doc
    return list(csv.DictReader(io.StringIO(text)))


def _list(v: Any) -> list[str]:
    if v is None:
        return []
    if isinstance(v, list):
        return [str(x).strip() for x in v if str(x).strip()]
    return [x.strip() for x in str(v).replace("|", ";").split(";") if x.strip()]


def _criticality(v: Any) -> Criticality:
    if v in (None, ""):
        return Criticality.MEDIUM
    s = str(v).strip().lower()
    if s.isdigit() and 1 <= int(s) <= 4:
        return Criticality(int(s))
    try:
        return Criticality[s.upper()]
    except KeyError:
        raise ValueError(f"criticality {v!r} is not low, medium, high, critical or 1-4") from None


def _software(v: Any) -> list[Software]:
    out: list[Software] = []
    items = v if isinstance(v, list) else _list(v)
    for item in items:
        if isinstance(item, dict):
            if not item.get("name"):
                raise ValueError("a software entry has no name")
            out.append(
                Software(
                    name=str(item["name"]),
                    version=item.get("version"),
                    vendor=item.get("vendor"),
                    cpe=item.get("cpe"),
                )
            )
        else:
            name, _, version = str(item).partition("@")
            out.append(Software(name=name.strip(), version=version.strip() or None))
    return out


def parse_assets(data: bytes) -> tuple[list[Asset], list[str]]:
    assets: list[Asset] = []
    problems: list[str] = []
    for n, rec in enumerate(_records(data), 1):
        try:
            if not isinstance(rec, dict) or not str(rec.get("hostname") or "").strip():
                raise ValueError("no hostname")
            assets.append(
                Asset(
                    hostname=str(rec["hostname"]).strip().lower(),
                    id=rec.get("id") or None,
                    ips=_list(rec.get("ips") or rec.get("ip")),
                    owner=rec.get("owner") or None,
                    business_unit=rec.get("business_unit") or None,
                    criticality=_criticality(rec.get("criticality")),
                    os=rec.get("os") or None,
                    tags=_list(rec.get("tags")),
                    software=_software(rec.get("software")),
                )
            )
        except ValueError as exc:
            problems.append(f"record {n}: {exc}")
    return assets, problems


def parse_identities(data: bytes) -> tuple[list[Identity], list[str]]:
    out: list[Identity] = []
    problems: list[str] = []
    for n, rec in enumerate(_records(data), 1):
        if not isinstance(rec, dict) or not str(rec.get("username") or "").strip():
            problems.append(f"record {n}: no username")
            continue
        email = str(rec.get("email") or "").strip() or None
        if email and "@" not in email:
            problems.append(f"record {n}: {email!r} is not an e-mail address")
            continue
        priv = rec.get("privileged")
        out.append(
            Identity(
                username=str(rec["username"]).strip().lower(),
                id=rec.get("id") or None,
                email=email.lower() if email else None,
                display_name=rec.get("display_name") or None,
                privileged=priv if isinstance(priv, bool) else str(priv or "").strip().lower() in _TRUE,
                groups=_list(rec.get("groups")),
                manager=rec.get("manager") or None,
                status=str(rec.get("status") or "active"),
                department=rec.get("department") or None,
            )
        )
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
