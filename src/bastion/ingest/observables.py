"""Observable extraction: the typed values (IPs, domains, URLs, e-mails, hashes, users, hosts, paths,
process names, registry keys) of a normalized :class:`Event`, for intel matching, enrichment and pivots.

:func:`extract_observables` reads the structured fields every normalizer fills, plus free text: the
message, command lines, a few Windows EventData text fields (script blocks, task XML, DNS answers...),
ECS ``related.*``, OCSF ``observables`` and, for text formats (CEF, syslog), the raw line. Free text is
refanged first (:func:`refang`) and capped at :data:`MAX_TEXT` characters; per-text results are cached,
since command lines repeat. Each observable keeps the Event field it came from; duplicates by
(type, value) are dropped, first field wins.

Decisions, so every source agrees:

* users are the lower-cased account name without its domain (``CORP\\Alice`` -> ``alice``): domains are
  spelt differently by different sources (``CORP`` / ``corp.local``), the account name is the join key
  with the directory. A UPN / e-mail name gives an ``email`` and its local part as the user. Windows
  placeholders (``-``), SIDs and the built-in service accounts (SYSTEM, LOCAL SERVICE, ...) are skipped.
* IPs are canonical (IPv6 compressed, ``::ffff:a.b.c.d`` read as IPv4). Loopback, unspecified
  (``0.0.0.0``, ``::``), broadcast and multicast addresses are skipped: they never identify a host
  across events. Private and link-local addresses are kept (asset matching needs them).
* domains must end in a TLD from IANA's list (``tlds.txt``) or a special-use one that documentation
  and test data use (``.test``, ``.example``, ``.invalid``; not ``.localhost``). In free text the name
  must be a maximal dotted token, not part of a path, not a ``$variable.member`` nor a ``Mixed.Case``
  .NET name; a TLD that is also a file extension (``.zip``, ``.py``, ``.sh``, ``.example``...) needs a
  ``www.`` start, one that is also a common member name (``.name``, ``.id``, ``.data``...) three labels
  or more. ``cmd.exe`` and ``kernel32.dll`` never end in a TLD at all. URL and e-mail hosts and
  structured fields accept every TLD. A host field (endpoint, device) gives a ``host``, plus a
  ``domain`` when it has a known TLD.
* hosts, domains, e-mails, hashes and process names are lower-cased; paths, URLs and registry keys keep
  their case.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from importlib import resources
from typing import Any

from bastion.ingest.normalize.generic import get_path
from bastion.ingest.normalize.windows import (
    HOST_FIELDS,
    SYSMON,
    SYSMON_EXTRA_FIELDS,
    TEXT_FIELDS,
    USER_FIELDS,
    event_data,
    split_user,
)
from bastion.model import Endpoint, Event, EventClass, Observable, ObservableType, Process

__all__ = ["MAX_TEXT", "extract_observables", "refang", "scan_text"]

T = ObservableType
MAX_TEXT = 64 * 1024  # free text beyond this is not scanned
_CACHE_MAX = 8192
_CACHE_TEXT_MAX = 2048  # longer texts are memoized apart (_long_memo)
_LONG_MEMO_CHARS = 4 * 1024 * 1024  # the characters that memo holds at most


def _load_tlds() -> frozenset[str]:
    """IANA's root zone TLDs, from the package's ``tlds.txt`` (one per line, ``#`` comments)."""
    text = resources.files("bastion.ingest").joinpath("tlds.txt").read_text(encoding="utf-8")
    return frozenset(line.strip().lower() for line in text.splitlines() if line.strip()[:1] not in ("", "#"))


# RFC 2606 / RFC 6761 special-use TLDs that documentation and test data use (not ``localhost``). Never
# real hosts, and ``x.example`` / ``x.test`` are also file names, so free text needs a ``www.`` start.
_SPECIAL_USE_TLDS = frozenset({"test", "example", "invalid"})
_TLDS = _load_tlds() | _SPECIAL_USE_TLDS
# TLDs that are also common file extensions: in free text ``x.zip`` is a file, not a domain.
# fmt: off
_FILE_TLDS = _SPECIAL_USE_TLDS | frozenset({
    "ai", "app", "cab", "cc", "fish", "hiv", "java", "map", "md", "mk", "ml", "mm", "mov", "one", "pl", "pm",
    "properties", "ps", "pub", "py", "rs", "run", "sh", "so", "target", "website", "zip",
})
# TLDs that are also common member names (``vdir.name``, ``user.id``): in free text only with 3+ labels.
_CODE_TLDS = frozenset({
    "call", "click", "data", "date", "global", "help", "host", "id", "link", "name", "new", "next", "now",
    "open", "play", "read", "save", "select", "show",
})
_SKIP_USERS = frozenset({
    "system", "local service", "network service", "anonymous logon", "localsystem", "localservice",
    "networkservice", "-", "n/a", "null", "(null)", "unknown",
})
# fmt: on
_HASH_BY_LEN = {32: T.MD5, 40: T.SHA1, 64: T.SHA256}

# ------------------------------------------------------------------------------------------------ refang

_DEFANG = re.compile(
    r"[\[({](?:\.|[dD][oO][tT]|@|[aA][tT])[\])}]"
    r"|\[(?::|://|/)\]"
    r"|[hH][xX*]{2}[pP][sS]?(?=:|\[:)"
    r"|[fF][xX][pP][sS]?(?=:|\[:)"
)
# fmt: off
_DEFANG_MARKS = ("[.]", "(.)", "{.}", "[dot]", "(dot)", "{dot}", "[:]", "[://]", "[/]", "[@]", "(@)", "{@}",
                 "[at]", "(at)", "{at}", "xxp", "x*p", "*xp", "**p", "fxp")
# fmt: on


def _fang(match: re.Match[str]) -> str:
    text = match.group().lower()
    head = text[0]
    if head == "h":
        return "http" + text[4:]  # hxxps -> https
    if head == "f":
        return "ftp" + text[3:]
    inner = text[1:-1]
    if inner in (".", "dot"):
        return "."
    if inner in ("@", "at"):
        return "@"
    return inner


def refang(text: str) -> str:
    """Undo the usual defanging: ``hxxp(s)``/``h**p(s)``, ``fxp``, ``[.]``/``(.)``/``{.}``/``[dot]``/
    ``(dot)``, ``[:]``, ``[://]``, ``[/]``, ``[@]``/``(at)``/``[at]`` (any case)."""
    lowered = text.lower()
    for mark in _DEFANG_MARKS:
        if mark in lowered:
            return _DEFANG.sub(_fang, text)
    return text


# ------------------------------------------------------------------------------------------------ values

Pairs = tuple[tuple[ObservableType, str], ...]
_IPV4 = re.compile(r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?:\.(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}")
_HOSTNAME = re.compile(r"(?:[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9])?\.)*[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9])?")
_HEX = re.compile(r"[0-9a-f]+")


def _ip(value: str) -> tuple[ObservableType, str] | None:
    """(ipv4|ipv6, canonical form) of an address; None for junk (loopback, unspecified, broadcast,
    multicast) and for non-addresses."""
    text = value.strip().strip("[]")
    if _IPV4.fullmatch(text):
        first = int(text[: text.index(".")])
        if first == 127 or first == 0 or 224 <= first <= 239 or text == "255.255.255.255":
            return None
        return T.IPV4, text
    if ":" not in text:
        return None
    try:
        addr = ipaddress.IPv6Address(text.partition("%")[0])
    except ValueError:
        return None
    mapped = addr.ipv4_mapped
    if mapped is not None:
        return _ip(str(mapped))
    if addr.is_loopback or addr.is_unspecified or addr.is_multicast:
        return None
    return T.IPV6, addr.compressed


def _domain(name: str, *, free_text: bool = False) -> str | None:
    """The lower-cased domain if ``name`` is a hostname under a public TLD, else None."""
    name = name.lower().rstrip(".")
    dot = name.rfind(".")
    if dot <= 0 or len(name) > 253:
        return None
    tld = name[dot + 1 :]
    if tld not in _TLDS or not _HOSTNAME.fullmatch(name):
        return None
    if free_text and (
        (tld in _FILE_TLDS and not name.startswith("www.")) or (tld in _CODE_TLDS and name.count(".") < 2)
    ):
        return None
    return name


def _name(host: str, *, as_host: bool) -> Pairs:
    """A host name or address: its ip; else its domain (and, from a host field, the host); else a host.
    Junk addresses and non-names give nothing."""
    ip = _ip(host)
    if ip is not None:
        return (ip,)
    lowered = host.strip().lower().rstrip(".")
    if (
        not lowered
        or len(lowered) > 253
        or lowered == "localhost"
        or (lowered[0].isdigit() and _IPV4.fullmatch(lowered))
        or not _HOSTNAME.fullmatch(lowered)
    ):
        return ()
    domain = _domain(lowered)
    if domain is None:
        return ((T.HOST, lowered),)
    return ((T.HOST, lowered), (T.DOMAIN, domain)) if as_host else ((T.DOMAIN, domain),)


def _url_host(url: str) -> str:
    rest = url.partition("://")[2]
    end = len(rest)
    for ch in "/?#\\":
        i = rest.find(ch)
        if 0 <= i < end:
            end = i
    host = rest[:end].rpartition("@")[2]
    if host.startswith("["):
        return host[1:].partition("]")[0]
    return host.partition(":")[0]


def _user(name: str) -> Pairs:
    name = name.strip()
    if "\\" in name:
        name = split_user(name)[0]
    lowered = name.lower()
    if (
        not lowered
        or lowered in _SKIP_USERS
        or lowered.startswith("s-1-")
        or not any(ch.isalnum() for ch in lowered)
    ):
        return ()
    if "@" in lowered:
        local, _, host = lowered.rpartition("@")
        if local and _domain(host) is not None:
            return ((T.EMAIL, lowered), (T.USER, local))
    return ((T.USER, lowered),)


def _basename(path: str) -> str:
    return path.rpartition("\\")[2].rpartition("/")[2]


def _image(path: str) -> Pairs:
    if path in ("-", ""):
        return ()
    name = _basename(path).lower()
    return ((T.FILE_PATH, path), (T.PROCESS_NAME, name)) if name else ((T.FILE_PATH, path),)


def _hash(kind: ObservableType | None, value: str) -> Pairs:
    value = value.strip().lower()
    if kind is None:
        kind = _HASH_BY_LEN.get(len(value))
    if kind is None or len(value) != _HASH_LEN[kind] or not _HEX.fullmatch(value):
        return ()
    return ((kind, value),)


def _url(url: str) -> Pairs:
    url = refang(url.strip())
    if "://" not in url:
        return ()
    return ((T.URL, url), *_name(_url_host(url), as_host=False))


_HASH_LEN = {T.MD5: 32, T.SHA1: 40, T.SHA256: 64}

# ------------------------------------------------------------------------------------------------ free text

_URL = re.compile(r"\b(?:https?|ftp|sftp|wss?)://[^\s\"'<>`^{}|\\]+", re.IGNORECASE)
_EMAIL = re.compile(r"(?<![\w.%+-])[A-Za-z0-9][\w.%+-]{0,63}@(?:[A-Za-z0-9-]{1,63}\.)+[A-Za-z]{2,24}\b")
_IPV4_TEXT = re.compile(r"(?<![\w.])" + _IPV4.pattern + r"(?!\.?\d|\w)")
_IPV6_TEXT = re.compile(
    r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9A-Fa-f]{1,4}|\d{1,3}(?:\.\d{1,3}){3})?(?![\w:]|\.\d)"
)
_DOMAIN_TEXT = re.compile(
    r"(?<![\w.@$%-])[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+"
    r"(?![\w-]|\.\w|\()"
)
_HASH_TEXT = re.compile(r"[0-9A-Fa-f]{32,64}")
# Cheap literal-led prefilters: most command lines hold no dotted quad and no public-TLD-looking suffix.
_IPV4_HINT = re.compile(r"\.\d{1,3}\.\d")
_IPV6_HINT = re.compile(r":[0-9A-Fa-f]{1,4}:")
_TLD_HINT = re.compile(r"\.([A-Za-z]{2,24})(?![\w-])")
_URL_TRAIL = ".,;:!?'\")]}>"


