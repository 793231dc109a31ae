"""Windows normalizer against the 8,255 real attack-sample events (evtx JSON form)."""

from __future__ import annotations

import gzip
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from bastion.ingest.normalize import NormalizeError, detect_format, normalize
from bastion.ingest.normalize.windows import event_data, normalize_windows, parse_hashes
from bastion.model import EventClass, Severity
from bastion.model.timefmt import to_epoch_ms

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
SAMPLES = DATA / "evtx-attack-samples" / "events.jsonl.gz"
SYSMON = "Microsoft-Windows-Sysmon/Operational"


def _ms(iso: str) -> int:
    return (datetime.fromisoformat(iso) - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)


@pytest.fixture(scope="module")
def records() -> list[dict[str, Any]]:
    if not SAMPLES.is_file():
        pytest.fail(f"attack samples missing: expected {SAMPLES} (../shared/data beside the repo)")
    with gzip.open(SAMPLES) as fh:
        return [orjson.loads(line) for line in fh]


@pytest.fixture(scope="module")
def pairs(records: list[dict[str, Any]]) -> list[tuple[dict[str, Any], Any]]:
    return [(record, normalize(record)) for record in records]


def _code(record: dict[str, Any]) -> int:
    event_id = record["Event"]["System"]["EventID"]
    return int(event_id["#text"] if isinstance(event_id, dict) else event_id)


def _find(pairs: list[tuple[dict[str, Any], Any]], channel: str, code: int, **data: Any) -> tuple[Any, Any]:
    for record, event in pairs:
        system = record["Event"]["System"]
        fields = record["Event"].get("EventData") or {}
        if (
            system["Channel"] == channel
            and _code(record) == code
            and all(fields.get(k) == v for k, v in data.items())
        ):
            return record, event
    raise AssertionError(f"no {channel} {code} event with {data} in the samples")


def test_every_sample_normalizes(
    records: list[dict[str, Any]], pairs: list[tuple[dict[str, Any], Any]]
) -> None:
    assert len(records) == 8255
    for record, event in pairs:
        assert event.format == "windows"
        assert event.time > 0
        assert event.metadata is not None and event.metadata.log_name and event.metadata.event_code
        assert event.metadata.event_code == str(_code(record))
        assert event.raw is record
        assert event.device is not None and event.device.hostname == record["Event"]["System"]["Computer"]


def test_detection_picks_windows(records: list[dict[str, Any]]) -> None:
    assert {detect_format(r) for r in records} == {"windows"}
    assert detect_format(records[0]["Event"]) == "windows"  # the bare Event object too


def test_raw_is_left_untouched(records: list[dict[str, Any]]) -> None:
    before = [orjson.dumps(r) for r in records[:2000]]
    for record in records[:2000]:
        normalize_windows(record)
    assert [orjson.dumps(r) for r in records[:2000]] == before


def test_class_distribution(pairs: list[tuple[dict[str, Any], Any]]) -> None:
    by_source: dict[tuple[str, int], Counter[int]] = {}
    for record, event in pairs:
        key = (record["Event"]["System"]["Channel"], _code(record))
        by_source.setdefault(key, Counter())[event.class_uid] += 1
    assert by_source[(SYSMON, 1)] == Counter({EventClass.PROCESS_ACTIVITY: 1491})
    assert by_source[(SYSMON, 3)] == Counter({EventClass.NETWORK_ACTIVITY: 164})
    assert set(by_source[(SYSMON, 7)]) == {EventClass.MODULE_ACTIVITY}
    assert set(by_source[(SYSMON, 11)]) == {EventClass.FILE_ACTIVITY}
    assert set(by_source[(SYSMON, 13)]) == {EventClass.REGISTRY_VALUE_ACTIVITY}
    assert set(by_source[(SYSMON, 22)]) == {EventClass.DNS_ACTIVITY}
    assert set(by_source[("Security", 5145)]) == {EventClass.SMB_ACTIVITY}
    assert set(by_source[("Security", 4624)]) == {EventClass.AUTHENTICATION}
    assert set(by_source[("Security", 4688)]) == {EventClass.PROCESS_ACTIVITY}
    assert set(by_source[("Security", 4720)]) == {EventClass.ACCOUNT_CHANGE}
    assert set(by_source[("Security", 4732)]) == {EventClass.GROUP_MANAGEMENT}
    assert set(by_source[("System", 7045)]) == {EventClass.SCHEDULED_JOB}
    # 4663 on registry keys is registry activity, on files file activity
    assert EventClass.REGISTRY_KEY_ACTIVITY in by_source[("Security", 4663)]
    totals = Counter(event.class_uid for _, event in pairs)
    assert totals[EventClass.BASE] < 0.4 * len(pairs)
    assert len(totals) >= 12


