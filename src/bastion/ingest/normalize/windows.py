"""Windows event log normalizer: events in the ``evtx`` package's JSON form -> :class:`Event`.

The input is what ``evtx`` (and the attack-sample corpus) produces per record::

    {"Event": {"System": {"Provider": {"#attributes": {"Name": ..}}, "EventID": 4624 | {"#text": ..},
               "TimeCreated": {"#attributes": {"SystemTime": ..}}, "Channel": .., "Computer": .., ..},
               "EventData": {..} | {"Data": {"#text": [..]}} | null}   # or "UserData": {"<Element>": {..}}

Sysmon, Security, System, PowerShell, Defender, Terminal Services and the rest are mapped by channel and
event id onto OCSF classes; the fields every detection and enrichment needs (process, parent, user, file
and hashes, endpoints, DNS query, registry key) are filled in from the well-known EventData names.
``raw`` is the record itself, untouched. ETW traces carry no channel: their provider name stands in as
``metadata.log_name``. Hot path: plain dict lookups, no per-event allocation beyond the Event itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from bastion.ingest.normalize import NormalizeError, register
from bastion.ingest.normalize.generic import to_epoch_ms
from bastion.model import (
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

__all__ = [
    "HOST_FIELDS",
    "SYSMON",
    "SYSMON_EXTRA_FIELDS",
    "TEXT_FIELDS",
    "USER_FIELDS",
    "event_data",
    "normalize_windows",
    "parse_hashes",
    "split_user",
]

SYSMON = "Microsoft-Windows-Sysmon/Operational"
SECURITY = "Security"
_POWERSHELL = frozenset({"Microsoft-Windows-PowerShell/Operational", "Windows PowerShell"})
_RCM = "Microsoft-Windows-TerminalServices-RemoteConnectionManager/Operational"
_LSM = "Microsoft-Windows-TerminalServices-LocalSessionManager/Operational"
_DEFENDER = "Microsoft-Windows-Windows Defender/Operational"

# EventData fields that carry free text worth scanning for indicators (command lines, including a
# service's ImagePath, are in ``process.cmd_line``).
TEXT_FIELDS = (
    "ScriptBlockText",
    "Payload",
    "ContextInfo",
    "TaskContent",
    "QueryResults",
    "Details",
    "Destination",
)
# EventData fields naming accounts beyond the one chosen for ``actor.user``.
USER_FIELDS = (
    "SubjectUserName",
    "TargetUserName",
    "TargetOutboundUserName",
    "SamAccountName",
    "SourceUser",
    "TargetUser",
    "AccountName",
)
HOST_FIELDS = ("TargetServerName", "WorkstationName", "Workstation")
# The only ones of the above that Sysmon events carry.
SYSMON_EXTRA_FIELDS = frozenset({"Details", "QueryResults", "Destination", "SourceUser", "TargetUser"})

_C = EventClass


# Typed with the enum, not ``int``: compiled with mypyc, an ``int`` table's members come back as plain
# ints, and a plain 0 is not the ``EventClass.BASE`` default ``omit_defaults`` leaves out of the JSON.
def _class_table() -> dict[tuple[str, int], EventClass]:
    table: dict[tuple[str, int], EventClass] = {}

    def put(channel: str, codes: tuple[int, ...] | range, cls: EventClass) -> None:
        for code in codes:
            table[(channel, code)] = cls

    put(SYSMON, (1, 5, 8, 10, 25), _C.PROCESS_ACTIVITY)
    put(SYSMON, (3,), _C.NETWORK_ACTIVITY)
    put(SYSMON, (6,), _C.KERNEL_EXTENSION)
    put(SYSMON, (7,), _C.MODULE_ACTIVITY)
    put(SYSMON, (2, 9, 11, 15, 17, 18, 23, 26, 27, 28, 29), _C.FILE_ACTIVITY)
    put(SYSMON, (12, 14), _C.REGISTRY_KEY_ACTIVITY)
    put(SYSMON, (13,), _C.REGISTRY_VALUE_ACTIVITY)
    put(SYSMON, (22,), _C.DNS_ACTIVITY)
    put(
        SECURITY,
        (4624, 4625, 4634, 4647, 4648, 4672, 4768, 4769, 4770, 4771, 4776, 4777, 4778, 4779, 4964),
        _C.AUTHENTICATION,
    )
    put(SECURITY, (4688, 4689), _C.PROCESS_ACTIVITY)
    put(
        SECURITY,
        (4720, 4722, 4723, 4724, 4725, 4726, 4738, 4740, 4741, 4742, 4743, 4765, 4766, 4767, 4781, 4794),
        _C.ACCOUNT_CHANGE,
    )
    put(
        SECURITY,
        (4727, 4728, 4729, 4730, 4731, 4732, 4733, 4734, 4735, 4737, 4754, 4755, 4756, 4757, 4758, 4764),
        _C.GROUP_MANAGEMENT,
    )
    put(SECURITY, (4661, 4662, 4798, 4799, 5136, 5137, 5141, 5142, 5143, 5144), _C.ENTITY_MANAGEMENT)
    put(SECURITY, (5140, 5145), _C.SMB_ACTIVITY)
    put(SECURITY, (5154, 5155, 5156, 5157, 5158), _C.NETWORK_ACTIVITY)
    put(SECURITY, (4697, 4698, 4699, 4700, 4701, 4702), _C.SCHEDULED_JOB)
    put(SECURITY, (4656, 4658, 4660, 4663, 4670), _C.FILE_ACTIVITY)
    put(SECURITY, (4657,), _C.REGISTRY_VALUE_ACTIVITY)
    put(SECURITY, (1100, 1102, 1104), _C.EVENT_LOG_ACTIVITY)
    put("System", (7045,), _C.SCHEDULED_JOB)
    put("System", (104,), _C.EVENT_LOG_ACTIVITY)
    put("Microsoft-Windows-PowerShell/Operational", (4103, 4104), _C.PROCESS_ACTIVITY)
    put("Windows PowerShell", (400, 403, 600, 800), _C.PROCESS_ACTIVITY)
    put(_DEFENDER, (1006, 1007, 1008, 1015, 1116, 1117, 1118, 1119), _C.DETECTION_FINDING)
    put(_RCM, (1149,), _C.AUTHENTICATION)
    put(_LSM, (21, 22, 23, 24, 25), _C.AUTHENTICATION)
    put("Microsoft-Windows-RemoteDesktopServices-RdpCoreTS/Operational", (131,), _C.NETWORK_ACTIVITY)
    put("Microsoft-Windows-Bits-Client/Operational", (59, 60, 61), _C.NETWORK_ACTIVITY)
    put("Microsoft-Windows-TaskScheduler/Operational", (106, 140, 141, 200, 201), _C.SCHEDULED_JOB)
    return table


_CLASS = _class_table()
_LEVELS = {
    0: Severity.INFORMATIONAL,  # LogAlways
    1: Severity.CRITICAL,
    2: Severity.HIGH,  # Error
    3: Severity.MEDIUM,  # Warning
    4: Severity.INFORMATIONAL,
    5: Severity.INFORMATIONAL,  # Verbose
}
# Enum members read per event, looked up once: attribute access on an Enum class is a slow path.
_BASE = EventClass.BASE
_AUTHENTICATION = EventClass.AUTHENTICATION
_FILE_ACTIVITY = EventClass.FILE_ACTIVITY
_REGISTRY_KEY_ACTIVITY = EventClass.REGISTRY_KEY_ACTIVITY
_UNKNOWN = Severity.UNKNOWN
_BLANK = frozenset({"", "-", "NULL", "null", "N/A", "n/a", "(null)"})
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EMPTY: Mapping[str, Any] = MappingProxyType({})


# ---------------------------------------------------------------------------------------------- helpers


def _s(value: Any) -> str | None:
    """Text value, with Windows' placeholders ("-", "NULL", "") read as absent."""
    if value is None:
        return None
    if type(value) is str:
        return None if value in _BLANK else value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):  # not ``int | float``: that builds a union object at every call
        return str(value)
    return None


