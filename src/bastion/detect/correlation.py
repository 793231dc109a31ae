"""Sigma correlation rules on the stream: ``event_count``, ``value_count``, ``temporal`` and
``temporal_ordered``, grouped by ``group-by`` fields (with field aliases) inside a sliding ``timespan``.

State is bounded twice: entries older than the timespan are dropped as time advances, and each
correlation keeps at most ``max_groups`` groups (least recently seen evicted first). A correlation fires
once when its condition becomes true for a group and then starts that group afresh, so a burst raises
one alert, not one per further event. Conditions that can only be decided when a window closes
(``lt``, ``lte``) and correlations of correlations are reported as unsupported.

The ingest pipeline keeps one engine per tenant (``detect.tenant.DETECTORS``), fed from every ingest
thread, so :meth:`CorrelationEngine.feed` takes a lock. Sigma's ``generate`` is honoured: the rules a
correlation refers to raise no alerts of their own unless one of its correlations says ``generate: true``
(:attr:`CorrelationEngine.silenced`).
"""

from __future__ import annotations

import threading
from collections import OrderedDict, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sigma.correlations import SigmaCorrelationCondition, SigmaCorrelationRule, SigmaCorrelationType
from sigma.correlations import SigmaCorrelationConditionOperator as Op

from bastion.detect.engine import Detector
from bastion.detect.events import FlatEvent
from bastion.detect.rules import RuleProblem

__all__ = ["CorrelationEngine", "CorrelationHit", "event_time_ms"]

_TIME_FIELDS = ("TimeCreated_SystemTime", "@timestamp", "timestamp", "time", "eventTime", "EventTime")


def event_time_ms(ev: FlatEvent) -> int | None:
    """The event's own time in epoch milliseconds, from the usual time fields; None when absent."""
    for name in _TIME_FIELDS:
        v = ev.fields.get(name)
        if v is None:
            continue
        if isinstance(v, int | float) and not isinstance(v, bool):
            return int(v if v > 10**11 else v * 1000)
        try:
            return int(datetime.fromisoformat(str(v).replace("Z", "+00:00")).timestamp() * 1000)
        except ValueError:
            continue
    return None


@dataclass(frozen=True)
class CorrelationHit:
    """A correlation that fired: the group it fired for and the events' time span."""

    rule_id: str
    title: str
    level: str | None
    group: dict[str, Any]
    first_ms: int
    last_ms: int
    count: int
    kind: str = ""  # event_count, value_count, temporal, temporal_ordered
    tags: tuple[str, ...] = ()
    description: str | None = None


@dataclass
class _Corr:
    rule: SigmaCorrelationRule
    rule_id: str
    kind: SigmaCorrelationType
    refs: list[set[int]]  # per referenced rule (in order): the compiled rule indexes it names
    group_by: list[str]
    aliases: dict[str, dict[int, str]]  # alias -> rule index -> that rule's field
    span_ms: int
    op: Op
    count: int
    fieldref: str | None
    groups: OrderedDict[tuple[Any, ...], Any] = field(default_factory=OrderedDict)


def _holds(op: Op, n: int, want: int) -> bool:
    if op == Op.GTE:
        return n >= want
    if op == Op.GT:
        return n > want
    return n == want


