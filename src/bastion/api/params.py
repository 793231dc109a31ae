"""Parsing query parameters the same way everywhere: times, page cursors and whole numbers the store
can hold, with 400s that say why."""

from __future__ import annotations

import re

from bastion.api.errors import ApiError
from bastion.model.timefmt import parse_time_ms
from bastion.store._util import INT64_MAX, INT64_MIN

__all__ = ["parse_cursor", "parse_time_param"]

_CURSOR_TIME = re.compile(r"-?[0-9]{1,19}")


def parse_time_param(name: str, value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return parse_time_ms(value)
    except ValueError as exc:
        raise ApiError(400, f"{name}: {exc}") from None


def parse_cursor(value: str | None) -> tuple[int, str] | None:
    """A cursor is ``<time>:<id>`` as returned in ``next_cursor``; its time is a stored 64-bit integer."""
    if value is None:
        return None
    t, sep, rest = value.partition(":")
    if not sep or not rest or not _CURSOR_TIME.fullmatch(t) or not INT64_MIN <= int(t) <= INT64_MAX:
        raise ApiError(400, f"cursor: {value!r} is not a cursor this API returned")
    return int(t), rest


def format_cursor(cursor: tuple[int, object] | None) -> str | None:
    return f"{cursor[0]}:{cursor[1]}" if cursor else None
