"""The in-memory indicator matcher: observables in, matching indicator ids out.

Written here rather than taken from a library because no library combines what the hot path needs for
millions of indicators in one process: exact values in hash sets (one dict per kind, a value maps to one
id or a tuple of ids to keep memory down), CIDR ranges flattened into disjoint segments searched with
``bisect`` (nested and overlapping ranges all match), domains matched on every parent suffix (one dict
probe per label), URLs compared in canonical form, and the few regular-expression indicators (STIX
``MATCHES``) tried last. Changes are applied incrementally (:meth:`Matcher.add`, :meth:`Matcher.remove`);
the CIDR segments are rebuilt lazily on the next lookup after a range changed.

Ids are small integers (the store's row keys), so the matcher holds no indicator documents.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from bisect import bisect_right
from collections.abc import Callable, Iterable
from typing import Any

from bastion.intel.normalize import InvalidIndicator, normalize_url
from bastion.model.intel import IndicatorType

__all__ = ["Matcher", "ip_range", "observable_kinds"]

_T = IndicatorType
_HASHES = frozenset({_T.MD5, _T.SHA1, _T.SHA256})
_IPS = frozenset({_T.IPV4, _T.IPV6})
_NO_IDS: tuple[int, ...] = ()
_aton = socket.inet_aton
_FAST_CODES = {"md5": 1, "sha1": 1, "sha256": 1, "ipv4": 2, "domain": 3, "host": 3, "url": 4}
_from_bytes = int.from_bytes

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


def _put(d: dict[str, Any], key: str, ident: int) -> None:
    cur = d.get(key)
    if cur is None:
        d[key] = ident
    elif isinstance(cur, int):
        if cur != ident:
            d[key] = (cur, ident)
    elif ident not in cur:
        d[key] = (*cur, ident)


def _drop(d: dict[str, Any], key: str, ident: int) -> None:
    cur = d.get(key)
    if cur is None:
        return
    if isinstance(cur, int):
        if cur == ident:
            del d[key]
        return
    rest = tuple(i for i in cur if i != ident)
    if not rest:
        del d[key]
    else:
        d[key] = rest[0] if len(rest) == 1 else rest


_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4 = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}")


def _ipv4_int(text: str) -> int | None:
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
        n = _ipv4_int(addr)
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


def _ids(found: Any) -> tuple[int, ...]:
    if found is None:
        return _NO_IDS
    return (found,) if isinstance(found, int) else found


class _Ranges:
    """CIDR ranges of one address family as disjoint segments: ``starts[k]`` begins segment k, whose
    matching ids are ``ids[k]`` (empty for a gap)."""

    def __init__(self) -> None:
        self.ranges: dict[tuple[int, int], Any] = {}
        self.starts: list[int] = []
        self.ids: list[tuple[int, ...]] = []
        self.dirty = False

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
        seg_ids: list[tuple[int, ...]] = []
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
            if seg_ids and seg_ids[-1] == current:
                continue
            starts.append(pos)
            seg_ids.append(current)
        self.starts = starts
        self.ids = seg_ids
        self.dirty = False

    def find(self, x: int) -> tuple[int, ...]:
        if self.dirty:
            self.build()
        k = bisect_right(self.starts, x) - 1
        return self.ids[k] if k >= 0 else _NO_IDS


class Matcher:
    """All indicators of one tenant (or the warning lists), ready to match."""

    def __init__(self) -> None:
        self._exact: dict[str, dict[str, Any]] = {kind: {} for kind in set(_KIND_OF.values())}
        self._domain_exact: dict[str, Any] = {}
        self._v4 = _Ranges()
        self._v6 = _Ranges()
        self._regex: dict[int, tuple[str, re.Pattern[str]]] = {}
        self._expires: dict[int, int] = {}
        self.count = 0
        self._fast = self._build_fast()

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
            try:
                self._regex[ident] = (_KIND_OF.get(kind, "file"), re.compile(value, re.IGNORECASE))
            except re.error:
                _put(self._exact[_KIND_OF.get(kind, "file")], value, ident)
            return
        if kind is _T.CIDR:
            found = ip_range(value)
            if found is None:
                raise ValueError(f"not an IP range: {value!r}")
            self.add_range(ident, *found)
            return
        if kind is _T.DOMAIN and exact:
            _put(self._domain_exact, value, ident)
            return
        _put(self._exact[_KIND_OF[kind]], value, ident)

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
        _drop(self._exact[_KIND_OF[kind]], value, ident)

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
        hit = self._exact["ip"].get(value)
        out = [] if hit is None else [hit] if hit.__class__ is int else list(hit)
        ranges = self._v4
        if ranges.ranges:
            if ":" in value:
                return self._match_ip(value)
            try:
                x = _from_bytes(_aton(value), "big")
            except OSError:
                return out
            if ranges.dirty:
                ranges.build()
            k = bisect_right(ranges.starts, x) - 1
            if k >= 0:
                ids = ranges.ids[k]
                if ids:
                    out.extend(ids)
        return out

    def _match_url(self, value: str) -> list[int]:
        hit = self._exact["url"].get(_canonical_url(value))
        if hit is None:
            return []
        return [hit] if hit.__class__ is int else list(hit)

    def _match_kind(self, kind: str, value: str) -> Iterable[int]:
        if kind == "ip":
            return self._match_ip(value)
        if kind == "domain":
            return self._match_domain(value)
        if kind == "url":
            return _ids(self._exact["url"].get(_canonical_url(value)))
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
                x = int.from_bytes(socket.inet_aton(value), "big")
            except OSError:
                return out
            out.extend(self._v4.find(x))
        return out

    def _match_domain(self, value: str) -> list[int]:
        v = value.lower()
        if v.endswith("."):
            v = v[:-1]
        exact = self._exact["domain"]
        out: list[int] = []
        if self._domain_exact:
            out.extend(_ids(self._domain_exact.get(v)))
        found = exact.get(v)
        if found is not None:
            out.extend(_ids(found))
        i = v.find(".")
        while i >= 0:
            found = exact.get(v[i + 1 :])
            if found is not None:
                out.extend(_ids(found))
            i = v.find(".", i + 1)
        return out

    def match_many(self, observables: Iterable[tuple[str, str]], now: int | None = None) -> list[list[int]]:
        """One list of ids per ``(type, value)`` pair, in order: the same answers as :meth:`match`, with
        the common types (hashes, IPv4, domains, URLs) inlined in one loop for batches. A miss is a
        shared empty list: do not mutate the lists returned."""
        if self._regex:
            match = self.match
            return [match(t, v, now) for t, v in observables]
        obs = observables if isinstance(observables, list) else list(observables)
        none: list[int] = []
        out: list[list[int]] = [none] * len(obs)
        code = _FAST_CODES.get
        fast = self._fast
        hashes = self._exact["hash"].get
        ips = self._exact["ip"].get
        domains = self._exact["domain"].get
        urls = self._exact["url"].get
        v4 = self._v4
        if v4.dirty:
            v4.build()
        starts, seg_ids, have_ranges = v4.starts, v4.ids, bool(v4.ranges)
        exact_domains = bool(self._domain_exact)
        for k, (t, v) in enumerate(obs):
            c = code(t, 0)
            if c == 1:  # md5 / sha1 / sha256
                hit = hashes(v.lower())
                if hit is not None:
                    out[k] = [hit] if hit.__class__ is int else list(hit)
            elif c == 2:  # ipv4
                if ":" in v:
                    out[k] = self._match_ip(v)
                    continue
                hit = ips(v)
                found = none if hit is None else [hit] if hit.__class__ is int else list(hit)
                if have_ranges:
                    try:
                        x = _from_bytes(_aton(v), "big")
                    except OSError:
                        out[k] = found
                        continue
                    j = bisect_right(starts, x) - 1
                    if j >= 0 and seg_ids[j]:
                        found = [*found, *seg_ids[j]]
                out[k] = found
            elif c == 3:  # domain / host
                if exact_domains:
                    out[k] = self._match_domain(v)
                    continue
                d = v.lower()
                if d.endswith("."):
                    d = d[:-1]
                found = none
                hit = domains(d)
                if hit is not None:
                    found = [hit] if hit.__class__ is int else list(hit)
                i = d.find(".")
                while i >= 0:
                    hit = domains(d[i + 1 :])
                    if hit is not None:
                        found = [*found, *_ids(hit)]
                    i = d.find(".", i + 1)
                out[k] = found
            elif c == 4:  # url
                hit = urls(_canonical_url(v))
                if hit is not None:
                    out[k] = [hit] if hit.__class__ is int else list(hit)
            else:
                fn = fast.get(t)
                if fn is not None:
                    out[k] = fn(v)
        if now is not None and self._expires:
            exp = self._expires
            for k, found in enumerate(out):
                if found:
                    out[k] = [i for i in found if exp.get(i, now) >= now]
        return out


def _canonical_url(value: str) -> str:
    """The canonical form of a URL with string operations only (the common case); odd URLs go the long
    way through :func:`normalize_url`."""
    i = value.find("://")
    if i < 0 or "@" in value or "%" in value:
        try:
            return normalize_url(value)
        except InvalidIndicator:
            return value
    j = value.find("/", i + 3)
    head = (value if j < 0 else value[:j]).lower()
    rest = "/" if j < 0 else value[j:]
    k = rest.find("#")
    if k >= 0:
        rest = rest[:k] or "/"
    if head.endswith(":80") and head.startswith("http:"):
        head = head[:-3]
    elif head.endswith(":443") and head.startswith("https:"):
        head = head[:-4]
    if head.endswith("."):
        head = head[:-1]
    if rest.startswith("?"):
        rest = "/" + rest
    return head + rest
