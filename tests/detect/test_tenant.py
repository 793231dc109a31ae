"""Per-tenant packs, rule overrides and suppressions (audited); alerts; retro-hunts over stored events."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from bastion.detect import Detector, Suppression, parse_rule_text
from bastion.detect.alerts import severity_of, techniques_of
from bastion.detect.tenant import (
    add_pack,
    add_suppression,
    remove_suppression,
    set_pack_enabled,
    set_rule_enabled,
    tenant_detector,
    tenant_suppressions,
)
from bastion.model import Event, Severity
from bastion.store import Database
from bastion.store.audit import AuditRepository
from bastion.store.detection import DetectionRepository
from bastion.store.tenancy import TenantRepository
from bastion.tenancy.service import create_tenant
from tests.conftest import cli_json, run_cli, sqlite_url

RULE_A = """
title: Whoami Execution
id: 00000000-0000-0000-0000-00000000000a
status: test
description: whoami ran
logsource: {product: windows, category: process_creation}
detection:
  selection:
    Image|endswith: '\\whoami.exe'
  filter:
    User: 'NT AUTHORITY\\SYSTEM'
  condition: selection and not filter
falsepositives:
  - Admins checking who they are
level: high
tags:
  - attack.discovery
  - attack.t1033
  - attack.t1059.001
"""
RULE_B = """
title: Net Execution
id: 00000000-0000-0000-0000-00000000000b
logsource: {product: windows, category: process_creation}
detection:
  selection:
    Image|endswith: '\\net.exe'
  condition: selection
