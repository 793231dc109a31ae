"""Correlation rules on the stream, with group-by, timespan and bounded state."""

from __future__ import annotations

from bastion.detect.correlation import CorrelationEngine, event_time_ms
from bastion.detect.engine import Detector
from bastion.detect.events import flatten
from bastion.detect.rules import parse_rule_text

BASE = """
title: failed logon
name: failed_logon
logsource: {product: bastiontest}
detection:
  sel: {action: fail}
  condition: sel
---
title: success logon
name: ok_logon
logsource: {product: bastiontest}
detection:
  sel: {action: ok}
  condition: sel
---
"""


def _run(
    corr: str, events: list[dict[str, object]], max_groups: int = 100
) -> list[tuple[int, dict[str, object]]]:
    det = Detector(parse_rule_text(BASE + corr))
    assert not det.unsupported
    eng = CorrelationEngine(det, max_groups=max_groups)
    assert not eng.problems, eng.problems
    out = []
    for i, doc in enumerate(events):
        ev = flatten(doc)
        for hit in eng.feed(ev, [m.rule.index for m in det.match_flat(ev)]):
            out.append((i, hit.group))
    return out


T0 = 1_700_000_000_000  # epoch ms


def ev(action: str, t: int, **kw: object) -> dict[str, object]:
    """An event ``t`` milliseconds after T0."""
    return {"action": action, "time": T0 + t, **kw}


def test_event_count_group_by_and_timespan() -> None:
    corr = """
title: brute force
correlation:
  type: event_count
  rules: [failed_logon]
  group-by: [ip]
  timespan: 10s
  condition: {gte: 3}
"""
    events = [
        ev("fail", 1_000, ip="a"),
        ev("fail", 2_000, ip="b"),
        ev("fail", 3_000, ip="a"),
        ev("fail", 20_000, ip="a"),  # the first two of "a" are now outside 10s
        ev("fail", 21_000, ip="a"),
        ev("fail", 22_000, ip="a"),  # third within 10s -> fires
        ev("ok", 22_500, ip="a"),
    ]
    assert _run(corr, events) == [(5, {"ip": "a"})]


def test_value_count() -> None:
    corr = """
title: spray
correlation:
  type: value_count
  rules: [failed_logon]
  group-by: [ip]
  timespan: 1m
  condition: {gte: 3, field: user}
"""
    events = [ev("fail", 1000, ip="x", user=u) for u in ("a", "a", "b", "b", "c")]
    assert _run(corr, events) == [(4, {"ip": "x"})]


def test_temporal_any_order() -> None:
    corr = """
title: fail and success
correlation:
  type: temporal
  rules: [ok_logon, failed_logon]
  group-by: [user]
  timespan: 5s
"""
    events = [ev("ok", 1000, user="u"), ev("fail", 2000, user="v"), ev("fail", 3000, user="u")]
    assert _run(corr, events) == [(2, {"user": "u"})]


def test_temporal_ordered_needs_order() -> None:
    corr = """
title: fail then success
correlation:
  type: temporal_ordered
  rules: [failed_logon, ok_logon]
  group-by: [user]
  timespan: 5s
"""
    assert _run(corr, [ev("ok", 1000, user="u"), ev("fail", 2000, user="u")]) == []
    assert _run(corr, [ev("fail", 1000, user="u"), ev("ok", 2000, user="u")]) == [(1, {"user": "u"})]
    assert _run(corr, [ev("fail", 1000, user="u"), ev("ok", 9000, user="u")]) == []


def test_state_is_bounded() -> None:
    corr = """
title: brute force
correlation:
  type: event_count
  rules: [failed_logon]
  group-by: [ip]
  timespan: 1h
  condition: {gte: 2}
"""
    det = Detector(parse_rule_text(BASE + corr))
    eng = CorrelationEngine(det, max_groups=5)
    for i in range(100):
        e = flatten(ev("fail", 1000 + i, ip=f"10.0.0.{i}"))
        eng.feed(e, [m.rule.index for m in det.match_flat(e)])
    assert len(eng._corrs[0].groups) == 5
    # the evicted first group starts afresh: one more event does not fire
    e = flatten(ev("fail", 2000, ip="10.0.0.0"))
    assert eng.feed(e, [m.rule.index for m in det.match_flat(e)]) == []


def test_unknown_reference_is_reported() -> None:
    corr = """
title: broken
correlation:
  type: event_count
  rules: [no_such_rule]
  timespan: 1m
  condition: {gte: 2}
"""
    eng = CorrelationEngine(Detector(parse_rule_text(BASE + corr)))
    assert eng.problems and "no_such_rule" in eng.problems[0].reason


def test_event_time_from_windows_and_epoch() -> None:
    assert event_time_ms(flatten({"time": 1_700_000_000})) == 1_700_000_000_000
    win = {
        "Event": {
            "System": {
                "Channel": "Security",
                "EventID": 1,
                "TimeCreated": {"#attributes": {"SystemTime": "2020-01-01T00:00:01.5Z"}},
            }
        }
    }
    assert event_time_ms(flatten(win)) == 1_577_836_801_500
