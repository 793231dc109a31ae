"""The generic alert document and the vendor webhook mappers, field by field, with every error path."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from typing import Any

import pytest

from bastion.ingest.alerts import (
    WEBHOOK_MAPPERS,
    AlertDocumentError,
    UnknownWebhookSource,
    map_webhook,
    normalize_observable,
    parse_alert_document,
    parse_time,
)
from bastion.model import Alert, AlertStatus, ObservableType, Severity
from bastion.model.timefmt import MAX_MS, MIN_MS, TimeOutOfRange, parse_time_ms

OT = ObservableType
SHA256 = "8963a19fb992ad9a76576c5638fd68292cffb9aaac29eb8285f9abf6196a7dec"
SHA1 = "5f1e8acedc065031aad553b710838eb366cfee9a"
MD5 = "33facaab13a58251bf45e9ac958b15fa"


def obs(alert: Alert) -> set[tuple[str, str]]:
    return {(o.type.value, o.value) for o in alert.observables}


def error(func: Any, *args: Any, **kwargs: Any) -> str:
    with pytest.raises(AlertDocumentError) as info:
        func(*args, **kwargs)
    return str(info.value)


# --- values -------------------------------------------------------------------------------------------


def test_parse_time_reads_iso_and_epoch_seconds_and_milliseconds() -> None:
    ms = 1_773_133_920_000  # 2026-03-10T09:12:00Z
    assert parse_time("2026-03-10T09:12:00Z") == ms
    assert parse_time("2026-03-10T09:12:00.7211305Z") == ms + 721  # 7 fractional digits, as Microsoft sends
    assert parse_time("2026-03-10T10:12:00+01:00") == ms
    assert parse_time("2026-03-10 09:12:00") == ms  # naive means UTC
    assert parse_time(ms // 1000) == ms
    assert parse_time(ms) == ms
    assert parse_time(ms / 1000 + 0.5) == ms + 500
    assert parse_time(str(ms)) == ms
    for bad in ("yesterday", True, None, -5, [1]):
        with pytest.raises(ValueError):
            parse_time(bad)


def test_times_no_date_can_show_are_refused_naming_the_value() -> None:
    """Past the year 9999 a time overflowed the store's 64-bit column (a 500); it is a ValueError now."""
    assert parse_time("0001-01-01T00:00:00Z") == MIN_MS
    assert parse_time("9999-12-31T23:59:59.999Z") == MAX_MS
    for bad in (1e30, 10**30, "99999999999999999999999999", "0001-01-01T00:00:00+01:00"):
        with pytest.raises(
            TimeOutOfRange, match="out of range: a time must fall between the years 1 and 9999"
        ):
            parse_time(bad)
    with pytest.raises(ValueError, match="inf"):
        parse_time(float("inf"))
    # typed times keep the reason instead of the generic "not a time", relative ones included
    for typed in ("99999999999999999999999", "-99999999999d"):
        with pytest.raises(TimeOutOfRange, match=f"{typed!r} is out of range"):
            parse_time_ms(typed)
    assert parse_time_ms("-1d", now_ms=2 * 86_400_000) == 86_400_000


@pytest.mark.parametrize(
    ("kind", "value", "expected"),
    [
        (OT.IPV4, "203.0.113[.]77", "203.0.113.77"),
        (OT.IPV6, "2001:DB8:0:0::1", "2001:db8::1"),
        (OT.DOMAIN, "Docs-Northwlnd-Billing[.]Example.", "docs-northwlnd-billing.example"),
        (OT.URL, "hxxps://evil[.]example/a?b=1", "https://evil.example/a?b=1"),
        (OT.EMAIL, "Accounts[@]Northwlnd-Billing.EXAMPLE", "Accounts@northwlnd-billing.example"),
        (OT.SHA256, SHA256.upper(), SHA256),
        (OT.SHA1, SHA1, SHA1),
        (OT.MD5, MD5.upper(), MD5),
        (OT.USER, " j.morales ", "j.morales"),
        (OT.FILE_PATH, r"C:\ProgramData\NwUpdate\nwupd.exe", r"C:\ProgramData\NwUpdate\nwupd.exe"),
    ],
)
def test_normalize_observable_defangs_and_canonicalizes(
    kind: ObservableType, value: str, expected: str
) -> None:
    assert normalize_observable(kind, value) == expected


# --- the generic document -----------------------------------------------------------------------------

FULL_DOCUMENT: dict[str, Any] = {
    "title": "  LSASS memory dumped with comsvcs.dll MiniDump ",
    "severity": "critical",
    "time": "2026-03-10T09:37:08Z",
    "source": "edr",
    "description": "rundll32.exe opened lsass.exe with full access.",
    "external_id": "EDR-7f3d9e07",
    "rule_id": "edr-lsass-minidump",
    "rule_name": "LSASS dump via comsvcs",
    "techniques": ["t1003.001", "T1003.001", "T1059"],
    "tags": ["credential-access", " ", "credential-access"],
    "observables": [
        {"type": "host", "value": "WS-0142"},
        {"type": "IPv4", "value": "203.0.113[.]77", "field": "dst"},
        {"type": "sha256", "value": SHA256.upper()},
        {"type": "url", "value": "hxxps://cdn.fastupdate-cdn[.]test/s/upd.ps1"},
        {"type": "host", "value": "WS-0142"},
    ],
    "raw": {"granted_access": "0x1FFFFF"},
}


