"""Load the demo data set with its times moved to "now", and make fresh background events for a live demo.

The files in ``data/`` are stored with fixed times on 2026-03-10 (the newest is :data:`DEMO_NEWEST_MS`).
:func:`load_demo_events`, :func:`load_demo_alerts` and :func:`load_demo_webhooks` shift every timestamp by
the same amount, so that the newest record lands on ``now_ms`` and the story keeps its shape across
sources: Windows ``SystemTime``/``UtcTime``/``CreationUtcTime``, ECS ``@timestamp``, CEF ``rt`` and the
syslog header in front of it, alert ``time`` and the vendor alerts' own time fields.

:func:`live_events` makes a few new, ordinary events (seeded, so a test can pin them) that ``bastion up
--demo`` trickles in every few seconds, so data keeps flowing; now and then the compromised workstation
still tries its C2 server and the firewall blocks it.

Records are returned as ``(format, record)`` pairs, where ``format`` is the normalizer id (``windows``,
``ecs``, ``cef``) and ``record`` the parsed JSON object (or the text line for CEF).
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

__all__ = [
    "DATA_DIR",
    "DEMO_NEWEST_MS",
    "INDICATORS",
    "Record",
    "demo_files",
    "live_events",
    "load_demo_alerts",
    "load_demo_events",
    "load_demo_webhooks",
    "record_time",
]

DATA_DIR = Path(__file__).parent / "data"
DEMO_NEWEST_MS = 1_773_138_300_000  # 2026-03-10T10:25:00Z, the newest timestamp in DATA_DIR

# The intrusion story's key indicators, for tests, docs and the guided tour.
INDICATORS: dict[str, str] = {
    "victim_host": "WS-0142",
    "victim_ip": "10.20.14.142",
    "victim_user": "j.morales",
    "phishing_sender": "accounts@northwlnd-billing.example",
    "phishing_domain": "docs-northwlnd-billing.example",
    "phishing_url": "https://docs-northwlnd-billing.example/invoice/INV-20931.docm",
    "stager_domain": "cdn.fastupdate-cdn.test",
    "stager_ip": "198.51.100.23",
    "c2_domain": "telemetry.stat-sync.test",
    "c2_ip": "203.0.113.77",
    "implant_path": "C:\\ProgramData\\NwUpdate\\nwupd.exe",
    "implant_sha256": "068ae8a2cabd308ac6bba17cfb13bb685fdc00d975035bcb2bc7db3bcd7a1df2",
    "lateral_target": "FS-01",
    "lateral_account": "svc_backup",
}

Record = tuple[str, dict[str, Any] | str]

_FILES = {"windows": "windows.jsonl", "ecs": "ecs.jsonl", "cef": "firewall.cef.log"}
_TIME_KEYS = frozenset(
    {
        "SystemTime",
        "UtcTime",
        "CreationUtcTime",
        "@timestamp",
        "time",
        "created",
        "start",
        "end",
        "ingested",
        "first_seen",
        "TimeGenerated",
        "StartTime",
        "EndTime",
        "ProcessingEndTime",
        "kibana.alert.start",
        "kibana.alert.original_time",
        "kibana.alert.last_detected",
        "createdDateTime",
        "firstActivityDateTime",
        "lastActivityDateTime",
        "lastUpdateDateTime",
    }
)
_TIMESTAMP = re.compile(r"(\d{4}-\d{2}-\d{2})([T ])(\d{2}:\d{2}:\d{2})(?:\.(\d{1,6}))?(Z|[+-]\d{2}:\d{2})?")
_CEF_TIME = re.compile(r"(?<=[\s|])(rt|start|end)=(\d{13})(?=\s|$)")
_SYSLOG_3164 = re.compile(r"^(<\d{1,3}>)[A-Z][a-z]{2} [ \d]\d \d{2}:\d{2}:\d{2}(?= )")
_SYSLOG_5424 = re.compile(r"^(<\d{1,3}>1 )(\S+)")


def demo_files() -> list[Path]:
    """Every file of the demo data set."""
    return sorted(p for p in DATA_DIR.rglob("*") if p.is_file())


# --- time shifting ------------------------------------------------------------------------------------


def _from_ms(ms: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)


def _shift_text(text: str, delta_ms: int) -> str:
    """Move a timestamp string by ``delta_ms``, keeping its layout (separator, precision, zone)."""
    m = _TIMESTAMP.fullmatch(text)
    if m is None:
        return text
    date, sep, clock, frac, zone = m.groups()
    parsed = datetime.fromisoformat(f"{date}T{clock}.{(frac or '0').ljust(6, '0')}{zone or ''}")
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    moved = (parsed + timedelta(milliseconds=delta_ms)).astimezone(parsed.tzinfo)
    out = f"{moved:%Y-%m-%d}{sep}{moved:%H:%M:%S}"
    if frac:
        out += "." + f"{moved.microsecond:06d}"[: len(frac)]
    return out + (zone or "")


def _shift(node: Any, delta_ms: int) -> Any:
    """A copy of a JSON value with every timestamp under a known time key moved by ``delta_ms``."""
    if isinstance(node, dict):
        return {
            k: _shift_text(v, delta_ms) if k in _TIME_KEYS and isinstance(v, str) else _shift(v, delta_ms)
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_shift(v, delta_ms) for v in node]
    return node


def _syslog_stamp(ms: int) -> str:
    t = _from_ms(ms)
    return f"{t:%b} {t.day:2d} {t:%H:%M:%S}"


def _iso_ms(ms: int) -> str:
    t = _from_ms(ms)
    return f"{t:%Y-%m-%dT%H:%M:%S}.{t.microsecond // 1000:03d}Z"


def _shift_cef(line: str, delta_ms: int) -> str:
    """Move a CEF line's ``rt``/``start``/``end`` and rewrite its syslog header (if any) to match ``rt``."""
    line = _CEF_TIME.sub(lambda m: f"{m[1]}={int(m[2]) + delta_ms}", line)
    rt = _CEF_TIME.search(line)
    if rt is None:
        return line
    ms = int(rt[2])
    line = _SYSLOG_3164.sub(lambda m: m[1] + _syslog_stamp(ms), line, count=1)
    return _SYSLOG_5424.sub(lambda m: m[1] + _shift_text(m[2], delta_ms), line, count=1)


