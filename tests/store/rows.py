"""Prepared event rows for the store tests."""

from __future__ import annotations

from typing import NamedTuple

import orjson
from sqlalchemy import Connection, select

from bastion.store.events import EventRow
from bastion.store.tables import event_postings


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


class IndexEntry(NamedTuple):
    """One (value, event) pair of the observable index, as its posting lists hold it."""

    tenant_num: int
    bucket: int
    vhash: int
    event_pk: int


def index_entries(conn: Connection) -> list[IndexEntry]:
    """Every (value, event) pair the posting lists hold (a JSON array on SQLite, an array on PostgreSQL)."""
    entries = []
    for row in conn.execute(select(event_postings)):
        pks = orjson.loads(row.pks) if isinstance(row.pks, str) else row.pks
        assert pks == sorted(set(pks)) and row.first_pk <= pks[0], row
        entries += [IndexEntry(row.tenant_num, row.bucket, row.vhash, pk) for pk in pks]
    return entries
