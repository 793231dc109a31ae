"""The flow of DESIGN.md section 1, in one readable place.

Today the pipeline runs ``ingest -> normalize -> extract observables -> detect -> enrich -> store``;
triage slots in as it lands. Alerts from other tools take ``enrich -> store``. Everything before
``respond`` has no side effect outside Bastion's own store, so it runs in batches (one transaction per
batch) and is safe to re-run: an event's id is its content fingerprint, so the same input stores
nothing new the second time, and a detection alert is stored only with a new event (its external id is
rule id and event id, so it is never stored twice).

Where the flow reaches ``respond``: once :func:`connect_response` has named a store, every new alert
stored here, and every preemptive intel trigger, starts the workflows bound to it (their ``alert`` and
``intel`` triggers), after the alert's transaction has committed.
"""

from __future__ import annotations

import logging
import time
import weakref
from collections.abc import Iterable, Iterator
from typing import Any

import msgspec
import orjson

from bastion.detect.alerts import alerts_for_events
from bastion.detect.tenant import Detection
from bastion.enrich.enricher import Enricher
from bastion.ingest.fingerprint import canonical_bytes, fingerprint
from bastion.ingest.normalize import normalize
from bastion.ingest.observables import extract_observables
from bastion.ingest.records import RawRecord, RecordError
from bastion.model import Alert, Event
from bastion.store import Database, TenantScope
from bastion.store.events import EventRow

__all__ = [
    "AlertResult",
    "IngestResult",
    "connect_response",
    "ingest_alerts",
    "prepare_events",
    "store_events",
]

log = logging.getLogger(__name__)
_RESPONDING: weakref.WeakSet[Database] = weakref.WeakSet()

_encode_event = msgspec.json.Encoder().encode


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
    rows: list[EventRow] = []
    errors: list[dict[str, Any]] = []
    for rec in records:
        if isinstance(rec, RecordError):
            errors.append({"line": rec.line, "reason": rec.reason})
            continue
        try:
            event = normalize(rec.data, fmt or rec.format)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            errors.append({"line": rec.line, "reason": str(exc) or type(exc).__name__})
            continue
        rows.append(_row(rec.data, event, ingest_time, detection))
    return rows, errors


def _row(data: Any, event: Event, ingest_time: int, detection: Detection | None) -> EventRow:
    canonical = canonical_bytes(data)
    raw = canonical if isinstance(data, dict | list) else orjson.dumps(data)
    event_id = fingerprint(canonical).hex()
    event.observables = extract_observables(event)
    if not event.time:
        event.time = ingest_time
    alerts: list[Alert] = []
    if detection is not None:
        try:
            alerts = alerts_for_events(
                detection.detector,
                [event],
                now=ingest_time,
                suppressions=detection.suppressions,
                event_ids=[event_id],
            )
        except Exception:  # a rule that trips on an odd event must not cost the event itself
            log.exception("detection failed on event %s; stored without its alerts", event_id)
    event.raw = None  # stored once, in its own column
    return EventRow(
        id=event_id,
        time=event.time,
        class_uid=int(event.class_uid),
        severity_id=int(event.severity_id),
        format=event.format or "unknown",
        normalized=_encode_event(event).decode(),
        raw=raw.decode(),
        observables=[(o.type.value, o.value) for o in event.observables],
        alerts=alerts,
    )


def store_events(
    db: Database,
    tenant_id: str,
    actor: str,
    rows: list[EventRow],
    errors: list[dict[str, Any]],
    *,
    source: str = "api",
    enricher: Enricher | None = None,
) -> IngestResult:
    """Store one prepared batch in one transaction, with one audit entry for the batch and one for each
    detection alert (stored only for events that are new, enriched before the transaction)."""
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
            _store_alerts(scope, actor, detected, stored)
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
    accepted: int = 0
    duplicates: int = 0
    ids: list[str] = msgspec.field(default_factory=list)
    new: list[Alert] = msgspec.field(default_factory=list)  # the alerts stored for the first time


def ingest_alerts(
    db: Database, tenant_id: str, actor: str, alerts: list[Alert], *, enricher: Enricher | None = None
) -> AlertResult:
    """Enrich and store alerts from other tools (one transaction), auditing each new one."""
    if enricher is not None:
        alerts = enricher.enrich(db, tenant_id, alerts)
    result = AlertResult()
    with db.write() as conn:
        _store_alerts(TenantScope(conn, tenant_id), actor, alerts, result)
    _alert_hooks(db, tenant_id, result.new)
    return result


def _store_alerts(scope: TenantScope, actor: str, alerts: list[Alert], result: AlertResult) -> None:
    now = int(time.time() * 1000)
    for alert in alerts:
        if not alert.time:
            alert.time = now
        stored, new = scope.alerts.insert(alert)
        assert stored.id is not None
        result.ids.append(stored.id)
        if new:
            result.accepted += 1
            result.new.append(stored)
            scope.audit.append(
                actor,
                "alert.create",
                "alert",
                stored.id,
                {
                    "title": stored.title,
                    "source": stored.source,
                    "severity": int(stored.severity),
                    "external_id": stored.external_id,
                },
            )
        else:
            result.duplicates += 1


# ------------------------------------------------------------------------------------ into respond


def connect_response(db: Database) -> None:
    """Let new alerts and intel triggers on ``db`` start their bound workflows (idempotent)."""
    from bastion.intel.triggers import on_intel_match

    _RESPONDING.add(db)
    on_intel_match(_intel_hooks)


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
    if not alerts or db not in _RESPONDING:
        return
    from bastion.respond.service import fire_hooks_for

    try:
        fire_hooks_for(db, tenant_id, "alert", [_alert_payload(a) for a in alerts], actor="pipeline")
    except Exception:  # the response side must never cost an accepted alert
        log.exception("starting alert-triggered workflows failed for tenant %s", tenant_id)


def _intel_hooks(trigger: Any) -> None:
    from bastion.respond.service import fire_hooks

    for db in list(_RESPONDING):
        try:
            fire_hooks(db, trigger.tenant_id, "intel", trigger.inputs(), actor="intel")
        except Exception:  # one store's failure must not keep the trigger from the others
            log.exception("starting intel-triggered workflows failed for tenant %s", trigger.tenant_id)
