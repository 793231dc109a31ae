"""The enrichment stage: for an alert and its observables, add intel matches, warning-list marks, asset
and identity context and GeoIP/ASN, and say whether the evidence raises the alert's severity.

Severity is raised only by evidence that is not known-benign: an observable on a MISP warning list is
marked and its intel matches never raise severity (they are kept, for the analyst to see). A live
indicator match with confidence >= 75 raises to high; any other match raises to at least medium; a
critical asset involved raises one step. Techniques linked from matched indicators are added by id.
The stage reads only Bastion's own store, so it is safe to re-run.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

import msgspec

from bastion.enrich.geoip import GeoIp
from bastion.intel.store import decay_policy, decayed_confidence, match_observables
from bastion.model import Alert, Severity
from bastion.model.asset import Criticality
from bastion.store import Database
from bastion.store._util import now_ms
from bastion.store.assets import InventoryRepository

__all__ = ["Enricher", "Enrichment", "apply", "enrich_alert", "enrich_alerts"]

if TYPE_CHECKING:
    from bastion.config import Settings

_IP = {"ipv4", "ipv6"}
_log = logging.getLogger(__name__)


class Enrichment(msgspec.Struct):
    intel: list[dict[str, Any]] = msgspec.field(default_factory=list)
    known_benign: list[dict[str, Any]] = msgspec.field(default_factory=list)
    assets: list[dict[str, Any]] = msgspec.field(default_factory=list)
    identities: list[dict[str, Any]] = msgspec.field(default_factory=list)
    geo: dict[str, dict[str, Any]] = msgspec.field(default_factory=dict)
    techniques: list[str] = msgspec.field(default_factory=list)
    severity: int = 0
    reasons: list[str] = msgspec.field(default_factory=list)


def enrich_alert(
    db: Database,
    tenant_id: str,
    alert: Alert,
    *,
    warninglists: Any = None,
    geoip: GeoIp | None = None,
    now: int | None = None,
    decay: dict[str, float] | None = None,
) -> Enrichment:
    """``decay``: the tenant's per-source half-lives (read from its intel profile when not given)."""
    now = now if now is not None else now_ms()
    if decay is None:
        decay = decay_policy(db, tenant_id)
    obs = [(o.type.value, o.value) for o in alert.observables]
    result = Enrichment(severity=int(alert.severity))
    benign: set[tuple[str, str]] = set()
    if warninglists is not None:
        for t, v in obs:
            lists = warninglists.check(v, t)
            if lists:
                benign.add((t, v))
                result.known_benign.append({"type": t, "value": v, "warninglists": [w.name for w in lists]})
    best = int(alert.severity)
    techniques = set(alert.techniques)
    for (t, v), hits in zip(obs, match_observables(db, tenant_id, obs, now), strict=True):
        for ind in hits:
            conf = decayed_confidence(ind, now, decay)
            is_benign = (t, v) in benign
            result.intel.append(
                {
                    "observable": {"type": t, "value": v},
                    "indicator": ind.value,
                    "indicator_type": ind.type.value,
                    "id": ind.id,
                    "source": ind.source,
                    "confidence": conf,
                    "tags": ind.tags,
                    "known_benign": is_benign,
                }
            )
            techniques.update(ind.techniques)
            if is_benign:
                continue
            target = Severity.HIGH if conf >= 75 else Severity.MEDIUM
            if target > best:
                best = int(target)
                result.reasons.append(f"intel match {ind.value} ({ind.source}, confidence {conf})")
    with db.read() as conn:
        inv = InventoryRepository(conn, tenant_id)
        seen_hosts: set[str] = set()
        seen_users: set[str] = set()
        for t, v in obs:
            found = []
            if t in _IP:
                found = inv.assets_by_ip(v)
            elif t == "host":
                a = inv.asset(v) or inv.asset(v.split(".")[0])
                found = [a] if a else []
            for a in found:
                if a.hostname in seen_hosts:
                    continue
                seen_hosts.add(a.hostname)
                result.assets.append(msgspec.to_builtins(a))
                if (
                    a.criticality >= Criticality.CRITICAL
                    and best < Severity.CRITICAL
                    and (t, v) not in benign
                ):
                    best = min(int(Severity.CRITICAL), best + 1)
                    result.reasons.append(f"critical asset {a.hostname}")
            ident = None
            if t == "user":
                name = v.split("\\")[-1].split("@")[0]
                ident = inv.identity(name) or (inv.identity_by_email(v) if "@" in v else None)
            elif t == "email":
                ident = inv.identity_by_email(v)
            if ident is not None and ident.username not in seen_users:
                seen_users.add(ident.username)
                result.identities.append(msgspec.to_builtins(ident))
    if geoip is not None and geoip.configured:
        for t, v in obs:
            if t in _IP:
                geo = geoip.lookup(v)
                if geo:
                    result.geo[v] = geo
    result.techniques = sorted(techniques)
    result.severity = best
    return result


