"""Readers: files and HTTP request bodies into a stream of raw records, with format detection.

Files may be JSON lines, a JSON array, one JSON object (pretty-printed or not), several pretty-printed
objects one after another, Windows EVTX, or CEF/syslog text lines; any of them gzip-compressed (found
by the magic bytes, not the file name). The format is detected from the content unless the caller
names one of :data:`READER_FORMATS`. Everything streams: a multi-gigabyte file is read in chunks.

A bad item never stops the rest: it becomes a :class:`RecordError` with its line (or item) number and
the reason, in the same stream as the good records. Only problems with the whole input raise:
:class:`ReaderError` for a file that cannot be read or recognized, :class:`BodyError` for a request body
that is one malformed document, :class:`BodyTooLarge` when a body decompresses past its limit.
"""

from __future__ import annotations

import codecs
import functools
import gzip
import json
import os
import re
import zlib
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Any, cast

import orjson

from bastion.ingest.cef import find_cef
from bastion.ingest.records import RawRecord, RecordError
from bastion.ingest.syslog import looks_like_syslog

__all__ = [
    "DEFAULT_MAX_BODY",
    "READER_FORMATS",
    "BodyError",
    "BodyTooLarge",
    "ReaderError",
    "read_body",
    "read_path",
    "text_format",
]

READER_FORMATS = ("jsonl", "json", "evtx", "cef", "syslog")
DEFAULT_MAX_BODY = 64 * 1024 * 1024

GZIP_MAGIC = b"\x1f\x8b"
EVTX_MAGIC = b"ElfFile\x00"
_BOM = b"\xef\xbb\xbf"
_SNIFF_BYTES = 64 * 1024
_CHUNK = 1024 * 1024
# A JSON document up to this size is parsed in one orjson call; larger ones stream.
_WHOLE_DOCUMENT = 64 * 1024 * 1024
# The largest single JSON value, or text/JSON line, a reader accepts.
_MAX_ITEM = 64 * 1024 * 1024
_NDJSON_TYPES = frozenset(
    {"application/x-ndjson", "application/ndjson", "application/jsonl", "application/x-jsonlines",
     "application/jsonlines", "application/json-lines"}
)  # fmt: skip
_MAX_EVTX_FAILURES = 1000
_WS = re.compile(r"[ \t\r\n]*")

Item = RawRecord | RecordError


class ReaderError(ValueError):
    """A file that cannot be read at all: missing, unreadable, or in no format Bastion knows."""


class BodyError(ValueError):
    """A request body that is not acceptable as a whole (one malformed JSON document, bad gzip)."""


class BodyTooLarge(ValueError):
    """A request body larger than the limit once decompressed (a gzip bomb, or simply too big)."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"request body is larger than {limit} bytes once decompressed; send smaller batches")
        self.limit = limit


# ---------------------------------------------------------------------------------------------- files


def read_path(path: str | os.PathLike[str], fmt: str | None = None) -> Iterator[Item]:
    """Read a file into records. ``fmt`` forces a reader format; None detects it from the content.

    Problems with the file itself raise :class:`ReaderError` now, before anything is yielded.
    """
    if fmt is not None and fmt not in READER_FORMATS:
        raise ReaderError(f"unknown reader format {fmt!r}; use one of {', '.join(READER_FORMATS)}")
    name = os.fspath(path)
    try:
        with open(name, "rb") as f:
            compressed = f.read(2) == GZIP_MAGIC
        head = _sniff(name, compressed)
    except FileNotFoundError:
        raise ReaderError(f"file not found: {name}") from None
    except IsADirectoryError:
        raise ReaderError(f"{name} is a directory; give a file") from None
    except (OSError, EOFError, zlib.error) as exc:
        raise ReaderError(f"cannot read {name}: {exc}") from None

    kind = _detect(head, fmt, name)
    if kind is None:
        return iter(())
    if kind == "evtx":
        return _iter_evtx(name, compressed)
    opener = functools.partial(_open, name, compressed)
    if kind == "jsonl":
        return _iter_lines(opener, _json_line)
    if kind in ("cef", "syslog", "text"):
        forced = kind if kind != "text" else None
        return _iter_lines(opener, lambda n, raw: _text_line(n, raw, forced))
    size_hint = None if compressed else os.path.getsize(name)
    return _iter_json_file(opener, size_hint)


def _open(name: str, compressed: bool) -> IO[bytes]:
    """The file's bytes, decompressed when it is gzip; the caller closes it."""
    if compressed:
        return cast(IO[bytes], gzip.open(name, "rb"))
    return open(name, "rb")


