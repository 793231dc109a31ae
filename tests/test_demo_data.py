"""The demo data set: every file parses, times move to "now" consistently, the story's indicators are there,
and the live background events are reproducible."""

from __future__ import annotations

import base64
import json
import re
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest

from bastion.demo import (
    DATA_DIR,
    DEMO_NEWEST_MS,
    INDICATORS,
    demo_files,
    live_events,
    load_demo_alerts,
    load_demo_events,
    load_demo_webhooks,
    record_time,
)
from bastion.ingest.alerts import map_webhook, parse_alert_document, parse_time
from bastion.model import Severity

NOW = 1_800_000_000_000  # 2027-01-15T08:00:00Z
CEF = re.compile(
    r"^(?:<\d{1,3}>(?:1 \S+|[A-Z][a-z]{2} [ \d]\d \d{2}:\d{2}:\d{2}) \S+ (?:\S+ - - - )?)?"
    r"CEF:0\|([^|]*)\|([^|]*)\|([^|]*)\|([^|]*)\|([^|]*)\|(\d+)\|(.*)$"
)
WINDOWS_IDS = {
    "Microsoft-Windows-Sysmon": {1, 3, 10, 11, 22},
    "Microsoft-Windows-Security-Auditing": {4624, 4625, 4688},
    "Microsoft-Windows-PowerShell": {4104},
}


def cef_extension(line: str) -> dict[str, str]:
    match = CEF.match(line)
    assert match, line
    pairs = re.findall(r"(\w+)=((?:[^=\\]|\\.)*?)(?=\s+\w+=|$)", match[7])
    return dict(pairs)


def windows(records: list[tuple[str, Any]]) -> list[dict[str, Any]]:
    return [r["Event"] for fmt, r in records if fmt == "windows"]


def test_demo_files_are_all_there_and_packaged() -> None:
    names = sorted(p.relative_to(DATA_DIR).as_posix() for p in demo_files())
    assert names == [
        "alerts.json",
        "ecs.jsonl",
        "firewall.cef.log",
        "webhooks/elastic.json",
        "webhooks/sentinel.json",
        "windows.jsonl",
    ]
    # pyproject's package-data globs must cover every data file
    assert all(re.search(r"\.(json|jsonl|log)$", name) for name in names)


def test_windows_events_have_the_evtx_json_shape() -> None:
    lines = (DATA_DIR / "windows.jsonl").read_text(encoding="utf-8").splitlines()
    assert 50 <= len(lines) <= 80
    seen: Counter[tuple[str, int]] = Counter()
    for line in lines:
        event = json.loads(line)["Event"]
        system = event["System"]
        provider = system["Provider"]["#attributes"]["Name"]
        assert system["EventID"] in WINDOWS_IDS[provider]
        assert re.fullmatch(
            r"2026-03-10T\d{2}:\d{2}:\d{2}\.\d{6}Z", system["TimeCreated"]["#attributes"]["SystemTime"]
        )
        assert isinstance(system["EventRecordID"], int)
        assert system["Computer"].endswith(".northwind.example")
        assert system["Channel"] in (
            "Security",
            "Microsoft-Windows-Sysmon/Operational",
            "Microsoft-Windows-PowerShell/Operational",
        )
        assert isinstance(event["EventData"], dict) and event["EventData"]
        seen[(provider, system["EventID"])] += 1
    assert set(seen) == {(p, i) for p, ids in WINDOWS_IDS.items() for i in ids}  # every kind is represented


def test_ecs_events_and_cef_lines_parse() -> None:
    ecs = [json.loads(line) for line in (DATA_DIR / "ecs.jsonl").read_text(encoding="utf-8").splitlines()]
    assert 15 <= len(ecs) <= 30
    for doc in ecs:
        assert parse_time(doc["@timestamp"]) <= DEMO_NEWEST_MS
        assert doc["event"]["kind"] == "event" and doc["source"]["ip"]
        assert ("url" in doc) != ("dns" in doc)  # proxy or DNS
    lines = (DATA_DIR / "firewall.cef.log").read_text(encoding="utf-8").splitlines()
    assert 15 <= len(lines) <= 30
    assert sum(line.startswith("<") for line in lines) >= 5  # some carry a syslog header
    for line in lines:
        ext = cef_extension(line)
        assert re.fullmatch(r"\d{13}", ext["rt"]) and ext["act"] in ("allow", "deny")


