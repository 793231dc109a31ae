"""The flow of DESIGN.md section 1, in one readable place.

The pipeline runs ``ingest -> normalize -> extract observables -> detect -> enrich -> triage -> store``;
alerts from other tools take ``enrich -> triage -> store``. Triage (``bastion.triage.engine``) runs inside
the transaction that stores the alerts: it suppresses, deduplicates, scores, correlates alerts into cases,
auto-closes and routes them, under the tenant's policy, loaded once per batch. Everything before
``respond`` has no side effect outside Bastion's own store, so it runs in batches (one transaction per
batch) and is safe to re-run: an event's id is its content fingerprint, so the same input stores
nothing new the second time, and a detection alert is stored only with a new event (its external id is
rule id and event id, so it is never stored twice).

Where the flow reaches ``respond``: once :func:`connect_response` has named a store, every new alert
stored here, every case triage opens or adds to, and every preemptive intel trigger, starts the workflows
bound to it (their ``alert``, ``case`` and ``intel`` triggers), after the transaction has committed.
"""

from __future__ import annotations

import logging
import time
import weakref
from collections.abc import Iterable, Iterator
from typing import Any

import msgspec
from sqlalchemy import select

from bastion.detect.alerts import alerts_for_events
from bastion.detect.tenant import Detection
from bastion.enrich.enricher import Enricher
from bastion.ingest.prepare import RaiseAlerts, prepare_rows
from bastion.ingest.records import RawRecord, RecordError
from bastion.model import Alert, Event
from bastion.store import Database, TenantScope
from bastion.store.events import EventRow
from bastion.store.tables import tenants
from bastion.triage.engine import triage_alerts
from bastion.triage.policy import load_policy

__all__ = [
    "AlertResult",
    "IngestResult",
    "connect_response",
    "ingest_alerts",
    "is_responding",
    "prepare_events",
    "store_events",
]

log = logging.getLogger(__name__)
_RESPONDING: weakref.WeakSet[Database] = weakref.WeakSet()


class IngestResult(msgspec.Struct):
    """What an ingest did. ``errors`` names each rejected record by its line (or item) number."""

    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    errors: list[dict[str, Any]] = msgspec.field(default_factory=list)

    def add(self, other: IngestResult) -> None:
        self.accepted += other.accepted
        self.duplicates += other.duplicates
        self.rejected += other.rejected
        self.errors.extend(other.errors)


def prepare_events(
    records: Iterable[RawRecord | RecordError],
    fmt: str | None = None,
    *,
    now: int | None = None,
    detection: Detection | None = None,
) -> tuple[list[EventRow], list[dict[str, Any]]]:
    """Normalize, extract and detect on each record, outside any transaction. Returns (rows, errors).

    ``fmt`` forces a normalizer; otherwise the reader's hint, then format detection, picks one. An event
    with no time of its own gets the ingest time. ``detection`` (the tenant's rules, from
    :data:`bastion.detect.tenant.DETECTORS`) attaches the alerts each event raises to its row.
    """
    ingest_time = now if now is not None else int(time.time() * 1000)
    return prepare_rows(records, fmt, ingest_time, _alert_raiser(detection) if detection else None)


def _alert_raiser(detection: Detection) -> RaiseAlerts:
    def raise_alerts(event: Event, event_id: str, ingest_time: int) -> list[Alert]:
        try:
            return alerts_for_events(
                detection.detector,
                [event],
                now=ingest_time,
                suppressions=detection.suppressions,
                event_ids=[event_id],
                correlation=detection.correlation,
            )
        except Exception:  # a rule that trips on an odd event must not cost the event itself
            log.exception("detection failed on event %s; stored without its alerts", event_id)
            return []

    return raise_alerts


def store_events(
    db: Database,
    tenant_id: str,
    actor: str,
    rows: list[EventRow],
    errors: list[dict[str, Any]],
    *,
    source: str = "api",
    enricher: Enricher | None = None,
    triage: bool = True,
) -> IngestResult:
    """Store one prepared batch in one transaction, with one audit entry for the batch and one for each
    detection alert (stored only for events that are new, enriched before the transaction, triaged in
    it unless ``triage`` is false)."""
    ingested = int(time.time() * 1000)
    if enricher is not None:
        for row in rows:
            if row.alerts:
                row.alerts = enricher.enrich(db, tenant_id, row.alerts)
    with db.write() as conn:
        scope = TenantScope(conn, tenant_id)
        new_ids, duplicates = scope.events.insert_batch(rows, ingested)
        fresh = set(new_ids)
        detected = [a for row in rows if row.alerts and row.id in fresh for a in row.alerts]
        stored = AlertResult()
        if detected:
            _store_alerts(scope, actor, detected, stored, triage=triage)
        scope.audit.append(
            actor,
            "events.ingest",
            "event_batch",
            new_ids[0] if new_ids else None,
            {
                "source": source,
                "accepted": len(new_ids),
                "duplicates": duplicates,
                "rejected": len(errors),
                "alerts": len(detected),
            },
        )
    _alert_hooks(db, tenant_id, stored.new)
    _case_hooks(db, tenant_id, stored.case_events)
    return IngestResult(
        accepted=len(new_ids), duplicates=duplicates, rejected=len(errors), errors=list(errors)
    )


