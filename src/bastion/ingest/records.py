"""Record types shared by every source: what readers and listeners hand to the normalizers.

A source (a file, an HTTP body, a syslog socket) yields a stream of :class:`RawRecord` (one parsed JSON
object or one text line) and :class:`RecordError` (one item that could not be read, with its position
and the reason). Errors travel in the same stream as records so that one bad line never stops the rest
and the caller can report each one where it happened.
"""

from __future__ import annotations

from typing import Any

import msgspec

__all__ = ["RawRecord", "RecordError"]


class RawRecord(msgspec.Struct, gc=False):
    """One item read from a source, not yet normalized. Not tracked by the garbage collector: it holds
    parsed JSON or text, never a cycle, and a batch holds thousands.

    ``line`` is the 1-based position within its input: the line number for JSON lines and text, the line
    where the object starts for concatenated JSON objects, the item number for JSON arrays and EVTX
    files, a running counter for the syslog listener. ``data`` is a parsed JSON object or a text line.
    ``format`` names the normalizer when the source knows it ("windows" for EVTX, "cef", "syslog");
    ``None`` lets the normalizer registry detect it from the data.
    """

    line: int
    data: dict[str, Any] | str
    format: str | None = None


class RecordError(msgspec.Struct):
    """An item that could not be read; ``reason`` says what was wrong with it."""

    line: int
    reason: str
