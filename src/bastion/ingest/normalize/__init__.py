"""Normalizers: one per source shape, each turning a raw record into an OCSF-aligned :class:`Event`.

A normalizer is a function registered under a string id with :func:`register`. Each module in this
package registers its own. :func:`normalize` picks one by id, or detects it from the record's shape.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bastion.model import Event

__all__ = ["NORMALIZERS", "NormalizeError", "detect_format", "normalize", "register"]

Normalizer = Callable[[Any], Event]


class NormalizeError(ValueError):
    """A record that no normalizer can make sense of; the message says what was wrong."""


class _Entry:
    __slots__ = ("detect", "func", "name", "priority")

    def __init__(self, name: str, func: Normalizer, detect: Callable[[Any], bool] | None, priority: int):
        self.name = name
        self.func = func
        self.detect = detect
        self.priority = priority


NORMALIZERS: dict[str, _Entry] = {}
_DETECT_ORDER: list[_Entry] = []


def register(
    name: str, *, detect: Callable[[Any], bool] | None = None, priority: int = 100
) -> Callable[[Normalizer], Normalizer]:
    """Register a normalizer under ``name``. ``detect`` says whether a record looks like this format;
    detectors run in ascending ``priority`` (the generic fallback has the highest)."""

    def deco(func: Normalizer) -> Normalizer:
        entry = _Entry(name, func, detect, priority)
        NORMALIZERS[name] = entry
        if detect is not None:
            _DETECT_ORDER.append(entry)
            _DETECT_ORDER.sort(key=lambda e: e.priority)
        return func

    return deco


def detect_format(record: Any) -> str:
    """Name the normalizer that fits ``record``, or raise :class:`NormalizeError`."""
    for entry in _DETECT_ORDER:
        if entry.detect is not None and entry.detect(record):
            return entry.name
    raise NormalizeError(f"unrecognized record of type {type(record).__name__}")


def normalize(record: Any, fmt: str | None = None) -> Event:
    """Normalize one record with the named normalizer, or the detected one when ``fmt`` is None."""
    name = fmt or detect_format(record)
    entry = NORMALIZERS.get(name)
    if entry is None:
        raise NormalizeError(f"unknown format {name!r}; known: {', '.join(sorted(NORMALIZERS))}")
    return entry.func(record)


# Each module registers itself on import.
from bastion.ingest.normalize import cef, ecs, generic, ocsf, syslog, windows  # noqa: E402, F401