def test_the_newest_stored_time_is_demo_newest() -> None:
    times = [record_time(fmt, r) for fmt, r in load_demo_events(DEMO_NEWEST_MS)]
    assert max(times) == DEMO_NEWEST_MS  # loading at DEMO_NEWEST_MS changes nothing
    assert load_demo_events(DEMO_NEWEST_MS)[0][1] == json.loads(
        (DATA_DIR / "windows.jsonl").read_text(encoding="utf-8").splitlines()[0]
    )
    alert_times = [parse_time(a["time"]) for a in load_demo_alerts(DEMO_NEWEST_MS)]
    assert max(alert_times) <= DEMO_NEWEST_MS


def test_events_rebase_to_now_keeping_their_spacing() -> None:
    original = load_demo_events(DEMO_NEWEST_MS)
    moved = load_demo_events(NOW)
    assert len(moved) == len(original) == 97
    delta = NOW - DEMO_NEWEST_MS
    assert [record_time(*r) for r in moved] == [record_time(*r) + delta for r in original]
    assert record_time(*moved[-1]) == NOW
    assert NOW - record_time(*moved[0]) < 3 * 3600 * 1000
    assert [record_time(*r) for r in moved] == sorted(record_time(*r) for r in moved)
    assert Counter(fmt for fmt, _ in moved) == {"windows": 57, "ecs": 20, "cef": 20}
    for event in windows(moved):
        data, system_time = event["EventData"], event["System"]["TimeCreated"]["#attributes"]["SystemTime"]
        assert system_time.startswith("2027-01-15T")
        for key in ("UtcTime", "CreationUtcTime"):  # Sysmon's own times move with the record
            if key in data:
                assert abs(parse_time(data[key]) - parse_time(system_time)) < 2000
    headers = 0
    for fmt, line in moved:  # a syslog header in front of CEF moves with rt
        if fmt != "cef" or not isinstance(line, str) or not line.startswith("<"):
            continue
        rt = datetime.fromtimestamp(int(cef_extension(line)["rt"]) / 1000, tz=UTC)
        if line.startswith("<14>1 "):
            assert parse_time(line.split()[1]) == int(cef_extension(line)["rt"])
        else:
            assert line[4:19] == f"{rt:%b} {rt.day:2d} {rt:%H:%M:%S}"
        headers += 1
    assert headers >= 5


def test_alerts_and_webhooks_rebase_and_parse() -> None:
    docs = load_demo_alerts(NOW)
    assert 6 <= len(docs) <= 10
    alerts = [parse_alert_document(doc) for doc in docs]
    assert all(NOW - 3 * 3600 * 1000 < a.time <= NOW for a in alerts)
    assert {a.severity for a in alerts} >= {
        Severity.INFORMATIONAL,
        Severity.LOW,
        Severity.MEDIUM,
        Severity.HIGH,
        Severity.CRITICAL,
    }
    assert len({a.external_id for a in alerts}) == len(alerts)
    phishing = next(a for a in alerts if a.source == "mail-gateway")
    assert ("url", INDICATORS["phishing_url"]) in {(o.type.value, o.value) for o in phishing.observables}
    assert "hxxps://docs-northwlnd-billing[.]example" in (phishing.description or "")  # defanged in the text
    webhooks = dict(load_demo_webhooks(NOW))
    assert sorted(webhooks) == ["elastic", "sentinel"]
    [elastic] = map_webhook("elastic", webhooks["elastic"])
    [sentinel] = map_webhook("sentinel", webhooks["sentinel"])
    assert elastic.source == "elastic" and "T1053.005" in elastic.techniques
    assert sentinel.source == "microsoft-sentinel" and "T1021.002" in sentinel.techniques
    for alert in (elastic, sentinel):
        assert NOW - 3 * 3600 * 1000 < alert.time <= NOW
        assert INDICATORS["victim_host"] in {o.value for o in alert.observables}
    raw = webhooks["sentinel"]
    assert parse_time(raw["StartTime"]) < parse_time(raw["EndTime"]) <= parse_time(raw["TimeGenerated"])