def _int(value: Any) -> int | None:
    """Integer from an int, a decimal string or a ``0x`` hex string (Security log process ids)."""
    if type(value) is int:
        return value
    if type(value) is str and value:
        try:
            return int(value, 16) if value[:2] in ("0x", "0X") else int(value)
        except ValueError:
            return None
    return None


def _time_ms(value: Any) -> int:
    """``SystemTime`` as epoch ms, 0 when missing or unreadable. The ISO-8601 that evtx writes is read
    here directly, as :func:`to_epoch_ms` would read it; anything else goes through that."""
    if type(value) is str and value[4:5] == "-":
        try:
            dt = datetime.fromisoformat(value)
        except ValueError:
            pass
        else:
            # Summed from the delta's parts: ``delta // timedelta(milliseconds=1)`` goes through Python
            # integers of microseconds and cost a quarter of this function. Days and seconds are whole
            # milliseconds, so flooring the microseconds alone gives the same value, before 1970 too.
            delta = (dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)) - _EPOCH
            return delta.days * 86_400_000 + delta.seconds * 1000 + delta.microseconds // 1000
    return (to_epoch_ms(value) or 0) if value else 0


def _port(value: Any) -> int | None:
    port = _int(value)
    return port if port else None


def _attr(node: Any, name: str) -> Any:
    """An XML attribute as ``evtx`` renders it (``{"#attributes": {name: ..}}``) or flattened."""
    if type(node) is not dict:
        return None
    attrs = node.get("#attributes")
    if type(attrs) is dict:
        return attrs.get(name)
    return node.get(name)