def record_time(fmt: str, record: dict[str, Any] | str) -> int:
    """The time of a demo record in epoch milliseconds (Windows SystemTime, ECS @timestamp, CEF rt)."""
    if isinstance(record, str):
        found = _CEF_TIME.search(record)
        if found is None:
            raise ValueError(f"CEF line without rt: {record[:80]!r}")
        return int(found[2])
    if fmt == "windows":
        text = record["Event"]["System"]["TimeCreated"]["#attributes"]["SystemTime"]
    else:
        text = record["@timestamp"]
    return (datetime.fromisoformat(text) - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)


# --- the stored data set ------------------------------------------------------------------------------


def _read_lines(name: str) -> list[str]:
    text = (DATA_DIR / name).read_text(encoding="utf-8")
    return [line for line in text.splitlines() if line.strip()]


def load_demo_events(now_ms: int) -> list[Record]:
    """All demo events, in time order, with their times moved so that the newest is ``now_ms``."""
    delta = now_ms - DEMO_NEWEST_MS
    records: list[Record] = []
    for fmt in ("windows", "ecs"):
        records += [(fmt, _shift(json.loads(line), delta)) for line in _read_lines(_FILES[fmt])]
    records += [("cef", _shift_cef(line, delta)) for line in _read_lines(_FILES["cef"])]
    return sorted(records, key=lambda r: record_time(*r))


def load_demo_alerts(now_ms: int) -> list[dict[str, Any]]:
    """The demo's generic alert documents (``POST /api/v1/alerts``), times moved like the events."""
    alerts: list[dict[str, Any]] = json.loads((DATA_DIR / "alerts.json").read_text(encoding="utf-8"))
    return [_shift(alert, now_ms - DEMO_NEWEST_MS) for alert in alerts]


def load_demo_webhooks(now_ms: int) -> list[tuple[str, Any]]:
    """The demo's vendor alert payloads as ``(webhook source, payload)``, times moved like the events."""
    out = []
    for path in sorted((DATA_DIR / "webhooks").glob("*.json")):
        payload = json.loads(path.read_text(encoding="utf-8"))
        out.append((path.stem, _shift(payload, now_ms - DEMO_NEWEST_MS)))
    return out


# --- live background events ---------------------------------------------------------------------------