def apply(alert: Alert, enrichment: Enrichment) -> Alert:
    """The alert with the enrichment's severity, techniques and tags folded in."""
    tags = set(alert.tags)
    if enrichment.intel:
        tags.add("intel-match")
    if enrichment.known_benign:
        tags.add("known-benign")
    return msgspec.structs.replace(
        alert,
        severity=Severity(enrichment.severity),
        techniques=enrichment.techniques,
        tags=sorted(tags),
    )


def enrich_alerts(
    db: Database,
    tenant_id: str,
    alerts: list[Alert],
    *,
    warninglists: Any = None,
    geoip: GeoIp | None = None,
) -> list[tuple[Alert, Enrichment]]:
    """The pipeline stage: each alert with its enrichment applied, before it is stored. Reads only."""
    now = now_ms()
    decay = decay_policy(db, tenant_id) if alerts else {}
    out = []
    for alert in alerts:
        e = enrich_alert(db, tenant_id, alert, warninglists=warninglists, geoip=geoip, now=now, decay=decay)
        out.append((apply(alert, e), e))
    return out


class Enricher:
    """The enrichment stage as the pipeline runs it: warning lists and GeoIP databases are opened once
    per process, on first use, and shared by every tenant.

    Enrichment adds context; it must never cost an alert. If it fails, the alert is stored as it came
    and the failure is logged.
    """

    def __init__(
        self,
        *,
        warninglists_path: str | None = None,
        geoip_db: str | None = None,
        geoip_asn_db: str | None = None,
    ) -> None:
        self._warninglists_path = warninglists_path
        self._geo_paths = (geoip_db, geoip_asn_db)
        self._geoip: GeoIp | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> Enricher:
        return cls(
            warninglists_path=settings.warninglists_path,
            geoip_db=settings.geoip_db,
            geoip_asn_db=settings.geoip_asn_db,
        )

    def _geo(self) -> GeoIp | None:
        if not any(self._geo_paths):
            return None
        with self._lock:
            if self._geoip is None:
                self._geoip = GeoIp(*self._geo_paths)
            return self._geoip

    def enrich(self, db: Database, tenant_id: str, alerts: list[Alert]) -> list[Alert]:
        """The alerts with their enrichment applied and recorded on ``Alert.enrichment``."""
        if not alerts:
            return alerts
        from bastion.intel.warninglists import shared_warninglists

        try:
            pairs = enrich_alerts(
                db,
                tenant_id,
                alerts,
                warninglists=shared_warninglists(self._warninglists_path),
                geoip=self._geo(),
            )
        except Exception:  # context is optional; losing an alert is not
            _log.exception("enrichment failed; storing %d alerts without it", len(alerts))
            return alerts
        out = []
        for alert, found in pairs:
            doc = msgspec.to_builtins(found)
            doc.pop("severity", None)
            out.append(msgspec.structs.replace(alert, enrichment=doc))
        return out

    def close(self) -> None:
        with self._lock:
            if self._geoip is not None:
                self._geoip.close()
                self._geoip = None
