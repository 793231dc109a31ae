"""The in-memory indicator matcher: observables in, matching indicator ids out.

Written here rather than taken from a library because no library combines what the hot path needs for
millions of indicators in one process: exact values in hash sets (one dict per kind, a value maps to one
id or a tuple of ids to keep memory down; the dicts keep the key hashes, see :func:`_hashed_dict`), CIDR
ranges flattened into disjoint segments searched with ``bisect`` (nested and overlapping ranges all
match), domains matched on every parent suffix (one dict probe per label, for the label counts some
indexed domain has), URLs compared in canonical form, and the few regular-expression indicators (STIX
``MATCHES``) tried last. Batches (:meth:`Matcher.match_many`) are grouped by type, turned into keys with
``map`` calls that loop in C, and passed through a Bloom filter in numpy (:class:`KeyFilter`) so that
only the few keys it lets through (the hits and ~0.2% of the misses) reach a dict; IPv4 addresses are
read into one array for the filter and the ranges. Changes are applied incrementally (:meth:`Matcher.add`,
:meth:`Matcher.remove`); the CIDR segments are rebuilt lazily on the next lookup after a range changed,
and keys added since the last batch are added to the filter by the next one.

Ids are small integers (the store's row keys), so the matcher holds no indicator documents. Addresses and
ranges are read in :mod:`bastion.intel.ipranges`, URLs keyed in :mod:`bastion.intel.urlkeys`, the batch
filter is :mod:`bastion.intel.keyfilter`, and with the compiled build a batch's per-observable pass runs
in ``_batchscan.c``.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import threading
from collections.abc import Callable, Iterable, Sequence
from itertools import chain, compress, repeat
from operator import itemgetter
from typing import Any

import numpy as np

from bastion.intel.ipranges import IPRanges, ip_range, ipv4_addresses
from bastion.intel.keyfilter import KeyFilter, Probe, add_hit, mix_addresses, str_hashes
from bastion.intel.urlkeys import canonical_url, canonical_urls
from bastion.model.intel import IndicatorType

_ScanFn = Callable[
    [list[tuple[str, str]], Any, int, tuple[int, ...], bool, Any, int],
    tuple[list[tuple[int, int, str]], list[int], list[int], list[int]],
]


def _compiled_scan() -> _ScanFn | None:
    """The compiled per-observable pass over a batch (``_batchscan.c``), when the build has it (see
    :mod:`bastion.native`); without it batches take the pure-Python way, with the same answers."""
    try:
        from bastion.intel._batchscan import scan
    except ImportError:
        return None
    return scan


_scan = _compiled_scan()

__all__ = ["Matcher", "observable_kinds"]

_T = IndicatorType
_HASHES = frozenset({_T.MD5, _T.SHA1, _T.SHA256})
_IPS = frozenset({_T.IPV4, _T.IPV6})
_NO_IDS: tuple[int, ...] = ()
_aton = socket.inet_aton
_from_bytes = int.from_bytes
_after = itemgetter(2)
_first = itemgetter(0)
_second = itemgetter(1)
# Below this many observables a batch is matched one by one when the compiled scan is not there: the fixed
# cost of grouping it by type and of the numpy calls (~80 us a batch) is more than it saves (measured at
# 2M indicators: even at 64 a batch). With the scan, a batch of one is already as fast as one by one.
_SMALL_BATCH = 64

# Which indicator kinds an observable of a given type is checked against.
_OBSERVABLE_KINDS: dict[str, tuple[str, ...]] = {
    "ipv4": ("ip",),
    "ipv6": ("ip",),
    "domain": ("domain",),
    "host": ("domain",),
    "url": ("url",),
    "md5": ("hash",),
    "sha1": ("hash",),
    "sha256": ("hash",),
    "email": ("email",),
    "user": ("leaked",),
    "file_path": ("file",),
    "process_name": ("file",),
    "file_name": ("file",),
    "ja3": ("ja3",),
    "ja4": ("ja4",),
    "cve": ("cve",),
    "leaked_credential": ("leaked",),
    "x509_serial": ("x509",),
    "email_subject": ("subject",),
}


def observable_kinds(obs_type: str) -> tuple[str, ...]:
    return _OBSERVABLE_KINDS.get(obs_type, ())


_KIND_OF: dict[IndicatorType, str] = {
    _T.IPV4: "ip",
    _T.IPV6: "ip",
    _T.DOMAIN: "domain",
    _T.URL: "url",
    _T.MD5: "hash",
    _T.SHA1: "hash",
    _T.SHA256: "hash",
    _T.EMAIL: "email",
    _T.FILE_NAME: "file",
    _T.JA3: "ja3",
    _T.JA4: "ja4",
    _T.CVE: "cve",
    _T.LEAKED_CREDENTIAL: "leaked",
    _T.X509_SERIAL: "x509",
    _T.EMAIL_SUBJECT: "subject",
}


def _hashed_dict() -> dict[str, Any]:
    """An empty dict that keeps each key's hash in its table. CPython (3.11+) leaves the hash out of a
    dict whose keys have all been ``str`` and reads it from the key object instead: one more cache miss
    for every slot a lookup passes, and a missed lookup in a table of millions (most lookups) passes one
    or two. A dict that once held another key keeps the hashes for good, also as it grows, for 8 bytes
    more per entry (113 MB at 10M indicators); lookups of absent addresses among 4M took ~35% less."""
    d: dict[Any, Any] = {None: None}
    del d[None]
    return d


def _put(d: dict[str, Any], key: str, ident: int) -> bool:
    """Add ``ident`` under ``key``; True when the key is new."""
    cur = d.get(key)
    if cur is None:
        d[key] = ident
        return True
    if isinstance(cur, int):
        if cur != ident:
            d[key] = (cur, ident)
    elif ident not in cur:
        d[key] = (*cur, ident)
    return False


def _drop(d: dict[str, Any], key: str, ident: int) -> bool:
    """Remove ``ident`` from ``key``; True when the key is gone."""
    cur = d.get(key)
    if cur is None:
        return False
    if isinstance(cur, int):
        if cur == ident:
            del d[key]
            return True
        return False
    rest = tuple(i for i in cur if i != ident)
    if not rest:
        del d[key]
        return True
    d[key] = rest[0] if len(rest) == 1 else rest
    return False


def _ids(found: Any) -> tuple[int, ...]:
    if found is None:
        return _NO_IDS
    return (found,) if isinstance(found, int) else found


def _lowered(values: list[str]) -> list[str]:
    """``values`` in lowercase, without a new string per value when they already are (observables mostly
    are): one ``lower`` over the whole batch tells."""
    joined = "".join(values)
    return values if joined.lower() == joined else list(map(str.lower, values))


def _pick(items: Sequence[Any], positions: Sequence[int]) -> list[Any]:
    """``items[p]`` for each position, through one ``itemgetter`` call rather than a call per position."""
    if len(positions) < 2:
        return [items[p] for p in positions]
    return list(itemgetter(*positions)(items))


# The exact kinds batches look up by their ``str`` hash (and their filter holds), with the exact-only
# domains; IPv4 addresses are looked up by their value (see ``keyfilter.mix_addresses``).
_HASHED_KINDS = ("hash", "url", "domain")


def _ip_hashes(keys: list[str]) -> np.ndarray:
    return mix_addresses(ipv4_addresses(keys)[0])


# A batch planner (see ``Matcher._build_plans``): positions and values of one type's group, the probe,
# the ids found apart from it, and those to add after the probe's.
_After = list[tuple[int, tuple[int, ...]]]
_Plan = Callable[[Sequence[int], list[str], Probe, dict[int, list[int]], _After], None]


def _by_type(obs: list[tuple[str, str]]) -> list[tuple[str, Sequence[int], list[str]]]:
    """``(type, positions, values)`` of each observable type in a batch, without Python code per
    observable: each is given the number of its type (from the batch's distinct types) in one array,
    compared with each number in turn."""
    n = len(obs)
    types = list(map(_first, obs))
    values = list(map(_second, obs))
    numbers = {t: k for k, t in enumerate(set(types))}
    if len(numbers) == 1:
        return [(types[0], range(n), values)]
    codes = np.fromiter(map(numbers.__getitem__, types), np.intp, n)
    groups: list[tuple[str, Sequence[int], list[str]]] = []
    for obs_type, number in numbers.items():
        where = np.flatnonzero(codes == number).tolist()
        groups.append((obs_type, where, _pick(values, where)))
    return groups


class Matcher:
    """All indicators of one tenant (or the warning lists), ready to match."""

    def __init__(self) -> None:
        self._exact: dict[str, dict[str, Any]] = {kind: _hashed_dict() for kind in set(_KIND_OF.values())}
        self._domain_exact: dict[str, Any] = _hashed_dict()
        # How many indexed domains have each number of dots, and those numbers from the highest: a parent
        # suffix of an observable is only looked up when some domain has as many labels as it.
        self._domain_dots: dict[int, int] = {}
        self._dot_levels: tuple[int, ...] = ()
        self._v4 = IPRanges(32)
        self._v6 = IPRanges(128)
        self._regex: dict[int, tuple[str, re.Pattern[str]]] = {}
        self._expires: dict[int, int] = {}
        self.count = 0
        # The batch filter over the exact keys (built on the first batch, or by :meth:`prepare`). Once it
        # is, :meth:`add` queues each new key (exact IPv4 addresses apart) for the next batch to add to it,
        # and flags it stale when they would fill it past its capacity (it is then built again, larger).
        # The store adds under its own lock but matches outside it: a batch that finds keys queued or the
        # filter stale brings it up to date under ``_filter_lock`` before using it, and a key leaves its
        # queue only once the filter holds it, so a key added before a batch starts is always found.
        self._filter: KeyFilter | None = None
        self._filter_stale = False
        self._filter_room = 0
        self._filter_lock = threading.Lock()
        self._pending: list[str] | None = None
        self._pending_ip: list[str] | None = None
        self._fast = self._build_fast()
        self._plans = self._build_plans()
        # The dicts the compiled scan's candidates are looked up in, by the number it gives each.
        ex = self._exact
        self._scan_dicts = (ex["ip"], ex["hash"], ex["url"], self._domain_exact, ex["domain"])

    # ------------------------------------------------------------------ changes

    def add(
        self,
        ident: int,
        kind: IndicatorType,
        value: str,
        *,
        exact: bool = False,
        pattern: bool = False,
        valid_until: int | None = None,
    ) -> None:
        """Index one canonical (already normalized) value under ``ident``."""
        self.count += 1
        if valid_until is not None:
            self._expires[ident] = valid_until
        if pattern:
            kind_name = _KIND_OF.get(kind, "file")
            try:
                self._regex[ident] = (kind_name, re.compile(value, re.IGNORECASE))
                return
            except re.error:
                pass  # not a regular expression: matched as a plain value
        elif kind is _T.CIDR:
            found = ip_range(value)
            if found is None:
                raise ValueError(f"not an IP range: {value!r}")
            self.add_range(ident, *found)
            return
        elif kind is _T.DOMAIN and exact:
            if _put(self._domain_exact, value, ident) and self._pending is not None:
                self._filter_later("domain", value)
            return
        else:
            kind_name = _KIND_OF[kind]
        if _put(self._exact[kind_name], value, ident):
            if kind_name == "domain":
                self._count_domain(value, 1)
            if self._pending is not None:
                self._filter_later(kind_name, value)

    def _filter_later(self, kind_name: str, key: str) -> None:
        """Queue a new key for the batch filter (flagged stale past its capacity: built again in size)."""
        pending, pending_ip = self._pending, self._pending_ip
        assert pending is not None and pending_ip is not None
        (pending_ip if kind_name == "ip" else pending).append(key)
        if len(pending) + len(pending_ip) > self._filter_room:  # both queues fill the same room
            self._filter_stale = True

    def prepare(self) -> None:
        """Build now what lookups would build on first use: the range segments and the batch filter (a
        few seconds at 10M indicators)."""
        for ranges in (self._v4, self._v6):
            if ranges.dirty:
                ranges.build()
        self._current_filter()

    def _current_filter(self) -> KeyFilter:
        """The batch filter, holding every key added before this call (see ``__init__``)."""
        flt = self._filter
        if flt is None or self._filter_stale or self._pending or self._pending_ip:
            with self._filter_lock:
                flt = self._sync_filter()
        return flt

    def _sync_filter(self) -> KeyFilter:
        """Under ``_filter_lock``: build the filter from the dicts (the first time, or stale), else add the
        keys queued since the last batch and only then take them off their queues."""
        flt = self._filter
        if flt is None or self._filter_stale:
            # The queues restart before the dicts are read: a key added meanwhile is in either or both.
            self._pending, self._pending_ip = [], []
            dicts = [*map(self._exact.__getitem__, _HASHED_KINDS), self._domain_exact]
            keys, ips = list(chain.from_iterable(dicts)), list(self._exact["ip"])
            flt = KeyFilter(len(keys) + len(ips))
            flt.add(str_hashes(keys))
            flt.add(_ip_hashes(ips))
            self._filter_room = flt.capacity - len(keys) - len(ips)
            self._filter = flt
            self._filter_stale = False
            return flt
        for queue, hashes in ((self._pending, str_hashes), (self._pending_ip, _ip_hashes)):
            assert queue is not None
            if n := len(queue):
                flt.add(hashes(queue[:n]))
                del queue[:n]  # keys queued since stay
                self._filter_room -= n
        return flt

    def add_range(self, ident: int, version: int, first: int, last: int) -> None:
        """Index the addresses ``first``..``last`` (integers) of IP ``version`` under ``ident``."""
        (self._v4 if version == 4 else self._v6).add(first, last, ident)

    def remove(self, ident: int, kind: IndicatorType, value: str, *, exact: bool = False) -> None:
        self.count -= 1
        self._expires.pop(ident, None)
        if self._regex.pop(ident, None) is not None:
            return
        if kind is _T.CIDR:
            found = ip_range(value)
            if found is not None:
                version, first, last = found
                (self._v4 if version == 4 else self._v6).remove(first, last, ident)
            return
        if kind is _T.DOMAIN and exact:
            _drop(self._domain_exact, value, ident)
            return
        kind_name = _KIND_OF[kind]
        if _drop(self._exact[kind_name], value, ident) and kind_name == "domain":
            self._count_domain(value, -1)

    def _count_domain(self, value: str, step: int) -> None:
        counts = self._domain_dots
        dots = value.count(".")
        left = counts.get(dots, 0) + step
        if left:
            counts[dots] = left
        else:
            del counts[dots]
        if len(counts) != len(self._dot_levels):  # a number of dots came or went
            self._dot_levels = tuple(sorted(counts, reverse=True))

    def set_valid_until(self, ident: int, valid_until: int | None) -> None:
        if valid_until is None:
            self._expires.pop(ident, None)
        else:
            self._expires[ident] = valid_until

    # ------------------------------------------------------------------ lookups

    def match(self, obs_type: str, value: str, now: int | None = None) -> list[int]:
        """Ids of every live indicator matching one observable (``now`` in epoch ms drops expired ones)."""
        fn = self._fast.get(obs_type)
        if fn is None:
            return []
        found = fn(value)
        if self._regex:
            kinds = _OBSERVABLE_KINDS[obs_type]
            subject = value.replace("\\", "/").rsplit("/", 1)[-1] if "file" in kinds else value
            for ident, (kind, rx) in self._regex.items():
                if kind in kinds and rx.search(subject):
                    found.append(ident)
        if found and now is not None and self._expires:
            exp = self._expires
            found = [i for i in found if exp.get(i, now) >= now]
        return found

    def _build_fast(self) -> dict[str, Callable[[str], list[int]]]:
        """One function per observable type, each a straight line: the hot path has no dispatch loop."""
        ex = self._exact

        def lower(d: dict[str, Any]) -> Callable[[str], list[int]]:
            def f(value: str) -> list[int]:
                hit = d.get(value.lower())
                if hit is None:
                    return []
                return [hit] if hit.__class__ is int else list(hit)

            return f

        def generic(kind: str) -> Callable[[str], list[int]]:
            return lambda value: list(self._match_kind(kind, value))

        fast: dict[str, Callable[[str], list[int]]] = {}
        for obs_type, kinds in _OBSERVABLE_KINDS.items():
            kind = kinds[0]
            if kind in ("hash", "email", "leaked", "ja3", "ja4"):
                fast[obs_type] = lower(ex[kind])
            else:
                fast[obs_type] = generic(kind)
        fast["ipv4"] = self._match_ipv4
        fast["ipv6"] = self._match_ip
        fast["domain"] = fast["host"] = self._match_domain
        fast["url"] = self._match_url
        return fast

    def _match_ipv4(self, value: str) -> list[int]:
        if ":" in value:
            return self._match_ip(value)
        hit = self._exact["ip"].get(value)
        out = [] if hit is None else [hit] if hit.__class__ is int else list(hit)
        if self._v4.ranges:
            try:
                x = _from_bytes(_aton(value), "big")
            except (OSError, ValueError):  # not an address, or a NUL or lone surrogate in the text
                return out
            out.extend(self._v4.find(x))
        return out

    def _match_url(self, value: str) -> list[int]:
        hit = self._exact["url"].get(canonical_url(value))
        if hit is None:
            return []
        return [hit] if hit.__class__ is int else list(hit)

    def _match_kind(self, kind: str, value: str) -> Iterable[int]:
        if kind == "ip":
            return self._match_ip(value)
        if kind == "domain":
            return self._match_domain(value)
        if kind == "url":
            return _ids(self._exact["url"].get(canonical_url(value)))
        if kind == "file":
            name = value.replace("\\", "/").rsplit("/", 1)[-1].lower()
            return _ids(self._exact["file"].get(name))
        if kind == "cve":
            return _ids(self._exact["cve"].get(value.upper()))
        if kind == "x509" or kind == "subject":
            return _ids(self._exact[kind].get(value))
        return _ids(self._exact[kind].get(value.lower()))

    def _match_ip(self, value: str) -> list[int]:
        out = list(_ids(self._exact["ip"].get(value)))
        if ":" in value:
            try:
                ip6 = ipaddress.ip_address(value)
            except ValueError:
                return out
            canon = str(ip6)
            if canon != value:
                out.extend(_ids(self._exact["ip"].get(canon)))
            if self._v6.ranges:
                out.extend(self._v6.find(int(ip6)))
            return out
        if self._v4.ranges:
            try:
                x = _from_bytes(_aton(value), "big")
            except (OSError, ValueError):
                return out
            out.extend(self._v4.find(x))
        return out

    def _match_domain(self, value: str) -> list[int]:
        """The domain and every parent suffix (one lookup per label, skipping label counts no indexed
        domain has)."""
        v = value.lower()
        if v.endswith("."):
            v = v[:-1]
        out: list[int] = []
        if self._domain_exact:
            out.extend(_ids(self._domain_exact.get(v)))
        exact = self._exact["domain"]
        dots = v.count(".")
        for level in self._dot_levels:
            if level <= dots:
                found = exact.get(v if level == dots else v.split(".", dots - level)[-1])
                if found is not None:
                    out.extend(_ids(found))
        return out

    def match_many(self, observables: Iterable[tuple[str, str]], now: int | None = None) -> list[list[int]]:
        """One list of ids per ``(type, value)`` pair, in order: the same answers as :meth:`match`. With
        the compiled build, one pass in C reads the batch and probes the filter (:meth:`_match_scanned`);
        without it, a batch is grouped by type, each group goes through ``map`` calls that run in C and
        all their keys through one filter pass in numpy (:meth:`_match_grouped`). Either way Python code
        runs per group and per hit (or false positive), not per observable. A miss is a shared empty list:
        do not mutate the lists returned."""
        if self._regex:
            match = self.match
            return [match(t, v, now) for t, v in observables]
        obs = observables if isinstance(observables, list) else list(observables)
        hits: Iterable[int]
        if _scan is not None and obs:  # compiled: cheaper than one by one from a single observable
            out, hits = self._match_scanned(obs, _scan)
        elif len(obs) < _SMALL_BATCH:
            fast = self._fast
            none: list[int] = []
            out = [fn(v) if (fn := fast.get(t)) is not None else none for t, v in obs]
            hits = compress(range(len(out)), out)
        else:
            out, hits = self._match_grouped(obs)
        if now is not None and self._expires:
            exp = self._expires
            for k in hits:
                out[k] = [i for i in out[k] if exp.get(i, now) >= now]
        return out

    def _match_scanned(self, obs: list[tuple[str, str]], scan: _ScanFn) -> tuple[list[list[int]], list[int]]:
        """:meth:`_match_grouped` with the per-observable work compiled: one pass in C reads each
        observable, computes its keys as the plans do and probes the filter with them, and hands back the
        keys it lets through, the addresses that may be in a range, and the observables it does not read
        (other types, non-ASCII text, odd addresses and URLs), which go one by one. Python runs only for
        those, so a batch costs little more than its hits."""
        flt = self._current_filter()
        v4 = self._v4
        if v4.ranges and v4.dirty:
            v4.build()
        candidates, range_pos, range_addr, others = scan(
            obs,
            flt.words,
            int(flt.shift),
            self._dot_levels,
            bool(self._domain_exact),
            v4.bucket_any if v4.ranges else None,
            v4.shift,
        )
        found: dict[int, list[int]] = {}
        dicts = self._scan_dicts
        for k, d, key in candidates:
            hit = dicts[d].get(key)
            if hit is not None:  # else a false positive of the filter
                add_hit(found, k, hit)
        if range_pos:
            for j, more in v4.find_batch(np.array(range_addr, np.int64)):
                k = range_pos[j]
                if k in found:
                    found[k].extend(more)
                else:
                    found[k] = list(more)
        fast = self._fast
        for k in others:
            obs_type, value = obs[k]
            fn = fast.get(obs_type)
            if fn is not None and (ids := fn(value)):
                found[k] = ids
        out: list[list[int]] = [[]] * len(obs)
        for k, ids in found.items():
            out[k] = ids
        return out, list(found)

    def _match_grouped(self, obs: list[tuple[str, str]]) -> tuple[list[list[int]], list[int]]:
        """Split the batch by type, let each group add the exact lookups it needs to one :class:`Probe`
        (or match one by one, for the rarer types), then run them all through the filter at once. Returns
        the answers and the positions of the non-empty ones, for the expiry check to visit only those."""
        probe = Probe(self._current_filter())
        found: dict[int, list[int]] = {}
        after: _After = []  # ids found apart, to follow those of the probe
        for obs_type, where, group in _by_type(obs):
            plan = self._plans.get(obs_type)
            if plan is not None:
                plan(where, group, probe, found, after)
                continue
            fn = self._fast.get(obs_type)
            if fn is not None:
                for j, ids in self._one_by_one(fn, group):
                    found[where[j]] = ids
        probe.run(found)
        for k, more in after:
            if k in found:
                found[k].extend(more)
            else:
                found[k] = list(more)
        out: list[list[int]] = [[]] * len(obs)
        for k, ids in found.items():
            out[k] = ids
        return out, list(found)

    def _build_plans(self) -> dict[str, _Plan]:
        """Batch planners of the common observable types: each adds the exact lookups of its group to the
        probe (and puts what it finds otherwise in ``found``, or ``after`` when it follows them)."""
        hashes = self._exact["hash"]
        urls = self._exact["url"]

        def hash_plan(where: Sequence[int], values: list[str], probe: Probe, *_: Any) -> None:
            probe.add(_lowered(values), where, hashes)

        def url_plan(where: Sequence[int], values: list[str], probe: Probe, *_: Any) -> None:
            probe.add(canonical_urls(values), where, urls)

        plans: dict[str, _Plan] = {
            "md5": hash_plan,
            "sha1": hash_plan,
            "sha256": hash_plan,
            "url": url_plan,
        }
        plans["ipv4"] = self._ipv4_plan
        plans["domain"] = plans["host"] = self._domain_plan
        return plans

    def _ipv4_plan(
        self,
        where: Sequence[int],
        values: list[str],
        probe: Probe,
        found: dict[int, list[int]],
        after: _After,
    ) -> None:
        """The whole group read by ``inet_aton`` into one array, then the exact addresses through the
        filter (by value: an address equal to a key has the key's value) and the ranges. The values it
        cannot read (IPv6 addresses among them) go one by one."""
        addresses, read = ipv4_addresses(values)
        if read is not None:
            for j in sorted(set(range(len(values))).difference(read)):
                if ids := self._match_ipv4(values[j]):
                    found[where[j]] = ids
            values, where = _pick(values, read), _pick(where, read)
            if not values:
                return
        exact = self._exact["ip"]
        for j in probe.filter.candidates(mix_addresses(addresses)):
            hit = exact.get(values[j])
            if hit is not None:
                found[where[j]] = [hit] if hit.__class__ is int else list(hit)
        if self._v4.ranges:
            after += [(where[j], ids) for j, ids in self._v4.find_batch(addresses)]

    def _domain_plan(self, where: Sequence[int], values: list[str], probe: Probe, *_: Any) -> None:
        """:meth:`_match_domain` for a group: names grouped by their number of dots, so that each parent
        level worth a lookup is reached by ``partition`` calls over the whole group at once."""
        joined = "\n".join(values)
        names = values
        if joined.lower() != joined:  # one pass tells whether any needs lowering (most do not)
            names = list(map(str.lower, values))
            joined = "\n".join(names)
        if joined.endswith(".") or ".\n" in joined:  # some end with a dot (or hold a newline): strip one
            names = [n[:-1] if n.endswith(".") else n for n in names]
        if self._domain_exact:
            probe.add(names, where, self._domain_exact)
        counts = np.fromiter(map(str.count, names, repeat(".")), np.intp, len(names))
        levels = self._dot_levels
        exact = self._exact["domain"]
        fewest, most = counts.min(), counts.max()
        groups: list[tuple[int, list[str], Sequence[int]]] = [(int(most), names, where)]
        if fewest != most:  # names with different numbers of dots: one group for each number
            groups.clear()
            for dots in np.unique(counts).tolist():
                which = np.flatnonzero(counts == dots).tolist()
                groups.append((dots, _pick(names, which), _pick(where, which)))
        for dots, suffixes, positions in groups:
            at = dots  # the dots left in each of the suffixes
            for level in levels:
                if level > dots:
                    continue
                while at > level:
                    suffixes = list(map(_after, map(str.partition, suffixes, repeat("."))))
                    at -= 1
                probe.add(suffixes, positions, exact)

    @staticmethod
    def _one_by_one(fn: Callable[[str], list[int]], values: list[str]) -> list[tuple[int, list[int]]]:
        return [(j, ids) for j, value in enumerate(values) if (ids := fn(value))]
