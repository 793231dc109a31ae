"""The intel matcher's batch filter: a Bloom filter in numpy over the hashes of the exact keys.

Most lookups of a batch miss, and a missed lookup in a dict of millions is a chain of dependent cache
misses behind interpreter work for each key. :class:`KeyFilter` answers most of them with a few numpy
operations over the whole batch (one independent load per key, which the CPU overlaps); :class:`Probe`
gathers a batch's exact lookups from all its groups so that they pass the filter together, and only
the keys it lets through reach a dict (:mod:`bastion.intel.matcher`).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

__all__ = [
    "KeyFilter",
    "Probe",
    "add_hit",
    "mix_addresses",
    "str_hashes",
]

# The batch filter's size: bits per key when (re)built, and the fewest it may fall to as keys are added
# before it is built again. At 10M keys the first is 64 MB, 0.2% false positives.
_FILTER_BITS_PER_KEY = 32
_FILTER_MIN_BITS_PER_KEY = 16


def mix_addresses(addresses: np.ndarray) -> np.ndarray:
    """IPv4 addresses (int64) as well-spread 64-bit hashes for :class:`KeyFilter` (splitmix64's
    finalizer): a batch has the addresses as integers already, for the ranges, and hashing them so costs
    far less than the ``str`` hash of each (a Python int per address)."""
    z: np.ndarray = addresses.view(np.uint64)
    z = (z ^ (z >> 30)) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> 27)) * np.uint64(0x94D049BB133111EB)
    return (z ^ (z >> 31)).view(np.int64)


def _compiled_key_hashes() -> Callable[[list[str], np.ndarray], None] | None:
    try:
        from bastion.intel._batchscan import key_hashes
    except ImportError:  # no compiled build (or BASTION_NATIVE=0)
        return None
    return key_hashes


_key_hashes = _compiled_key_hashes()


def str_hashes(keys: list[str]) -> np.ndarray:
    """The filter's hash of each key. With the compiled build it is the hash the batch scan probes with
    (``_batchscan.c``, several times cheaper than Python's SipHash), so that a filter built here and a
    scan agree; without it, Python's ``str`` hash."""
    if _key_hashes is None:
        return np.fromiter(map(hash, keys), np.int64, len(keys))
    out = np.empty(len(keys), np.int64)
    _key_hashes(keys, out)
    return out


class KeyFilter:
    """A Bloom filter over the hashes (:func:`str_hashes`) of every exact key that batches look up, so
    that a batch finds the few keys worth a dict lookup with a handful of numpy operations. Most lookups
    miss, and a missed lookup in a dict of millions is a chain of dependent cache misses behind
    interpreter work for each key; here each key is one independent load the CPU overlaps with the
    others'. Blocked: one 64-bit word per key (from the hash's top bits) with two of its bits set (from
    the low bits), so one load.

    The hashes are salted per process, which is fine: the filter is built and probed in the same
    process and never stored. It only grows: a removed key keeps its bits, which is correct, as the
    filter only decides which keys skip the dict lookup, and the dict still decides what matches."""

    def __init__(self, keys: int) -> None:
        bits = max(keys * _FILTER_BITS_PER_KEY, 1 << 16)
        log_words = (bits - 1).bit_length() - 6
        self.words = np.zeros(1 << log_words, np.uint64)
        self.shift = np.uint64(64 - log_words)
        self.capacity = (64 << log_words) // _FILTER_MIN_BITS_PER_KEY

    def add(self, hashes: np.ndarray) -> None:
        u = hashes.view(np.uint64)
        bits = (1 << (u & 63)) | (1 << ((u >> 6) & 63))
        np.bitwise_or.at(self.words, (u >> self.shift).view(np.int64), bits)

    def candidates(self, hashes: np.ndarray) -> list[int]:
        """Positions of the hashes that may be of a key (all of the keys' and ~0.2% of the others')."""
        u = hashes.view(np.uint64)
        word = self.words.take((u >> self.shift).view(np.int64))
        return np.flatnonzero((word >> (u & 63)) & (word >> ((u >> 6) & 63)) & 1).tolist()


def add_hit(found: dict[int, list[int]], k: int, hit: Any) -> None:
    """Add a dict's value (one id, or a tuple of them) to the ids found for observable ``k``."""
    ids = found.get(k)
    if ids is None:
        found[k] = [hit] if hit.__class__ is int else list(hit)
    elif hit.__class__ is int:
        ids.append(hit)
    else:
        ids.extend(hit)


class Probe:
    """The exact lookups a batch needs, gathered from all its groups so that they pass the filter
    together: ``keys[starts[s]:]`` are looked up in ``dicts[s]`` for the observables at ``where[s]``."""

    def __init__(self, keys_filter: KeyFilter) -> None:
        self.filter = keys_filter
        self.keys: list[str] = []
        self.starts: list[int] = []
        self.dicts: list[dict[str, Any]] = []
        self.where: list[Sequence[int]] = []

    def add(self, keys: list[str], where: Sequence[int], d: dict[str, Any]) -> None:
        self.starts.append(len(self.keys))
        self.keys += keys
        self.dicts.append(d)
        self.where.append(where)

    def run(self, found: dict[int, list[int]]) -> None:
        """Add the ids found to ``found`` (by observable), in the order the lookups were added."""
        keys = self.keys
        if not keys:
            return
        starts, dicts, where = self.starts, self.dicts, self.where
        for c in self.filter.candidates(str_hashes(keys)):
            s = bisect_right(starts, c) - 1
            hit = dicts[s].get(keys[c])
            if hit is None:
                continue  # a false positive of the filter
            add_hit(found, where[s][c - starts[s]], hit)
