"""Reading event files for detection: JSONL (optionally gzip), a JSON array, concatenated JSON objects
(pretty-printed, as in SigmaHQ's regression data) and Windows EVTX (through the ``evtx`` package).

Items are yielded in file order, so an item's position is the ``event_index`` of the detect contract.
JSONL lines are yielded as undecoded bytes (the worker that matches them decodes them, which lets
``--workers`` spread the parsing too); every other form yields decoded objects.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

__all__ = ["EventFileError", "decode", "read_event_items"]

_EVTX_MAGIC = b"ElfFile\x00"


class EventFileError(ValueError):
    """An event file that cannot be read; the message names the file and what is wrong."""


def decode(item: Any) -> Any:
    """An item from ``read_event_items`` as a JSON value."""
    if type(item) is bytes:
        return orjson.loads(item)
    return item


def _evtx(path: Path) -> Iterator[Any]:
    from evtx import PyEvtxParser

    try:
        parser = PyEvtxParser(str(path))
        for rec in parser.records_json():
            if rec is not None:
                yield orjson.loads(rec["data"])
    except (OSError, RuntimeError) as exc:
        raise EventFileError(f"{path}: not a readable EVTX file: {exc}") from None


def _concatenated(text: str, path: Path) -> Iterator[Any]:
    dec = json.JSONDecoder()
    pos, n = 0, len(text)
    while True:
        while pos < n and text[pos].isspace():
            pos += 1
        if pos >= n:
            return
        try:
            obj, pos = dec.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            raise EventFileError(
                f"{path}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
            ) from None
        yield obj


def read_event_items(path: str | Path) -> Iterator[Any]:
    """Yield the events of a file in order (bytes for JSONL lines, decoded objects otherwise)."""
    p = Path(path)
    if not p.is_file():
        raise EventFileError(f"no such events file: {p}")
    with p.open("rb") as fh:
        head = fh.read(8)
    if head == _EVTX_MAGIC:
        yield from _evtx(p)
        return
    if head[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(p.read_bytes())
        except (OSError, EOFError) as exc:
            raise EventFileError(f"{p}: broken gzip file: {exc}") from None
    else:
        data = p.read_bytes()
    body = data.lstrip()
    if not body:
        return
    if body[:1] == b"[":
        try:
            arr = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise EventFileError(f"{p}: invalid JSON array: {exc}") from None
        yield from arr
        return
    first = body.split(b"\n", 1)[0].strip()
    is_jsonl = True
    try:
        orjson.loads(first)
    except orjson.JSONDecodeError:
        is_jsonl = False
    if is_jsonl:
        for lineno, line in enumerate(data.split(b"\n"), 1):
            line = line.strip()
            if not line:
                continue
            if line[:1] != b"{":
                raise EventFileError(f"{p}: line {lineno} is not a JSON object")
            yield line
        return
    yield from _concatenated(data.decode("utf-8", errors="replace"), p)
