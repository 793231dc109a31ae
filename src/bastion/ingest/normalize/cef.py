"""Normalizer for ArcSight CEF lines, bare or behind a syslog header.

Mapping decisions:

* ``class_uid``: CEF carries no activity class, so keywords in ``cat`` (deviceEventCategory) and the
  header Name decide, first match wins: malware/exploit/intrusion/threat words -> SECURITY_FINDING;
  account changes -> ACCOUNT_CHANGE; log-on/authentication words -> AUTHENTICATION; ``dns`` ->
  DNS_ACTIVITY; http/web/url/proxy -> HTTP_ACTIVITY; file -> FILE_ACTIVITY; process/execution ->
  PROCESS_ACTIVITY; firewall/traffic/connection/network -> NETWORK_ACTIVITY. Anything else is a
  SECURITY_FINDING: CEF is emitted by security products, and an unknown CEF event is most usefully
  treated as one of their findings.
* ``severity_id``: 0-3 LOW, 4-6 MEDIUM, 7-8 HIGH, 9-10 CRITICAL; the words Low, Medium, High and
  Very-High likewise; Unknown or anything unreadable -> UNKNOWN.
* ``time``: ``rt``, else ``end``, else ``start`` (epoch milliseconds, ``MMM dd [yyyy] HH:mm:ss[.SSS]
  [zone]`` or ISO 8601; a missing zone means UTC, a missing year is inferred as for syslog), else the
  syslog header's timestamp, else 0.
* ``actor.user`` is ``suser`` (``suid``, ``sntdom``), or ``duser`` when there is no source user: for
  log-on events the account is often only in ``duser``. ``actor.process`` is ``sproc``/``spid``, the
  event's ``process`` is ``dproc``/``dpid``. ``src``/``spt``/``shost`` and ``dst``/``dpt``/``dhost`` are
  the endpoints (an address that does not parse as IP becomes the hostname), ``request`` the URL,
  ``fname``/``filePath``/``fileHash`` the file (hash algorithm by length), ``msg`` the message (else the
  Name), ``dvchost``/``dvc``/``deviceExternalId`` the device (else the syslog HOSTNAME).
* ``metadata``: vendor, product, ``event_code`` = Signature ID, ``uid`` = ``externalId``.
* ``act`` (deviceAction) is the ``action``, read as an OCSF ``action_id`` (allowed, denied or other).
  Other extension keys stay in ``raw``.
"""

from __future__ import annotations

import ipaddress
import re
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bastion.ingest.cef import CefError, find_cef, parse_cef
from bastion.ingest.normalize import NormalizeError, register
from bastion.ingest.normalize.syslog import device_from_host
from bastion.ingest.syslog import MONTHS, SyslogError, bsd_datetime, parse_rfc3339, parse_syslog
from bastion.model import (
    ActionId,
    Actor,
    Device,
    Endpoint,
    Event,
    EventClass,
    File,
    Metadata,
    Process,
    Severity,
    Url,
    User,
)

__all__ = ["cef_class", "cef_severity", "cef_time", "detect_cef", "normalize_cef"]

_CLASS_RULES: tuple[tuple[re.Pattern[str], EventClass], ...] = tuple(
    (re.compile(pattern), cls)
    for pattern, cls in (
        (
            r"\b(?:malware|virus|trojan|worm|ransomware|spyware|backdoor|botnet|exploit|intrusion|attack|"
            r"threat|vulnerabilit|ids|ips|phishing|c2|suspicious|anomal)",
            EventClass.SECURITY_FINDING,
        ),
        (
            r"\b(?:account|user|group membership)\b.{0,20}\b(?:creat|delet|chang|modif|disabl|enabl|lock|"
            r"add|remov)|\bpassword (?:chang|reset)",
            EventClass.ACCOUNT_CHANGE,
        ),
        (
            r"\b(?:log[ -]?on|log[ -]?in|log[ -]?off|log[ -]?out|authenticat|sign[ -]?in|credential|kerberos|"
            r"sso|mfa|password)",
            EventClass.AUTHENTICATION,
        ),
        (r"\bdns\b", EventClass.DNS_ACTIVITY),
        (r"\b(?:http|web|url|proxy|waf)", EventClass.HTTP_ACTIVITY),
        (r"\bfile", EventClass.FILE_ACTIVITY),
        (r"\b(?:process|execution|executed)", EventClass.PROCESS_ACTIVITY),
        (r"\b(?:firewall|traffic|connection|network|netflow|flow|packet|vpn)", EventClass.NETWORK_ACTIVITY),
    )
)

