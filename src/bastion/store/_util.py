"""Small helpers shared by the repositories."""

from __future__ import annotations

import time
import uuid

__all__ = ["new_id", "now_ms"]


def now_ms() -> int:
    return int(time.time() * 1000)


def new_id() -> str:
    return uuid.uuid4().hex
