"""Detection for a tenant: its rule packs, rule overrides and suppressions (each change audited), the
detector built from them, and retro-hunts of a rule over the tenant's stored events.

The ingest pipeline asks :data:`DETECTORS` for a tenant's :class:`Detection` on every batch: compiling a
few thousand rules takes seconds, so detectors are built once per distinct (packs, disabled rules) and
shared by every tenant with that set, and rebuilt only when a tenant changes its packs or overrides.
Suppressions are read fresh for each batch (they are small, and expire).

Retro-hunts run the streaming matcher over the stored original documents, read in time order in
batches. The store keeps each event's original JSON as one text column rather than one column per field,
so the SQL that pysigma-backend-sqlite generates (one column per Sigma field) has nothing to run on there;
the matcher gives the same answers (see the agreement test) without a second copy of every event.
"""

from __future__ import annotations

import logging
import threading
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import select

from bastion.detect.alerts import Suppression
from bastion.detect.correlation import CorrelationEngine
from bastion.detect.engine import Detector
from bastion.detect.rules import load_rules
from bastion.store import Database
from bastion.store.audit import AuditRepository
from bastion.store.detection import DetectionRepository, PackRow, SuppressionRow
from bastion.store.events import EventRepository
from bastion.store.tables import events as events_table
from bastion.store.tenancy import TenantRepository
from bastion.tenancy.service import require_tenant

__all__ = [
    "DETECTORS",
    "Detection",
    "DetectorCache",
    "add_pack",
    "add_suppression",
    "hunt",
    "remove_suppression",
    "set_pack_enabled",
    "set_rule_enabled",
    "tenant_detector",
    "tenant_suppressions",
]


_log = logging.getLogger(__name__)
_RETRY_S = 60.0  # how long a rule set that failed to load stays off before the next attempt


@dataclass(frozen=True)
class Detection:
    """What the pipeline runs on a tenant's batch: the compiled rules, the active suppressions, and the
    tenant's own correlation state (None when its rules hold no correlation)."""

    detector: Detector
    suppressions: list[Suppression] = field(default_factory=list)
    correlation: CorrelationEngine | None = None


class DetectorCache:
    """Detectors shared by rule set, built on first use. Thread-safe; one per process (:data:`DETECTORS`)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._built: dict[tuple[tuple[str, ...], frozenset[str]], Detector] = {}
        self._failed: dict[tuple[tuple[str, ...], frozenset[str]], float] = {}
        # Correlation state is the tenant's own (its events only), kept while its detector stays the same.
        self._correlations: dict[str, CorrelationEngine] = {}

    def for_tenant(self, db: Database, tenant_id: str, *, now: int | None = None) -> Detection | None:
        """The tenant's detection, or None when it has no enabled rule pack."""
        now = now if now is not None else int(time.time() * 1000)
        with db.read() as conn:
            repo = DetectionRepository(conn, tenant_id)
            paths = tuple(sorted(p.path for p in repo.packs() if p.enabled))
            if not paths:
                return None
            disabled = frozenset(repo.disabled_rules())
            rows = repo.suppressions(active_at=now)
        detector = self._detector(paths, disabled)
        if detector is None:
            return None
        return Detection(detector, _suppressions(rows), self._correlation(tenant_id, detector))

    def _correlation(self, tenant_id: str, detector: Detector) -> CorrelationEngine | None:
        if not detector.correlations:
            return None
        with self._lock:
            engine = self._correlations.get(tenant_id)
            if engine is None or engine.detector is not detector:
                engine = self._correlations[tenant_id] = CorrelationEngine(detector)
                for problem in engine.problems:
                    _log.warning("correlation rule %s is not run: %s", problem.rule_id, problem.reason)
            return engine

    def _detector(self, paths: tuple[str, ...], disabled: frozenset[str]) -> Detector | None:
        key = (paths, disabled)
        with self._lock:  # one build at a time; later callers for the same set wait and reuse it
            found = self._built.get(key)
            if found is not None:
                return found
            if time.monotonic() - self._failed.get(key, -_RETRY_S) < _RETRY_S:
                return None
            try:
                detector = Detector(load_rules(paths), disabled=disabled)
            except (OSError, ValueError, zipfile.BadZipFile) as exc:  # a vanished pack must not stop ingest
                _log.error("rule packs %s could not be loaded; detection is off for them: %s", paths, exc)
                self._failed[key] = time.monotonic()
                return None
            self._built[key] = detector
            self._failed.pop(key, None)
            return detector

    def clear(self) -> None:
        with self._lock:
            self._built.clear()
            self._failed.clear()
            self._correlations.clear()


DETECTORS = DetectorCache()


def _tenant_id(conn: Any, tenant: str) -> str:
    return require_tenant(TenantRepository(conn), tenant).id


def add_pack(db: Database, tenant: str, name: str, path: str, *, actor: str = "cli") -> PackRow:
    """Enable a rule pack (a file, folder or zip of Sigma rules) for a tenant."""
    p = Path(path)
    if not p.exists():
        raise ValueError(f"no such rule file or folder: {path}")
    if not name.strip():
        raise ValueError("a pack needs a name")
    with db.write() as conn:
        tid = _tenant_id(conn, tenant)
        repo = DetectionRepository(conn, tid)
        if repo.pack(name) is not None:
            raise ValueError(f"tenant {tenant!r} already has a pack named {name!r}")
        row = repo.add_pack(name, str(p.resolve()))
        AuditRepository(conn, tid).append(
            actor, "detection.pack.add", "rule_pack", row.id, {"name": name, "path": row.path}
        )
    return row