def test_the_intrusion_story_is_in_the_data() -> None:
    events = load_demo_events(NOW)
    win = windows(events)
    cef = [cef_extension(line) for fmt, line in events if fmt == "cef" and isinstance(line, str)]
    ecs = [doc for fmt, doc in events if fmt == "ecs" and isinstance(doc, dict)]
    c2 = INDICATORS["c2_ip"]
    # the C2 address shows in Sysmon network events, Sysmon DNS answers, ECS DNS logs and firewall CEF
    assert any(e["EventData"].get("DestinationIp") == c2 for e in win if e["System"]["EventID"] == 3)
    assert any(c2 in e["EventData"].get("QueryResults", "") for e in win)
    assert any(doc.get("dns", {}).get("resolved_ip") == [c2] for doc in ecs)
    assert {ext["act"] for ext in cef if ext["dst"] == c2} == {"allow", "deny"}
    assert any(ext["src"] == "10.20.1.20" and ext["dst"] == c2 for ext in cef)  # FS-01 tried too
    # phishing link clicked, in the proxy log and Edge's command line
    assert any(doc.get("url", {}).get("full") == INDICATORS["phishing_url"] for doc in ecs)
    assert any(INDICATORS["phishing_url"] in e["EventData"].get("CommandLine", "") for e in win)
    # Word spawns PowerShell with an encoded command that downloads from the stager
    [spawn] = [
        e["EventData"]
        for e in win
        if e["System"]["EventID"] == 1 and e["EventData"]["ParentImage"].endswith("WINWORD.EXE")
    ]
    encoded = spawn["CommandLine"].split("-enc ")[1]
    assert INDICATORS["stager_domain"] in base64.b64decode(encoded).decode("utf-16-le")
    assert any(INDICATORS["stager_domain"] in e["EventData"].get("ScriptBlockText", "") for e in win)
    # the implant, with the hash the alerts name
    implant = [
        e["EventData"]
        for e in win
        if e["EventData"].get("Image") == INDICATORS["implant_path"] and e["System"]["EventID"] == 1
    ]
    assert implant and f"SHA256={INDICATORS['implant_sha256'].upper()}" in implant[0]["Hashes"]
    # credential dumping: lsass opened, comsvcs MiniDump
    lsass = [e["EventData"] for e in win if e["System"]["EventID"] == 10]
    assert {d["TargetImage"].lower() for d in lsass} == {"c:\\windows\\system32\\lsass.exe"}
    assert any("comsvcs.dll, MiniDump" in e["EventData"].get("CommandLine", "") for e in win)
    # lateral movement: a network logon (type 3) on FS-01 with svc_backup from the workstation
    assert any(
        e["System"]["EventID"] == 4624
        and e["System"]["Computer"].startswith("FS-01")
        and e["EventData"]["LogonType"] == 3
        and e["EventData"]["TargetUserName"] == "svc_backup"
        and e["EventData"]["IpAddress"] == INDICATORS["victim_ip"]
        for e in win
    )
    # and the noise: other users and hosts
    assert len({e["System"]["Computer"] for e in win}) >= 5


def test_live_events_are_reproducible_and_recent() -> None:
    first = live_events(NOW, 60, seed=7)
    assert first == live_events(NOW, 60, seed=7)
    assert first != live_events(NOW, 60, seed=8)
    assert len(first) == 60 and live_events(NOW, 0, seed=1) == []
    times = [record_time(*r) for r in first]
    assert times == sorted(times) and all(NOW - 5000 <= t <= NOW for t in times)
    assert {fmt for fmt, _ in first} == {"windows", "ecs", "cef"}
    for fmt, record in live_events(NOW, 300, seed=3):
        if fmt == "cef":
            assert isinstance(record, str) and cef_extension(record)["rt"]
        elif fmt == "windows":
            assert isinstance(record, dict)
            assert record["Event"]["System"]["EventID"] in {1, 3, 22, 4624}
        else:
            assert isinstance(record, dict) and parse_time(record["@timestamp"]) <= NOW
    blocked = [r for f, r in live_events(NOW, 300, seed=3) if f == "cef" and INDICATORS["c2_ip"] in r]
    assert blocked and all("act=deny" in r for r in blocked)


def test_demo_events_normalize_with_their_times() -> None:
    normalize_module = pytest.importorskip("bastion.ingest.normalize")
    for fmt, record in load_demo_events(NOW) + live_events(NOW, 50, seed=11):
        if fmt not in normalize_module.NORMALIZERS:
            pytest.skip(f"no {fmt} normalizer yet")
        event = normalize_module.normalize(record, fmt)
        assert event.time == record_time(fmt, record)
