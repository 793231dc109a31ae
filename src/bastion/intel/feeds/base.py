"""What every feed parser returns, and the shared step that turns a raw (type, value) into an indicator.

A parser never raises on one bad record: it skips it and adds a line to ``rejected`` saying which record
and why, so the rest of the feed still loads.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec

from bastion.intel.normalize import InvalidIndicator, normalize
from bastion.model.intel import Indicator, IndicatorType, Tlp

__all__ = ["FeedError", "ParseResult", "make_indicator", "parse_time"]


class FeedError(ValueError):
    """The feed as a whole is unusable (not JSON, wrong format); the message says what was wrong."""


class ParseResult(msgspec.Struct):
    indicators: list[Indicator] = msgspec.field(default_factory=list)
    rejected: list[str] = msgspec.field(default_factory=list)
    warnings: list[str] = msgspec.field(default_factory=list)


def parse_time(value: Any) -> int | None:
    """Epoch ms from an ISO 8601 string, a date, or epoch seconds/ms; None when absent or unreadable."""
    if value is None or value == "":
        return None
    if isinstance(value, int | float):
        v = float(value)
        return int(v if v > 1e11 else v * 1000)
    s = str(value).strip()
    if s.isdigit():
        return parse_time(int(s))
    try:
        t = dt.datetime.fromisoformat(s.replace("Z", "+00:00"))
    except ValueError:
        return None
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.UTC)
    return int(t.timestamp() * 1000)


def _tlp(value: Any) -> Tlp:
    s = str(value or "").lower().removeprefix("tlp:").strip()
    if s == "white":
        s = "clear"
    try:
        return Tlp(s)
    except ValueError:
        return Tlp.AMBER


def make_indicator(
    kind: IndicatorType,
    value: str,
    source: str,
    **fields: Any,
) -> Indicator:
    """A normalized indicator; raises :class:`InvalidIndicator` for a value that is not of its type."""
    pattern = bool(fields.pop("pattern", False))
    if pattern:
        real, canon = kind, value
    else:
        real, canon = normalize(kind, value)
    if "tlp" in fields and not isinstance(fields["tlp"], Tlp):
        fields["tlp"] = _tlp(fields["tlp"])
    conf = fields.get("confidence")
    if conf is None:
        fields.pop("confidence", None)
    else:
        fields["confidence"] = max(0, min(100, int(conf)))
    for key in ("tags", "techniques", "actors", "malware"):
        if key in fields:
            fields[key] = sorted({str(x) for x in fields[key] if x})
    clean = {k: v for k, v in fields.items() if v is not None}
    return Indicator(type=real, value=canon, source=source, pattern=pattern, **clean)


__all__ += ["InvalidIndicator"]
