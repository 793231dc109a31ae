"""Line- and table-shaped feeds: abuse.ch CSV exports (URLhaus, ThreatFox, MalwareBazaar), plain lists,
CSV or JSON with a column mapping, and leaked-credential dumps.

abuse.ch exports start with ``#`` comment lines, the last of which is the header; the documented column
orders are used when a header is missing. A leaked-credential record keeps the e-mail or username, the
breach source and date; a password in the dump is replaced by a salted PBKDF2 hash and never stored.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import os
import re
from typing import Any

import orjson

from bastion.intel.feeds.base import FeedError, InvalidIndicator, ParseResult, make_indicator, parse_time
from bastion.intel.normalize import classify, shown
from bastion.model.intel import IndicatorType

__all__ = [
    "hash_password",
    "parse_credential_leak",
    "parse_list",
    "parse_malwarebazaar",
    "parse_mapped",
    "parse_threatfox",
    "parse_urlhaus",
]

_T = IndicatorType
_URLHAUS = [
    "id",
    "dateadded",
    "url",
    "url_status",
    "last_online",
    "threat",
    "tags",
    "urlhaus_link",
    "reporter",
]
_THREATFOX = [
    "first_seen_utc", "ioc_id", "ioc_value", "ioc_type", "threat_type", "fk_malware", "malware_alias",
    "malware_printable", "last_seen_utc", "confidence_level", "reference", "tags", "anonymous", "reporter",
]  # fmt: skip
_BAZAAR = [
    "first_seen_utc", "sha256_hash", "md5_hash", "sha1_hash", "reporter", "file_name", "file_type_guess",
    "mime_type", "signature", "clamav", "vtpercent", "imphash", "ssdeep", "tlsh",
]  # fmt: skip


def _abusech_rows(data: bytes, default_header: list[str]) -> list[tuple[int, dict[str, str]]]:
    text = data.decode("utf-8", errors="replace")
    header = default_header
    rows: list[tuple[int, dict[str, str]]] = []
    body: list[tuple[int, str]] = []
    for n, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped:
            continue
        if stripped.startswith("#"):
            cand = stripped.lstrip("#").strip()
            if cand.startswith('"') or ("," in cand and cand.split(",")[0].strip('" ') in default_header):
                header = [c.strip().strip('"') for c in next(csv.reader([cand], skipinitialspace=True))]
            continue
        body.append((n, line))
    for n, line in body:
        fields = next(csv.reader([line], skipinitialspace=True))
        rows.append((n, dict(zip(header, (f.strip() for f in fields), strict=False))))
    return rows


def _tags(value: str | None) -> list[str]:
    return [
        t.strip() for t in (value or "").replace("|", ",").split(",") if t.strip() and t.strip() != "None"
    ]


def parse_urlhaus(data: bytes, *, source: str = "urlhaus") -> ParseResult:
    result = ParseResult()
    for n, row in _abusech_rows(data, _URLHAUS):
        try:
            result.indicators.append(
                make_indicator(
                    _T.URL,
                    row.get("url", ""),
                    source,
                    first_seen=parse_time(row.get("dateadded"), "dateadded"),
                    last_seen=parse_time(row.get("last_online"), "last_online"),
                    tags=[
                        *_tags(row.get("tags")),
                        row.get("threat", ""),
                        f"status:{row.get('url_status', '')}",
                    ],
                    confidence=75 if row.get("url_status") == "online" else 50,
                    tlp="clear",
                )
            )
        except InvalidIndicator as exc:
            result.rejected.append(f"line {n}: {exc}")
    return result


_TF_TYPES = {
    "domain": _T.DOMAIN,
    "url": _T.URL,
    "md5_hash": _T.MD5,
    "sha1_hash": _T.SHA1,
    "sha256_hash": _T.SHA256,
}


def parse_threatfox(data: bytes, *, source: str = "threatfox") -> ParseResult:
    result = ParseResult()
    for n, row in _abusech_rows(data, _THREATFOX):
        ioc_type = row.get("ioc_type", "")
        value = row.get("ioc_value", "")
        if ioc_type == "ip:port":
            kind, value = _T.IPV4, value.rsplit(":", 1)[0].strip("[]")
        elif ioc_type in _TF_TYPES:
            kind = _TF_TYPES[ioc_type]
        else:
            result.rejected.append(f"line {n}: unknown ThreatFox ioc_type {ioc_type!r}")
            continue
        try:
            malware = row.get("malware_printable", "")
            result.indicators.append(
                make_indicator(
                    kind,
                    value,
                    source,
                    first_seen=parse_time(row.get("first_seen_utc"), "first_seen_utc"),
                    last_seen=parse_time(row.get("last_seen_utc"), "last_seen_utc"),
                    confidence=int(row.get("confidence_level") or 50),
                    tags=[*_tags(row.get("tags")), row.get("threat_type", "")],
                    malware=[malware] if malware and malware != "Unknown malware" else [],
                    tlp="clear",
                )
            )
        except (InvalidIndicator, ValueError) as exc:
            result.rejected.append(f"line {n}: {exc}")
    return result


def parse_malwarebazaar(data: bytes, *, source: str = "malwarebazaar") -> ParseResult:
    result = ParseResult()
    for n, row in _abusech_rows(data, _BAZAAR):
        try:
            first_seen = parse_time(row.get("first_seen_utc"), "first_seen_utc")
        except InvalidIndicator as exc:
            result.rejected.append(f"line {n}: {exc}")
            continue
        fields: dict[str, Any] = {
            "first_seen": first_seen,
            "tags": [row.get("file_type_guess", "")],
            "malware": [row["signature"]] if row.get("signature") not in (None, "", "n/a") else [],
            "confidence": 80,
            "tlp": "clear",
        }
        made = 0
        for col, kind in (("sha256_hash", _T.SHA256), ("md5_hash", _T.MD5), ("sha1_hash", _T.SHA1)):
            if row.get(col):
                try:
                    result.indicators.append(make_indicator(kind, row[col], source, **dict(fields)))
                    made += 1
                except InvalidIndicator as exc:
                    result.rejected.append(f"line {n}: {exc}")
        if not made and not any(row.get(c) for c in ("sha256_hash", "md5_hash", "sha1_hash")):
            result.rejected.append(f"line {n}: no hash")
    return result


# A list line's value: printable text, no control character and no U+FFFD (bytes that were no UTF-8).
_TEXT = re.compile(r"[^\x00-\x08\x0a-\x1f\x7f\ufffd]+")


def parse_list(data: bytes, *, source: str = "list", kind: IndicatorType | None = None) -> ParseResult:
    """One value a line; ``#`` starts a comment. Each value's type is guessed unless ``kind`` is given."""
    result = ParseResult()
    for n, line in enumerate(data.decode("utf-8", errors="replace").splitlines(), 1):
        value = line.split("#", 1)[0].strip() if not line.lstrip().startswith("http") else line.strip()
        if not value:
            continue
        if not _TEXT.fullmatch(value):
            # Binary data read as a list (a wrong --format, a compressed file) would otherwise make file
            # names of its printable fragments.
            result.rejected.append(f"line {n}: not text (bytes that are no UTF-8, or control characters)")
            continue
        t = kind or classify(value)
        if t is None:
            result.rejected.append(f"line {n}: cannot tell what kind of indicator {shown(value)} is")
            continue
        try:
            result.indicators.append(make_indicator(t, value, source))
        except InvalidIndicator as exc:
            result.rejected.append(f"line {n}: {exc}")
    return result


