"""Event fingerprints: the identity of a raw record, so re-ingesting the same input is a no-op.

:func:`canonical_bytes` gives one byte string per logical record: JSON objects and arrays serialized
with sorted keys (so key order and the source's whitespace do not matter), text records as UTF-8 without
the trailing line break. :func:`fingerprint` hashes that to 16 bytes of BLAKE2b: collisions are out of
reach for any realistic event volume, and it is fast enough for the ingest hot path.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

__all__ = ["canonical_bytes", "fingerprint"]

# Parsed JSON only ever has string keys; OPT_NON_STR_KEYS costs about five times as much, so it is
# the fallback for the rare record built in code with other keys.
_OPTIONS = orjson.OPT_SORT_KEYS
_OPTIONS_ANY_KEYS = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS


def canonical_bytes(record: Any) -> bytes:
    """Canonical serialization of a raw record (a parsed JSON value, a text line or bytes)."""
    if type(record) is not dict:  # a JSON object, the common case, needs neither test
        if isinstance(record, str):
            return record.rstrip("\r\n").encode("utf-8", "surrogatepass")
        if isinstance(record, bytes | bytearray | memoryview):
            return bytes(record).rstrip(b"\r\n")
    try:
        return orjson.dumps(record, option=_OPTIONS)
    except TypeError:
        return orjson.dumps(record, option=_OPTIONS_ANY_KEYS)


def fingerprint(canonical: bytes) -> bytes:
    """16-byte BLAKE2b digest of :func:`canonical_bytes` output."""
    return hashlib.blake2b(canonical, digest_size=16).digest()