def _sniff(name: str, compressed: bool) -> bytes:
    """The first bytes, for detection. Of a gzip file cut short, what decompresses before the cut: its
    whole lines are then read, and the cut reported at its line, as when it comes later in the file."""
    with _open(name, compressed) as f:
        if not compressed:
            return f.read(_SNIFF_BYTES)
        head = bytearray()
        try:
            while len(head) < _SNIFF_BYTES:
                # read1: what one block gives, kept when the next one fails
                chunk = cast(Any, f).read1(_SNIFF_BYTES - len(head))
                if not chunk:
                    break
                head += chunk
        except (EOFError, zlib.error):
            if not head:
                raise
        return bytes(head)


def _detect(head: bytes, fmt: str | None, name: str) -> str | None:
    """The reader to use: jsonl, json, evtx, cef, syslog or text (CEF/syslog by line); None if empty."""
    if fmt == "evtx" or head.startswith(EVTX_MAGIC):
        if not head.startswith(EVTX_MAGIC):
            raise ReaderError(f"{name} is not an EVTX file (it does not start with 'ElfFile')")
        return "evtx"
    body = head.removeprefix(_BOM).lstrip(b" \t\r\n")
    if fmt in ("jsonl", "cef", "syslog"):
        return fmt
    if fmt == "json":
        return "json"
    if not body:
        return None
    if body[:1] == b"[":
        return "json"
    if body[:1] == b"{":
        # JSON lines when the first line holds a whole object, or the next line starts a new one (the
        # first line is broken); otherwise pretty-printed JSON, whose second line is indented or "}".
        lines = [line for line in body.split(b"\n", 8)[:8] if line.strip()]
        if len(lines) == 1 and len(head) == _SNIFF_BYTES:
            return "jsonl"  # one line longer than the sniffed bytes
        one_line = lines[0].rstrip().endswith(b"}") or (len(lines) > 1 and lines[1].startswith(b"{"))
        return "jsonl" if one_line else "json"
    first_line = body.split(b"\n", 1)[0].decode("utf-8", "replace")
    if find_cef(first_line) >= 0 or looks_like_syslog(first_line):
        return "text"
    raise ReaderError(
        f"{name} is not in a recognized format (JSON lines, JSON, EVTX, CEF or syslog); it starts with "
        f"{body[:40]!r}. Name the format if it is one of these: {', '.join(READER_FORMATS)}"
    )


def _iter_lines(
    opener: Callable[[], IO[bytes]], parse: Callable[[int, bytes], Item | None]
) -> Iterator[Item]:
    """Apply ``parse`` to each line (numbered from 1); lines longer than the item limit are errors."""
    with opener() as f:
        readline = f.readline
        n = 0
        while True:
            try:
                raw = readline(_MAX_ITEM)
            except (OSError, EOFError, zlib.error) as exc:
                yield RecordError(n + 1, f"cannot read further: {exc}")
                return
            if not raw:
                return
            n += 1
            if n == 1:
                raw = raw.removeprefix(_BOM)
            if len(raw) >= _MAX_ITEM and not raw.endswith(b"\n"):
                while raw and not raw.endswith(b"\n"):
                    raw = readline(_CHUNK)
                yield RecordError(n, f"line is longer than {_MAX_ITEM} bytes")
                continue
            item = parse(n, raw)
            if item is not None:
                yield item


def _json_line(n: int, raw: bytes) -> Item | None:
    if raw.isspace():
        return None
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return RecordError(n, f"invalid JSON at column {exc.colno}: {exc.msg}")
    if type(value) is dict:
        return RawRecord(n, value)
    return RecordError(n, f"expected a JSON object, got {_kind(value)}")


def _text_line(n: int, raw: bytes, fmt: str | None) -> Item | None:
    text = raw.decode("utf-8", "replace").rstrip("\r\n\x00")
    if not text.strip():
        return None
    return RawRecord(n, text, fmt or text_format(text))


def text_format(text: str) -> str:
    """The normalizer for a text line: "cef" when it carries a CEF message, else "syslog"."""
    return "cef" if find_cef(text) >= 0 else "syslog"