def test_generic_document_maps_every_field() -> None:
    alert = parse_alert_document(copy.deepcopy(FULL_DOCUMENT))
    assert alert.title == "LSASS memory dumped with comsvcs.dll MiniDump"
    assert alert.severity is Severity.CRITICAL
    assert alert.time == parse_time("2026-03-10T09:37:08Z")
    assert alert.source == "edr"
    assert alert.description == "rundll32.exe opened lsass.exe with full access."
    assert (alert.external_id, alert.rule_id, alert.rule_name) == (
        "EDR-7f3d9e07",
        "edr-lsass-minidump",
        "LSASS dump via comsvcs",
    )
    assert alert.techniques == ["T1003.001", "T1059"]
    assert alert.tags == ["credential-access"]
    assert [(o.type, o.value, o.field) for o in alert.observables] == [
        (OT.HOST, "WS-0142", None),
        (OT.IPV4, "203.0.113.77", "dst"),
        (OT.SHA256, SHA256, None),
        (OT.URL, "https://cdn.fastupdate-cdn.test/s/upd.ps1", None),
    ]
    assert alert.raw == {"granted_access": "0x1FFFFF"}
    assert alert.status is AlertStatus.NEW


def test_generic_document_defaults() -> None:
    alert = parse_alert_document({"title": "t", "source": "s"}, now_ms=1234)
    assert (alert.time, alert.severity, alert.observables, alert.techniques) == (
        1234,
        Severity.UNKNOWN,
        [],
        [],
    )
    assert parse_alert_document({"title": "t", "source": "s", "severity": 4, "time": 1_773_133_920}).time == (
        1_773_133_920_000
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"title": None}, "title: required"),
        ({"title": "   "}, "title: required (got an empty string)"),
        ({"title": 5}, "title: expected `str`, got `int`"),
        ({"source": None}, "source: required"),
        ({"source": ""}, "source: required (got an empty string)"),
        ({"severity": "urgent"}, "severity: unknown severity 'urgent'"),
        ({"severity": 7}, "severity: unknown severity id 7"),
        ({"severity": True}, "severity: expected `int | str`, got `bool`"),
        ({"time": "yesterday"}, "time: 'yesterday' is not an ISO-8601 time"),
        ({"time": [1]}, "time: expected"),
        ({"techniques": ["T1003.001", "T12"]}, "techniques[1]: 'T12' is not an ATT&CK technique id"),
        ({"tags": "a,b"}, "tags: expected `array`, got `str`"),
        (
            {"observables": [{"type": "host", "value": "a"}, {"type": "hostname", "value": "b"}]},
            "observables[1].type: 'hostname' is not an observable type; use one of ipv4, ipv6",
        ),
        ({"observables": [{"type": "ipv4"}]}, "observables[0].value: required"),
        ({"observables": [{"type": "ipv4", "value": 1}]}, "observables[0].value: expected `str`, got `int`"),
        (
            {"observables": [{"type": "ipv4", "value": "1.2.3.4", "note": "x"}]},
            "observables[0].note: unknown field; allowed: type, value, field",
        ),
        ({"severty": "high"}, "severty: unknown field; allowed: title, source, severity"),
    ],
)
def test_generic_document_errors_name_the_field(change: dict[str, Any], message: str) -> None:
    doc = {"title": "t", "source": "s"}
    doc.update(change)
    doc = {k: v for k, v in doc.items() if v is not None}
    assert error(parse_alert_document, doc).startswith(message)


@pytest.mark.parametrize(
    ("kind", "value", "message"),
    [
        ("ipv4", "abc", "'abc' is not a valid ipv4 address"),
        ("ipv4", "10.0.0.300", "'10.0.0.300' is not a valid ipv4 address"),
        ("ipv4", "2001:db8::1", "'2001:db8::1' is not a valid ipv4 address (it is ipv6)"),
        ("ipv6", "203.0.113.77", "'203.0.113.77' is not a valid ipv6 address (it is ipv4)"),
        ("md5", "abc", "'abc' is not a valid md5 hash (32 hex digits)"),
        ("sha1", "z" * 40, f"{'z' * 40!r} is not a valid sha1 hash (40 hex digits)"),
        ("sha256", SHA1, f"{SHA1!r} is not a valid sha256 hash (64 hex digits)"),
        ("email", "j.morales", "'j.morales' is not a valid email address"),
        (
            "url",
            "northwind.example/login",
            "'northwind.example/login' is not a valid url (it needs a scheme and a host: https://host/path)",
        ),
        ("domain", "localhost", "'localhost' is not a valid domain name"),
        ("domain", "bad_-.example", "'bad_-.example' is not a valid domain name"),
        ("user", "  ", "empty value"),
        ("host", "WS-0142\n", None),  # surrounding whitespace is trimmed, not an error
        ("file_path", "C:\\a\x00b", "'C:\\\\a\\x00b' contains control characters"),
    ],
)
def test_observable_values_are_validated_by_type(kind: str, value: str, message: str | None) -> None:
    doc = {
        "title": "t",
        "source": "s",
        "observables": [{"type": "host", "value": "WS-0142"}, {"type": kind, "value": value}],
    }
    if message is None:
        parse_alert_document(doc)
        return
    assert error(parse_alert_document, doc) == f"observables[1].value: {message}"


