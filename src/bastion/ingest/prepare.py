"""From raw records to the rows the store takes: normalize, check what the store can hold, fingerprint,
extract observables, encode. Outside any transaction, with no side effect.

Compiled with mypyc (``bastion/native.py``): per event this is glue between compiled parts (the
normalizer, the extraction, the fingerprint); compiled, it runs ~4.7k fewer instructions an event than as
bytecode (of ~253k for the whole ingest path). Detection is not imported here (ingest comes before
detect in the flow): the pipeline passes it in as ``raise_alerts``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Final

import msgspec
import orjson

from bastion.ingest.fingerprint import canonical_bytes, fingerprint
from bastion.ingest.normalize import normalize
from bastion.ingest.observables import extract_observables
from bastion.ingest.records import RawRecord, RecordError
from bastion.model import OBSERVABLE_TYPE_NAMES, Alert, Event
from bastion.model.timefmt import MAX_MS, MIN_MS
from bastion.store._util import INT64_MAX, INT64_MIN
from bastion.store.events import EventRow

__all__ = ["RaiseAlerts", "check_storable", "prepare_rows"]

#: The alerts detection raises on one event: ``(event, event id, ingest time) -> alerts``.
RaiseAlerts = Callable[[Event, str, int], list[Alert]]

_encode_event = msgspec.json.Encoder().encode
# 2**62, as a literal: compiled, a comparison with it stays on machine integers (the 64-bit bounds do not
# fit mypyc's tagged integers, and comparing with them costs a call each), so the usual small number pays
# two compares.
_SMALL: Final = 4_611_686_018_427_387_904


def prepare_rows(
    records: Iterable[RawRecord | RecordError],
    fmt: str | None,
    ingest_time: int,
    raise_alerts: RaiseAlerts | None,
) -> tuple[list[EventRow], list[dict[str, Any]]]:
    """One row per good record, one error (``line``, ``reason``) per record that was refused or could
    not be read. ``fmt`` forces a normalizer, else the reader's hint, else detection picks one."""
    rows: list[EventRow] = []
    errors: list[dict[str, Any]] = []
    for rec in records:
        if isinstance(rec, RecordError):
            errors.append({"line": rec.line, "reason": rec.reason})
            continue
        try:
            event = normalize(rec.data, fmt or rec.format)
            # Storing can refuse a record too: a time or number out of range, or an unpaired surrogate
            # escape that Python's JSON parser (JSON arrays, the API's bodies) lets through.
            row = _row(rec.data, event, ingest_time, raise_alerts)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            errors.append({"line": rec.line, "reason": str(exc) or type(exc).__name__})
            continue
        rows.append(row)
    return rows, errors


def check_storable(event: Event) -> None:
    """Refuse what the store could not hold or a reader could not show: a time that is no date in the
    years 1-9999, an integer past 64 bits."""
    if event.time and not MIN_MS <= event.time <= MAX_MS:
        raise ValueError(f"time {event.time} is not a date in years 1-9999 (epoch milliseconds)")
    class_uid = int(event.class_uid)
    if not -_SMALL <= class_uid < _SMALL and not INT64_MIN <= class_uid <= INT64_MAX:
        raise ValueError(f"class_uid {class_uid} does not fit a signed 64-bit integer")
    severity_id = int(event.severity_id)
    if not -_SMALL <= severity_id < _SMALL and not INT64_MIN <= severity_id <= INT64_MAX:
        raise ValueError(f"severity_id {severity_id} does not fit a signed 64-bit integer")


def _row(data: Any, event: Event, ingest_time: int, raise_alerts: RaiseAlerts | None) -> EventRow:
    check_storable(event)
    canonical = canonical_bytes(data)
    raw = canonical if isinstance(data, (dict, list)) else orjson.dumps(data)
    event_id = fingerprint(canonical).hex()
    observables = extract_observables(event)
    event.observables = observables
    if not event.time:
        event.time = ingest_time
    alerts: list[Alert] = [] if raise_alerts is None else raise_alerts(event, event_id, ingest_time)
    event.raw = None  # stored once, in its own column
    names = OBSERVABLE_TYPE_NAMES
    return EventRow(
        id=event_id,
        time=event.time,
        class_uid=int(event.class_uid),
        severity_id=int(event.severity_id),
        format=event.format or "unknown",
        normalized=_encode_event(event),
        raw=raw,
        observables=[(names[o.type], o.value) for o in observables],
        alerts=alerts,
    )