def _mixed_case(label: str) -> bool:
    return not (label.islower() or label.isupper() or label.isdigit())


def _has_tld(text: str) -> bool:
    for match in _TLD_HINT.finditer(text):
        tld = match.group(1).lower()
        if tld in _TLDS and (tld not in _FILE_TLDS or "www." in text):
            return True
    return False


def _scan(text: str) -> Pairs:
    text = refang(text)
    found: list[tuple[ObservableType, str]] = []
    add = found.append
    if "://" in text:
        for match in _URL.finditer(text):
            found.extend(_url(match.group().rstrip(_URL_TRAIL)))
    if "@" in text:
        for match in _EMAIL.finditer(text):
            email = match.group().lower()
            domain = _domain(email.rpartition("@")[2])
            if domain is not None:
                add((T.EMAIL, email))
                add((T.DOMAIN, domain))
    if _IPV4_HINT.search(text):
        for match in _IPV4_TEXT.finditer(text):
            value = match.group()
            ip = _ip(value)
            if ip is not None and not value.endswith(".0.0"):  # x.y.0.0 is a version or a network
                add(ip)
    if _has_tld(text):
        for match in _DOMAIN_TEXT.finditer(text):
            start = match.start()
            if start and text[start - 1] in "\\/" and text[start - 2 : start] not in ("\\\\", "//"):
                continue  # a path component, not a host (UNC \\host and //host are fine)
            candidate = match.group()
            if any(_mixed_case(label) for label in candidate.split(".")):
                continue  # System.Net, $obj.Name: code, not a host
            domain = _domain(candidate, free_text=True)
            if domain is not None:
                add((T.DOMAIN, domain))
    if "::" in text or _IPV6_HINT.search(text):
        for match in _IPV6_TEXT.finditer(text):
            value = match.group()
            if len(value) >= 6:
                ip = _ip(value)
                if ip is not None:
                    add(ip)
    if len(text) >= 32:
        for match in _HASH_TEXT.finditer(text):
            start, end = match.span()
            if start and (text[start - 1].isalnum() or text[start - 1] == "_"):
                continue  # part of a longer word (base64, identifiers), not a hash
            if end < len(text) and (text[end].isalnum() or text[end] == "_"):
                continue
            value = match.group().lower()
            kind = _HASH_BY_LEN.get(len(value))
            if kind is not None and not value.isdigit() and len(set(value)) > 4:
                add((kind, value))
    return tuple(dict.fromkeys(found))


