"""Parsing query parameters the same way everywhere: times and page cursors, with 400s that say why."""

from __future__ import annotations

from bastion.api.errors import ApiError
from bastion.model.timefmt import parse_time_ms

__all__ = ["parse_cursor", "parse_time_param"]


def parse_time_param(name: str, value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return parse_time_ms(value)
    except ValueError as exc:
        raise ApiError(400, f"{name}: {exc}") from None


def parse_cursor(value: str | None) -> tuple[int, str] | None:
    """A cursor is ``<time>:<id>`` as returned in ``next_cursor``."""
    if value is None:
        return None
    t, sep, rest = value.partition(":")
    if not sep or not t.lstrip("-").isdigit() or not rest:
        raise ApiError(400, f"cursor: {value!r} is not a cursor this API returned")
    return int(t), rest


def format_cursor(cursor: tuple[int, object] | None) -> str | None:
    return f"{cursor[0]}:{cursor[1]}" if cursor else None