class _Broken(str):
    """A record that could not be read (a JSON line that is not JSON): rejected with this reason."""


def _not_read(rec: Any) -> str:
    return str(rec) if isinstance(rec, _Broken) else "not an object"


def _json_lines(text: str) -> list[Any]:
    """JSON lines, a broken one kept as :class:`_Broken` so that it is reported and the rest load. Not
    one line read: the text is not JSON lines at all."""
    out: list[Any] = []
    read = 0
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            out.append(orjson.loads(line))
            read += 1
        except orjson.JSONDecodeError as exc:
            out.append(_Broken(f"line {number}: not JSON: {exc}"))
    if not read and out:
        raise FeedError(f"not JSON or JSON lines: {out[0]}")
    return out


def _records(data: bytes, fmt: str | None) -> list[Any]:
    """The records of a JSON document, JSON lines or CSV: dicts, or :class:`_Broken` for a bad line."""
    text = data.decode("utf-8-sig", errors="replace")
    stripped = text.lstrip()
    if fmt == "json" or (fmt is None and stripped[:1] in "[{"):
        try:
            doc = orjson.loads(text)
        except orjson.JSONDecodeError:
            return _json_lines(text)
        if isinstance(doc, dict):
            for key in ("data", "items", "records", "results", "indicators"):
                if isinstance(doc.get(key), list):
                    return list(doc[key])
            return [doc]
        if not isinstance(doc, list):
            raise FeedError("expected a JSON array of records")
        return doc
    return list(csv.DictReader(io.StringIO(text)))


_DEFAULT_MAP = {
    "value": ("value", "indicator", "ioc", "ioc_value"),
    "type": ("type", "indicator_type", "ioc_type"),
    "tags": ("tags", "labels"),
    "confidence": ("confidence",),
    "first_seen": ("first_seen", "created", "date"),
    "last_seen": ("last_seen", "modified"),
    "valid_until": ("valid_until", "expires"),
    "affects": ("affects", "affected_software", "cpe"),
    "exact": ("exact",),
}
_TRUE = {"1", "true", "yes", "y", "exact"}