def scan_text(text: str) -> Pairs:
    """(type, value) pairs found in free ``text`` (refanged, first :data:`MAX_TEXT` characters)."""
    return _pairs(_K_TEXT, text)


# ------------------------------------------------------------------------------------------------ memo

# What a field's value is; each kind has one pure function from the value to its (type, value) pairs,
# and results are memoized: paths, users, hosts and command lines repeat across events.
_JA3 = re.compile(r"[0-9a-fA-F]{32}")
_JA4 = re.compile(r"[tqd]\d{2}[di]\d{4}[0-9a-zA-Z]{2}_[0-9a-fA-F]{12}_[0-9a-fA-F]{12}")
_K_TEXT, _K_ADDR, _K_NAME, _K_DEVICE, _K_USER, _K_IMAGE, _K_PNAME, _K_PATH, _K_URL, _K_REG = range(10)
_K_MD5, _K_SHA1, _K_SHA256, _K_HASH, _K_JA3, _K_JA4 = range(10, 16)
_COMPUTE: tuple[Callable[[str], Pairs], ...] = (
    lambda v: _scan(v[:MAX_TEXT]),
    lambda v: _name(v, as_host=True),
    lambda v: _name(v, as_host=False),
    lambda v: ((T.HOST, v.lower()),) if _HOSTNAME.fullmatch(v.lower()) else (),
    _user,
    _image,
    lambda v: ((T.PROCESS_NAME, v.lower()),) if v not in ("-", "") else (),
    lambda v: ((T.FILE_PATH, v),) if v not in ("-", "") else (),
    _url,
    lambda v: ((T.REGISTRY_KEY, v),),
    lambda v: _hash(T.MD5, v),
    lambda v: _hash(T.SHA1, v),
    lambda v: _hash(T.SHA256, v),
    lambda v: _hash(None, v),
    lambda v: ((T.JA3, v.lower()),) if _JA3.fullmatch(v) else (),
    lambda v: ((T.JA4, v.lower()),) if _JA4.fullmatch(v) else (),
)
_HASH_KINDS = {"md5": _K_MD5, "sha1": _K_SHA1, "sha256": _K_SHA256, "sha-1": _K_SHA1, "sha-256": _K_SHA256}
# One memo per kind, keyed by the value alone (a str key hashes from its cache; a (kind, value) key
# would be built and hashed on every lookup); :data:`_CACHE_MAX` bounds them together.
_memos: tuple[dict[str, Pairs], ...] = tuple({} for _ in _COMPUTE)
_memo_size = 0
# Values longer than :data:`_CACHE_TEXT_MAX` (encoded commands, scripts) are few, but scanning one costs
# about 250 µs, and they repeat too: the attack samples' 48 command lines over 2,048 characters are 7
# distinct texts. Up to :data:`MAX_TEXT` they have a memo of their own, bounded by characters, so that a
# run of distinct scripts never evicts the short values.
_long_memo: dict[tuple[int, str], Pairs] = {}
_long_chars = 0


