"""Prepared event rows for the store tests."""

from __future__ import annotations

import orjson

from bastion.store.events import EventRow


def event_row(i: int, observables: list[tuple[str, str]], *, time: int) -> EventRow:
    """Event ``i`` (its id and raw document derived from ``i``) with these observables."""
    normalized = {"class_uid": 1007, "observables": [{"type": t, "value": v} for t, v in observables]}
    return EventRow(
        id=f"{i:032x}",
        time=time,
        class_uid=1007,
        severity_id=1,
        format="test",
        normalized=orjson.dumps(normalized),
        raw=f'{{"n":{i},"note":"caf\u00e9"}}'.encode(),
        observables=observables,
    )