def test_generic_document_must_be_an_object() -> None:
    assert error(parse_alert_document, ["t"]) == "an alert document must be a JSON object, got an array"


def test_generic_webhook_takes_one_a_list_or_a_wrapper_and_names_the_item() -> None:
    one = {"title": "a", "source": "s"}
    assert [a.title for a in map_webhook("generic", one)] == ["a"]
    assert [a.title for a in map_webhook("generic", [one, {**one, "title": "b"}])] == ["a", "b"]
    assert [a.title for a in map_webhook("generic", {"alerts": [one]})] == ["a"]
    assert error(map_webhook, "generic", [one, {"source": "s"}]) == "[1].title: required"
    assert error(map_webhook, "generic", {"alerts": [one, one, {**one, "time": "x"}]}).startswith(
        "alerts[2].time: 'x' is not an ISO-8601 time"
    )
    assert (
        error(map_webhook, "generic", [one, 3])
        == "[1]: an alert document must be a JSON object, got a number"
    )
    assert error(map_webhook, "generic", "nope").startswith("payload is not valid JSON")
    assert error(map_webhook, "generic", 3).startswith("expected an alert document, a list of them")


def test_map_webhook_decodes_json_text_and_rejects_unknown_sources() -> None:
    assert map_webhook("Generic ", b'{"title": "a", "source": "s"}')[0].title == "a"
    with pytest.raises(UnknownWebhookSource) as info:
        map_webhook("splunk", {})
    assert str(info.value) == (
        "unknown webhook source 'splunk'; known sources: defender, elastic, generic, microsoft, sentinel"
    )
    assert isinstance(info.value, ValueError)
    assert WEBHOOK_MAPPERS["sentinel"] is WEBHOOK_MAPPERS["defender"] is WEBHOOK_MAPPERS["microsoft"]
    assert map_webhook("elastic", []) == []