def _pairs(kind: int, value: str) -> Pairs:
    global _memo_size
    memo = _memos[kind]
    found = memo.get(value)
    if found is None:
        if len(value) > _CACHE_TEXT_MAX:
            return _long_pairs(kind, value)
        found = _COMPUTE[kind](value)
        if _memo_size >= _CACHE_MAX:
            for each in _memos:
                each.clear()
            _memo_size = 0
        memo[value] = found
        _memo_size += 1
    return found


def _long_pairs(kind: int, value: str) -> Pairs:
    """:func:`_pairs` of a long value, memoized in :data:`_long_memo`."""
    global _long_chars
    key = (kind, value)
    found = _long_memo.get(key)
    if found is None:
        found = _COMPUTE[kind](value)
        if len(value) <= MAX_TEXT:
            if _long_chars + len(value) > _LONG_MEMO_CHARS:
                _long_memo.clear()
                _long_chars = 0
            _long_memo[key] = found
            _long_chars += len(value)
    return found


Found = dict[tuple[ObservableType, str], Observable]


def _put(found: Found, kind: int, value: Any, field: str) -> None:
    if type(value) is not str or not value:
        return
    pairs = _memos[kind].get(value)
    if pairs is None:
        pairs = _pairs(kind, value)
    for pair in pairs:
        if pair not in found:
            found[pair] = Observable(pair[0], pair[1], field)