_SEVERITY_WORDS = {
    "unknown": Severity.UNKNOWN,
    "low": Severity.LOW,
    "medium": Severity.MEDIUM,
    "high": Severity.HIGH,
    "very-high": Severity.CRITICAL,
    "very high": Severity.CRITICAL,
    "veryhigh": Severity.CRITICAL,
}
_HASH_BY_LENGTH = {32: "md5", 40: "sha1", 64: "sha256", 128: "sha512"}
_CEF_TIME = re.compile(
    r"([A-Za-z]{3}) (\d{1,2})(?: (\d{4}))? (\d\d):(\d\d):(\d\d)(?:\.(\d{1,6}))?(?: (\S+))?"
)
_OFFSET = re.compile(r"([+-])(\d\d):?(\d\d)")
_ZONES = {"utc": 0, "gmt": 0, "z": 0, "est": -5, "edt": -4, "cst": -6, "cdt": -5, "mst": -7, "mdt": -6,
          "pst": -8, "pdt": -7, "cet": 1, "cest": 2, "bst": 1, "ist": 5.5, "jst": 9}  # fmt: skip


def detect_cef(record: Any) -> bool:
    """A text record with ``CEF:`` at its start or right after a syslog header."""
    return isinstance(record, str) and find_cef(record) >= 0


def cef_severity(value: str) -> Severity:
    """OCSF severity of a CEF Severity (0-10 or Unknown/Low/Medium/High/Very-High)."""
    key = value.strip().lower()
    if key.isdigit():
        n = int(key)
        if n <= 3:
            return Severity.LOW
        if n <= 6:
            return Severity.MEDIUM
        if n <= 8:
            return Severity.HIGH
        return Severity.CRITICAL if n <= 10 else Severity.UNKNOWN
    found = _SEVERITY_WORDS.get(key)
    if found is not None:
        return found
    try:
        return Severity.parse(key)
    except ValueError:
        return Severity.UNKNOWN


def cef_class(category: str, name: str) -> EventClass:
    """Event class from a CEF ``cat`` and Name by keyword; SECURITY_FINDING when nothing matches."""
    text = f"{category} {name}".lower()
    for pattern, cls in _CLASS_RULES:
        if pattern.search(text):
            return cls
    return EventClass.SECURITY_FINDING


def cef_time(value: str, now: datetime | None = None) -> int:
    """Epoch milliseconds of a CEF timestamp (``rt``, ``start``, ``end``); ValueError if unreadable.

    Digits are epoch milliseconds (10 digits or fewer: seconds). Text is ``MMM dd [yyyy] HH:mm:ss[.SSS]
    [zone]`` or ISO 8601; the zone is an abbreviation, an offset or an IANA name, UTC when absent.
    """
    text = value.strip()
    if text.isdigit():
        n = int(text)
        return n * 1000 if len(text) <= 10 else n
    m = _CEF_TIME.fullmatch(text)
    if m is None:
        return parse_rfc3339(text)
    mon, day, year, hh, mi, ss, frac, zone = m.groups()
    month = MONTHS.get(mon.lower())
    if month is None:
        raise ValueError(f"unknown month {mon!r}")
    micro = int((frac or "0").ljust(6, "0"))
    tz = _zone(zone) if zone else UTC
    if year:
        when = datetime(int(year), month, int(day), int(hh), int(mi), int(ss), micro, tzinfo=tz)
    else:
        base = bsd_datetime(month, int(day), int(hh), int(mi), int(ss), micro, now or datetime.now(UTC))
        when = base.replace(tzinfo=tz)
    return int(when.timestamp()) * 1000 + when.microsecond // 1000


def _zone(name: str) -> tzinfo:
    hours = _ZONES.get(name.lower())
    if hours is not None:
        return timezone(timedelta(hours=hours))
    m = _OFFSET.fullmatch(name)
    if m is not None:
        offset = timedelta(hours=int(m.group(2)), minutes=int(m.group(3)))
        return timezone(-offset if m.group(1) == "-" else offset)
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}") from None


