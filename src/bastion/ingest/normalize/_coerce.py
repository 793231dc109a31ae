"""Coercing loosely typed source values into the str/int fields of an Event (shared by normalizers)."""

from __future__ import annotations

from typing import Any

__all__ = ["as_int", "as_str"]


def as_str(value: Any) -> str | None:
    """Text, or a number as text; None for empty, missing or structured values."""
    if isinstance(value, str):
        return value or None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None


def as_int(value: Any) -> int | None:
    """An int from an int or a numeric string; None otherwise (booleans are not numbers here)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
