"""The audit log's hash chain: how an entry is made canonical and hashed.

Each entry's hash is SHA-256 over the previous entry's hash and the entry's canonical JSON (sorted keys,
no whitespace, UTF-8). Changing, deleting or reordering any stored entry breaks the chain from there on.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

__all__ = ["GENESIS", "canonical_json", "entry_hash"]

GENESIS = "0" * 64
"""The previous hash of a tenant's first entry."""


def canonical_json(value: Any) -> bytes:
    """One byte string per value, whatever its key order: the input to the hash."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)


def entry_hash(prev_hash: str, body: dict[str, Any]) -> str:
    """The hash of an entry whose fields (all but ``hash`` and ``prev_hash``) are ``body``."""
    digest = hashlib.sha256()
    digest.update(prev_hash.encode("ascii"))
    digest.update(b"\n")
    digest.update(canonical_json(body))
    return digest.hexdigest()