def _texts(value: Any) -> list[str]:
    if type(value) is dict:
        value = value.get("#text")
    if value is None:
        return []
    if type(value) is list:
        return [v if type(v) is str else str(v) for v in value if v is not None]
    return [value if type(value) is str else str(value)]


def event_data(event: Mapping[str, Any], *, flatten: bool = True) -> Mapping[str, Any]:
    """The named fields of an event: EventData, or the single element under UserData. Unnamed
    ``Data`` values become a list of strings under ``"Data"``. Never copies in the common case.
    ``flatten=False`` returns an EventData object as it is, ``#attributes``, ``Binary`` and unnamed
    ``Data`` left in: no copy, for a caller that only reads other named fields."""
    data = event.get("EventData")
    if data is None:
        user_data = event.get("UserData")
        if type(user_data) is dict:
            for key, value in user_data.items():
                if key != "#attributes" and type(value) is dict:
                    data = value
                    break
        if data is None:
            data = event.get("ProcessingErrorData")
            if data is None:
                return _EMPTY
    if type(data) is not dict:
        return {"Data": _texts(data)}
    if not flatten or ("#attributes" not in data and "Data" not in data and "Binary" not in data):
        return data
    flat = {k: v for k, v in data.items() if k != "#attributes" and k != "Binary"}
    if "Data" in flat:
        flat["Data"] = _texts(flat["Data"])
    return flat


def parse_hashes(text: str) -> dict[str, str] | None:
    """Sysmon's ``SHA1=..,MD5=..,SHA256=..,IMPHASH=..`` as ``{"sha1": .., "md5": ..}`` (hex lower-cased)."""
    hashes: dict[str, str] = {}
    for part in text.lower().split(","):
        algo, sep, value = part.partition("=")
        if sep and value:
            hashes[algo.strip()] = value.strip()
    return hashes or None


def split_user(text: str) -> tuple[str, str | None]:
    """``DOMAIN\\name`` -> (name, DOMAIN); a bare name has no domain."""
    domain, sep, name = text.partition("\\")
    return (name, domain or None) if sep else (text, None)


def _user(value: Any, uid: Any = None) -> User | None:
    text = _s(value)
    if text is None:
        return User(uid=uid) if uid else None
    name, domain = split_user(text)
    return User(name=name, domain=domain, uid=uid)


def _basename(path: str) -> str:
    return path.rpartition("\\")[2].rpartition("/")[2]


def _process(path: Any, pid: Any, cmd_line: Any = None, uid: Any = None) -> Process | None:
    path_s = _s(path)
    cmd = _s(cmd_line)
    pid_i = _int(pid)
    if path_s is None and cmd is None and not pid_i:
        return None
    return Process(
        name=_basename(path_s) if path_s else None,
        pid=pid_i,
        path=path_s,
        cmd_line=cmd,
        uid=_s(uid),
    )


def _file(path: Any, hashes: Any = None) -> File | None:
    path_s = _s(path)
    if path_s is None:
        return None
    return File(
        name=_basename(path_s),
        path=path_s,
        hashes=parse_hashes(hashes) if type(hashes) is str and hashes else None,
    )


def _host_port(text: Any) -> tuple[str | None, int | None]:
    """``10.0.2.16:52202`` or ``[fe80::1]:3389`` -> (ip, port); a bare address has no port."""
    value = _s(text)
    if value is None:
        return None, None
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        return host, _port(rest.lstrip(":"))
    if value.count(":") == 1:
        host, _, port = value.partition(":")
        return host, _port(port)
    return value, None


