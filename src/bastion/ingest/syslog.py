"""Syslog message parsing: RFC 5424 and the older BSD format of RFC 3164.

RFC 5424: ``<PRI>VERSION TIMESTAMP HOSTNAME APP-NAME PROCID MSGID STRUCTURED-DATA [MSG]`` with ``-`` for
absent fields, structured data as ``[id name="value" ...]`` elements (``\\"``, ``\\\\`` and ``\\]`` escaped
in values), and an optional UTF-8 byte-order mark before the message.

RFC 3164: ``<PRI>Mmm dd hh:mm:ss HOSTNAME TAG[PID]: MSG``. The timestamp has no year and no zone: the
year is inferred from ``now`` (a date that would lie more than a day in the future belongs to the year
before) and the time is taken as UTC. Lines as syslog daemons write them to files have no ``<PRI>``;
they are accepted when they start with a timestamp (BSD or RFC 3339). Parsing only; the mapping onto an
Event is in :mod:`bastion.ingest.normalize.syslog`.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

__all__ = [
    "FACILITY_NAMES",
    "MONTHS",
    "SEVERITY_NAMES",
    "SyslogError",
    "bsd_datetime",
    "looks_like_syslog",
    "parse_rfc3339",
    "parse_syslog",
]

FACILITY_NAMES = (
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "authpriv",
    "ftp", "ntp", "security", "console", "solaris-cron",
    "local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7",
)  # fmt: skip
SEVERITY_NAMES = ("emerg", "alert", "crit", "err", "warning", "notice", "info", "debug")
MONTHS = {
    name: i + 1
    for i, name in enumerate("jan feb mar apr may jun jul aug sep oct nov dec".split())  # noqa: SIM905
}

_PRI = re.compile(r"<(\d{1,3})>")
_VERSION = re.compile(r"([1-9]\d{0,2}) (?=-|\d{4}-)")
_BSD_TS = re.compile(r"([A-Za-z]{3}) ([ \d]?\d) (\d\d):(\d\d):(\d\d)(?:\.(\d{1,6}))?(?= |$)")
_ISO_TS = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)[Tt ](\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?(?:([Zz])|([+-])(\d\d):?(\d\d))?(?= |$)"
)
_TAG = re.compile(r"([^\s\[\]:]{1,64})(?:\[([^\]\s]{0,64})\])?: ?")
_SD_ID = re.compile(r'\[([^\s=\]"]{1,32})')
_SD_PARAM = re.compile(r' ([^\s=\]"]{1,32})="((?:\\.|[^"\\])*)"', re.DOTALL)
_SD_UNESCAPE = re.compile(r'\\(["\\\]])')


class SyslogError(ValueError):
    """A line that is not a valid syslog message; the message says which part is wrong."""


def looks_like_syslog(text: str) -> bool:
    """Whether ``text`` starts like a syslog message: ``<PRI>``, a BSD timestamp or an RFC 3339 one."""
    head = text[:40]
    bsd = _BSD_TS.match(head) is not None and head[:3].lower() in MONTHS
    return bool(_PRI.match(head) or bsd or _ISO_TS.match(head))


def parse_syslog(text: str, now: datetime | None = None) -> dict[str, Any]:
    """Parse one syslog message (RFC 5424 or RFC 3164); ``now`` anchors the year of BSD timestamps.

    Returns ``format`` ("rfc5424" or "rfc3164"), ``pri``, ``facility``, ``severity`` (ints, or None
    without a PRI), ``facility_name``, ``severity_name``, ``version``, ``timestamp`` (as written),
    ``time`` (epoch ms or None), ``hostname``, ``app_name``, ``procid``, ``msgid``, ``structured_data``
    ({sd-id: {name: value}}) and ``message``; absent fields are None.
    """
    text = text.rstrip("\r\n\x00")
    if not text.strip():
        raise SyslogError("empty syslog message")
    out: dict[str, Any] = {
        "format": "rfc3164", "pri": None, "facility": None, "severity": None, "facility_name": None,
        "severity_name": None, "version": None, "timestamp": None, "time": None, "hostname": None,
        "app_name": None, "procid": None, "msgid": None, "structured_data": {}, "message": "",
    }  # fmt: skip
    pos = 0
    if text.startswith("<"):
        m = _PRI.match(text)
        if m is None:
            raise SyslogError(f"syslog PRI must be '<' 1-3 digits '>', got {text[:6]!r}")
        pri = int(m.group(1))
        if pri > 191:
            raise SyslogError(f"syslog PRI {pri} is out of range 0-191")
        facility, severity = divmod(pri, 8)
        out.update(
            pri=pri, facility=facility, severity=severity,
            facility_name=FACILITY_NAMES[facility], severity_name=SEVERITY_NAMES[severity],
        )  # fmt: skip
        pos = m.end()
        v = _VERSION.match(text, pos)
        if v is not None:
            _parse_5424(text, v.end(), out)
            out["version"] = int(v.group(1))
            return out
    _parse_3164(text, pos, out, now or datetime.now(UTC))
    return out


def _parse_5424(text: str, pos: int, out: dict[str, Any]) -> None:
    out["format"] = "rfc5424"
    parts = text[pos:].split(" ", 5)
    if len(parts) < 5:
        raise SyslogError("RFC 5424 header needs TIMESTAMP HOSTNAME APP-NAME PROCID MSGID after the version")
    stamp, host, app, procid, msgid = parts[:5]
    if stamp != "-":
        try:
            out["time"] = parse_rfc3339(stamp, strict=True)
        except ValueError as exc:
            raise SyslogError(f"RFC 5424 TIMESTAMP {stamp!r}: {exc}") from None
        out["timestamp"] = stamp
    for key, value in (("hostname", host), ("app_name", app), ("procid", procid), ("msgid", msgid)):
        if value == "":
            raise SyslogError(f"RFC 5424 {key.upper().replace('_', '-')} is empty; use '-' for none")
        out[key] = None if value == "-" else value
    rest = parts[5] if len(parts) > 5 else ""
    if rest.startswith("-"):
        rest = rest[1:]
    elif rest.startswith("["):
        out["structured_data"], end = _parse_sd(rest)
        rest = rest[end:]
    elif rest:
        raise SyslogError(f"RFC 5424 STRUCTURED-DATA must be '-' or start with '[', got {rest[:20]!r}")
    if rest and not rest.startswith(" "):
        raise SyslogError(f"RFC 5424 expects a space before MSG, got {rest[:20]!r}")
    out["message"] = rest[1:].removeprefix("\ufeff")


def _parse_sd(text: str) -> tuple[dict[str, dict[str, str]], int]:
    """Parse SD-ELEMENTs from the start of ``text``; return them and the index after the last one."""
    elements: dict[str, dict[str, str]] = {}
    pos = 0
    while pos < len(text) and text[pos] == "[":
        m = _SD_ID.match(text, pos)
        if m is None:
            raise SyslogError(f"RFC 5424 SD-ELEMENT at column {pos + 1} has no valid SD-ID")
        params = elements.setdefault(m.group(1), {})
        pos = m.end()
        while True:
            p = _SD_PARAM.match(text, pos)
            if p is None:
                break
            value = p.group(2)
            params[p.group(1)] = _SD_UNESCAPE.sub(r"\1", value) if "\\" in value else value
            pos = p.end()
        if pos >= len(text) or text[pos] != "]":
            raise SyslogError(
                f"RFC 5424 SD-ELEMENT [{m.group(1)} ...] is malformed at column {pos + 1}: expected "
                "' name=\"value\"' or ']'"
            )
        pos += 1
    return elements, pos


def _parse_3164(text: str, pos: int, out: dict[str, Any], now: datetime) -> None:
    m = _BSD_TS.match(text, pos)
    if m is not None and m.group(1).lower() in MONTHS:
        month, day = MONTHS[m.group(1).lower()], int(m.group(2))
        micro = int((m.group(6) or "0").ljust(6, "0"))
        try:
            when = bsd_datetime(month, day, int(m.group(3)), int(m.group(4)), int(m.group(5)), micro, now)
        except ValueError as exc:
            raise SyslogError(f"syslog timestamp {m.group(0)!r}: {exc}") from None
        out["time"] = _to_ms(when)
        out["timestamp"] = m.group(0)
        pos = m.end()
    else:
        iso = _ISO_TS.match(text, pos)
        if iso is not None:
            try:
                out["time"] = parse_rfc3339(iso.group(0), strict=False)
            except ValueError as exc:
                raise SyslogError(f"syslog timestamp {iso.group(0)!r}: {exc}") from None
            out["timestamp"] = iso.group(0)
            pos = iso.end()
        elif out["pri"] is None:
            raise SyslogError("not a syslog message: no <PRI> and no timestamp at the start of the line")
    rest = text[pos:].lstrip(" ")
    if out["timestamp"] is not None:
        # The HOSTNAME follows the timestamp, unless the sender left it out and the TAG comes first.
        host, sep, after = rest.partition(" ")
        if sep and host and not host.endswith(":"):
            out["hostname"] = host
            rest = after.lstrip(" ")
        elif not sep and not host.endswith(":"):
            out["hostname"] = host or None
            rest = ""
    tag = _TAG.match(rest)
    if tag is not None:
        out["app_name"] = tag.group(1)
        out["procid"] = tag.group(2) or None
        rest = rest[tag.end() :]
    out["message"] = rest


def bsd_datetime(
    month: int, day: int, hour: int, minute: int, second: int, micro: int, now: datetime
) -> datetime:
    """A yearless timestamp placed in ``now``'s year, or the year before when that would be the future.

    A message stamped Dec 31 and read on Jan 1 belongs to last year; a day of slack allows for clock skew
    and zone offsets. Feb 29 moves back to the nearest leap year. The time is taken as UTC.
    """
    year = now.year
    for _ in range(8):
        try:
            when = datetime(year, month, day, hour, minute, second, micro, tzinfo=UTC)
        except ValueError:
            if month == 2 and day == 29:
                year -= 1
                continue
            raise
        if when > now + timedelta(days=1):
            year -= 1
            continue
        return when
    raise ValueError(f"cannot place {month:02d}-{day:02d} in a recent year")


def parse_rfc3339(text: str, *, strict: bool = False) -> int:
    """Epoch milliseconds of an RFC 3339 timestamp. ``strict`` (RFC 5424): the ``T``, a zone and at
    most 6 fraction digits are required; otherwise a missing zone means UTC."""
    m = _ISO_TS.fullmatch(text)
    if m is None:
        raise ValueError("not an RFC 3339 date-time such as 2003-10-11T22:14:15.003Z")
    year, month, day, hour, minute, second, frac, zulu, sign, oh, om = m.groups()
    if strict:
        if text[10] not in "Tt":
            raise ValueError("date and time must be separated by 'T'")
        if not zulu and not sign:
            raise ValueError("a time zone (Z or +hh:mm) is required")
        if frac and len(frac) > 6:
            raise ValueError("at most 6 digits of fractional seconds are allowed")
    tz = UTC
    if sign:
        offset = timedelta(hours=int(oh), minutes=int(om))
        tz = timezone(-offset if sign == "-" else offset)
    micro = int((frac or "0")[:6].ljust(6, "0"))
    when = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second), micro, tzinfo=tz)
    return _to_ms(when)


def _to_ms(when: datetime) -> int:
    delta = when - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