def set_pack_enabled(db: Database, tenant: str, name: str, enabled: bool, *, actor: str = "cli") -> None:
    with db.write() as conn:
        tid = _tenant_id(conn, tenant)
        if not DetectionRepository(conn, tid).set_pack_enabled(name, enabled):
            raise ValueError(f"tenant {tenant!r} has no pack named {name!r}")
        action = "detection.pack.enable" if enabled else "detection.pack.disable"
        AuditRepository(conn, tid).append(actor, action, "rule_pack", name, {"enabled": enabled})


def set_rule_enabled(db: Database, tenant: str, rule_id: str, enabled: bool, *, actor: str = "cli") -> None:
    if not rule_id.strip():
        raise ValueError("a rule id is required")
    with db.write() as conn:
        tid = _tenant_id(conn, tenant)
        DetectionRepository(conn, tid).set_rule_enabled(rule_id, enabled)
        action = "detection.rule.enable" if enabled else "detection.rule.disable"
        AuditRepository(conn, tid).append(actor, action, "rule", rule_id, {"enabled": enabled})


def add_suppression(
    db: Database,
    tenant: str,
    fields: dict[str, str],
    *,
    rule_id: str | None = None,
    reason: str | None = None,
    expires: int | None = None,
    actor: str = "cli",
) -> SuppressionRow:
    """Suppress matches (of one rule, or any) whose event has all the given field values, until expiry."""
    if not fields:
        raise ValueError("a suppression needs at least one field=value")
    with db.write() as conn:
        tid = _tenant_id(conn, tenant)
        row = DetectionRepository(conn, tid).add_suppression(
            fields, rule_id=rule_id, reason=reason, expires=expires, actor=actor
        )
        AuditRepository(conn, tid).append(
            actor,
            "detection.suppression.add",
            "suppression",
            row.id,
            {"rule_id": rule_id, "fields": fields, "reason": reason, "expires": expires},
        )
    return row


def remove_suppression(db: Database, tenant: str, sid: str, *, actor: str = "cli") -> None:
    with db.write() as conn:
        tid = _tenant_id(conn, tenant)
        if not DetectionRepository(conn, tid).remove_suppression(sid):
            raise ValueError(f"tenant {tenant!r} has no suppression {sid!r}")
        AuditRepository(conn, tid).append(actor, "detection.suppression.remove", "suppression", sid, {})


def tenant_suppressions(db: Database, tenant: str, *, now: int | None = None) -> list[Suppression]:
    with db.read() as conn:
        rows = DetectionRepository(conn, _tenant_id(conn, tenant)).suppressions(active_at=now)
    return _suppressions(rows)


def _suppressions(rows: list[SuppressionRow]) -> list[Suppression]:
    return [
        Suppression(fields=r.fields, rule_id=r.rule_id, expires=r.expires, id=r.id, reason=r.reason)
        for r in rows
    ]


def tenant_detector(db: Database, tenant: str, **kwargs: Any) -> Detector:
    """A detector over the tenant's enabled packs, without the rules it disabled."""
    with db.read() as conn:
        repo = DetectionRepository(conn, _tenant_id(conn, tenant))
        paths = [p.path for p in repo.packs() if p.enabled]
        disabled = repo.disabled_rules()
    return Detector(load_rules(paths), disabled=disabled, **kwargs)


def _stored_docs(
    db: Database, tenant: str, since: int | None, batch: int = 2000
) -> Iterator[tuple[str, int, Any]]:
    last: tuple[int, int] = (-(2**62), -1)
    while True:
        with db.read() as conn:
            num = EventRepository(conn, _tenant_id(conn, tenant)).tenant_num
            t = events_table.c
            q = select(t.pk, t.id, t.time, t.raw).where(t.tenant_num == num)
            if since is not None:
                q = q.where(t.time >= since)
            q = q.where((t.time > last[0]) | ((t.time == last[0]) & (t.pk > last[1])))
            rows = conn.execute(q.order_by(t.time, t.pk).limit(batch)).all()
        if not rows:
            return
        for r in rows:
            yield r.id, int(r.time), orjson.loads(r.raw)
        last = (int(rows[-1].time), int(rows[-1].pk))


def hunt(
    db: Database, tenant: str, rule_paths: list[str | Path], *, since: int | None
) -> tuple[Detector, list[dict[str, Any]], int]:
    """Run rules over a tenant's stored events since ``since`` (epoch ms).

    Returns (detector, hits, events searched)."""
    det = Detector.from_paths(rule_paths)
    if not det.rules:
        reasons = "; ".join(f"{p.source}: {p.reason}" for p in det.unsupported) or "no rules found"
        raise ValueError(f"no usable rule to hunt with: {reasons}")
    hits: list[dict[str, Any]] = []
    n = 0
    for event_id, t, doc in _stored_docs(db, tenant, since):
        n += 1
        for m in det.match_document(doc):
            hits.append(
                {
                    "rule_id": m.rule.rule_id,
                    "rule_title": m.rule.title,
                    "level": m.rule.level,
                    "event_id": event_id,
                    "time": t,
                }
            )
    return det, hits, n
