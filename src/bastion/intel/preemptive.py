"""Preemptive matching: intelligence about the organisation itself, with no alert involved.

Run over newly loaded indicators, it finds
- a leaked credential of a known identity (by e-mail or username),
- a domain imitating one of the tenant's owned domains (see :mod:`bastion.intel.lookalike`),
- a CVE affecting software installed on an inventoried asset (``details["affects"]``: product names or
  CPE strings, optionally ``product@version``),
- an indicator tagged for the tenant's sector or region (``sector:finance``, ``region:europe``),

and raises one ``intel`` trigger per match (:mod:`bastion.intel.triggers`). Each trigger is recorded by
key so reloading the same feed does not fire it twice, and audited as ``intel.trigger``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from bastion.intel.lookalike import lookalike_reason
from bastion.intel.triggers import IntelTrigger, emit
from bastion.model.asset import Asset, Identity, Software
from bastion.model.intel import Indicator, IndicatorType
from bastion.store import Database
from bastion.store.assets import InventoryRepository
from bastion.store.intel import IntelRepository
from bastion.store.scope import TenantScope

__all__ = ["affected_software", "find_matches", "recheck_inventory", "run_preemptive"]


def _brief(ind: Indicator) -> dict[str, Any]:
    return {
        "id": ind.id,
        "type": ind.type.value,
        "value": ind.value,
        "source": ind.source,
        "tags": ind.tags,
        "details": {k: v for k, v in ind.details.items() if k != "password_hash"},
    }


def _affects(ind: Indicator) -> list[tuple[str, str | None]]:
    raw = ind.details.get("affects", "")
    out: list[tuple[str, str | None]] = []
    for item in (x.strip() for x in raw.replace(";", ",").split(",")):
        if not item:
            continue
        if item.startswith("cpe:2.3:"):
            parts = item.split(":")
            product = parts[4] if len(parts) > 4 else ""
            version = parts[5] if len(parts) > 5 and parts[5] not in ("*", "-") else None
            out.append((product.lower(), version))
        else:
            name, _, version = item.partition("@")
            out.append((name.strip().lower(), version.strip() or None))
    return out


def affected_software(ind: Indicator, asset: Asset) -> Software | None:
    """The first installed product of ``asset`` that the CVE indicator says is affected."""
    for product, version in _affects(ind):
        for sw in asset.software:
            names = {sw.name.lower(), sw.name.lower().replace(" ", "_")}
            if sw.cpe:
                parts = sw.cpe.split(":")
                if len(parts) > 4:
                    names.add(parts[4].lower())
            if product in names and (version is None or sw.version == version):
                return sw
    return None


def find_matches(
    tenant_id: str,
    indicators: Sequence[Indicator],
    inventory: InventoryRepository,
    profile: dict[str, Any],
) -> list[IntelTrigger]:
    owned = [str(d).lower() for d in profile.get("owned_domains") or ()]
    sector = {str(profile["sector"]).lower()} if profile.get("sector") else set()
    regions = {
        str(r).lower()
        for r in (profile.get("regions") or ([profile["region"]] if profile.get("region") else []))
    }
    assets: list[Asset] | None = None
    out: list[IntelTrigger] = []
    for ind in indicators:
        brief = _brief(ind)
        breach = ind.details.get("breach_source", ind.source)
        if ind.type in (IndicatorType.LEAKED_CREDENTIAL, IndicatorType.EMAIL) and (
            ind.type is IndicatorType.LEAKED_CREDENTIAL or "credential-leak" in ind.tags
        ):
            who = ind.value
            ident = inventory.identity_by_email(who) if "@" in who else inventory.identity(who)
            if ident is None and "@" in who:
                ident = inventory.identity(who.split("@", 1)[0])
                if ident is not None and ident.email and ident.email.lower() != who:
                    ident = None
            if ident is not None:
                out.append(
                    IntelTrigger(
                        tenant_id=tenant_id,
                        type="credential-leak",
                        key=f"credential-leak:{ident.username}:{breach}",
                        indicator=brief,
                        identity=msgspec.to_builtins(ident),
                        reason=f"credential of {ident.username} in breach {breach}",
                    )
                )
        elif ind.type is IndicatorType.DOMAIN and owned:
            for own in owned:
                why = lookalike_reason(ind.value, own)
                if why:
                    out.append(
                        IntelTrigger(
                            tenant_id=tenant_id,
                            type="lookalike-domain",
                            key=f"lookalike-domain:{ind.value}",
                            indicator=brief,
                            domain=ind.value,
                            owned_domain=own,
                            reason=why,
                        )
                    )
                    break
        elif ind.type is IndicatorType.CVE and ind.details.get("affects"):
            if assets is None:
                assets = inventory.all_assets()
            for asset in assets:
                sw = affected_software(ind, asset)
                if sw is not None:
                    out.append(
                        IntelTrigger(
                            tenant_id=tenant_id,
                            type="vulnerable-software",
                            key=f"vulnerable-software:{ind.value}:{asset.hostname}",
                            indicator=brief,
                            asset=msgspec.to_builtins(asset),
                            reason=f"{ind.value} affects {sw.name} {sw.version or '?'} on {asset.hostname}",
                        )
                    )
        tags = {t.lower() for t in ind.tags}
        for s in sector:
            if f"sector:{s}" in tags:
                out.append(
                    IntelTrigger(
                        tenant_id=tenant_id,
                        type="sector",
                        key=f"sector:{s}:{ind.type.value}:{ind.value}",
                        indicator=brief,
                        reason=f"indicator tagged for the tenant's sector {s!r}",
                    )
                )
        for r in regions:
            if f"region:{r}" in tags:
                out.append(
                    IntelTrigger(
                        tenant_id=tenant_id,
                        type="region",
                        key=f"region:{r}:{ind.type.value}:{ind.value}",
                        indicator=brief,
                        reason=f"indicator tagged for the tenant's region {r!r}",
                    )
                )
    return out


def run_preemptive(
    db: Database, tenant_id: str, indicators: Sequence[Indicator], *, actor: str
) -> list[IntelTrigger]:
    """Find preemptive matches among ``indicators``, record and audit the new ones, then emit them."""
    if not indicators:
        return []
    fired: list[IntelTrigger] = []
    with db.write() as conn:
        repo = IntelRepository(conn, tenant_id)
        found = find_matches(tenant_id, indicators, InventoryRepository(conn, tenant_id), repo.profile())
        audit = TenantScope(conn, tenant_id).audit
        for trig in found:
            if repo.claim_trigger(trig.key[:500], trig.type, msgspec.to_builtins(trig)):
                audit.append(
                    actor,
                    "intel.trigger",
                    "intel_trigger",
                    trig.key[:200],
                    {"type": trig.type, "reason": trig.reason},
                )
                fired.append(trig)
    for trig in fired:
        emit(trig)
    return fired


def recheck_inventory(
    db: Database,
    tenant_id: str,
    *,
    identities: Sequence[Identity] = (),
    assets: Sequence[Asset] = (),
    actor: str,
) -> list[IntelTrigger]:
    """Intel that came before the inventory knew an identity or an asset: matched when they arrive (a
    leaked credential of a user synced later, a CVE of software installed later). Only live indicators
    count; a match that already fired (its key is recorded) does not fire again."""
    from bastion.store._util import now_ms

    now = now_ms()
    found: dict[int, Indicator] = {}
    kind = IndicatorType.LEAKED_CREDENTIAL.value
    # By key in the store, not through the matcher: an import must not load a tenant's millions of
    # indicators into a short-lived process.
    wanted = sorted({(kind, v.lower()) for i in identities for v in (i.email, i.username) if v})
    with db.read() as conn:
        repo = IntelRepository(conn, tenant_id)
        candidates = list(repo.find(wanted).values()) if wanted else []
        if any(a.software for a in assets):
            candidates += repo.live_cves_naming_software(now)
    for ind in candidates:
        if ind.valid_until is None or ind.valid_until >= now:
            found[int(ind.id or 0)] = ind
    return run_preemptive(db, tenant_id, list(found.values()), actor=actor)