@pytest.mark.parametrize("first", ["alerts", "alerts_elastic", "alerts_microsoft"])
def test_every_mapper_is_registered_whichever_module_is_imported_first(first: str) -> None:
    code = (
        f"import bastion.ingest.{first}\n"
        "from bastion.ingest.alerts import WEBHOOK_MAPPERS as M\n"
        "print(','.join(sorted(M)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "defender,elastic,generic,microsoft,sentinel"


# --- Elastic Security ---------------------------------------------------------------------------------


def elastic_alert() -> dict[str, Any]:
    """An 8.x detection alert as the webhook connector sends ``{{context.alerts}}``: kibana.alert.* as
    dotted keys, the source event's ECS fields nested."""
    return {
        "@timestamp": "2026-03-10T09:12:09.121Z",
        "kibana.alert.uuid": "6f1c9b2e4d7a5f3e8b0c1d2a3e4f5a6b",
        "kibana.alert.original_time": "2026-03-10T09:12:00.000Z",
        "kibana.alert.workflow_status": "acknowledged",
        "kibana.alert.severity": "high",
        "kibana.alert.risk_score": 73,
        "kibana.alert.reason": "process event with process powershell.exe, parent process WINWORD.EXE, by "
        "j.morales on WS-0142 created high alert Suspicious Office Child Process.",
        "kibana.alert.rule.name": "Suspicious Office Child Process",
        "kibana.alert.rule.uuid": "2b5f3e9a-7c41-4d2e-9a8b-3f6c1d0e5a47",
        "kibana.alert.rule.rule_id": "a624863f-a70d-417f-a7d2-7a404638d47f",
        "kibana.alert.rule.description": "Identifies suspicious child processes of Microsoft Office.",
        "kibana.alert.rule.tags": ["Domain: Endpoint", "OS: Windows"],
        "kibana.alert.rule.threat": [
            {
                "framework": "MITRE ATT&CK",
                "tactic": {
                    "id": "TA0002",
                    "name": "Execution",
                    "reference": "https://attack.mitre.org/tactics/TA0002/",
                },
                "technique": [
                    {
                        "id": "T1059",
                        "name": "Command and Scripting Interpreter",
                        "subtechnique": [{"id": "T1059.001", "name": "PowerShell"}],
                    }
                ],
            },
            {
                "framework": "MITRE ATT&CK",
                "tactic": {"id": "TA0001", "name": "Initial Access"},
                "technique": [{"id": "T1566", "name": "Phishing"}],
            },
        ],
        "host": {
            "name": "WS-0142",
            "hostname": "WS-0142",
            "ip": ["10.20.14.142", "fe80::1c2d:3e4f:5a6b:7c8d"],
        },
        "user": {"name": "j.morales", "domain": "NORTHWIND"},
        "source": {"ip": "10.20.14.142"},
        "destination": {"ip": "2001:db8::77", "domain": "cdn.fastupdate-cdn.test"},
        "process": {
            "name": "powershell.exe",
            "executable": "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe",
            "hash": {"sha256": SHA256},
            "parent": {
                "name": "WINWORD.EXE",
                "executable": "C:\\Program Files\\Microsoft Office\\root\\Office16\\WINWORD.EXE",
            },
        },
        "file": {
            "path": "C:\\Users\\j.morales\\Downloads\\INV-20931.docm",
            "hash": {"md5": MD5, "sha1": "xyz"},
        },
        "url": {"full": "https://cdn.fastupdate-cdn.test/s/upd.ps1"},
        "dns": {"question": {"name": "cdn.fastupdate-cdn.test"}},
        "registry": {"path": "HKLM\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Run\\NwUpdate"},
    }


def test_elastic_alert_maps_every_field() -> None:
    payload = elastic_alert()
    [alert] = map_webhook("elastic", payload)
    assert alert.title == alert.rule_name == "Suspicious Office Child Process"
    assert alert.severity is Severity.HIGH
    assert alert.time == parse_time("2026-03-10T09:12:09.121Z")
    assert alert.source == "elastic"
    assert alert.external_id == "6f1c9b2e4d7a5f3e8b0c1d2a3e4f5a6b"
    assert alert.rule_id == "2b5f3e9a-7c41-4d2e-9a8b-3f6c1d0e5a47"
    assert alert.description is not None and alert.description.startswith(
        "process event with process powershell"
    )
    assert alert.status is AlertStatus.ACKNOWLEDGED
    assert alert.techniques == ["T1059", "T1566", "T1059.001"]
    assert alert.tags == ["attack.execution", "attack.initial_access", "Domain: Endpoint", "OS: Windows"]
    assert obs(alert) == {
        ("host", "WS-0142"),
        ("ipv4", "10.20.14.142"),
        ("ipv6", "2001:db8::77"),
        ("user", "j.morales"),
        ("domain", "cdn.fastupdate-cdn.test"),
        ("url", "https://cdn.fastupdate-cdn.test/s/upd.ps1"),
        ("process_name", "powershell.exe"),
        ("process_name", "WINWORD.EXE"),
        ("file_path", "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe"),
        ("file_path", "C:\\Program Files\\Microsoft Office\\root\\Office16\\WINWORD.EXE"),
        ("file_path", "C:\\Users\\j.morales\\Downloads\\INV-20931.docm"),
        ("sha256", SHA256),
        ("md5", MD5),
        ("registry_key", "HKLM\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Run\\NwUpdate"),
    }  # the link-local host.ip and the malformed sha1 are skipped
    fields = {o.value: o.field for o in alert.observables}
    assert fields["10.20.14.142"] == "host.ip" and fields["WS-0142"] == "host.name"
    assert alert.raw == payload


def _nest(flat: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in flat.items():
        node = out
        parts = key.split(".") if key.startswith("kibana.") else [key]
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return out


def test_elastic_nested_keys_and_fields_api_lists_give_the_same_alert() -> None:
    flat = map_webhook("elastic", elastic_alert())[0]
    nested = map_webhook("elastic", _nest(elastic_alert()))[0]
    # the search API's `fields` option returns every value as a list
    as_lists = {k: v if isinstance(v, list | dict) else [v] for k, v in elastic_alert().items()}
    listed = map_webhook("elastic", as_lists)[0]
    for other in (nested, listed):
        assert (other.title, other.severity, other.time, other.external_id, other.techniques, obs(other)) == (
            flat.title,
            flat.severity,
            flat.time,
            flat.external_id,
            flat.techniques,
            obs(flat),
        )


def test_elastic_accepts_lists_wrappers_and_search_hits() -> None:
    a, b = elastic_alert(), {**elastic_alert(), "kibana.alert.uuid": "second"}
    assert [x.external_id for x in map_webhook("elastic", [a, b])] == [a["kibana.alert.uuid"], "second"]
    assert len(map_webhook("elastic", {"alerts": [a, b]})) == 2
    hits = {
        "hits": {
            "total": {"value": 1},
            "hits": [
                {
                    "_index": ".internal.alerts-security.alerts-default-000001",
                    "_id": "hit-1",
                    "_source": {k: v for k, v in a.items() if k != "kibana.alert.uuid"},
                }
            ],
        }
    }
    [alert] = map_webhook("elastic", hits)
    assert alert.external_id == "hit-1"
    assert alert.title == "Suspicious Office Child Process"


def test_elastic_severity_falls_back_to_the_risk_score_bands() -> None:
    for score, severity in (
        (10, Severity.LOW),
        (47, Severity.MEDIUM),
        (48, Severity.HIGH),
        (99, Severity.CRITICAL),
    ):
        payload = {**elastic_alert(), "kibana.alert.risk_score": score}
        del payload["kibana.alert.severity"]
        assert map_webhook("elastic", payload)[0].severity is severity
    payload = {
        k: v
        for k, v in elastic_alert().items()
        if not k.startswith("kibana.alert.risk") and k != "kibana.alert.severity"
    }
    assert map_webhook("elastic", payload)[0].severity is Severity.UNKNOWN


def test_elastic_7x_signal_fields() -> None:
    signal = {
        "@timestamp": "2021-06-01T10:00:00Z",
        "signal": {
            "status": "closed",
            "original_time": "2021-06-01T09:59:00Z",
            "rule": {
                "id": "7a1b",
                "rule_id": "r-1",
                "name": "Whoami Process Activity",
                "severity": "low",
                "risk_score": 21,
                "threat": [{"tactic": {"name": "Discovery"}, "technique": [{"id": "T1033"}]}],
            },
        },
        "host": {"name": "PC01"},
    }
    [alert] = map_webhook("elastic", signal)
    assert (alert.title, alert.severity, alert.rule_id, alert.status) == (
        "Whoami Process Activity",
        Severity.LOW,
        "7a1b",
        AlertStatus.CLOSED,
    )
    assert alert.techniques == ["T1033"] and alert.tags == ["attack.discovery"]


def test_elastic_errors_name_the_field() -> None:
    nameless = {k: v for k, v in elastic_alert().items() if k != "kibana.alert.rule.name"}
    assert error(map_webhook, "elastic", [elastic_alert(), nameless]) == (
        "[1].kibana.alert.rule.name: required (an Elastic Security alert names its rule)"
    )
    assert error(map_webhook, "elastic", {**elastic_alert(), "@timestamp": "soon"}).startswith(
        "@timestamp: 'soon' is not an ISO-8601 time"
    )
    hit = {"_id": "x", "_source": {**elastic_alert(), "@timestamp": "soon"}}
    assert error(map_webhook, "elastic", {"hits": {"hits": [hit]}}).startswith(
        "hits.hits[0]._source.@timestamp:"
    )
    assert error(map_webhook, "elastic", {"alerts": ["oops"]}) == (
        "alerts[0]: expected an Elastic alert object, got a string"
    )
    assert error(map_webhook, "elastic", 42).startswith("expected an Elastic Security alert, a list of them")


# --- Microsoft Sentinel SecurityAlert -----------------------------------------------------------------

SENTINEL_ENTITIES = [
    {
        "$id": "2",
        "Name": "svc_backup",
        "NTDomain": "NORTHWIND",
        "Sid": "S-1-5-21-1-2-3-1500",
        "Type": "account",
    },
    {
        "$id": "3",
        "HostName": "FS-01",
        "DnsDomain": "northwind.example",
        "OSFamily": "Windows",
        "Type": "host",
    },
    {"$id": "4", "Address": "10.20.14.142", "Type": "ip"},
    {"$id": "5", "Url": "https://cdn.fastupdate-cdn.test/s/upd.ps1", "Type": "url"},
    {
        "$id": "6",
        "Directory": "C:\\ProgramData\\NwUpdate",
        "Name": "nwupd.exe",
        "Type": "file",
        "FileHashes": [{"$id": "7", "Algorithm": "SHA256", "Value": SHA256, "Type": "filehash"}],
    },
    {"$ref": "7"},
    {
        "$id": "8",
        "ProcessId": "7412",
        "CommandLine": "powershell.exe -nop -w hidden -enc SQBFAFgA",
        "ImageFile": {
            "$id": "9",
            "Directory": "C:\\Windows\\System32\\WindowsPowerShell\\v1.0",
            "Name": "powershell.exe",
            "Type": "file",
        },
        "Account": {"$ref": "2"},
        "Type": "process",
    },
    {"$id": "10", "DomainName": "telemetry.stat-sync.test", "Type": "dns"},
    {
        "$id": "11",
        "MailboxPrimaryAddress": "j.morales@northwind.example",
        "Upn": "j.morales@northwind.example",
        "Type": "mailbox",
    },
    {
        "$id": "12",
        "Hive": "HKEY_LOCAL_MACHINE",
        "Key": "SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Run",
        "Type": "registry-key",
    },
    {"$id": "13", "Algorithm": "MD5", "Value": MD5, "Type": "filehash"},
    {"$id": "14", "Name": "Win32/Toga!rfn", "Category": "Trojan", "Type": "malware"},
]


def security_alert(**changes: Any) -> dict[str, Any]:
    row = {
        "TenantId": "7d2f1e0c-3b4a-4c5d-8e9f-0a1b2c3d4e5f",
        "TimeGenerated": "2026-03-10T09:52:31.0000000Z",
        "DisplayName": "Failed logons followed by a successful NTLM logon from a workstation",
        "AlertName": "Failed logons followed by a successful NTLM logon from a workstation",
        "AlertSeverity": "High",
        "Description": "2 failed network logons were followed by a successful NTLM logon of svc_backup.",
        "ProviderName": "ASI Scheduled Alerts",
        "VendorName": "Microsoft",
        "SystemAlertId": "b8c1f0e2-4d6a-4b3c-9e7f-1a2b3c4d5e6f",
        "AlertType": "7e4a6c1d-2f3b-4a5c-8d9e-0f1a2b3c4d5e_4c1e7b2a",
        "StartTime": "2026-03-10T09:51:14.62Z",
        "EndTime": "2026-03-10T09:52:03.047Z",
        "Entities": json.dumps(SENTINEL_ENTITIES),
        "ProductName": "Azure Sentinel",
        "Status": "InProgress",
        "Tactics": "LateralMovement, CredentialAccess",
        "Techniques": '["T1021","T1110"]',
        "SubTechniques": '["T1021.002"]',
        "ExtendedProperties": '{"Query Period": "00:10:00"}',
        "Type": "SecurityAlert",
    }
    row.update(changes)
    return row


def test_sentinel_security_alert_with_entities_as_a_json_string() -> None:
    row = security_alert()
    [alert] = map_webhook("sentinel", row)
    assert (
        alert.title
        == alert.rule_name
        == "Failed logons followed by a successful NTLM logon from a workstation"
    )
    assert alert.severity is Severity.HIGH
    assert alert.time == parse_time("2026-03-10T09:52:31Z")
    assert alert.source == "microsoft-sentinel"
    assert alert.external_id == "b8c1f0e2-4d6a-4b3c-9e7f-1a2b3c4d5e6f"
    assert alert.rule_id == "7e4a6c1d-2f3b-4a5c-8d9e-0f1a2b3c4d5e_4c1e7b2a"
    assert (
        alert.description == "2 failed network logons were followed by a successful NTLM logon of svc_backup."
    )
    assert alert.status is AlertStatus.IN_PROGRESS
    assert alert.techniques == ["T1021", "T1110", "T1021.002"]
    assert alert.tags == ["attack.lateral_movement", "attack.credential_access", "product:Azure Sentinel"]
    assert obs(alert) == {
        ("user", "svc_backup"),
        ("host", "FS-01"),
        ("ipv4", "10.20.14.142"),
        ("url", "https://cdn.fastupdate-cdn.test/s/upd.ps1"),
        ("file_path", "C:\\ProgramData\\NwUpdate\\nwupd.exe"),
        ("sha256", SHA256),
        ("md5", MD5),
        ("file_path", "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe"),
        ("process_name", "powershell.exe"),
        ("domain", "telemetry.stat-sync.test"),
        ("email", "j.morales@northwind.example"),
        ("registry_key", "HKEY_LOCAL_MACHINE\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Run"),
    }
    assert {o.field for o in alert.observables if o.value == "FS-01"} == {"Entities.host.HostName"}
    assert alert.raw == row


def test_sentinel_entities_as_a_list_and_defender_product() -> None:
    row = security_alert(
        Entities=SENTINEL_ENTITIES[:3],
        ProductName="Microsoft Defender Advanced Threat Protection",
        Techniques="T1003, T1003.001",
        Status="Dismissed",
        TimeGenerated=None,
    )
    row["StartTime"] = "2026-03-10T09:51:14Z"
    [alert] = map_webhook("defender", row)
    assert alert.source == "microsoft-defender"
    assert alert.techniques == ["T1003", "T1003.001", "T1021.002"]
    assert alert.status is AlertStatus.CLOSED
    assert alert.time == parse_time("2026-03-10T09:51:14Z")
    assert obs(alert) == {("user", "svc_backup"), ("host", "FS-01"), ("ipv4", "10.20.14.142")}


@pytest.mark.parametrize(
    ("tables", "message"),
    [
        ([5], "tables[0]: expected a query result table (an object with columns and rows), got a number"),
        ([{"columns": 5, "rows": 5}], "tables[0].columns: expected an array of columns, got a number"),
        ([{"columns": [5], "rows": []}], 'tables[0].columns[0]: expected a column object with a "name"'),
        ([{"columns": [], "rows": 5}], "tables[0].rows: expected an array of rows, got a number"),
        (
            [{"columns": [], "rows": [5]}],
            "tables[0].rows[0]: expected a row (an array of values), got a number",
        ),
    ],
)
def test_query_results_of_the_wrong_shape_name_the_part(tables: list[Any], message: str) -> None:
    for source in ("elastic", "sentinel", "generic"):
        assert error(map_webhook, source, {"tables": tables}) == message


def test_vendor_times_past_the_year_9999_name_the_field() -> None:
    assert error(map_webhook, "generic", {"title": "t", "source": "s", "time": 1e30}).startswith(
        "time: 1e+30 is out of range"
    )
    assert error(map_webhook, "elastic", {**elastic_alert(), "@timestamp": 1e30}).startswith(
        "@timestamp: 1e+30 is out of range"
    )
    assert error(map_webhook, "sentinel", security_alert(TimeGenerated=1e30)).startswith(
        "TimeGenerated: 1e+30 is out of range"
    )
    assert error(map_webhook, "defender", {**graph_alert(), "createdDateTime": 1e30}).startswith(
        "createdDateTime: 1e+30 is out of range"
    )


def test_vendor_text_fields_are_strings_or_refused_naming_the_field() -> None:
    """An object stored as an alert's description made every later read of the tenant's alerts fail."""
    assert error(map_webhook, "defender", {**graph_alert(), "description": {"x": 1}}) == (
        "description: expected a string, got an object"
    )
    assert error(map_webhook, "defender", {"value": [graph_alert(), {**graph_alert(), "id": {"x": 1}}]}) == (
        "value[1].id: expected a string, got an object"
    )
    assert error(map_webhook, "sentinel", security_alert(SystemAlertId=[1])) == (
        "SystemAlertId: expected a string, got an array"
    )
    assert error(map_webhook, "sentinel", security_alert(AlertType=True)) == (
        "AlertType: expected a string, got a boolean"
    )
    numbered = map_webhook("defender", {**graph_alert(), "id": 5, "detectorId": 7, "description": 1.5})[0]
    assert (numbered.external_id, numbered.rule_id, numbered.description) == ("5", "7", "1.5")
    elastic = map_webhook(
        "elastic", {**elastic_alert(), "kibana.alert.reason": 5, "kibana.alert.rule.uuid": 9}
    )[0]
    assert (elastic.description, elastic.rule_id) == ("5", "9")


def test_sentinel_log_analytics_query_result() -> None:
    row = security_alert()
    columns = [{"name": k, "type": "string"} for k in row]
    payload = {"tables": [{"name": "PrimaryResult", "columns": columns, "rows": [list(row.values())] * 2}]}
    alerts = map_webhook("microsoft", payload)
    assert [a.external_id for a in alerts] == [row["SystemAlertId"]] * 2
    bad = [*row.values()]
    bad[list(row).index("TimeGenerated")] = "later"
    payload["tables"][0]["rows"].append(bad)
    assert error(map_webhook, "sentinel", payload).startswith("tables[0].rows[2].TimeGenerated: 'later'")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"Entities": '[{"Type": "host"'}, "Entities: not valid JSON"),
        ({"Entities": '{"Type": "host"}'}, "Entities: expected a list of entities, got an object"),
        (
            {"AlertName": None, "DisplayName": ""},
            "AlertName: required (a SecurityAlert has AlertName or DisplayName)",
        ),
        ({"TimeGenerated": "10 March"}, "TimeGenerated: '10 March' is not an ISO-8601 time"),
    ],
)
def test_sentinel_errors_name_the_field(changes: dict[str, Any], message: str) -> None:
    assert error(map_webhook, "sentinel", security_alert(**changes)).startswith(message)
    assert error(map_webhook, "sentinel", [security_alert(), security_alert(**changes)]).startswith(
        f"[1].{message}"
    )