def _get(rec: dict[str, Any], mapping: dict[str, str], field: str) -> Any:
    if field in mapping:
        cur: Any = rec
        for part in mapping[field].split("."):
            cur = cur.get(part) if isinstance(cur, dict) else None
        return cur
    for name in _DEFAULT_MAP.get(field, ()):
        if name in rec:
            return rec[name]
    return None


def parse_mapped(
    data: bytes,
    *,
    source: str = "csv",
    mapping: dict[str, str] | None = None,
    kind: IndicatorType | None = None,
    fmt: str | None = None,
) -> ParseResult:
    """CSV or JSON records; ``mapping`` names the column (dotted path for JSON) of each field:
    ``value``, ``type``, ``tags``, ``confidence``, ``first_seen``, ``last_seen``, ``valid_until``, and for
    a CVE ``affects`` (products or CPEs it affects, ``name@version``, separated by ``,`` or ``;``, or a
    JSON list), which preemptive matching compares with the inventory's installed software, and for a
    domain ``exact`` (true: it does not match its subdomains)."""
    mapping = mapping or {}
    result = ParseResult()
    for n, rec in enumerate(_records(data, fmt), 1):
        if not isinstance(rec, dict):
            result.rejected.append(f"record {n}: {_not_read(rec)}")
            continue
        value = _get(rec, mapping, "value")
        if value in (None, ""):
            result.rejected.append(f"record {n}: no value (map it with value=COLUMN)")
            continue
        value = str(value)
        t_raw = _get(rec, mapping, "type")
        try:
            t = kind or (IndicatorType(str(t_raw).lower()) if t_raw else classify(value))
        except ValueError:
            t = classify(value)
        if t is None:
            result.rejected.append(f"record {n}: cannot tell what kind of indicator {shown(value)} is")
            continue
        tags = _get(rec, mapping, "tags")
        affects = _get(rec, mapping, "affects")
        details = {}
        if affects and t is IndicatorType.CVE:
            items = affects if isinstance(affects, list) else [affects]
            details["affects"] = ", ".join(str(a) for a in items if a)
        try:
            result.indicators.append(
                make_indicator(
                    t,
                    value,
                    source,
                    details=details,
                    exact=t is IndicatorType.DOMAIN and str(_get(rec, mapping, "exact")).lower() in _TRUE,
                    tags=tags if isinstance(tags, list) else _tags(str(tags) if tags else ""),
                    confidence=_get(rec, mapping, "confidence"),
                    first_seen=parse_time(_get(rec, mapping, "first_seen"), "first_seen"),
                    last_seen=parse_time(_get(rec, mapping, "last_seen"), "last_seen"),
                    valid_until=parse_time(_get(rec, mapping, "valid_until"), "valid_until"),
                )
            )
        except (InvalidIndicator, ValueError) as exc:
            result.rejected.append(f"record {n}: {exc}")
    return result


def hash_password(password: str, *, iterations: int = 20_000) -> str:
    """A salted PBKDF2-SHA256 hash, ``pbkdf2_sha256$iterations$salt$hash`` (base64)."""
    salt = os.urandom(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    b64 = base64.b64encode
    return f"pbkdf2_sha256${iterations}${b64(salt).decode()}${b64(digest).decode()}"


def parse_credential_leak(
    data: bytes, *, source: str = "credential-leak", fmt: str | None = None
) -> ParseResult:
    """Records of ``email`` (or ``username``), ``source``/``breach``, ``breach_date``/``date`` and an
    optional ``password``, which is hashed and dropped."""
    result = ParseResult()
    for n, rec in enumerate(_records(data, fmt), 1):
        if not isinstance(rec, dict):
            result.rejected.append(f"record {n}: {_not_read(rec)}")
            continue
        who = str(rec.get("email") or rec.get("username") or rec.get("user") or "").strip()
        if not who:
            result.rejected.append(f"record {n}: no email or username")
            continue
        breach = str(rec.get("source") or rec.get("breach") or rec.get("breach_source") or source)
        date = rec.get("breach_date") or rec.get("date")
        details = {"breach_source": breach}
        when = None
        if date:
            try:
                when = parse_time(date, "breach_date")
            except InvalidIndicator as exc:
                result.rejected.append(f"record {n}: {exc}")
                continue
            if when is None:
                result.rejected.append(f"record {n}: unreadable breach date {date!r}")
                continue
            details["breach_date"] = str(date)
        if rec.get("password"):
            details["password_hash"] = hash_password(str(rec["password"]))
        if "@" in who:
            details["email"] = who.lower()
        try:
            result.indicators.append(
                make_indicator(
                    _T.LEAKED_CREDENTIAL,
                    who,
                    source,
                    details=details,
                    first_seen=when,
                    tags=["credential-leak", breach],
                    confidence=80,
                )
            )
        except InvalidIndicator as exc:
            result.rejected.append(f"record {n}: {exc}")
    return result