class CorrelationEngine:
    """Evaluates a detector's correlation rules as matches arrive."""

    def __init__(self, detector: Detector, *, max_groups: int = 10_000) -> None:
        self.detector = detector
        self.max_groups = max_groups
        self.problems: list[RuleProblem] = []
        self._corrs: list[_Corr] = []
        self._lock = threading.Lock()
        by_ref: dict[str, set[int]] = {}
        for r in detector.rules:
            for key in (r.rule_id, r.rule.name):
                if key:
                    by_ref.setdefault(str(key), set()).add(r.index)
        for rule, source in detector.correlations:
            rid = str(rule.id) if rule.id else (rule.title or "")
            try:
                self._corrs.append(self._prepare(rule, rid, by_ref))
            except ValueError as exc:
                self.problems.append(RuleProblem(source, str(exc), rid, rule.title))
        generating = {i for c in self._corrs if c.rule.generate for ref in c.refs for i in ref}
        referenced = {i for c in self._corrs for ref in c.refs for i in ref}
        # rules that only feed correlations: their matches count, but raise no alert of their own
        self.silenced: frozenset[int] = frozenset(referenced - generating)

    def _prepare(self, rule: SigmaCorrelationRule, rid: str, by_ref: dict[str, set[int]]) -> _Corr:
        refs = []
        for ref in rule.rules or []:
            name = str(ref.reference)
            if name not in by_ref:
                raise ValueError(f"correlation refers to {name!r}, which is not a loaded (supported) rule")
            refs.append(by_ref[name])
        cond = rule.condition
        if cond is not None and not isinstance(cond, SigmaCorrelationCondition):
            raise ValueError("extended (boolean) correlation conditions are not supported")
        if cond is not None and cond.fieldref is not None and not isinstance(cond.fieldref, str):
            raise ValueError("value_count over several fields is not supported")
        op = cond.op if cond is not None else Op.GTE
        if rule.type in (SigmaCorrelationType.EVENT_COUNT, SigmaCorrelationType.VALUE_COUNT) and op not in (
            Op.GTE,
            Op.GT,
            Op.EQ,
        ):
            raise ValueError(
                f"condition {op.name.lower()} is decided only when a window closes: not supported"
            )
        if rule.type not in (
            SigmaCorrelationType.EVENT_COUNT,
            SigmaCorrelationType.VALUE_COUNT,
            SigmaCorrelationType.TEMPORAL,
            SigmaCorrelationType.TEMPORAL_ORDERED,
        ):
            raise ValueError(f"correlation type {rule.type} is not supported")
        if rule.timespan is None:
            raise ValueError("correlation has no timespan")
        aliases: dict[str, dict[int, str]] = {}
        for alias, spec in (rule.aliases.aliases if rule.aliases else {}).items():
            per: dict[int, str] = {}
            for ref, fname in spec.mapping.items():
                for idx in by_ref.get(str(ref.reference), ()):
                    per[idx] = fname
            aliases[alias] = per
        return _Corr(
            rule=rule,
            rule_id=rid,
            kind=rule.type,
            refs=refs,
            group_by=list(rule.group_by or []),
            aliases=aliases,
            span_ms=int(rule.timespan.seconds * 1000),
            op=op,
            count=int(cond.count) if cond is not None and cond.count is not None else 1,
            fieldref=cond.fieldref if cond is not None and isinstance(cond.fieldref, str) else None,
        )

    def _group(self, c: _Corr, rule_index: int, ev: FlatEvent) -> tuple[Any, ...] | None:
        key = []
        for name in c.group_by:
            fname = c.aliases.get(name, {}).get(rule_index, name)
            v = ev.low(fname)
            if v is None:
                return None
            key.append(v)
        return tuple(key)

    def _state(self, c: _Corr, key: tuple[Any, ...], factory: Any) -> Any:
        st = c.groups.get(key)
        if st is None:
            st = c.groups[key] = factory()
            while len(c.groups) > self.max_groups:
                c.groups.popitem(last=False)
        else:
            c.groups.move_to_end(key)
        return st

    def feed(self, ev: FlatEvent, matched: Iterable[int], time_ms: int | None = None) -> list[CorrelationHit]:
        """Record one event's matches (compiled rule indexes); return the correlations that fire."""
        matched = list(matched)
        if not matched or not self._corrs:
            return []
        t = time_ms if time_ms is not None else event_time_ms(ev)
        if t is None:
            return []
        with self._lock:
            return self._feed(ev, matched, t)

    def _feed(self, ev: FlatEvent, matched: list[int], t: int) -> list[CorrelationHit]:
        hits: list[CorrelationHit] = []
        for c in self._corrs:
            steps = [i for i, ref in enumerate(c.refs) if any(m in ref for m in matched)]
            if not steps:
                continue
            ridx = next(m for m in matched if any(m in ref for ref in c.refs))
            key = self._group(c, ridx, ev)
            if key is None:
                continue
            hit = self._update(c, key, steps, ev, t)
            if hit is not None:
                hits.append(hit)
        return hits

    def _update(
        self, c: _Corr, key: tuple[Any, ...], steps: list[int], ev: FlatEvent, t: int
    ) -> CorrelationHit | None:
        lo = t - c.span_ms
        if c.kind in (SigmaCorrelationType.EVENT_COUNT, SigmaCorrelationType.VALUE_COUNT):
            dq: deque[tuple[int, Any]] = self._state(c, key, deque)
            value = None
            if c.kind == SigmaCorrelationType.VALUE_COUNT:
                value = ev.low(c.fieldref) if c.fieldref else None
                if value is None:
                    return None
            dq.append((t, value))
            while dq and dq[0][0] < lo:
                dq.popleft()
            n = len(dq) if c.kind == SigmaCorrelationType.EVENT_COUNT else len({v for _, v in dq})
            if _holds(c.op, n, c.count):
                first = dq[0][0]
                dq.clear()
                return self._hit(c, key, first, t, n)
            return None
        seen: list[deque[int]] = self._state(c, key, lambda: [deque() for _ in c.refs])
        for s in steps:
            seen[s].append(t)
        for dq2 in seen:
            while dq2 and dq2[0] < lo:
                dq2.popleft()
        if c.kind == SigmaCorrelationType.TEMPORAL:
            if all(seen):
                first = min(d[0] for d in seen)
                for d in seen:
                    d.clear()
                return self._hit(c, key, first, t, len(seen))
            return None
        # temporal_ordered: the last step just happened; find earlier steps in order, latest first.
        if len(c.refs) - 1 not in steps:
            return None
        bound = t
        for dq3 in reversed(seen[:-1]):
            earlier = [x for x in dq3 if x <= bound]
            if not earlier:
                return None
            bound = max(earlier)
        for d in seen:
            d.clear()
        return self._hit(c, key, bound, t, len(seen))

    def _hit(self, c: _Corr, key: tuple[Any, ...], first: int, last: int, n: int) -> CorrelationHit:
        level = c.rule.level.name.lower() if c.rule.level is not None else None
        return CorrelationHit(
            rule_id=c.rule_id,
            title=c.rule.title or c.rule_id,
            level=level,
            group=dict(zip(c.group_by, key, strict=True)),
            first_ms=first,
            last_ms=last,
            count=n,
            kind=c.kind.name.lower(),
            tags=tuple(str(t) for t in c.rule.tags or ()),
            description=c.rule.description,
        )