# --- Microsoft Graph security alerts (Defender XDR) ---------------------------------------------------


def graph_alert() -> dict[str, Any]:
    return {
        "@odata.type": "#microsoft.graph.security.alert",
        "id": "da637578995287051192_756343937",
        "providerAlertId": "da637578995287051192_756343937",
        "incidentId": "28282",
        "status": "resolved",
        "severity": "high",
        "classification": "truePositive",
        "serviceSource": "microsoftDefenderForEndpoint",
        "detectionSource": "antivirus",
        "detectorId": "e0da400f-affd-43ef-b1d5-afc2eb6f2756",
        "title": "Suspicious execution of hidden file",
        "description": "A hidden file has been launched.",
        "category": "DefenseEvasion",
        "mitreTechniques": ["T1564.001", "not-a-technique"],
        "createdDateTime": "2026-03-10T09:12:27.7211305Z",
        "firstActivityDateTime": "2026-03-10T09:10:50.116Z",
        "systemTags": ["Defender Experts"],
        "evidence": [
            {
                "@odata.type": "#microsoft.graph.security.deviceEvidence",
                "deviceDnsName": "ws-0142.northwind.example",
                "ipInterfaces": ["10.20.14.142", "127.0.0.1"],
                "loggedOnUsers": [{"accountName": "j.morales", "domainName": "NORTHWIND"}],
            },
            {
                "@odata.type": "#microsoft.graph.security.userEvidence",
                "userAccount": {
                    "accountName": "j.morales",
                    "domainName": "NORTHWIND",
                    "userPrincipalName": "j.morales@northwind.example",
                },
            },
            {
                "@odata.type": "#microsoft.graph.security.ipEvidence",
                "ipAddress": "203.0.113.77",
                "countryLetterCode": "NL",
            },
            {
                "@odata.type": "#microsoft.graph.security.urlEvidence",
                "url": "https://docs-northwlnd-billing.example/invoice/INV-20931.docm",
            },
            {
                "@odata.type": "#microsoft.graph.security.fileEvidence",
                "detectionStatus": "detected",
                "fileDetails": {
                    "sha1": SHA1,
                    "sha256": SHA256,
                    "fileName": "nwupd.exe",
                    "filePath": "C:\\ProgramData\\NwUpdate",
                    "fileSize": 287744,
                },
            },
            {
                "@odata.type": "#microsoft.graph.security.processEvidence",
                "processId": 4780,
                "processCommandLine": '"nwupd.exe"',
                "imageFile": {
                    "sha1": None,
                    "sha256": None,
                    "fileName": "rundll32.exe",
                    "filePath": "C:\\Windows\\System32",
                },
                "userAccount": {"accountName": "SYSTEM", "domainName": "NT AUTHORITY", "userSid": "S-1-5-18"},
            },
            {
                "@odata.type": "#microsoft.graph.security.mailboxEvidence",
                "displayName": "Jana Morales",
                "primaryAddress": "j.morales@northwind.example",
                "userAccount": {"accountName": "j.morales"},
            },
            {
                "@odata.type": "#microsoft.graph.security.registryKeyEvidence",
                "registryHive": "HKEY_LOCAL_MACHINE",
                "registryKey": "SYSTEM\\CONTROLSET001\\CONTROL\\WMI\\AUTOLOGGER\\SENSEAUDITLOGGER",
            },
            {"@odata.type": "#microsoft.graph.security.cloudApplicationEvidence", "appId": 11161},
        ],
    }