def _iter_evtx(name: str, compressed: bool) -> Iterator[Item]:
    from evtx import PyEvtxParser  # heavy native module: loaded only for EVTX files

    source: Any = _open(name, True) if compressed else name
    try:
        parser = PyEvtxParser(source)
    except (OSError, RuntimeError) as exc:
        if compressed:
            source.close()
        raise ReaderError(f"cannot read EVTX file {name}: {exc}") from None
    return _evtx_records(parser.records_json(), source if compressed else None)


def _evtx_records(records: Iterator[Any], owned: IO[bytes] | None) -> Iterator[Item]:
    n = failures = 0
    try:
        while True:
            try:
                record = next(records)
            except StopIteration:
                return
            except RuntimeError as exc:  # a damaged chunk; the parser goes on with the next one
                yield RecordError(n + 1, f"unreadable EVTX chunk: {exc}")
                failures += 1
                if failures >= _MAX_EVTX_FAILURES:
                    yield RecordError(n + 1, f"giving up after {failures} damaged EVTX chunks in a row")
                    return
                continue
            failures = 0
            n += 1
            try:
                yield RawRecord(n, orjson.loads(record["data"]), "windows")
            except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
                yield RecordError(n, f"EVTX record {record.get('event_record_id')} is not valid JSON: {exc}")
    finally:
        if owned is not None:
            owned.close()


def _iter_json_file(opener: Callable[[], IO[bytes]], size: int | None) -> Iterator[Item]:
    """A JSON array, one object or objects back to back; parsed at once when small, else streamed."""
    with opener() as f:
        head = b""
        if size is None or size <= _WHOLE_DOCUMENT:
            head = f.read(_WHOLE_DOCUMENT + 1)
            if len(head) <= _WHOLE_DOCUMENT:
                whole = _whole_json(head)
                if whole is not None:
                    yield from whole
                    return
        try:
            yield from _JsonStream(_chain_chunks(head, f)).items()
        except _ReadFailure as exc:
            yield RecordError(exc.line, str(exc))


def _whole_json(data: bytes) -> list[Item] | None:
    """Records of a complete JSON document, or None when it does not parse as one (stream it instead)."""
    try:
        value = orjson.loads(data.removeprefix(_BOM))
    except orjson.JSONDecodeError:
        return None
    if type(value) is dict:
        return [RawRecord(1, value)]
    if type(value) is list:
        return _array_items(value)
    return [RecordError(1, f"expected a JSON object or an array of objects, got {_kind(value)}")]


def _array_items(values: list[Any]) -> list[Item]:
    return [
        RawRecord(i, v) if type(v) is dict else RecordError(i, f"array item is {_kind(v)}, not a JSON object")
        for i, v in enumerate(values, 1)
    ]


def _chain_chunks(head: bytes, f: IO[bytes]) -> Iterator[bytes]:
    if head:
        yield head
    while True:
        try:
            chunk = f.read(_CHUNK)
        except (OSError, EOFError, zlib.error) as exc:
            raise _ReadFailure(f"cannot read further: {exc}") from None
        if not chunk:
            return
        yield chunk


class _ReadFailure(Exception):
    """The underlying file failed mid-way (a truncated gzip stream); ``line`` is set by the stream."""

    line = 0


class _JsonFailure(Exception):
    def __init__(self, line: int, column: int, message: str) -> None:
        super().__init__(f"invalid JSON at line {line} column {column}: {message}")
        self.line = line