level: low
"""


def sysmon(image: str, user: str = "bob", when: float | None = None) -> dict[str, Any]:
    stamp = datetime.fromtimestamp(when if when is not None else time.time(), UTC).strftime(
        "%Y-%m-%dT%H:%M:%S.%fZ"
    )
    return {
        "Event": {
            "System": {
                "Provider": {"#attributes": {"Name": "Microsoft-Windows-Sysmon"}},
                "EventID": 1,
                "Channel": "Microsoft-Windows-Sysmon/Operational",
                "Computer": "ws1",
                "TimeCreated": {"#attributes": {"SystemTime": stamp}},
            },
            "EventData": {"Image": image, "User": user, "CommandLine": image},
        }
    }


@pytest.fixture
def packdir(tmp_path: Path) -> Path:
    d = tmp_path / "pack"
    d.mkdir()
    (d / "a.yml").write_text(RULE_A)
    (d / "b.yml").write_text(RULE_B)
    return d


def test_alert_carries_severity_techniques_falsepositives_and_why() -> None:
    det = Detector(parse_rule_text(RULE_A))
    ev = Event(time=123, raw=sysmon("C:\\Windows\\System32\\whoami.exe"))
    [alert] = det.match_events([ev, Event(raw=sysmon("C:\\x\\calc.exe"))])
    assert alert.severity == Severity.HIGH and alert.time == 123
    assert alert.techniques == ["T1033", "T1059.001"]
    assert alert.rule_id == "00000000-0000-0000-0000-00000000000a" and alert.source == "sigma"
    assert alert.raw["falsepositives"] == ["Admins checking who they are"]
    assert alert.raw["why"]["selections"] == ["selection"]
    assert alert.raw["why"]["fields"] == {"Image": "C:\\Windows\\System32\\whoami.exe"}
    assert alert.external_id is None
    [again] = det.match_events([ev], event_ids=["e1"])
    assert again.event_ids == ["e1"] and again.external_id == "00000000-0000-0000-0000-00000000000a:e1"


def test_severity_and_technique_helpers() -> None:
    assert severity_of("critical") == Severity.CRITICAL and severity_of(None) == Severity.MEDIUM
    assert techniques_of(["attack.T1003.001", "attack.t1003.001", "attack.g0016", "cve.2021"]) == [
        "T1003.001"
    ]


def test_suppression_by_rule_fields_and_expiry() -> None:
    det = Detector(parse_rule_text(RULE_A + "\n---\n" + RULE_B))
    evs = [sysmon("C:\\w\\whoami.exe", user="bob"), sysmon("C:\\w\\net.exe", user="bob")]
    now = 1_000_000
    rid_a = "00000000-0000-0000-0000-00000000000a"
    kept = det.match_events(evs, now=now, suppressions=[Suppression({"User": "BOB"}, rule_id=rid_a)])
    assert [a.title for a in kept] == ["Net Execution"]
    anyrule = det.match_events(evs, now=now, suppressions=[Suppression({"User": "bob"})])
    assert anyrule == []
    expired = det.match_events(evs, now=now, suppressions=[Suppression({"User": "bob"}, expires=now)])
    assert len(expired) == 2
    other = det.match_events(evs, now=now, suppressions=[Suppression({"User": "alice"})])
    assert len(other) == 2


def test_tenant_packs_overrides_suppressions_are_scoped_and_audited(db: Database, packdir: Path) -> None:
    create_tenant(db, "acme")
    create_tenant(db, "other")
    add_pack(db, "acme", "mine", str(packdir))
    with pytest.raises(ValueError, match="already has a pack"):
        add_pack(db, "acme", "mine", str(packdir))
    with pytest.raises(ValueError, match="no such rule file"):
        add_pack(db, "acme", "missing", str(packdir / "nope"))
    assert len(tenant_detector(db, "acme").rules) == 2
    assert tenant_detector(db, "other").rules == []
    set_rule_enabled(db, "acme", "00000000-0000-0000-0000-00000000000b", False)
    assert [r.title for r in tenant_detector(db, "acme").rules] == ["Whoami Execution"]
    set_rule_enabled(db, "acme", "00000000-0000-0000-0000-00000000000b", True)
    assert len(tenant_detector(db, "acme").rules) == 2
    set_pack_enabled(db, "acme", "mine", False)
    assert tenant_detector(db, "acme").rules == []
    with pytest.raises(ValueError, match="no pack named"):
        set_pack_enabled(db, "other", "mine", True)
    set_pack_enabled(db, "acme", "mine", True)

    with pytest.raises(ValueError, match="at least one field"):
        add_suppression(db, "acme", {})
    past = add_suppression(db, "acme", {"User": "x"}, expires=1)
    row = add_suppression(
        db, "acme", {"User": "bob"}, rule_id="00000000-0000-0000-0000-00000000000a", reason="ok"
    )
    active = tenant_suppressions(db, "acme", now=int(time.time() * 1000))
    assert [s.id for s in active] == [row.id]
    assert tenant_suppressions(db, "other") == []
    remove_suppression(db, "acme", past.id)
    with pytest.raises(ValueError, match="no suppression"):
        remove_suppression(db, "other", row.id)

    with db.read() as conn:
        t = TenantRepository(conn).by_name("acme")
        assert t is not None
        actions = [e.action for e in AuditRepository(conn, t.id).entries()]
        assert len(DetectionRepository(conn, t.id).suppressions()) == 1
    for action in (
        "detection.pack.add",
        "detection.rule.disable",
        "detection.rule.enable",
        "detection.pack.disable",
        "detection.pack.enable",
        "detection.suppression.add",
        "detection.suppression.remove",
    ):
        assert action in actions


def test_hunt_over_stored_events(tmp_path: Path, packdir: Path) -> None:
    url = sqlite_url(tmp_path)
    cli_json("tenant", "create", "acme", db_url=url)
    old = time.time() - 40 * 86400
    docs = [
        sysmon("C:\\w\\whoami.exe"),
        sysmon("C:\\w\\calc.exe"),
        sysmon("C:\\w\\whoami.exe", user="NT AUTHORITY\\SYSTEM"),
        sysmon("C:\\w\\whoami.exe", when=old),
    ]
    events = tmp_path / "e.jsonl"
    events.write_bytes(b"\n".join(orjson.dumps(d) for d in docs) + b"\n")
    assert cli_json("ingest", str(events), "--tenant", "acme", db_url=url)["accepted"] == 4
    rule = packdir / "a.yml"
    recent = cli_json("hunt", "--rule", str(rule), "--since", "30d", "--tenant", "acme", db_url=url)
    assert recent["events"] == 3 and len(recent["matches"]) == 1
    assert recent["matches"][0]["rule_id"] == "00000000-0000-0000-0000-00000000000a"
    longer = cli_json("hunt", "--rule", str(rule), "--since", "60d", "--tenant", "acme", db_url=url)
    assert longer["events"] == 4 and len(longer["matches"]) == 2
    bad = run_cli("hunt", "--rule", str(tmp_path / "nope.yml"), "--tenant", "acme", db_url=url)
    assert bad.returncode != 0 and "no such rule file" in bad.stderr


def test_rules_cli_suppress_and_packs(tmp_path: Path, packdir: Path) -> None:
    url = sqlite_url(tmp_path)
    cli_json("tenant", "create", "acme", db_url=url)
    assert cli_json("rules", "pack", "add", "mine", str(packdir), "--tenant", "acme", db_url=url)["enabled"]
    assert cli_json("rules", "pack", "list", "--tenant", "acme", db_url=url)["packs"][0]["name"] == "mine"
    s = cli_json(
        "rules", "suppress", "--tenant", "acme", "--field", "User=bob", "--expires", "7d", db_url=url
    )
    assert s["expires"] > time.time() * 1000 + 6 * 86400_000
    listed = cli_json("rules", "suppressions", "--tenant", "acme", db_url=url)["suppressions"]
    assert [x["id"] for x in listed] == [s["id"]]
    bad = run_cli("rules", "suppress", "--tenant", "acme", "--field", "nonsense", db_url=url)
    assert bad.returncode != 0 and "FIELD=VALUE" in bad.stderr
    check = cli_json("rules", "check", str(packdir), db_url=url)
    assert check["supported"] == 2 and check["unsupported"] == 0
    # Every command that changes one thing reports it as one JSON object under --json.
    off = cli_json("rules", "pack", "disable", "mine", "--tenant", "acme", db_url=url)
    assert off == {"pack": "mine", "enabled": False}
    assert cli_json("rules", "pack", "list", "--tenant", "acme", db_url=url)["packs"][0]["enabled"] is False
    on = cli_json("rules", "pack", "enable", "mine", "--tenant", "acme", db_url=url)
    assert on == {"pack": "mine", "enabled": True}
    rule_id = "0f06a3a5-6a09-413f-8743-e6cf35561297"
    assert cli_json("rules", "disable", rule_id, "--tenant", "acme", db_url=url) == {
        "rule_id": rule_id,
        "enabled": False,
    }
    assert cli_json("rules", "enable", rule_id, "--tenant", "acme", db_url=url)["enabled"] is True
    gone = cli_json("rules", "unsuppress", s["id"], "--tenant", "acme", db_url=url)
    assert gone == {"suppression": s["id"], "removed": True}
    assert cli_json("rules", "suppressions", "--tenant", "acme", db_url=url)["suppressions"] == []
