"""Reading times people type: ISO-8601, epoch seconds or milliseconds, or "relative" like ``-15m``."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime

__all__ = ["parse_time_ms"]

_RELATIVE = re.compile(r"^-(\d+)([smhdw])$")
_UNIT_MS = {"s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}


def parse_time_ms(value: str | int | float, *, now_ms: int | None = None) -> int:
    """Epoch milliseconds from ``2026-11-30T10:00:00Z``, ``1796000000`` (s), ``1796000000000`` (ms)
    or ``-1h``."""
    if isinstance(value, bool):
        raise ValueError(f"not a time: {value!r}")
    if isinstance(value, int | float):
        return int(value * 1000) if abs(value) < 100_000_000_000 else int(value)
    text = value.strip()
    m = _RELATIVE.match(text)
    if m:
        now = now_ms if now_ms is not None else int(time.time() * 1000)
        return now - int(m.group(1)) * _UNIT_MS[m.group(2)]
    try:
        return parse_time_ms(float(text))
    except ValueError:
        pass
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"not a time: {value!r}; use ISO-8601 (2026-11-30T10:00:00Z), epoch seconds or ms, "
            "or -15m/-2h/-7d"
        ) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp() * 1000)