def test_graph_list_response_with_two_alerts() -> None:
    second = {
        "@odata.type": "#microsoft.graph.security.alert",
        "id": "fa4a5a2d-1234",
        "title": "Anomalous token",
        "severity": "medium",
        "status": "new",
        "serviceSource": "microsoftSentinel",
        "createdDateTime": "2026-03-10T10:00:00Z",
        "mitreTechniques": ["T1528"],
        "evidence": [],
    }
    payload = {
        "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#security/alerts_v2",
        "value": [graph_alert(), second],
    }
    first, other = map_webhook("microsoft", payload)
    assert first.title == "Suspicious execution of hidden file"
    assert first.severity is Severity.HIGH
    assert first.time == parse_time("2026-03-10T09:12:27.721Z")
    assert first.source == "microsoft-defender"
    assert first.external_id == "da637578995287051192_756343937"
    assert first.rule_id == "e0da400f-affd-43ef-b1d5-afc2eb6f2756"
    assert first.description == "A hidden file has been launched."
    assert first.status is AlertStatus.CLOSED
    assert first.techniques == ["T1564.001"]
    assert first.tags == [
        "attack.defense_evasion",
        "product:microsoftDefenderForEndpoint",
        "detection:antivirus",
        "Defender Experts",
    ]
    assert obs(first) == {
        ("host", "ws-0142.northwind.example"),
        ("ipv4", "10.20.14.142"),
        ("user", "j.morales"),
        ("email", "j.morales@northwind.example"),
        ("ipv4", "203.0.113.77"),
        ("url", "https://docs-northwlnd-billing.example/invoice/INV-20931.docm"),
        ("sha1", SHA1),
        ("sha256", SHA256),
        ("file_path", "C:\\ProgramData\\NwUpdate\\nwupd.exe"),
        ("process_name", "rundll32.exe"),
        ("file_path", "C:\\Windows\\System32\\rundll32.exe"),
        ("user", "SYSTEM"),
        (
            "registry_key",
            "HKEY_LOCAL_MACHINE\\SYSTEM\\CONTROLSET001\\CONTROL\\WMI\\AUTOLOGGER\\SENSEAUDITLOGGER",
        ),
    }
    assert {o.field for o in first.observables if o.value == "203.0.113.77"} == {"evidence[2].ipAddress"}
    assert first.raw == payload["value"][0]
    assert (other.title, other.severity, other.source, other.status, other.techniques) == (
        "Anomalous token",
        Severity.MEDIUM,
        "microsoft-sentinel",
        AlertStatus.NEW,
        ["T1528"],
    )


def test_graph_errors_name_the_field() -> None:
    untitled = {**graph_alert(), "title": " "}
    assert error(map_webhook, "defender", {"value": [graph_alert(), untitled]}) == "value[1].title: required"
    assert error(map_webhook, "defender", {**graph_alert(), "evidence": {"ipAddress": "1.2.3.4"}}) == (
        "evidence: expected a list, got an object"
    )
    assert error(map_webhook, "defender", {**graph_alert(), "createdDateTime": "?"}).startswith(
        "createdDateTime: '?'"
    )
    assert (
        error(map_webhook, "microsoft", {"value": [7]}) == "value[0]: expected an alert object, got a number"
    )
    assert error(map_webhook, "defender", {"title": "a", "mitreTechniques": 5}) == (
        "mitreTechniques: expected a list, got a number"
    )
    assert error(
        map_webhook, "defender", {"value": [graph_alert(), {**graph_alert(), "systemTags": "x"}]}
    ) == ("value[1].systemTags: expected a list, got a string")
    unknown = {**graph_alert(), "severity": "unknownFutureValue"}
    assert map_webhook("defender", unknown)[0].severity is Severity.UNKNOWN