def _endpoint(ip: Any, port: Any, hostname: Any) -> Endpoint | None:
    ip_s, port_i, host_s = _s(ip), _port(port), _s(hostname)
    if ip_s is None and port_i is None and host_s is None:
        return None
    if ip_s is not None and ip_s.startswith("::ffff:") and "." in ip_s:
        ip_s = ip_s[7:]
    return Endpoint(ip=ip_s, port=port_i, hostname=host_s)


def _url(value: Any) -> Url | None:
    text = _s(value)
    if text is None:
        return None
    _, sep, rest = text.partition("://")
    if not sep:
        return Url(url_string=text)
    host_end = len(rest)
    for ch in "/?#":
        i = rest.find(ch)
        if 0 <= i < host_end:
            host_end = i
    host = rest[:host_end].rpartition("@")[2]
    if not host.startswith("["):
        host = host.partition(":")[0]
    return Url(url_string=text, hostname=host or None, path=rest[host_end:].partition("?")[0] or None)


# ---------------------------------------------------------------------------------------------- normalizer


def _detect(record: Any) -> bool:
    if type(record) is not dict:
        return False
    event = record.get("Event")
    if type(event) is dict:
        return type(event.get("System")) is dict
    return type(record.get("System")) is dict and "EventID" in record["System"]


@register("windows", detect=_detect, priority=10)
def normalize_windows(record: Any) -> Event:
    """Map one ``evtx``-JSON record (``{"Event": {"System": .., "EventData": ..}}``, or the bare
    ``Event`` object) onto an Event."""
    if type(record) is not dict:
        raise NormalizeError(f"a Windows event is a JSON object, got {type(record).__name__}")
    event = record.get("Event", record)
    system = event.get("System") if type(event) is dict else None
    if type(system) is not dict:
        raise NormalizeError("not a Windows event: it has no Event.System object")
    event_id = system.get("EventID")
    if type(event_id) is dict:
        event_id = event_id.get("#text")
    code = _int(event_id)
    if code is None:
        raise NormalizeError(f"Windows event without a numeric System.EventID (got {event_id!r})")
    provider = _s(_attr(system.get("Provider"), "Name"))
    channel = _s(system.get("Channel")) or provider or "unknown"
    system_time = _attr(system.get("TimeCreated"), "SystemTime")
    level = system.get("Level")
    level_i = level if type(level) is int else _int(level)
    out = Event(
        class_uid=_CLASS.get((channel, code), _BASE),
        time=_time_ms(system_time),
        severity_id=_LEVELS.get(level_i, _UNKNOWN) if level_i is not None else _UNKNOWN,
        format="windows",
        metadata=Metadata(
            product=provider,
            vendor="Microsoft" if provider and provider.startswith("Microsoft") else None,
            log_name=channel,
            event_code=str(code),
            uid=_s(system.get("EventRecordID")),
            original_time=system_time if type(system_time) is str else None,
        ),
        device=Device(hostname=_s(system.get("Computer"))),
        raw=record,
    )
    data = event_data(event)
    if data:
        _fill(out, data, channel, code)
    if out.actor is None:
        sid = _s(_attr(system.get("Security"), "UserID"))
        if sid is not None:
            out.actor = Actor(user=User(uid=sid))
    if out.process is None and channel in _POWERSHELL:
        pid = _int(_attr(system.get("Execution"), "ProcessID"))
        if pid:
            out.process = Process(pid=pid)
    return out


