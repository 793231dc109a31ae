"""IP addresses and CIDR ranges for the intel matcher: reading them strictly and fast, and answering which
ranges hold an address (:class:`IPRanges`), one at a time or for a whole batch of IPv4 addresses."""

from __future__ import annotations

import ipaddress
import re
import socket
from bisect import bisect_left, bisect_right
from itertools import repeat
from typing import Any

import numpy as np

__all__ = ["IPRanges", "ip_range", "ipv4_addresses", "ipv4_int"]

_aton = socket.inet_aton
_from_bytes = int.from_bytes
_NO_IDS: tuple[int, ...] = ()
_BUCKET_BITS = 16


def _ids(found: Any) -> tuple[int, ...]:
    if found is None:
        return _NO_IDS
    return (found,) if isinstance(found, int) else found


_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4 = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}")


def ipv4_int(text: str) -> int | None:
    """Dotted-quad IPv4 as an integer, as strictly as ``ipaddress`` reads it (four decimal octets, no
    leading zeros), without building an address object: loading ~140k warning-list ranges spends most
    of its time there otherwise."""
    if _IPV4.fullmatch(text) is None:
        return None
    return _from_bytes(_aton(text), "big")


def ip_range(text: str) -> tuple[int, int, int] | None:
    """``(version, first, last)`` of an address or CIDR range (host bits ignored, as ``strict=False``),
    or None when ``text`` is neither."""
    addr, slash, plen = text.partition("/")
    if ":" not in addr:
        n = ipv4_int(addr)
        if n is None:
            return None
        if not slash:
            return 4, n, n
        if not (plen.isascii() and plen.isdigit()) or int(plen) > 32:
            return None
        host = (1 << (32 - int(plen))) - 1
        return 4, n & ~host, (n & ~host) | host
    try:
        net = ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None
    return net.version, int(net.network_address), int(net.broadcast_address)


def ipv4_addresses(values: list[str]) -> tuple[np.ndarray, list[int] | None]:
    """The addresses ``inet_aton`` reads in ``values`` (int64, as ``_match_ipv4`` reads them), and the
    positions of the values read, or None when all were. The whole list is packed in one pass when it
    can be."""
    try:
        packed, read = b"".join(map(_aton, values)), None
    except (OSError, ValueError):  # an IPv6 address, not an address, a NUL or lone surrogate in the text
        parts: list[bytes] = []
        read = []
        for j, value in enumerate(values):
            try:
                parts.append(_aton(value))
            except (OSError, ValueError):
                continue
            read.append(j)
        packed = b"".join(parts)
    return np.frombuffer(packed, ">u4").astype(np.int64), read


class IPRanges:
    """CIDR ranges of one address family as disjoint segments. ``ids[k]`` are the ids matching an address
    with exactly ``k`` segment starts at or below it (``ids[0]`` is empty), so one ``bisect_right`` finds
    them. The address space is also cut in 2**16 buckets on the top bits: ``bucket_any`` says whether an
    address in a bucket can be in any range (no, for most), and ``bucket_lo``/``bucket_hi`` bound the
    bisect, so that a search over a million segments reads a few neighbouring entries instead of
    twenty scattered ones."""

    def __init__(self, bits: int) -> None:
        self.shift = bits - _BUCKET_BITS
        self.ranges: dict[tuple[int, int], Any] = {}
        self.starts: list[int] = []
        self.ids: list[tuple[int, ...]] = []
        self.bucket_lo: list[int] = []
        self.bucket_hi: list[int] = []
        # For IPv4 batches (:meth:`find_batch`): the segment starts, whether each segment and each
        # bucket has any ids.
        self.starts_array = np.zeros(0, np.int64)
        self.seg_any = np.zeros(1, np.bool_)
        self.bucket_any = np.zeros(1 << _BUCKET_BITS, np.bool_)
        self.dirty = True  # built on first use

    def add(self, start: int, end: int, ident: int) -> None:
        key = (start, end)
        cur = self.ranges.get(key)
        if cur is None:
            self.ranges[key] = ident
        elif isinstance(cur, int):
            if cur != ident:
                self.ranges[key] = (cur, ident)
        elif ident not in cur:
            self.ranges[key] = (*cur, ident)
        self.dirty = True

    def remove(self, start: int, end: int, ident: int) -> None:
        key = (start, end)
        cur = _ids(self.ranges.get(key))
        rest = tuple(i for i in cur if i != ident)
        if rest != cur:
            if rest:
                self.ranges[key] = rest
            else:
                del self.ranges[key]
            self.dirty = True

    def build(self) -> None:
        points: list[tuple[int, int, tuple[int, ...]]] = []
        for (start, end), idents in self.ranges.items():
            ids = _ids(idents)
            points.append((start, 1, ids))
            points.append((end + 1, 0, ids))
        points.sort(key=lambda p: (p[0], p[1]))
        active: dict[int, int] = {}
        starts: list[int] = []
        seg_ids: list[tuple[int, ...]] = [_NO_IDS]
        i = 0
        n = len(points)
        while i < n:
            pos = points[i][0]
            while i < n and points[i][0] == pos:
                _, opening, ids = points[i]
                for ident in ids:
                    if opening:
                        active[ident] = active.get(ident, 0) + 1
                    else:
                        left = active[ident] - 1
                        if left:
                            active[ident] = left
                        else:
                            del active[ident]
                i += 1
            current = tuple(active)
            if seg_ids[-1] == current:
                continue
            starts.append(pos)
            seg_ids.append(current)
        edges = range(0, (1 << (self.shift + _BUCKET_BITS)) + 1, 1 << self.shift)
        lo = list(map(bisect_left, repeat(starts), edges))
        hi = lo[1:]
        self.bucket_lo, self.bucket_hi = lo, hi
        self.starts = starts
        self.ids = seg_ids
        if self.shift + _BUCKET_BITS <= 32:  # the arrays hold int64: IPv6 batches go one by one
            self.starts_array = np.array(starts, np.int64)
            self.seg_any = np.fromiter(map(bool, seg_ids), np.bool_, len(seg_ids))
            # A bucket with a segment starting inside it, or inside a segment with ids.
            self.bucket_any = np.fromiter(
                (a != b or bool(seg_ids[a]) for a, b in zip(lo, hi, strict=False)), np.bool_, len(hi)
            )
        self.dirty = False

    def find(self, x: int) -> tuple[int, ...]:
        if self.dirty:
            self.build()
        bucket = x >> self.shift
        return self.ids[bisect_right(self.starts, x, self.bucket_lo[bucket], self.bucket_hi[bucket])]

    def find_batch(self, x: np.ndarray) -> list[tuple[int, tuple[int, ...]]]:
        """``(position, ids)`` of the addresses ``x`` (IPv4, an int64 array) inside some range: the
        bucket of each address tells in one gather whether it can be (most cannot), ``searchsorted``
        finds the segment of the others, all over the whole batch at once."""
        if self.dirty:
            self.build()
        maybe = np.flatnonzero(self.bucket_any.take(x >> self.shift))
        if not maybe.size:
            return []
        seg = np.searchsorted(self.starts_array, x.take(maybe), "right")
        inside = self.seg_any.take(seg)
        ids = self.ids
        return [(j, ids[k]) for j, k in zip(maybe[inside].tolist(), seg[inside].tolist(), strict=True)]