_EDGE = "C:\\Program Files (x86)\\Microsoft\\Edge\\Application\\msedge.exe"
_SID = "S-1-5-21-2718281828-3141592653-1618033988"
_WORKSTATIONS = (  # host, ip, user, RID
    ("WS-0117", "10.20.14.117", "a.chen", 1117),
    ("WS-0203", "10.20.14.203", "d.okafor", 1203),
    ("WS-0008", "10.20.14.8", "m.keller", 1008),
    ("WS-0142", "10.20.14.142", "j.morales", 1142),
    ("WS-0151", "10.20.14.151", "p.novak", 1151),
    ("WS-0188", "10.20.14.188", "s.haddad", 1188),
)
_SITES = (  # domain, address, firewall app, paths
    ("outlook.office365.com", "52.97.146.162", "ms-office365-base", ("/owa/", "/mail/inbox")),
    ("teams.microsoft.com", "52.113.194.132", "ms-teams", ("/v2/", "/api/chatsvc/emea/v1/users/ME")),
    ("github.com", "140.82.121.4", "github-base", ("/northwind-labs/billing-api", "/notifications")),
    ("www.bing.com", "13.107.21.200", "bing", ("/search?q=quarterly+report+template", "/news")),
    ("login.microsoftonline.com", "20.190.151.7", "ms-azure-ad", ("/common/oauth2/v2.0/token",)),
    ("pypi.org", "151.101.0.223", "python-pip", ("/simple/httpx/", "/simple/pydantic/")),
    ("www.linkedin.com", "13.107.42.14", "linkedin-base", ("/feed/", "/jobs/")),
    ("www.wikipedia.org", "185.15.59.224", "wikipedia-base", ("/", "/wiki/Northwind_Traders")),
)
_PROGRAMS = (  # image, command line
    (_EDGE, '"{image}" --profile-directory=Default'),
    (
        "C:\\Program Files\\Microsoft Office\\root\\Office16\\EXCEL.EXE",
        '"{image}" "\\\\FS-01\\Finance\\budget.xlsx"',
    ),
    ("C:\\Program Files\\Microsoft Office\\root\\Office16\\WINWORD.EXE", '"{image}" /n'),
    ("C:\\Windows\\System32\\notepad.exe", '"{image}" C:\\Users\\{user}\\Documents\\notes.txt'),
    ("C:\\Program Files\\Microsoft OneDrive\\OneDrive.exe", '"{image}" /background'),
    ("C:\\Windows\\System32\\mstsc.exe", '"{image}" /v:FS-01.northwind.example'),
)
_EDGE_UA = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/122.0.0.0 Safari/537.36 Edg/122.0.2365.80"
)
_PROVIDERS = {
    "sysmon": (
        "Microsoft-Windows-Sysmon",
        "5770385F-C22A-43E0-BF4C-06F5698FFBD9",
        "Microsoft-Windows-Sysmon/Operational",
    ),
    "security": ("Microsoft-Windows-Security-Auditing", "54849625-5478-4994-A5BA-3E3B0328C30D", "Security"),
}


def _guid(rng: random.Random) -> str:
    h = f"{rng.getrandbits(128):032X}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _windows(rng: random.Random, kind: str, eid: int, host: str, ms: int, data: dict[str, Any]) -> Record:
    name, guid, channel = _PROVIDERS[kind]
    sysmon = kind == "sysmon"
    t = _from_ms(ms)
    system = {
        "Provider": {"#attributes": {"Name": name, "Guid": guid}},
        "EventID": eid,
        "Version": {1: 5, 3: 5, 22: 5, 4624: 2}[eid],
        "Level": 4 if sysmon else 0,
        "Task": eid if sysmon else 12544,
        "Opcode": 0,
        "Keywords": "0x8000000000000000" if sysmon else "0x8020000000000000",
        "TimeCreated": {"#attributes": {"SystemTime": f"{t:%Y-%m-%dT%H:%M:%S}.{t.microsecond:06d}Z"}},
        "EventRecordID": rng.randint(500_000, 2_500_000),
        "Correlation": None,
        "Execution": {
            "#attributes": {"ProcessID": 3112 if sysmon else 712, "ThreadID": rng.randint(1000, 9000)}
        },
        "Channel": channel,
        "Computer": f"{host}.northwind.example",
        "Security": {"#attributes": {"UserID": "S-1-5-18"}} if sysmon else None,
    }
    if sysmon:
        data = {"RuleName": "-", "UtcTime": f"{t:%Y-%m-%d %H:%M:%S}.{t.microsecond // 1000:03d}", **data}
    return (
        "windows",
        {
            "Event": {
                "#attributes": {"xmlns": "http://schemas.microsoft.com/win/2004/08/events/event"},
                "System": system,
                "EventData": data,
            }
        },
    )


