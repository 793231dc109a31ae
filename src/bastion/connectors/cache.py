"""A small time-to-live cache for answers worth keeping a while (reputation verdicts, read actions that
declare ``cache_ttl_s``): bounded in size, oldest entry out first, one per process."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from typing import Any

__all__ = ["TtlCache"]


class TtlCache:
    """Values by key for ``ttl_s`` seconds (or the ``ttl_s`` given to :meth:`put`); at most ``max_items``,
    the oldest put dropped first. Safe to share between threads (each executor thread has its own loop)."""

    def __init__(
        self, ttl_s: float = 3600, max_items: int = 100_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl = ttl_s
        self.max = max_items
        self.clock = clock
        self._items: dict[Hashable, tuple[float, Any]] = {}
        self._lock = threading.Lock()
        self.hits = 0

    def get(self, key: Hashable) -> Any | None:
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return None
            if item[0] < self.clock():
                del self._items[key]
                return None
            self.hits += 1
            return item[1]

    def put(self, key: Hashable, value: Any, ttl_s: float | None = None) -> None:
        with self._lock:
            self._items.pop(key, None)
            if len(self._items) >= self.max:
                self._items.pop(next(iter(self._items)))
            self._items[key] = (self.clock() + (self.ttl if ttl_s is None else ttl_s), value)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