@register("cef", detect=detect_cef, priority=40)
def normalize_cef(record: Any) -> Event:
    """Map one CEF line onto an Event; ``raw`` keeps the line."""
    if not isinstance(record, str):
        raise NormalizeError(f"CEF records are text lines, got {type(record).__name__}")
    try:
        cef = parse_cef(record)
    except CefError as exc:
        raise NormalizeError(str(exc)) from None
    ext: dict[str, str] = cef["extension"]
    header: dict[str, Any] = {}
    if cef["prefix"]:
        try:
            header = parse_syslog(record)
        except SyslogError:
            header = {}

    cls = cef_class(ext.get("cat", ""), cef["name"])
    time, original = _event_time(ext, header)
    event = Event(
        class_uid=cls,
        time=time,
        severity_id=cef_severity(cef["severity"]),
        message=ext.get("msg") or cef["name"],
        format="cef",
        metadata=Metadata(
            vendor=cef["device_vendor"] or None,
            product=cef["device_product"] or None,
            event_code=cef["signature_id"] or None,
            uid=ext.get("externalId"),
            original_time=original,
        ),
        device=_device(ext, header.get("hostname")),
        src_endpoint=_endpoint(ext, "src", "spt", "shost", "sourceDnsDomain"),
        dst_endpoint=_endpoint(ext, "dst", "dpt", "dhost", "destinationDnsDomain"),
        process=_process(ext, "dproc", "dpid"),
        file=_file(ext),
        url=_url(ext.get("request")),
        action=ext.get("act") or None,
        action_id=ActionId.from_word(ext.get("act")),
        raw=record,
    )
    user = _user(ext)
    actor_process = _process(ext, "sproc", "spid")
    if user or actor_process:
        event.actor = Actor(user=user, process=actor_process)
    if cls == EventClass.DNS_ACTIVITY:
        event.query = ext.get("destinationDnsDomain") or ext.get("request") or ext.get("dhost")
    return event


def _event_time(ext: dict[str, str], header: dict[str, Any]) -> tuple[int, str | None]:
    for key in ("rt", "end", "start"):
        value = ext.get(key)
        if value:
            try:
                return cef_time(value), value
            except ValueError:
                continue
    if header.get("time") is not None:
        return int(header["time"]), header.get("timestamp")
    return 0, None


def _port(value: str | None) -> int | None:
    if value and value.strip().isdigit():
        port = int(value)
        if port <= 65535:
            return port
    return None


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def _endpoint(
    ext: dict[str, str], ip_key: str, port_key: str, host_key: str, dns_key: str
) -> Endpoint | None:
    ip, host = ext.get(ip_key) or None, ext.get(host_key) or None
    if ip and not _is_ip(ip):
        host, ip = host or ip, None
    port, domain = _port(ext.get(port_key)), ext.get(dns_key) or None
    if ip is None and host is None and port is None and domain is None:
        return None
    return Endpoint(ip=ip, port=port, hostname=host, domain=domain)


def _device(ext: dict[str, str], syslog_host: str | None) -> Device | None:
    host, ip, uid = ext.get("dvchost") or None, ext.get("dvc") or None, ext.get("deviceExternalId") or None
    if ip and not _is_ip(ip):
        host, ip = host or ip, None
    if host is None and ip is None and uid is None:
        return device_from_host(syslog_host)
    return Device(hostname=host, ip=ip, uid=uid)


def _user(ext: dict[str, str]) -> User | None:
    for name_key, uid_key, domain_key in (("suser", "suid", "sntdom"), ("duser", "duid", "dntdom")):
        name, uid = ext.get(name_key) or None, ext.get(uid_key) or None
        if name or uid:
            return User(name=name, uid=uid, domain=ext.get(domain_key) or None)
    return None


def _process(ext: dict[str, str], name_key: str, pid_key: str) -> Process | None:
    name, pid = ext.get(name_key) or None, ext.get(pid_key, "").strip()
    if name is None and not pid.isdigit():
        return None
    return Process(name=name, pid=int(pid) if pid.isdigit() else None)


def _file(ext: dict[str, str]) -> File | None:
    name, path = ext.get("fname") or None, ext.get("filePath") or None
    digest = ext.get("fileHash", "").strip()
    if name is None and path:
        name = re.split(r"[\\/]", path.rstrip("\\/"))[-1] or None
    algo = _HASH_BY_LENGTH.get(len(digest)) if re.fullmatch(r"[0-9A-Fa-f]+", digest) else None
    hashes = {algo: digest.lower()} if algo else None
    if name is None and path is None and hashes is None:
        return None
    return File(name=name, path=path, hashes=hashes)


def _url(request: str | None) -> Url | None:
    if not request:
        return None
    try:
        parts = urlsplit(request)
    except ValueError:
        return Url(url_string=request)
    return Url(url_string=request, hostname=parts.hostname or None, path=parts.path or None)