# ------------------------------------------------------------------------------------------------ events


# The (path, name, cmd_line, user.name, parent_process) field names under each process prefix down to
# the deepest parent read, made once rather than concatenated for every event.
_PROCESS_FIELDS = {
    p: (p + ".path", p + ".name", p + ".cmd_line", p + ".user.name", p + ".parent_process")
    for base in ("actor.process", "process")
    for p in (base, base + ".parent_process", base + ".parent_process.parent_process")
}


def _process(found: Found, process: Process, field: str, depth: int = 0) -> None:
    names = _PROCESS_FIELDS[field]
    if process.path:
        _put(found, _K_IMAGE, process.path, names[0])
    elif process.name:
        _put(found, _K_PNAME, process.name, names[1])
    if process.cmd_line:
        _put(found, _K_TEXT, process.cmd_line, names[2])
    user = process.user
    if user is not None and user.name:
        _put(found, _K_USER, user.name, names[3])
    if process.parent_process is not None and depth < 2:
        _process(found, process.parent_process, names[4], depth + 1)


_GROUP_CLASSES = frozenset({EventClass.GROUP_MANAGEMENT, EventClass.ENTITY_MANAGEMENT})
_WINDOWS_EXTRA = (
    *((name, _K_TEXT, "raw." + name) for name in TEXT_FIELDS),
    *((name, _K_USER, "raw." + name) for name in USER_FIELDS),
    *((name, _K_ADDR, "raw." + name) for name in HOST_FIELDS),
)
# Sysmon, the bulk of endpoint telemetry, has only these beyond what the normalizer already mapped.
_SYSMON_EXTRA = tuple(f for f in _WINDOWS_EXTRA if f[0] in SYSMON_EXTRA_FIELDS)


def _windows_extra(found: Found, event: Event) -> None:
    raw = event.raw
    if type(raw) is not dict:
        return
    data = event_data(raw.get("Event", raw), flatten=False)  # none of the fields read is "Data"
    if not data:
        return
    groups = event.class_uid in _GROUP_CLASSES  # their TargetUserName is a group or an object
    metadata = event.metadata
    fields = _SYSMON_EXTRA if metadata is not None and metadata.log_name == SYSMON else _WINDOWS_EXTRA
    get = data.get
    for name, kind, field in fields:
        value = get(name)
        if value is not None and not (groups and name == "TargetUserName"):
            _put(found, kind, value, field)


# fmt: off
_RELATED = (("related.ip", _K_ADDR), ("related.hosts", _K_ADDR), ("related.user", _K_USER),
            ("related.hash", _K_HASH))
# fmt: on


# TLS client fingerprints, where ECS, OCSF and Zeek-style JSON keep them (the Event has no TLS fields).
# fmt: off
_TLS = (("tls.client.ja3", _K_JA3), ("tls.client.ja4", _K_JA4), ("tls.ja3_hash.value", _K_JA3),
        ("tls.ja4_hash.value", _K_JA4), ("ja3", _K_JA3), ("ja4", _K_JA4))
# fmt: on