def test_sysmon_process_creation(pairs: list[tuple[dict[str, Any], Any]]) -> None:
    record, event = _find(pairs, SYSMON, 1, Image="C:\\Windows\\System32\\Taskmgr.exe", ProcessId=18404)
    assert event.class_uid == EventClass.PROCESS_ACTIVITY
    assert event.severity_id == Severity.INFORMATIONAL
    system_time = record["Event"]["System"]["TimeCreated"]["#attributes"]["SystemTime"]
    assert event.time == _ms(system_time)
    assert event.metadata.original_time == system_time
    assert event.metadata.product == "Microsoft-Windows-Sysmon"
    assert event.metadata.vendor == "Microsoft"
    assert event.metadata.log_name == SYSMON
    assert event.metadata.uid == str(record["Event"]["System"]["EventRecordID"])
    process = event.process
    assert (process.name, process.pid, process.path) == (
        "Taskmgr.exe",
        18404,
        "C:\\Windows\\System32\\Taskmgr.exe",
    )
    assert process.cmd_line == "C:\\windows\\system32\\taskmgr.exe"
    assert process.uid == "00247C92-858E-5F7B-0000-00105241202B"
    parent = process.parent_process
    assert parent.name == "Akagi_64.exe" and parent.pid == 27356
    assert parent.path.endswith("\\Debug\\Akagi_64.exe")
    assert parent.cmd_line == "Akagi_64.exe  59 cmd.exe"
    assert (event.actor.user.name, event.actor.user.domain) == ("bouss", "LAPTOP-JU4M3I0E")
    assert process.user == event.actor.user
    assert event.file.path == process.path
    assert event.file.hashes == {
        "sha1": "8a4882ee93e1f23bf9241e4ba0bf7bd67f88a364",
        "md5": "33facaab13a58251bf45e9ac958b15fa",
        "sha256": "0af6b3f8628e38b1551ec76277e482f8a2605b661f57c164c47acebb14b1a81b",
        "imphash": "98526f50539626c2e9c93297fe2af83b",
    }
    assert event.device.hostname == "LAPTOP-JU4M3I0E"


def test_sysmon_network_connection(pairs: list[tuple[dict[str, Any], Any]]) -> None:
    _, event = _find(pairs, SYSMON, 3, DestinationIp="108.179.232.58")
    assert event.class_uid == EventClass.NETWORK_ACTIVITY
    assert (event.src_endpoint.ip, event.src_endpoint.port) == ("10.0.2.15", 49703)
    assert event.src_endpoint.hostname == "IEWIN7..home"
    dst = event.dst_endpoint
    assert (dst.ip, dst.port, dst.hostname) == ("108.179.232.58", 443, "gator4243.hostgator.com")
    assert event.process.name == "mshta.exe" and event.process.pid == 2432
    assert (event.actor.user.name, event.actor.user.domain) == ("IEUser", "IEWIN7")


def test_sysmon_process_access_has_source_and_target(pairs: list[tuple[dict[str, Any], Any]]) -> None:
    _, event = _find(pairs, SYSMON, 10, SourceProcessId=27356, TargetProcessId=19072)
    assert event.class_uid == EventClass.PROCESS_ACTIVITY
    assert event.actor.process.name == "Akagi_64.exe" and event.actor.process.pid == 27356
    assert event.process.path == "C:\\Windows\\System32\\cmd.exe" and event.process.pid == 19072


def test_security_logon(pairs: list[tuple[dict[str, Any], Any]]) -> None:
    _, event = _find(pairs, "Security", 4624, IpAddress="172.16.66.37", IpPort="50106")
    assert event.class_uid == EventClass.AUTHENTICATION
    assert event.severity_id == Severity.INFORMATIONAL  # Level 0
    user = event.actor.user
    assert (user.name, user.domain) == ("Administrator", "3B")
    assert user.uid == "S-1-5-21-308926384-506822093-3341789130-500"
    assert (event.src_endpoint.ip, event.src_endpoint.port, event.src_endpoint.hostname) == (
        "172.16.66.37",
        50106,
        None,  # WorkstationName "-"
    )
    assert event.process is None  # ProcessName "-"
    assert event.device.hostname == "01566s-win16-ir.threebeesco.com"


def test_security_process_creation_hex_pids(pairs: list[tuple[dict[str, Any], Any]]) -> None:
    _, event = _find(pairs, "Security", 4688, NewProcessName="C:\\Windows\\System32\\TSTheme.exe")
    assert event.process.pid == 0x1FC and event.process.parent_process.pid == 0x278
    assert event.process.cmd_line is None  # empty CommandLine
    assert event.actor.user.name == "PC01$"


