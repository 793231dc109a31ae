"""Small helpers shared by the repositories."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator, Sequence
from typing import TypeVar

T = TypeVar("T")

__all__ = ["chunks", "new_id", "now_ms"]


def now_ms() -> int:
    return int(time.time() * 1000)


def new_id() -> str:
    return uuid.uuid4().hex


def chunks(items: Sequence[T], size: int = 500) -> Iterator[Sequence[T]]:
    """``items`` in slices of ``size``: ``IN (...)`` lists stay under the databases' parameter limits."""
    for i in range(0, len(items), size):
        yield items[i : i + size]