def _tls_extra(found: Found, raw: Any) -> None:
    if type(raw) is not dict:
        return
    for path, kind in _TLS:
        _put(found, kind, get_path(raw, path), "raw." + path)


def _ecs_extra(found: Found, event: Event) -> None:
    for path, kind in _RELATED:
        values = get_path(event.raw, path)
        for value in values if type(values) is list else [values]:
            _put(found, kind, value, "raw." + path)
    _tls_extra(found, event.raw)


def _generic_extra(found: Found, event: Event) -> None:
    _tls_extra(found, event.raw)


# OCSF observable type_id -> value kind (hostname, ip, user name, email, url, hash, process name, path).
_OCSF_KINDS = {
    1: _K_ADDR,
    2: _K_ADDR,
    4: _K_USER,
    5: _K_USER,
    6: _K_URL,
    8: _K_HASH,
    9: _K_PNAME,
    45: _K_PATH,
}


def _ocsf_extra(found: Found, event: Event) -> None:
    raw = event.raw
    if type(raw) is not dict:
        return
    user = raw.get("user")
    if type(user) is dict:
        _put(found, _K_USER, user.get("name"), "raw.user.name")
        _put(found, _K_USER, user.get("email_addr"), "raw.user.email_addr")
    _tls_extra(found, raw)
    items = raw.get("observables")
    for item in items if type(items) is list else ():
        type_id = item.get("type_id") if type(item) is dict else None
        if type(type_id) is int:
            kind = _OCSF_KINDS.get(type_id)
            if kind is not None:
                _put(found, kind, item.get("value"), "raw.observables." + str(item.get("name") or kind))


_EXTRA: Mapping[str, Callable[[Found, Event], None]] = {
    "windows": _windows_extra,
    "ecs": _ecs_extra,
    "ocsf": _ocsf_extra,
    "generic": _generic_extra,
}


def _endpoint(found: Found, endpoint: Endpoint, names: tuple[str, str, str]) -> None:
    if endpoint.ip:
        _put(found, _K_ADDR, endpoint.ip, names[0])
    if endpoint.hostname:
        _put(found, _K_ADDR, endpoint.hostname, names[1])
    if endpoint.domain:
        _put(found, _K_ADDR, endpoint.domain, names[2])


_SRC_FIELDS = ("src_endpoint.ip", "src_endpoint.hostname", "src_endpoint.domain")
_DST_FIELDS = ("dst_endpoint.ip", "dst_endpoint.hostname", "dst_endpoint.domain")


def extract_observables(event: Event) -> list[Observable]:
    """Every observable in ``event``, de-duplicated by (type, value), each with its source field."""
    found: Found = {}
    if event.src_endpoint is not None:
        _endpoint(found, event.src_endpoint, _SRC_FIELDS)
    if event.dst_endpoint is not None:
        _endpoint(found, event.dst_endpoint, _DST_FIELDS)
    device = event.device
    if device is not None:
        if device.hostname:
            _put(found, _K_DEVICE, device.hostname, "device.hostname")
        if device.ip:
            _put(found, _K_ADDR, device.ip, "device.ip")
    url = event.url
    if url is not None:
        _put(found, _K_URL, url.url_string, "url.url_string")
        _put(found, _K_NAME, url.hostname, "url.hostname")
    if event.query:
        _put(found, _K_NAME, refang(event.query), "query")
    actor = event.actor
    if actor is not None:
        user = actor.user
        if user is not None:
            _put(found, _K_USER, user.name, "actor.user.name")
            _put(found, _K_USER, user.email_addr, "actor.user.email_addr")
        if actor.process is not None:
            _process(found, actor.process, "actor.process")
    if event.process is not None:
        _process(found, event.process, "process")
    file = event.file
    if file is not None:
        _put(found, _K_PATH, file.path, "file.path")
        if file.hashes:
            for algo, value in file.hashes.items():
                kind = _HASH_KINDS.get(algo.lower())
                if kind is not None:
                    _put(found, kind, value, "file.hashes." + algo)
    if event.registry_key:
        _put(found, _K_REG, event.registry_key, "registry_key")
    if event.message:
        _put(found, _K_TEXT, event.message, "message")
    raw = event.raw
    if type(raw) is str:
        _put(found, _K_TEXT, raw, "raw")
    elif event.format is not None:
        extra = _EXTRA.get(event.format)
        if extra is None and event.format.startswith("generic:"):  # a named field mapping
            extra = _generic_extra
        if extra is not None:
            extra(found, event)
    return list(found.values())
