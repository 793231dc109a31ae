"""Normalizer for plain syslog lines (RFC 5424, RFC 3164 and the headerless lines daemons write to files).

Mapping decisions:

* ``class_uid`` is BASE: a syslog line says nothing about what kind of activity it records. The one
  exception is OpenSSH's ``sshd`` log-in lines (accepted, failed, invalid user), which become
  AUTHENTICATION events with the user and the source address, because they are what a SOC hunts for in
  syslog most often.
* ``severity_id`` from the syslog severity: emerg/alert/crit -> CRITICAL, err -> HIGH, warning -> MEDIUM,
  notice -> LOW, info/debug -> INFORMATIONAL, no PRI -> UNKNOWN.
* ``device`` is the HOSTNAME (``device.ip`` when it is an address); ``metadata.product`` the APP-NAME (the
  BSD TAG), ``metadata.log_name`` the facility, ``metadata.event_code`` the RFC 5424 MSGID;
  ``actor.process`` the APP-NAME and PROCID. ``time`` is 0 when the message carries no timestamp.
* CEF lines behind a syslog header belong to the ``cef`` normalizer, whose detector runs first.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from bastion.ingest.normalize import NormalizeError, register
from bastion.ingest.syslog import SyslogError, parse_syslog
from bastion.model import Actor, Device, Endpoint, Event, EventClass, Metadata, Process, Severity, User

__all__ = ["detect_syslog", "device_from_host", "normalize_syslog", "syslog_severity"]

_SEVERITY = (
    Severity.CRITICAL, Severity.CRITICAL, Severity.CRITICAL, Severity.HIGH,
    Severity.MEDIUM, Severity.LOW, Severity.INFORMATIONAL, Severity.INFORMATIONAL,
)  # fmt: skip

_SSHD = re.compile(
    r"(?:(?P<outcome>Accepted|Failed) \S+ for (?:invalid user )?(?P<user>\S*)|(?P<invalid>Invalid) user "
    r"(?P<iuser>\S*)) from (?P<ip>[0-9A-Fa-f.:]+)(?: port (?P<port>\d+))?"
)


def detect_syslog(record: Any) -> bool:
    """A text record that starts with a syslog ``<PRI>``."""
    return isinstance(record, str) and len(record) > 2 and record[0] == "<" and record[1].isdigit()


def syslog_severity(severity: int | None) -> Severity:
    """OCSF severity of a syslog severity (0 emerg ... 7 debug)."""
    if severity is None or not 0 <= severity <= 7:
        return Severity.UNKNOWN
    return _SEVERITY[severity]


def device_from_host(host: str | None) -> Device | None:
    """A Device for a syslog HOSTNAME, which may be a name or an IP address."""
    if not host:
        return None
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return Device(hostname=host)
    return Device(ip=host)


@register("syslog", detect=detect_syslog, priority=50)
def normalize_syslog(record: Any) -> Event:
    """Map one syslog line onto an Event; ``raw`` keeps the line."""
    if not isinstance(record, str):
        raise NormalizeError(f"syslog records are text lines, got {type(record).__name__}")
    try:
        msg = parse_syslog(record)
    except SyslogError as exc:
        raise NormalizeError(str(exc)) from None
    app, procid = msg["app_name"], msg["procid"]
    process = None
    if app or procid:
        process = Process(name=app, pid=int(procid) if procid and procid.isdigit() else None)
    event = Event(
        class_uid=EventClass.BASE,
        time=msg["time"] or 0,
        severity_id=syslog_severity(msg["severity"]),
        message=msg["message"],
        format="syslog",
        metadata=Metadata(
            product=app,
            log_name=msg["facility_name"],
            event_code=msg["msgid"],
            original_time=msg["timestamp"],
        ),
        device=device_from_host(msg["hostname"]),
        actor=Actor(process=process) if process else None,
        raw=record,
    )
    if app == "sshd":
        _sshd_login(event, msg["message"])
    return event


def _sshd_login(event: Event, message: str) -> None:
    m = _SSHD.match(message)
    if m is None:
        return
    event.class_uid = EventClass.AUTHENTICATION
    user = m.group("user") if m.group("outcome") else m.group("iuser")
    if user:
        process = event.actor.process if event.actor else None
        event.actor = Actor(user=User(name=user), process=process)
    port = m.group("port")
    event.src_endpoint = Endpoint(ip=m.group("ip"), port=int(port) if port else None)
