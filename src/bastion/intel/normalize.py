"""Indicator values in one canonical form, so the same thing from two feeds is one key.

Feeds write the same indicator many ways (``HTTP://Evil.COM:80/a#x``, ``EVIL.com.``, ``::FFFF:...``). The
matcher compares canonical strings only, so everything that enters the store or a lookup passes here.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit, urlunsplit

from bastion.model.intel import IndicatorType

__all__ = ["InvalidIndicator", "classify", "normalize", "normalize_url"]

_HEX = re.compile(r"^[0-9a-fA-F]+$")
_DOMAIN = re.compile(r"^(?=.{1,253}$)(?:[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?\.)+[a-z0-9-]{2,63}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_CVE = re.compile(r"^CVE-\d{4}-\d{4,}$", re.IGNORECASE)
_JA4 = re.compile(r"^[tq]\d{2}[di]\d{4}[a-z0-9]{2}_[0-9a-f]{12}_[0-9a-f]{12}$")
_HASH_TYPES = {32: IndicatorType.MD5, 40: IndicatorType.SHA1, 64: IndicatorType.SHA256}
_DEFAULT_PORTS = {"http": "80", "https": "443", "ftp": "21"}


# File extensions that are no TLD in IANA's root zone (so ``.com``, ``.cab``, ``.so`` and ``.zip``, real
# TLDs, are not here): a bare ``name.ext`` with one of these is a file name, never a domain.
# fmt: off
_FILE_EXTENSIONS = frozenset({
    "exe", "dll", "sys", "scr", "bat", "cmd", "ps1", "psm1", "vbs", "vbe", "js", "jse", "wsf", "hta", "lnk",
    "msi", "jar", "iso", "img", "vhd", "vhdx", "doc", "docx", "docm", "xls", "xlsx", "xlsm", "ppt", "pptx",
    "pptm", "pdf", "rtf", "rar", "gz", "tar", "dat", "tmp", "bin", "elf", "apk", "dmg", "pkg", "deb", "rpm",
    "dylib", "ocx", "cpl", "drv", "txt", "log", "ini", "chm",
})
# fmt: on

SHOWN_CHARS = 80


def shown(value: object) -> str:
    """A value as a problem message quotes it: its repr, clipped, so that a feed line of a megabyte does
    not come back whole in every report of it."""
    text = repr(value)
    if len(text) <= SHOWN_CHARS:
        return text
    return f"{text[: SHOWN_CHARS - 3]}... ({len(str(value))} characters)"


class InvalidIndicator(ValueError):
    """A value that is not a valid indicator of the stated type; the message says what was wrong."""


def normalize_url(value: str) -> str:
    """Lower-case scheme and host, drop a default port, the fragment and an empty path's absence."""
    v = value.strip()
    if "://" not in v:
        raise InvalidIndicator(f"not a URL (no scheme): {shown(value)}")
    try:
        parts = urlsplit(v)
        host = (parts.hostname or "").rstrip(".")
        port = parts.port
    except ValueError as exc:
        raise InvalidIndicator(f"not a URL: {shown(value)} ({exc})") from None
    scheme = parts.scheme.lower()
    if not scheme or not host:
        raise InvalidIndicator(f"not a URL (no host): {shown(value)}")
    if ":" in host:
        host = f"[{host}]"
    netloc = host if port is None or str(port) == _DEFAULT_PORTS.get(scheme) else f"{host}:{port}"
    if parts.username:
        netloc = f"{parts.username}@{netloc}"
    return urlunsplit((scheme, netloc, parts.path or "/", parts.query, ""))


def _domain(value: str) -> str:
    v = value.strip().rstrip(".").lower()
    if v.startswith("*."):
        v = v[2:]
    if not v.isascii():
        try:
            v = v.encode("idna").decode("ascii")
        except UnicodeError:
            raise InvalidIndicator(f"not a domain name: {shown(value)}") from None
    if not _DOMAIN.match(v):
        raise InvalidIndicator(f"not a domain name: {shown(value)}")
    return v