def test_powershell_script_block(pairs: list[tuple[dict[str, Any], Any]]) -> None:
    record, event = next(
        (r, e) for r, e in pairs if r["_file"].endswith("exec_emotet_ps_4104.evtx") and _code(r) == 4104
    )
    assert event.class_uid == EventClass.PROCESS_ACTIVITY
    assert event.metadata.log_name == "Microsoft-Windows-PowerShell/Operational"
    assert event.process.pid == record["Event"]["System"]["Execution"]["#attributes"]["ProcessID"]
    assert event.severity_id == Severity.parse(
        {3: "medium", 4: "informational", 5: "informational"}[record["Event"]["System"]["Level"]]
    )
    assert event_data(record["Event"])["ScriptBlockText"].startswith("$Va5w3n8=")


def test_shapes_userdata_text_data_and_no_channel(pairs: list[tuple[dict[str, Any], Any]]) -> None:
    # UserData instead of EventData
    _, cleared = next((r, e) for r, e in pairs if "UserData" in r["Event"] and _code(r) == 104)
    assert cleared.class_uid == EventClass.EVENT_LOG_ACTIVITY
    assert (cleared.actor.user.name, cleared.actor.user.domain) == ("user01", "EXAMPLE")
    # EventID with attributes, unnamed Data values
    _, mssql = next((r, e) for r, e in pairs if _code(r) == 15457)
    assert mssql.metadata.event_code == "15457"
    assert mssql.message == "show advanced options\n0\n1"
    # ETW trace without a channel: the provider stands in
    _, rpc = next((r, e) for r, e in pairs if r["Event"]["System"]["Channel"] is None)
    assert rpc.metadata.log_name == "Microsoft-Windows-RPC"
    # EventData null: only the System block's user SID
    _, empty = next((r, e) for r, e in pairs if "EventData" in r["Event"] and r["Event"]["EventData"] is None)
    assert empty.actor.user.uid.startswith("S-1-")
    assert empty.process is None and empty.file is None


def test_rdp_and_defender(pairs: list[tuple[dict[str, Any], Any]]) -> None:
    _, rdp = next(
        (r, e)
        for r, e in pairs
        if r["Event"]["System"]["Channel"].endswith("RemoteConnectionManager/Operational")
        and _code(r) == 1149
    )
    assert rdp.class_uid == EventClass.AUTHENTICATION
    assert rdp.actor.user.name and rdp.src_endpoint.ip
    _, client = _find(
        pairs,
        "Microsoft-Windows-RemoteDesktopServices-RdpCoreTS/Operational",
        131,
        ClientIP="10.0.2.16:52202",
    )
    assert (client.src_endpoint.ip, client.src_endpoint.port) == ("10.0.2.16", 52202)
    _, defender = _find(
        pairs,
        "Microsoft-Windows-Windows Defender/Operational",
        1116,
        **{"Threat Name": "Trojan:PowerShell/Powersploit.M"},
    )
    assert defender.class_uid == EventClass.DETECTION_FINDING
    assert (
        defender.file.path == "C:\\AtomicRedTeam\\atomic-red-team-master\\atomics\\T1056\\Get-Keystrokes.ps1"
    )
    assert defender.process.name == "powershell.exe"
    assert (defender.actor.user.name, defender.actor.user.domain) == ("IEUser", "MSEDGEWIN10")


def test_parse_hashes_and_bad_records() -> None:
    assert parse_hashes("MD5=AB,SHA256=CD") == {"md5": "ab", "sha256": "cd"}
    assert parse_hashes(" Sha1 = AB ,IMPHASH=Cd,bad,x=") == {"sha1": "ab", "imphash": "cd"}
    assert parse_hashes("") is None
    with pytest.raises(NormalizeError, match="System"):
        normalize_windows({"Event": {"EventData": {}}})
    with pytest.raises(NormalizeError, match="EventID"):
        normalize_windows({"Event": {"System": {"EventID": "x"}}})
    with pytest.raises(NormalizeError):
        normalize_windows("not a dict")


@pytest.mark.parametrize(
    "value",
    [
        "2020-10-05T20:43:58.351744Z",
        "2019-03-19T23:21:57.1234567Z",  # .NET's seven fraction digits
        "2020-10-05T20:43:58+02:00",
        "2020-10-05 20:43:58",  # no offset: UTC
        "2020-10-05",
        " 2020-10-05T20:43:58Z ",
        "2020-13-45T00:00:00Z",
        "1601930638351",
        "1601930638.5",
        1601930638,
        "not a time",
        "",
        None,
    ],
)
def test_system_time_reads_as_the_lenient_reader_does(value: Any) -> None:
    """The direct ISO-8601 path for SystemTime gives exactly what to_epoch_ms gives (0 for nothing)."""
    record = {"Event": {"System": {"EventID": 1, "TimeCreated": {"#attributes": {"SystemTime": value}}}}}
    assert normalize_windows(record).time == ((to_epoch_ms(value) or 0) if value else 0)
