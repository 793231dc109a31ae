"""Reading times: every place Bastion turns a timestamp into epoch milliseconds goes through here.

* :func:`to_epoch_ms` is the lenient reader for ingested data: epoch seconds, milliseconds, microseconds
  or nanoseconds (told apart by magnitude), ISO-8601 / RFC 3339 (``Z`` or offsets, fractions longer than
  microseconds as .NET writes them; a time without an offset is UTC), or a fixed unit or ``strptime``
  pattern. Unreadable input gives None: a normalizer keeps the event and leaves the time to its caller.
* :func:`parse_time` is the strict reader for documents people send (alerts): the same forms, but
  unreadable or negative input raises ValueError naming the value, and a time outside the years 1 to
  9999 raises :class:`TimeOutOfRange` (it could not be shown as a date, nor stored as a 64-bit integer).
* :func:`parse_time_ms` is for times people type (CLI, query parameters): also ``-15m`` style relative
  times, within the same years.
"""

from __future__ import annotations

import math
import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any

__all__ = [
    "MAX_MS",
    "MIN_MS",
    "TimeOutOfRange",
    "check_time_range",
    "parse_time",
    "parse_time_ms",
    "to_epoch_ms",
]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
#: The first and last epoch millisecond a date can show (0001-01-01 to 9999-12-31 UTC).
MIN_MS = (datetime(1, 1, 1, tzinfo=UTC) - _EPOCH) // _MS
MAX_MS = (datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC) - _EPOCH) // _MS
# A fraction longer than microseconds (.NET's 7 digits, RFC 3339 nanoseconds) that fromisoformat refuses.
_LONG_FRACTION = re.compile(r"(\.\d{6})\d+")
_EPOCH_UNITS = {"s": (1000, 1), "ms": (1, 1), "us": (1, 1000), "ns": (1, 1_000_000)}


def _epoch_number_ms(value: float) -> int:
    """Epoch number of unknown unit -> ms. Below 1e11 it is seconds (1e11 s is the year 5138, 1e11 ms
    is 1973), below 1e14 milliseconds, below 1e17 microseconds, else nanoseconds."""
    mag = abs(value)
    if mag < 1e11:
        return round(value * 1000)
    if mag < 1e14:
        return int(value)
    if mag < 1e17:
        return int(value // 1000)
    return int(value // 1_000_000)


def _iso_ms(text: str) -> int | None:
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        fixed = _LONG_FRACTION.sub(r"\1", text.strip())
        if fixed.endswith(("z", "Z")):
            fixed = fixed[:-1] + "+00:00"
        try:
            dt = datetime.fromisoformat(fixed)
        except ValueError:
            return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return (dt - _EPOCH) // _MS


def to_epoch_ms(value: Any, time_format: str | None = None) -> int | None:
    """Read a timestamp as epoch milliseconds, or None when it is missing or unreadable.

    ``time_format`` None guesses (numbers by magnitude, strings as numbers or ISO-8601); ``"s"``, ``"ms"``,
    ``"us"``, ``"ns"`` fix the epoch unit; ``"iso"`` forces ISO-8601; anything with ``%`` is a
    :meth:`datetime.strptime` pattern (UTC unless it has ``%z``).
    """
    if value is None or isinstance(value, bool):
        return None
    if time_format is None:
        if isinstance(value, int | float):
            return _epoch_number_ms(value)
        if isinstance(value, str):
            text = value.strip()
            if not text:
                return None
            if text[0].isdigit() and text.replace(".", "", 1).isdigit():
                return _epoch_number_ms(float(text) if "." in text else int(text))
            return _iso_ms(text)
        if isinstance(value, datetime):
            dt = value if value.tzinfo else value.replace(tzinfo=UTC)
            return (dt - _EPOCH) // _MS
        return None
    unit = _EPOCH_UNITS.get(time_format)
    if unit is not None:
        try:
            number = float(value) if isinstance(value, str) and "." in value else int(value)
        except (TypeError, ValueError):
            return None
        mul, div = unit
        return int(number * mul) // div
    if not isinstance(value, str):
        return None
    if time_format == "iso":
        return _iso_ms(value)
    try:
        dt = datetime.strptime(value, time_format)
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return (dt - _EPOCH) // _MS


class TimeOutOfRange(ValueError):
    """A readable time outside the years 1 to 9999: no date shows it and no 64-bit column holds it."""


def check_time_range(value: object, ms: int) -> int:
    """``ms`` when it is a time between the years 1 and 9999, else TimeOutOfRange naming ``value``."""
    if not MIN_MS <= ms <= MAX_MS:
        raise TimeOutOfRange(f"{value!r} is out of range: a time must fall between the years 1 and 9999")
    return ms


def parse_time(value: object) -> int:
    """Epoch milliseconds from an ISO-8601 string (naive means UTC) or a non-negative epoch number or
    numeric string (seconds, milliseconds, microseconds or nanoseconds by magnitude), in the years 1 to
    9999. Raise ValueError for anything else."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"{value!r} is not a time")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{value!r} is not a time")
    if isinstance(value, int | float) and value < 0:
        raise ValueError(f"{value!r} is out of range for an epoch time")
    ms = to_epoch_ms(value)
    if ms is None:
        raise ValueError(f"{value!r} is not an ISO-8601 time (like 2026-03-10T09:12:00Z) or an epoch number")
    return check_time_range(value, ms)


_RELATIVE = re.compile(r"^-(\d+)([smhdw])$")
_UNIT_MS = {"s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}


def parse_time_ms(value: str | int | float, *, now_ms: int | None = None) -> int:
    """Epoch milliseconds from ``2026-11-30T10:00:00Z``, ``1796000000`` (s), ``1796000000000`` (ms)
    or ``-1h`` (relative to now); TimeOutOfRange outside the years 1 to 9999."""
    if isinstance(value, str):
        m = _RELATIVE.match(value.strip())
        if m:
            now = now_ms if now_ms is not None else int(time.time() * 1000)
            return check_time_range(value, now - int(m.group(1)) * _UNIT_MS[m.group(2)])
    try:
        return parse_time(value)
    except TimeOutOfRange:
        raise
    except ValueError:
        raise ValueError(
            f"not a time: {value!r}; use ISO-8601 (2026-11-30T10:00:00Z), epoch seconds or ms, "
            "or -15m/-2h/-7d"
        ) from None