def _live_process(rng: random.Random, ms: int) -> Record:
    host, _, user, _ = rng.choice(_WORKSTATIONS)
    image, cmd = rng.choice(_PROGRAMS)
    return _windows(
        rng,
        "sysmon",
        1,
        host,
        ms,
        {
            "ProcessGuid": _guid(rng),
            "ProcessId": rng.randrange(1000, 14000, 4),
            "Image": image,
            "CommandLine": cmd.format(image=image, user=user),
            "CurrentDirectory": f"C:\\Users\\{user}\\",
            "User": f"NORTHWIND\\{user}",
            "LogonId": hex(rng.randrange(0x100000, 0xFFFFFF)),
            "TerminalSessionId": 1,
            "IntegrityLevel": "Medium",
            "Hashes": f"SHA256={rng.getrandbits(256):064X}",
            "ParentProcessGuid": _guid(rng),
            "ParentProcessId": rng.randrange(1000, 14000, 4),
            "ParentImage": "C:\\Windows\\explorer.exe",
            "ParentCommandLine": "C:\\Windows\\Explorer.EXE",
            "ParentUser": f"NORTHWIND\\{user}",
        },
    )


def _live_dns_query(rng: random.Random, ms: int) -> Record:
    host, _, user, _ = rng.choice(_WORKSTATIONS)
    domain, address, _, _ = rng.choice(_SITES)
    return _windows(
        rng,
        "sysmon",
        22,
        host,
        ms,
        {
            "ProcessGuid": _guid(rng),
            "ProcessId": rng.randrange(1000, 14000, 4),
            "QueryName": domain,
            "QueryStatus": "0",
            "QueryResults": f"::ffff:{address};",
            "Image": _EDGE,
            "User": f"NORTHWIND\\{user}",
        },
    )


def _live_connection(rng: random.Random, ms: int) -> Record:
    host, ip, user, _ = rng.choice(_WORKSTATIONS)
    domain, address, _, _ = rng.choice(_SITES)
    return _windows(
        rng,
        "sysmon",
        3,
        host,
        ms,
        {
            "ProcessGuid": _guid(rng),
            "ProcessId": rng.randrange(1000, 14000, 4),
            "Image": _EDGE,
            "User": f"NORTHWIND\\{user}",
            "Protocol": "tcp",
            "Initiated": True,
            "SourceIsIpv6": False,
            "SourceIp": ip,
            "SourceHostname": f"{host}.northwind.example",
            "SourcePort": rng.randint(49700, 65000),
            "SourcePortName": "-",
            "DestinationIsIpv6": False,
            "DestinationIp": address,
            "DestinationHostname": domain,
            "DestinationPort": 443,
            "DestinationPortName": "https",
        },
    )


def _live_logon(rng: random.Random, ms: int) -> Record:
    _, ip, user, rid = rng.choice(_WORKSTATIONS)
    return _windows(
        rng,
        "security",
        4624,
        "FS-01",
        ms,
        {
            "SubjectUserSid": "S-1-0-0",
            "SubjectUserName": "-",
            "SubjectDomainName": "-",
            "SubjectLogonId": "0x0",
            "TargetUserSid": f"{_SID}-{rid}",
            "TargetUserName": user,
            "TargetDomainName": "NORTHWIND",
            "TargetLogonId": hex(rng.randrange(0x1000000, 0x9FFFFFF)),
            "LogonType": 3,
            "LogonProcessName": "Kerberos",
            "AuthenticationPackageName": "Kerberos",
            "WorkstationName": "-",
            "LogonGuid": _guid(rng),
            "TransmittedServices": "-",
            "LmPackageName": "-",
            "KeyLength": 0,
            "ProcessId": "0x0",
            "ProcessName": "-",
            "IpAddress": ip,
            "IpPort": str(rng.randint(49700, 65000)),
            "ImpersonationLevel": "%%1833",
            "RestrictedAdminMode": "-",
            "TargetOutboundUserName": "-",
            "TargetOutboundDomainName": "-",
            "VirtualAccount": "%%1843",
            "TargetLinkedLogonId": "0x0",
            "ElevatedToken": "%%1843",
        },
    )


