"""The reference: the same rules converted by ``pysigma-backend-sqlite`` and run as SQL in SQLite.

Used three ways: the agreement test (our matcher must find the same (rule, event) pairs), the
benchmark baseline, and retro-hunts over stored events. Events are flattened exactly as the matcher
flattens them (one column per field, values stored untyped with ``COLLATE NOCASE``, a ``_fulltext``
column for keyword searches, a ``REGEXP`` function), and each rule is restricted to its log source with
the same Channel/EventID mapping the matcher uses (an indexed WHERE clause, which is what the pySigma
Windows log-source pipelines add), so the comparison is about detection logic alone.
"""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from sigma.backends.sqlite import sqliteBackend
from sigma.collection import SigmaCollection
from sigma.exceptions import SigmaError
from sigma.processing.pipeline import ProcessingItem, ProcessingPipeline
from sigma.processing.transformations import FieldMappingTransformation

from bastion.detect.engine import Detector
from bastion.detect.events import FlatEvent, to_text

__all__ = ["SqliteReference"]

_TABLE = "logs"
_FULLTEXT = "_fulltext"


@lru_cache(maxsize=4096)
def _rx(pattern: str) -> re.Pattern[str] | None:
    try:
        return re.compile(pattern)
    except re.error:
        return None


def _regexp(pattern: str, value: Any) -> bool:
    if value is None:
        return False
    rx = _rx(pattern)
    return rx is not None and rx.search(value if type(value) is str else to_text(value)) is not None


@dataclass
class _Query:
    rule: int
    key: Any
    conditions: tuple[tuple[str, str], ...]
    sql: str


@dataclass
class SqliteReference:
    """Rules of a ``Detector`` as SQLite queries. ``problems`` maps a rule index to why it did not convert."""

    detector: Detector
    queries: list[_Query] = field(default_factory=list)
    problems: dict[int, str] = field(default_factory=dict)
    convert_seconds: float = 0.0

    def __post_init__(self) -> None:
        t0 = time.perf_counter()
        plain = sqliteBackend(fulltext_field=_FULLTEXT, collate_nocase=True)
        for rule in self.detector.rules:
            by_map: dict[tuple[tuple[str, str], ...], list[str]] = {}
            for key, conds, fmap in rule.targets:
                fkey = tuple(sorted(fmap.items()))
                try:
                    if fkey not in by_map:
                        backend = (
                            plain
                            if not fmap
                            else sqliteBackend(_pipeline(fmap), fulltext_field=_FULLTEXT, collate_nocase=True)
                        )
                        by_map[fkey] = backend.convert(SigmaCollection([rule.rule]))
                except SigmaError as exc:
                    self.problems[rule.index] = f"{type(exc).__name__}: {exc}"
                    break
                for sql in by_map[fkey]:
                    self.queries.append(_Query(rule.index, key, conds, sql))
        self.convert_seconds = time.perf_counter() - t0

    def connect(self, events: Iterable[FlatEvent]) -> tuple[sqlite3.Connection, list[FlatEvent]]:
        """An in-memory database holding the events (row id = 1 + position)."""
        evs = list(events)
        cols: dict[str, str] = {}
        for ev in evs:
            for name in ev.fields:
                cols.setdefault(name.lower(), name)
        names = list(cols.values())
        conn = sqlite3.connect(":memory:")
        conn.create_function("REGEXP", 2, _regexp, deterministic=True)
        coldefs = ", ".join(f'"{n}" COLLATE NOCASE' for n in names)
        conn.execute(
            f"CREATE TABLE {_TABLE} (_row INTEGER PRIMARY KEY, _ch TEXT, _eid INTEGER, "
            f'"{_FULLTEXT}" COLLATE NOCASE, {coldefs})'
        )
        placeholders = ", ".join("?" for _ in range(len(names) + 4))
        rows = []
        for i, ev in enumerate(evs):
            lowered = {k.lower(): v for k, v in ev.fields.items()}
            vals = [_cell(lowered.get(n.lower())) for n in names]
            ch, eid = ev.windows if ev.windows is not None else (None, None)
            rows.append([i + 1, ch, eid, ev.all_text()[0].replace("\x00", "\n"), *vals])
        conn.executemany(f"INSERT INTO {_TABLE} VALUES ({placeholders})", rows)
        conn.execute(f"CREATE INDEX ix_src ON {_TABLE} (_ch, _eid)")
        conn.commit()
        return conn, evs

    def run(self, conn: sqlite3.Connection, evs: list[FlatEvent]) -> set[tuple[int, int]]:
        """Every (rule index, event index) pair the SQL finds."""
        out: set[tuple[int, int]] = set()
        known = {k for ev in evs for k in self.detector.source_keys(ev)}
        for q in self.queries:
            if q.key not in known:
                continue
            where, params = _source_where(q.key)
            prefix = f"SELECT * FROM {_TABLE} WHERE "
            if not q.sql.startswith(prefix):
                raise ValueError(f"unexpected query form from the SQLite backend: {q.sql[:80]}")
            sql = f"SELECT _row FROM {_TABLE} WHERE {where} AND ({q.sql[len(prefix) :]})"
            for (row,) in _execute(conn, sql, params):
                ev = evs[row - 1]
                if all(ev.low(f) == v.lower() for f, v in q.conditions):
                    out.add((q.rule, row - 1))
        return out


def _execute(conn: sqlite3.Connection, sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
    """Run a query, adding (empty) columns for fields no event had, as a schema-on-read store would."""
    for _ in range(64):
        try:
            return conn.execute(sql, params).fetchall()
        except sqlite3.OperationalError as exc:
            m = re.match(r"no such column: (.+)$", str(exc))
            if m is None:
                raise
            conn.execute(f'ALTER TABLE {_TABLE} ADD COLUMN "{m.group(1)}" COLLATE NOCASE')
    raise sqlite3.OperationalError(f"too many missing columns in {sql[:200]}")


def _cell(v: Any) -> Any:
    if type(v) is int:
        return v if -(2**63) <= v < 2**63 else str(v)
    if v is None or type(v) in (str, float):
        return v
    if type(v) is bool:
        return "true" if v else "false"
    if type(v) is list:
        return "\n".join(to_text(x) for x in v if x is not None)
    return to_text(v)


def _pipeline(fmap: Mapping[str, str]) -> ProcessingPipeline:
    mapping: dict[str | None, str | list[str]] = {k: v for k, v in fmap.items()}
    return ProcessingPipeline(items=[ProcessingItem(FieldMappingTransformation(mapping))])


def _source_where(key: Any) -> tuple[str, list[Any]]:
    if isinstance(key, tuple):
        ch, eid = key
        if ch is None:
            return "_ch IS NOT NULL", []
        if eid is None:
            return "_ch = ?", [ch]
        return "(_ch = ? AND _eid = ?)", [ch, eid]
    return "_ch IS NULL", []