def _fill(out: Event, data: Mapping[str, Any], channel: str, code: int) -> None:
    """Copy the well-known EventData fields onto ``out``. One pass of dict lookups, shared by every
    channel: the field names are unambiguous across Sysmon, Security and the rest."""
    g = data.get
    actor_process: Process | None = None
    user: User | None = None

    # Process: Sysmon source/target pairs (access, remote thread), 4688's New*, else the acting image.
    source_image = g("SourceImage")
    if source_image is not None:
        actor_process = _process(
            source_image, g("SourceProcessId"), uid=g("SourceProcessGUID") or g("SourceProcessGuid")
        )
        process = _process(
            g("TargetImage"), g("TargetProcessId"), uid=g("TargetProcessGUID") or g("TargetProcessGuid")
        )
        user = _user(g("SourceUser"))
    elif "NewProcessName" in data:
        process = _process(g("NewProcessName"), g("NewProcessId"), g("CommandLine"))
        if process is not None:
            process.parent_process = _process(g("ParentProcessName"), g("ProcessId"))
    else:
        image = g("Image") or g("ProcessName") or g("Application") or g("Process Name") or g("processPath")
        cmd = g("CommandLine") or g("ImagePath") or g("ServiceFileName")
        process = _process(image, g("ProcessId") or g("ProcessID") or g("processId"), cmd, g("ProcessGuid"))
        if process is not None and "ParentImage" in data:
            process.parent_process = _process(
                g("ParentImage"), g("ParentProcessId"), g("ParentCommandLine"), g("ParentProcessGuid")
            )

    # User: the account logging on for authentication events, else the subject / process owner.
    target_name = _s(g("TargetUserName"))
    auth = out.class_uid == _AUTHENTICATION
    if target_name is not None and (auth or "SubjectUserName" not in data):
        user = User(
            name=target_name, domain=_s(g("TargetDomainName")), uid=_s(g("TargetUserSid") or g("TargetSid"))
        )
    if user is None:
        user = _user(g("User"))
    if user is None:
        subject = _s(g("SubjectUserName"))
        if subject is not None:
            user = User(name=subject, domain=_s(g("SubjectDomainName")), uid=_s(g("SubjectUserSid")))
        elif channel == _RCM and "Param1" in data:
            user = _user(g("Param1"))
            if user is not None:
                user.domain = _s(g("Param2"))
        else:
            user = _user(g("Detection User") or g("AccountName"))
    if user is not None and process is not None and "User" in data:
        process.user = user
    if user is not None or actor_process is not None:
        out.actor = Actor(user=user, process=actor_process)
    out.process = process

    # File: the file acted on, an image loaded, or the process image when Sysmon hashed it.
    hashes = g("Hashes") or g("Hash")
    target_file = g("TargetFilename") or g("ImageLoaded")
    if target_file is not None:
        out.file = _file(target_file, hashes)
    elif hashes is not None and process is not None:
        out.file = _file(process.path, hashes)
    elif "RelativeTargetName" in data:
        share = _s(g("ShareName"))
        name = _s(g("RelativeTargetName"))
        out.file = _file(f"{share}\\{name}" if share and name else name or share)
    elif "ObjectName" in data:
        object_type = g("ObjectType")
        if object_type == "Key" or code == 4657:
            out.registry_key = _s(g("ObjectName"))
            if out.class_uid == _FILE_ACTIVITY:
                out.class_uid = _REGISTRY_KEY_ACTIVITY
        elif object_type == "File":
            out.file = _file(g("ObjectName"))
    elif channel == _DEFENDER and "Path" in data:
        path = _s(g("Path"))
        if path:
            out.file = _file(path.partition(";")[0].removeprefix("file:_"))
    elif "ScriptBlockText" in data:
        out.file = _file(g("Path"))

    # Network endpoints: Sysmon 3, WFP 5156, logons (IpAddress), RDP (ClientIP, Address, Param3).
    src_ip = g("SourceIp") or g("SourceAddress") or g("IpAddress")
    src_port = g("SourcePort") or g("IpPort")
    if src_ip is None:
        if "ClientIP" in data:
            src_ip, src_port = _host_port(g("ClientIP"))
        elif channel == _RCM:
            src_ip = g("Param3")
        elif channel == _LSM:
            src_ip = g("Address")
    src_host = g("SourceHostname") or g("WorkstationName") or g("Workstation")
    if src_ip is not None or src_port is not None or src_host is not None:
        out.src_endpoint = _endpoint(src_ip, src_port, src_host)
    dst_ip = g("DestinationIp") or g("DestAddress")
    if dst_ip is not None or "DestinationHostname" in data:
        out.dst_endpoint = _endpoint(dst_ip, g("DestinationPort") or g("DestPort"), g("DestinationHostname"))

    query = g("QueryName")
    if query is not None:
        out.query = _s(query)
    target_object = g("TargetObject")
    if target_object is not None:
        out.registry_key = _s(target_object)
    if "url" in data:
        out.url = _url(g("url"))
    texts = g("Data")
    if type(texts) is list and texts:
        out.message = "\n".join(texts)