def normalize(kind: IndicatorType, value: str) -> tuple[IndicatorType, str]:
    """The canonical (type, value). A CIDR of one address becomes that address; a hash's type follows
    its length when the stated type disagrees. Raises :class:`InvalidIndicator`."""
    v = value.strip()
    if not v:
        raise InvalidIndicator(f"empty {kind.value} value")
    if kind in (IndicatorType.IPV4, IndicatorType.IPV6, IndicatorType.CIDR):
        try:
            if "/" in v:
                net = ipaddress.ip_network(v, strict=False)
                if net.num_addresses == 1:
                    addr = net.network_address
                    return (IndicatorType.IPV4 if addr.version == 4 else IndicatorType.IPV6), str(addr)
                return IndicatorType.CIDR, str(net)
            ip = ipaddress.ip_address(v)
        except ValueError:
            raise InvalidIndicator(f"not an IP address or CIDR range: {shown(value)}") from None
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return (IndicatorType.IPV4 if ip.version == 4 else IndicatorType.IPV6), str(ip)
    if kind is IndicatorType.DOMAIN:
        return kind, _domain(v)
    if kind is IndicatorType.URL:
        return kind, normalize_url(v)
    if kind in (IndicatorType.MD5, IndicatorType.SHA1, IndicatorType.SHA256, IndicatorType.JA3):
        if not _HEX.match(v):
            raise InvalidIndicator(f"not a hex {kind.value} hash: {shown(value)}")
        if kind is IndicatorType.JA3:
            if len(v) != 32:
                raise InvalidIndicator(f"a JA3 hash has 32 hex digits: {shown(value)}")
            return kind, v.lower()
        real = _HASH_TYPES.get(len(v))
        if real is None:
            raise InvalidIndicator(f"not an MD5, SHA-1 or SHA-256 hash (length {len(v)}): {shown(value)}")
        return real, v.lower()
    if kind is IndicatorType.JA4:
        if not _JA4.match(v.lower()):
            raise InvalidIndicator(f"not a JA4 fingerprint: {shown(value)}")
        return kind, v.lower()
    if kind in (IndicatorType.EMAIL, IndicatorType.LEAKED_CREDENTIAL):
        low = v.lower()
        if kind is IndicatorType.EMAIL and not _EMAIL.match(low):
            raise InvalidIndicator(f"not an e-mail address: {shown(value)}")
        return kind, low
    if kind is IndicatorType.CVE:
        if not _CVE.match(v):
            raise InvalidIndicator(f"not a CVE id (CVE-YYYY-NNNN): {shown(value)}")
        return kind, v.upper()
    if kind is IndicatorType.FILE_NAME:
        return kind, v.lower()
    return kind, v


def classify(value: str) -> IndicatorType | None:
    """Guess the type of a bare value (for plain lists and lookups), or None when it is none of ours."""
    v = value.strip()
    if not v:
        return None
    if "://" in v:
        return IndicatorType.URL
    if _CVE.match(v):
        return IndicatorType.CVE
    if _HEX.match(v) and len(v) in _HASH_TYPES:
        return _HASH_TYPES[len(v)]
    if _JA4.match(v.lower()):
        return IndicatorType.JA4
    try:
        if "/" in v:
            ipaddress.ip_network(v, strict=False)
            return IndicatorType.CIDR
        ip = ipaddress.ip_address(v)
        return IndicatorType.IPV4 if ip.version == 4 else IndicatorType.IPV6
    except ValueError:
        pass
    if "@" in v and _EMAIL.match(v.lower()):
        return IndicatorType.EMAIL
    try:
        _domain(v)
    except InvalidIndicator:
        return IndicatorType.FILE_NAME if "." in v and not any(c.isspace() for c in v) else None
    if v.rsplit(".", 1)[-1].lower() in _FILE_EXTENSIONS:
        return IndicatorType.FILE_NAME  # evil.exe, invoice.docm: no such TLD, a file
    return IndicatorType.DOMAIN