class _JsonStream:
    """Incremental reader of JSON values from a stream of byte chunks, tracking line numbers.

    Used for JSON too large to parse at once and for pretty-printed objects back to back. After a
    malformed object it resumes at the next line that starts with ``{``.
    """

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._utf8 = codecs.getincrementaldecoder("utf-8")("replace")
        self._decoder = json.JSONDecoder()
        self.buf = ""
        self.pos = 0
        self.line = 1
        self.eof = False
        self._line_offset = 0  # columns of the current line that lie before buf[0]

    def items(self) -> Iterator[Item]:
        if not self._skip_ws():
            return
        if self.buf.startswith("\ufeff", self.pos):
            self.pos += 1
            self._skip_ws()
        if self.buf[self.pos] == "[":
            yield from self._array()
        else:
            yield from self._objects()

    def _objects(self) -> Iterator[Item]:
        while self._skip_ws():
            start_line = self.line
            try:
                value = self._value()
            except _JsonFailure as exc:
                yield RecordError(exc.line, str(exc))
                if not self._resync():
                    return
                continue
            if type(value) is dict:
                yield RawRecord(start_line, value)
            else:
                yield RecordError(start_line, f"expected a JSON object, got {_kind(value)}")

    def _array(self) -> Iterator[Item]:
        self._advance(self.pos + 1)
        item = 0
        if self._skip_ws() and self.buf[self.pos] == "]":
            self._advance(self.pos + 1)
            return
        while True:
            item += 1
            try:
                if not self._skip_ws():
                    raise _JsonFailure(self.line, self._column(self.pos), "the array is not closed with ']'")
                value = self._value()
            except _JsonFailure as exc:
                yield RecordError(item, str(exc))
                return
            if type(value) is dict:
                yield RawRecord(item, value)
            else:
                yield RecordError(item, f"array item is {_kind(value)}, not a JSON object")
            if not self._skip_ws():
                yield RecordError(item + 1, f"invalid JSON at line {self.line}: the array is not closed")
                return
            sep = self.buf[self.pos]
            self._advance(self.pos + 1)
            if sep == "]":
                if self._skip_ws():
                    yield RecordError(item + 1, f"invalid JSON at line {self.line}: text after the array")
                return
            if sep != ",":
                column = self._column(self.pos - 1)
                reason = f"invalid JSON at line {self.line} column {column}: expected ',' or ']'"
                yield RecordError(item + 1, reason)
                return

    def _value(self) -> Any:
        """Decode the value at ``pos``, reading more input while it may be merely cut off."""
        while True:
            try:
                value, end = self._decoder.raw_decode(self.buf, self.pos)
            except json.JSONDecodeError as exc:
                # Strings cannot hold a raw newline, so an error with no newline after it may just be the
                # end of the data read so far; with a newline after it, more input cannot help.
                cut_off = self.buf.find("\n", exc.pos) < 0
                if cut_off and not self.eof and len(self.buf) - self.pos <= _MAX_ITEM:
                    self._grow()  # reads more or reaches the end; positions change, so decode again
                    continue
                line = self.line + self.buf.count("\n", self.pos, exc.pos)
                raise _JsonFailure(line, self._column(exc.pos), exc.msg) from None
            except RecursionError:  # Python's decoder recurses once per level of nesting
                raise _JsonFailure(self.line, self._column(self.pos), "nested too deeply") from None
            if end == len(self.buf) and not self.eof:
                self._grow()  # a number at the end of the buffer may go on in the next chunk
                continue
            self._advance(end)
            return value

    def _resync(self) -> bool:
        """Move to the next line starting with '{' after the malformed document that begins at ``pos``."""
        search = self.pos + 1
        while True:
            i = self.buf.find("\n{", search)
            if i >= 0:
                self._advance(i + 1)
                return True
            keep = max(self.pos, len(self.buf) - 1)
            self._advance(keep)
            if not self._more():
                self._advance(len(self.buf))
                return False
            search = self.pos

    def _skip_ws(self) -> bool:
        """Skip whitespace; False when the input is exhausted."""
        while True:
            self._advance(_WS.match(self.buf, self.pos).end())  # type: ignore[union-attr]
            if self.pos < len(self.buf):
                return True
            if not self._more():
                return False

    def _advance(self, to: int) -> None:
        if to > self.pos:
            self.line += self.buf.count("\n", self.pos, to)
            self.pos = to

    def _column(self, index: int) -> int:
        newline = self.buf.rfind("\n", 0, index)
        return index - newline if newline >= 0 else self._line_offset + index + 1

    def _more(self) -> bool:
        """Append the next chunk (dropping what was consumed); False at the end of the input."""
        if self.eof:
            return False
        try:
            chunk = next(self._chunks, None)
        except _ReadFailure as exc:
            exc.line = self.line
            raise
        text = self._utf8.decode(chunk) if chunk is not None else self._utf8.decode(b"", final=True)
        self.eof = chunk is None
        if self.pos:
            # Drop what was consumed, back to the start of the current line unless that line is huge
            # (minified JSON); then remember how far into its line the buffer starts, for columns.
            cut = self.buf.rfind("\n", 0, self.pos) + 1
            if self.pos - cut > _CHUNK:
                cut = self.pos
            self._line_offset = self._column(cut) - 1
            self.buf, self.pos = self.buf[cut:], self.pos - cut
        self.buf += text
        return bool(text) or not self.eof

    def _grow(self) -> None:
        """Read until the pending text has doubled (or the input ends), so re-decoding stays linear."""
        target = max(2 * (len(self.buf) - self.pos), _CHUNK)
        while len(self.buf) - self.pos < target and self._more():
            pass