def _live_proxy(rng: random.Random, ms: int) -> Record:
    host, ip, user, _ = rng.choice(_WORKSTATIONS)
    domain, address, _, paths = rng.choice(_SITES)
    path = rng.choice(paths)
    return (
        "ecs",
        {
            "@timestamp": _iso_ms(ms),
            "ecs": {"version": "8.11.0"},
            "event": {
                "kind": "event",
                "dataset": "squid.access",
                "category": ["network", "web"],
                "type": ["access", "connection"],
                "action": "TCP_MISS",
                "outcome": "success",
            },
            "observer": {"vendor": "Squid", "product": "Squid", "hostname": "PX-01", "ip": "10.20.0.5"},
            "source": {"ip": ip, "port": rng.randint(49700, 65000)},
            "destination": {"ip": address, "port": 443, "domain": domain},
            "url": {
                "full": f"https://{domain}{path}",
                "domain": domain,
                "path": path.split("?")[0],
                "scheme": "https",
            },
            "http": {
                "request": {"method": "GET"},
                "response": {
                    "status_code": 200,
                    "bytes": rng.randint(900, 250_000),
                    "mime_type": "text/html",
                },
            },
            "user_agent": {"original": _EDGE_UA},
            "network": {"protocol": "http", "transport": "tcp"},
            "host": {"name": host},
            "user": {"name": user, "domain": "NORTHWIND"},
        },
    )


def _live_dns_log(rng: random.Random, ms: int) -> Record:
    host, ip, _, _ = rng.choice(_WORKSTATIONS)
    domain, address, _, _ = rng.choice(_SITES)
    return (
        "ecs",
        {
            "@timestamp": _iso_ms(ms),
            "ecs": {"version": "8.11.0"},
            "event": {
                "kind": "event",
                "dataset": "windows_dns.query",
                "category": ["network"],
                "type": ["protocol", "info"],
                "action": "dns-query",
                "outcome": "success",
            },
            "observer": {
                "vendor": "Microsoft",
                "product": "Windows DNS Server",
                "hostname": "DC-01",
                "ip": "10.20.1.10",
            },
            "source": {"ip": ip},
            "destination": {"ip": "10.20.1.10", "port": 53},
            "dns": {
                "type": "query",
                "question": {"name": domain, "type": "A"},
                "response_code": "NOERROR",
                "answers": [{"name": domain, "type": "A", "data": address, "ttl": 300}],
                "resolved_ip": [address],
            },
            "network": {"protocol": "dns", "transport": "udp"},
            "host": {"name": host},
        },
    )


def _cef(
    rng: random.Random, ms: int, act: str, src: str, dst: str, dpt: int, rule: str, app: str, user: str
) -> Record:
    subtype = "end" if act == "allow" else "deny"
    ext = (
        f"rt={ms} deviceExternalId=016401002345 src={src} dst={dst} spt={rng.randint(49700, 65000)} "
        f"suser=northwind\\\\{user} dpt={dpt} proto=TCP act={act} cs1Label=Rule cs1={rule} app={app} "
        "cs3Label=Virtual System cs3=vsys1 cs4Label=Source Zone cs4=trust cs5Label=Destination Zone "
        f"cs5=untrust cn1Label=SessionID cn1={rng.randint(100000, 999999)} in={rng.randint(60, 9000)} "
        f"out={rng.randint(60, 90000) if act == 'allow' else 0} dvchost=nw-fw-01"
    )
    line = f"CEF:0|Palo Alto Networks|PAN-OS|10.2.7|{subtype}|TRAFFIC|{1 if act == 'allow' else 3}|{ext}"
    return ("cef", f"<14>{_syslog_stamp(ms)} nw-fw-01 {line}" if rng.random() < 0.5 else line)


def _live_firewall(rng: random.Random, ms: int) -> Record:
    _, ip, user, _ = rng.choice(_WORKSTATIONS)
    _, address, app, _ = rng.choice(_SITES)
    return _cef(rng, ms, "allow", ip, address, 443, "allow-outbound-web", app, user)


def _live_c2_blocked(rng: random.Random, ms: int) -> Record:
    return _cef(
        rng,
        ms,
        "deny",
        INDICATORS["victim_ip"],
        INDICATORS["c2_ip"],
        443,
        "block-threat-intel",
        "ssl",
        INDICATORS["victim_user"],
    )


_LIVE: tuple[tuple[Callable[[random.Random, int], Record], int], ...] = (
    (_live_process, 14),
    (_live_dns_query, 14),
    (_live_connection, 12),
    (_live_logon, 10),
    (_live_proxy, 18),
    (_live_dns_log, 12),
    (_live_firewall, 16),
    (_live_c2_blocked, 4),
)


def live_events(now_ms: int, count: int, seed: int) -> list[Record]:
    """``count`` fresh background events from the last few seconds before ``now_ms``, in time order.
    The same ``(now_ms, count, seed)`` always gives the same events."""
    rng = random.Random(seed)
    makers, weights = zip(*_LIVE, strict=True)
    records = []
    for _ in range(count):
        ms = now_ms - rng.randint(0, 4_000)
        records.append(rng.choices(makers, weights)[0](rng, ms))
    return sorted(records, key=lambda r: record_time(*r))
