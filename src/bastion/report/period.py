"""The time window a metrics query or report covers, read the same way by the API and the CLI.

A period is a length back from now (``30d``, ``12h``, ``2w``), or explicit ``start``/``end`` times
(ISO-8601 or epoch seconds/ms, as everywhere else). Mistakes raise ValueError with the reason, which the
API turns into a 400 and the CLI into one ``error:`` line.
"""

from __future__ import annotations

import re

from bastion.model.timefmt import MAX_MS, MIN_MS, parse_time_ms
from bastion.store._util import now_ms

__all__ = ["DEFAULT_PERIOD", "check_window", "parse_period", "resolve_window"]

DEFAULT_PERIOD = "30d"
_PERIOD = re.compile(r"^(\d+)\s*([smhdw])$")
_UNIT_MS = {"s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
_MAX_MS = 3660 * 86_400_000  # ten years: a longer window is a typo, not a question


def parse_period(text: str) -> int:
    """Milliseconds in ``30d`` / ``12h`` / ``90m`` / ``2w`` / ``3600s``."""
    m = _PERIOD.match(text.strip().lower())
    if not m:
        raise ValueError(f"period: {text!r} is not a duration; use e.g. 30d, 12h, 90m, 2w")
    ms = int(m.group(1)) * _UNIT_MS[m.group(2)]
    if ms <= 0:
        raise ValueError(f"period: {text!r} must be longer than zero")
    if ms > _MAX_MS:
        raise ValueError(f"period: {text!r} is longer than ten years")
    return ms


def _time(name: str, value: str | int) -> int:
    try:
        return parse_time_ms(value)
    except ValueError as exc:
        raise ValueError(f"{name}: {exc}") from None


def resolve_window(
    period: str | None = None,
    start: str | int | None = None,
    end: str | int | None = None,
    *,
    now: int | None = None,
) -> tuple[int, int]:
    """(start, end) in epoch ms, end exclusive. ``end`` defaults to now; ``start`` to end minus
    ``period`` (30 days when neither is given). Giving both ``start`` and ``period`` is ambiguous."""
    if start is not None and period is not None:
        raise ValueError("give either a period or a start time, not both")
    end_ms = _time("end", end) if end is not None else (now if now is not None else now_ms())
    start_ms = _time("start", start) if start is not None else None
    if start_ms is None:
        start_ms = end_ms - parse_period(period or DEFAULT_PERIOD)
    check_window(start_ms, end_ms)
    return start_ms, end_ms


def check_window(start: int, end: int) -> None:
    """Raise ValueError naming the bound when ``[start, end)`` is empty, longer than ten years (the
    figures are computed day by day: 0001-9999 took 12 s of one request), or not between the years 1
    and 9999 (a period back from an end near the year 1 can reach before it; no date shows that)."""
    if start >= end:
        raise ValueError("the period's start must be before its end")
    if start < MIN_MS:
        raise ValueError(
            "start: the period would begin before the year 1; give a later end or a shorter period"
        )
    if end > MAX_MS:
        raise ValueError("end: the period must end by the year 9999")
    if end - start > _MAX_MS:
        raise ValueError("the period from start to end is longer than ten years")