def batched(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


class AlertResult(msgspec.Struct):
    """What storing a batch of alerts did. ``ids`` has one id per alert given, in order: the alert it
    was stored as, or the one it was a re-send or a repeat of. ``duplicates`` are re-sends (same source
    and external id); ``deduplicated`` repeats folded into an open alert with the same fingerprint."""

    accepted: int = 0
    duplicates: int = 0
    ids: list[str] = msgspec.field(default_factory=list)
    new: list[Alert] = msgspec.field(default_factory=list)  # the alerts stored for the first time
    deduplicated: int = 0
    auto_closed: int = 0
    suppressed: int = 0
    cases: int = 0  # cases opened
    cases_updated: int = 0
    case_events: list[dict[str, Any]] = msgspec.field(default_factory=list)  # for the ``case`` hooks


def ingest_alerts(
    db: Database,
    tenant_id: str,
    actor: str,
    alerts: list[Alert],
    *,
    enricher: Enricher | None = None,
    triage: bool = True,
) -> AlertResult:
    """Enrich, triage and store alerts from other tools (one transaction), auditing each new one.
    ``triage=False`` stores them as they come (the benchmark's baseline; tools that re-load history)."""
    if enricher is not None:
        alerts = enricher.enrich(db, tenant_id, alerts)
    result = AlertResult()
    with db.write() as conn:
        _store_alerts(TenantScope(conn, tenant_id), actor, alerts, result, triage=triage)
    _alert_hooks(db, tenant_id, result.new)
    _case_hooks(db, tenant_id, result.case_events)
    return result


def _store_alerts(
    scope: TenantScope, actor: str, alerts: list[Alert], result: AlertResult, *, triage: bool = True
) -> None:
    now = int(time.time() * 1000)
    if triage:
        name = scope.conn.execute(select(tenants.c.name).where(tenants.c.id == scope.tenant_id)).scalar()
        done = triage_alerts(
            scope, alerts, policy=load_policy(scope.conn, scope.tenant_id), tenant_name=name, now=now
        )
        result.ids.extend(done.ids)
        result.duplicates += done.duplicates
        result.deduplicated += done.deduplicated
        result.auto_closed += len(done.auto_closed)
        result.suppressed += len(done.suppressed)
        result.cases += len(done.cases_opened)
        result.cases_updated += len(done.cases_updated)
        result.case_events.extend(done.case_events)
        fresh = done.new
    else:
        for alert in alerts:
            if not alert.time:
                alert.time = now
        pairs = scope.alerts.insert_many(alerts)
        result.ids.extend(stored.id or "" for stored, _ in pairs)
        result.duplicates += sum(1 for _, new in pairs if not new)
        fresh = [stored for stored, new in pairs if new]
    result.accepted += len(fresh)
    result.new.extend(fresh)
    entries = []
    for stored in fresh:
        data: dict[str, Any] = {
            "title": stored.title,
            "source": stored.source,
            "severity": int(stored.severity),
            "external_id": stored.external_id,
        }
        if triage:
            data.update(score=stored.score, status=stored.status.value, case_id=stored.case_id)
            if stored.close_reason:
                data["close_reason"] = stored.close_reason
        entries.append((actor, "alert.create", "alert", stored.id, data))
    scope.audit.append_many(entries)


# ------------------------------------------------------------------------------------ into respond


def connect_response(db: Database) -> None:
    """Let new alerts and intel triggers on ``db`` start their bound workflows (idempotent)."""
    from bastion.intel.triggers import on_intel_match

    _RESPONDING.add(db)
    on_intel_match(_intel_hooks)


def is_responding(db: Database) -> bool:
    """Whether :func:`connect_response` joined ``db`` to the engine (hooks fire only then)."""
    return db in _RESPONDING


def _alert_payload(alert: Alert) -> dict[str, Any]:
    return {
        "alert_id": alert.id,
        "title": alert.title,
        "severity": alert.severity.name.lower(),
        "source": alert.source,
        "rule_id": alert.rule_id,
        "rule_name": alert.rule_name,
        "techniques": alert.techniques,
        "tags": alert.tags,
        "observables": [{"type": o.type.value, "value": o.value} for o in alert.observables],
    }


def _alert_hooks(db: Database, tenant_id: str, alerts: list[Alert]) -> None:
    """Start the workflows bound to these new alerts. A workflow that cannot start is logged; the
    alerts are already stored either way."""
    if not alerts or not is_responding(db):
        return
    from bastion.respond.service import fire_hooks_for

    try:
        fire_hooks_for(db, tenant_id, "alert", [_alert_payload(a) for a in alerts], actor="pipeline")
    except Exception:  # the response side must never cost an accepted alert
        log.exception("starting alert-triggered workflows failed for tenant %s", tenant_id)


def _case_hooks(db: Database, tenant_id: str, payloads: list[dict[str, Any]]) -> None:
    """Start the workflows bound to cases triage opened (``event: opened``) or added alerts to
    (``event: updated``). Like alert hooks, a failure is logged and loses nothing stored."""
    if not payloads or not is_responding(db):
        return
    from bastion.respond.service import fire_hooks_for

    try:
        fire_hooks_for(db, tenant_id, "case", payloads, actor="pipeline")
    except Exception:  # the response side must never cost an accepted alert or case
        log.exception("starting case-triggered workflows failed for tenant %s", tenant_id)


def _intel_hooks(trigger: Any) -> None:
    from bastion.respond.service import fire_hooks

    for db in list(_RESPONDING):
        try:
            fire_hooks(db, trigger.tenant_id, "intel", trigger.inputs(), actor="intel")
        except Exception:  # one store's failure must not keep the trigger from the others
            log.exception("starting intel-triggered workflows failed for tenant %s", trigger.tenant_id)