# ---------------------------------------------------------------------------------------------- bodies


def read_body(
    body: bytes,
    content_type: str | None = None,
    content_encoding: str | None = None,
    *,
    max_bytes: int = DEFAULT_MAX_BODY,
) -> Iterator[Item]:
    """Records of an HTTP request body: a JSON object, a JSON array, NDJSON, or CEF/syslog lines.

    gzip is undone when Content-Encoding says so or the body starts with the gzip magic, never past
    ``max_bytes`` (:class:`BodyTooLarge`). A body that is one malformed JSON document raises
    :class:`BodyError` naming the position; in NDJSON each bad line is a :class:`RecordError` instead.
    """
    if len(body) > max_bytes:
        raise BodyTooLarge(max_bytes)
    data = _decode_body(body, content_encoding, max_bytes).removeprefix(_BOM)
    start = data.lstrip(b" \t\r\n")
    if not start:
        raise BodyError("empty request body; send a JSON object, a JSON array or NDJSON")
    mime = (content_type or "").split(";", 1)[0].strip().lower()

    def lines(parse: Callable[[int, bytes], Item | None]) -> Iterator[Item]:
        for n, raw in enumerate(data.split(b"\n"), 1):
            item = parse(n, raw) if raw.strip() else None
            if item is not None:
                yield item

    if mime in _NDJSON_TYPES:
        return lines(_json_line)
    if start[:1] == b"<" or start.startswith(b"CEF:") or (mime == "text/plain" and start[:1] not in b"{["):
        return lines(lambda n, raw: _text_line(n, raw, None))
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        if _looks_like_ndjson(start):
            return lines(_json_line)
        raise BodyError(f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    if type(value) is dict:
        return iter([RawRecord(1, value)])
    if type(value) is list:
        return iter(_array_items(value))
    raise BodyError(f"expected a JSON object, an array of objects or NDJSON, got {_kind(value)}")


def _looks_like_ndjson(data: bytes) -> bool:
    """Several non-blank lines, the first a one-line object or followed by a line that starts one."""
    lines = [line for line in data.split(b"\n", 8)[:8] if line.strip()]
    if len(lines) < 2 or not lines[0].startswith(b"{"):
        return False
    return lines[0].rstrip().endswith(b"}") or lines[1].startswith(b"{")


def _decode_body(body: bytes, content_encoding: str | None, max_bytes: int) -> bytes:
    codings = [c.strip().lower() for c in (content_encoding or "").split(",")]
    codings = [c for c in codings if c and c != "identity"]
    if len(codings) > 1:
        raise BodyError(f"unsupported Content-Encoding {content_encoding!r}; use one of gzip or deflate")
    coding = codings[0] if codings else None
    if coding in ("gzip", "x-gzip") or (coding is None and body.startswith(GZIP_MAGIC)):
        return _inflate(body, 16 + zlib.MAX_WBITS, max_bytes, "gzip")
    if coding == "deflate":
        return _inflate(body, zlib.MAX_WBITS, max_bytes, "deflate")
    if coding is not None:
        raise BodyError(f"unsupported Content-Encoding {content_encoding!r}; use gzip, deflate or none")
    return body


def _inflate(body: bytes, wbits: int, max_bytes: int, label: str) -> bytes:
    """Decompress at most ``max_bytes`` (several gzip members included) or raise BodyTooLarge."""
    out: list[bytes] = []
    total = 0
    data = body
    try:
        inflater = zlib.decompressobj(wbits)
        while data:
            chunk = inflater.decompress(data, max_bytes - total + 1)
            total += len(chunk)
            if total > max_bytes:
                raise BodyTooLarge(max_bytes)
            out.append(chunk)
            if inflater.unconsumed_tail:
                data = inflater.unconsumed_tail
            elif inflater.eof and inflater.unused_data.strip(b"\x00"):
                data = inflater.unused_data
                inflater = zlib.decompressobj(wbits)
            else:
                break
    except zlib.error as exc:
        raise BodyError(f"the body is not valid {label} data: {exc}") from None
    if not inflater.eof:
        raise BodyError(f"the {label} body is truncated")
    return b"".join(out)


def _kind(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"
