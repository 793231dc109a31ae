"""What every feed parser returns, and the shared step that turns a raw (type, value) into an indicator.

A parser never raises on one bad record: it skips it and adds a line to ``rejected`` saying which record
and why, so the rest of the feed still loads.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec

from bastion.intel.normalize import InvalidIndicator, normalize, shown
from bastion.model.intel import Indicator, IndicatorType, Tlp
from bastion.model.timefmt import MAX_MS, MIN_MS  # the years 1-9999, what an ISO 8601 date can say

__all__ = ["FeedError", "ParseResult", "make_indicator", "parse_time"]


class FeedError(ValueError):
    """The feed as a whole is unusable (not JSON, wrong format); the message says what was wrong."""


class ParseResult(msgspec.Struct):
    indicators: list[Indicator] = msgspec.field(default_factory=list)
    rejected: list[str] = msgspec.field(default_factory=list)
    warnings: list[str] = msgspec.field(default_factory=list)


def parse_time(value: Any, field: str = "time") -> int | None:
    """Epoch ms from an ISO 8601 string, a date, or epoch seconds/ms; None when absent or unreadable.
    A time outside the years 1-9999 raises :class:`InvalidIndicator` naming ``field``: the record is
    rejected rather than stored with a time no column can hold."""
    if value is None or value == "":
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        ms = value if value > 1e11 else value * 1000
        if not MIN_MS <= ms <= MAX_MS:  # also false for NaN
            raise InvalidIndicator(f"{field} {shown(value)} is not a time between the years 1 and 9999")
        return int(ms)
    s = str(value).strip()
    if s.isascii() and s.isdigit():
        if len(s) > 16:  # more digits than any epoch ms up to the year 9999
            raise InvalidIndicator(f"{field} {s[:40]!r} is not a time between the years 1 and 9999")
        return parse_time(int(s), field)
    try:
        t = dt.datetime.fromisoformat(s.replace("Z", "+00:00"))
    except ValueError:
        return None
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.UTC)
    ms = int(t.timestamp() * 1000)
    if not MIN_MS <= ms <= MAX_MS:  # an offset that takes the year 1 or 9999 past its end
        raise InvalidIndicator(f"{field} {s!r} is not a time between the years 1 and 9999")
    return ms


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
        try:
            fields["confidence"] = max(0, min(100, int(conf)))
        except (TypeError, ValueError, OverflowError):
            raise InvalidIndicator(f"confidence {conf!r} is not a number from 0 to 100") from None
    desc = fields.get("description")
    if desc is not None and not isinstance(desc, str):
        raise InvalidIndicator(f"description {str(desc)[:60]!r} is not text")
    for key in ("first_seen", "last_seen", "valid_until"):
        when = fields.get(key)
        if when is not None and not (isinstance(when, int) and MIN_MS <= when <= MAX_MS):
            raise InvalidIndicator(f"{key} {when!r} is not a time (epoch ms) between the years 1 and 9999")
    for key in ("tags", "techniques", "actors", "malware"):
        if key in fields:
            if not isinstance(fields[key], list | tuple | set):
                raise InvalidIndicator(f"{key} {str(fields[key])[:60]!r} is not a list")
            fields[key] = sorted({str(x) for x in fields[key] if x})
    clean = {k: v for k, v in fields.items() if v is not None}
    return Indicator(type=real, value=canon, source=source, pattern=pattern, **clean)


__all__ += ["InvalidIndicator"]
