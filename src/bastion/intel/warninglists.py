"""MISP warning lists: known-benign values (public resolvers, CDN ranges, top sites, empty-file hashes).

A value on a warning list is marked known-benign, and enrichment does not raise severity for it. The
lists are read from the MISP ``lists/*/list.json`` layout. CIDR lists go into the same range structure as
the indicator matcher; ``hostname`` lists match a domain and its subdomains; ``string`` lists match
exactly (case-insensitive); ``substring`` lists use one Aho-Corasick automaton; ``regex`` lists are
compiled once. Loading all ~530k entries takes a second or two, so one instance is shared per process.
"""

from __future__ import annotations

import ipaddress
import re
import threading
from pathlib import Path
from socket import inet_ntoa
from typing import Any

import ahocorasick
import orjson

from bastion.intel.ipranges import ip_range
from bastion.intel.matcher import Matcher
from bastion.intel.normalize import classify
from bastion.model.intel import IndicatorType

__all__ = ["WarningList", "WarningLists", "default_path", "shared_warninglists"]

_ROOT = Path(__file__).resolve().parents[3]


class WarningList:
    def __init__(self, name: str, description: str, kind: str, size: int) -> None:
        self.name = name
        self.description = description
        self.type = kind
        self.size = size

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.type, "description": self.description}


def default_path(configured: str | None = None) -> Path | None:
    """The warning-list folder: the configured one, else ``../shared/data/misp-warninglists`` from the
    working directory or the project root."""
    candidates = [Path(configured)] if configured else []
    candidates += [
        Path.cwd().parent / "shared" / "data" / "misp-warninglists",
        _ROOT.parent / "shared" / "data" / "misp-warninglists",
    ]
    for c in candidates:
        if (c / "lists").is_dir() or (c.is_dir() and any(c.glob("*/list.json"))):
            return c
    return None


class WarningLists:
    """Every loaded list, matchable by value."""

    def __init__(self) -> None:
        self.lists: list[WarningList] = []
        self._matcher = Matcher()
        self._strings: dict[str, list[int]] = {}
        self._substrings: Any = ahocorasick.Automaton()
        self._has_substrings = False
        self._regex: list[tuple[int, re.Pattern[str]]] = []

    @classmethod
    def load(cls, path: Path) -> WarningLists:
        wl = cls()
        root = path / "lists" if (path / "lists").is_dir() else path
        for file in sorted(root.glob("*/list.json")):
            try:
                doc = orjson.loads(file.read_bytes())
            except orjson.JSONDecodeError:
                continue
            wl.add(file.parent.name, doc)
        if wl._has_substrings:
            wl._substrings.make_automaton()
        return wl

    def add(self, name: str, doc: dict[str, Any]) -> None:
        kind = str(doc.get("type", "string"))
        entries = [str(v).strip() for v in doc.get("list") or () if str(v).strip()]
        ident = len(self.lists)
        self.lists.append(WarningList(name, str(doc.get("description", "")), kind, len(entries)))
        m = self._matcher
        for v in entries:
            if kind == "cidr":
                found = ip_range(v)
                if found is None:
                    continue
                version, first, last = found
                if first == last:  # one address: an exact value, the faster lookup
                    if version == 4:
                        m.add(ident, IndicatorType.IPV4, inet_ntoa(first.to_bytes(4, "big")))
                    else:
                        m.add(ident, IndicatorType.IPV6, str(ipaddress.IPv6Address(first)))
                else:
                    m.add_range(ident, version, first, last)
            elif kind == "hostname":
                m.add(ident, IndicatorType.DOMAIN, v.lower().strip(".").removeprefix("*."))
            elif kind == "substring":
                key = v.lower()
                found = self._substrings.get(key, None)
                self._substrings.add_word(key, (found or ()) + (ident,))
                self._has_substrings = True
            elif kind == "regex":
                try:
                    self._regex.append((ident, re.compile(v.strip("/"), re.IGNORECASE)))
                except re.error:
                    continue
            else:
                self._strings.setdefault(v.lower(), []).append(ident)

    def check(self, value: str, obs_type: str | None = None) -> list[WarningList]:
        """The lists that contain ``value``."""
        v = value.strip()
        kind = obs_type or (classify(v) or "")
        kind = getattr(kind, "value", kind)
        hits: set[int] = set(self._strings.get(v.lower(), ()))
        if kind in ("ipv4", "ipv6"):
            hits.update(self._matcher.match(kind, v))
        elif kind in ("domain", "host"):
            hits.update(self._matcher.match("domain", v))
        elif kind == "url":
            try:
                from urllib.parse import urlsplit

                host = urlsplit(v).hostname or ""
            except ValueError:
                host = ""
            if host:
                hits.update(self._matcher.match("domain", host))
                hits.update(self._strings.get(host, ()))
        if self._has_substrings:
            for _end, idents in self._substrings.iter(v.lower()):
                hits.update(idents)
        for ident, rx in self._regex:
            if rx.search(v):
                hits.add(ident)
        return [self.lists[i] for i in sorted(hits)]


_lock = threading.Lock()
_shared: dict[str, WarningLists] = {}


def shared_warninglists(configured: str | None = None) -> WarningLists:
    """The process-wide instance for the configured folder (empty when no folder is found)."""
    path = default_path(configured)
    key = str(path)
    with _lock:
        wl = _shared.get(key)
        if wl is None:
            wl = WarningLists.load(path) if path else WarningLists()
            _shared[key] = wl
        return wl
