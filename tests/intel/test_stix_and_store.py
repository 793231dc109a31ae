"""STIX 2.1 loading over every shared example, merging with sightings, decay and expiry, on both stores."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from bastion.intel.feeds import parse_path
from bastion.intel.feeds.base import make_indicator
from bastion.intel.service import load_file
from bastion.intel.store import decayed_confidence, load_indicators, lookup
from bastion.model.intel import IndicatorType as T
from bastion.store import Database
from bastion.store.intel import IntelRepository
from bastion.store.scope import TenantScope

DAY = 86_400_000


def _stix_files(shared_data: Path) -> list[Path]:
    files = sorted((shared_data / "stix21" / "examples").rglob("*.json"))
    assert files, "no STIX examples found"
    return files


def _indicator_count(path: Path) -> int:
    doc = orjson.loads(path.read_bytes())
    return sum(1 for o in doc.get("objects", []) if o.get("type") == "indicator")


def test_every_stix_example_indicator_loads_and_is_found(
    db: Database, tenant_id: str, shared_data: Path
) -> None:
    total = 0
    for path in _stix_files(shared_data):
        parsed = parse_path("stix", path)
        assert parsed.rejected == [], f"{path.name}: {parsed.rejected}"
        expected = _indicator_count(path)
        total += expected
        summary = load_file(db, tenant_id, path, "stix", actor="test")
        assert summary.load.rejected == 0
        if expected == 0:
            continue
        # Every STIX indicator produced at least one stored value, and looking one up finds it.
        ids = {i.description for i in parsed.indicators}
        assert len(parsed.indicators) >= expected
        assert ids
        literal = [i for i in parsed.indicators if not i.pattern]
        if literal:
            first = literal[0]
            answer = lookup(db, tenant_id, first.value, kind=first.type if first.type is not T.CIDR else None)
            assert any(m["indicator"] == first.value for m in answer["matches"]), (path.name, first.value)
        else:
            # Only regex (MATCHES) indicators: a value the regex matches finds it.
            answer = lookup(db, tenant_id, "Final Report Q3.exe", kind=T.FILE_NAME)
            assert [m["type"] for m in answer["matches"]] == ["file_name"], path.name
    assert total >= 40
    # CIDR and parent-domain matching over the loaded reports.
    assert lookup(db, tenant_id, "223.167.1.1")["matches"][0]["indicator"] == "223.166.0.0/15"
    assert lookup(db, tenant_id, "c2.hugesoft.org")["matches"][0]["indicator"] == "hugesoft.org"
    poison = lookup(db, tenant_id, "219.76.208.163")["matches"]
    assert poison and poison[0]["type"] == "ipv4"
    with db.read() as conn:
        entries = list(TenantScope(conn, tenant_id).audit.entries())
    assert any(e.action == "intel.load" for e in entries)


def test_stix_links_actors_and_malware(shared_data: Path) -> None:
    parsed = parse_path("stix", shared_data / "stix21" / "examples" / "threat-reports" / "poisonivy.json")
    assert any(i.malware for i in parsed.indicators)
    assert all(i.source == "stix" or i.source for i in parsed.indicators)
    # One value in the report is not a domain name: skipped with a reason, the indicator still loads.
    assert any("autuo.xicp.net" in w for w in parsed.warnings)


def test_merge_keeps_sightings_and_decays(db: Database, tenant_id: str) -> None:
    now = 1_800_000_000_000
    a = make_indicator(T.IPV4, "203.0.113.9", "feed-a", confidence=90, last_seen=now - 90 * DAY, tags=["c2"])
    b = make_indicator(T.IPV4, "203.0.113.9", "feed-b", confidence=60, last_seen=now, tags=["botnet"])
    first = load_indicators(db, tenant_id, [a], actor="test", half_life_days=90)
    second = load_indicators(db, tenant_id, [b], actor="test", half_life_days=30)
    assert (first.loaded, first.merged) == (1, 0)
    assert (second.loaded, second.merged) == (0, 1)
    with db.read() as conn:
        stored = IntelRepository(conn, tenant_id).find([("ipv4", "203.0.113.9")])[("ipv4", "203.0.113.9")]
    assert sorted(s.source for s in stored.sightings) == ["feed-a", "feed-b"]
    assert stored.tags == ["botnet", "c2"]
    # feed-a: 90 decayed over one 90-day half-life = 45; feed-b is fresh at 60 -> 60 wins.
    assert decayed_confidence(stored, now) == 60
    assert decayed_confidence(stored, now + 60 * DAY) == round(90 * 0.5 ** (150 / 90))
    answer = lookup(db, tenant_id, "203.0.113.9", now=now)
    assert answer["matches"][0]["sources"] == ["feed-a", "feed-b"]


def test_expired_indicators_stop_matching(db: Database, tenant_id: str) -> None:
    now = 1_800_000_000_000
    ind = make_indicator(T.DOMAIN, "old-c2.example", "feed", valid_until=now - 1)
    load_indicators(db, tenant_id, [ind], actor="test")
    assert lookup(db, tenant_id, "old-c2.example", now=now - 10)["matches"]
    assert lookup(db, tenant_id, "old-c2.example", now=now)["matches"] == []


def test_tenants_do_not_see_each_other(db: Database, tenant_id: str) -> None:
    from bastion.tenancy.service import create_tenant

    other, _ = create_tenant(db, "other")
    load_indicators(db, tenant_id, [make_indicator(T.IPV4, "192.0.2.55", "x")], actor="test")
    assert lookup(db, tenant_id, "192.0.2.55")["matches"]
    assert lookup(db, other.id, "192.0.2.55")["matches"] == []


@pytest.mark.parametrize("bad", ["{not json", '"a string"'])
def test_unusable_stix_is_a_clear_error(tmp_path: Path, bad: str) -> None:
    from bastion.intel.feeds import FeedError

    p = tmp_path / "bad.json"
    p.write_text(bad)
    with pytest.raises(FeedError, match="STIX"):
        parse_path("stix", p)


def test_matcher_follows_writes_from_elsewhere(db: Database, tenant_id: str) -> None:
    from bastion.store.intel import IntelRepository as Repo

    assert lookup(db, tenant_id, "192.0.2.77")["matches"] == []
    # Another process writes straight to the table: the live matcher picks the row up incrementally.
    with db.write() as conn:
        Repo(conn, tenant_id).upsert([make_indicator(T.IPV4, "192.0.2.77", "other-process")])
    assert [m["source"] for m in lookup(db, tenant_id, "192.0.2.77")["matches"]] == ["other-process"]


def test_misp_event_and_feed_folder_files(db: Database, tenant_id: str, tmp_path: Path) -> None:
    event = {
        "Event": {
            "uuid": "5e1b3c4d-0000-4000-8000-000000000001",
            "info": "test",
            "Attribute": [
                {"type": "url", "value": "https://Phish.example/login", "to_ids": True},
                {"type": "vulnerability", "value": "CVE-2024-3094"},
                {"type": "email-src", "value": "not-an-email"},
                {"type": "domain|ip", "value": "c2.example|192.0.2.44"},  # both halves are indicators
                {"type": "filename|sha256", "value": "drop.exe|" + "e" * 64},
            ],
        }
    }
    one = tmp_path / "event.json"
    one.write_bytes(orjson.dumps(event))
    s = load_file(db, tenant_id, one, "misp-event", actor="test")
    assert (s.load.loaded, s.load.rejected) == (6, 1)
    for value in ("c2.example", "192.0.2.44", "drop.exe", "e" * 64):
        assert lookup(db, tenant_id, value)["matches"], value
    feed = tmp_path / "feed"
    feed.mkdir()
    uid = "5e1b3c4d-0000-4000-8000-000000000002"
    event["Event"]["uuid"] = uid
    event["Event"]["Attribute"] = [{"type": "ip-dst|port", "value": "198.51.100.99|443", "to_ids": True}]
    (feed / f"{uid}.json").write_bytes(orjson.dumps(event))
    (feed / "manifest.json").write_bytes(orjson.dumps({uid: {"timestamp": "1"}, "missing-uuid": {}}))
    (feed / "hashes.csv").write_text(f"0123456789abcdef0123456789abcdef,{uid}\n")
    s = load_file(db, tenant_id, feed, "misp-feed", actor="test")
    assert (s.load.loaded, s.load.rejected) == (1, 1)
    assert "missing-uuid" in s.load.problems[0]
    assert lookup(db, tenant_id, "198.51.100.99")["matches"]
    assert lookup(db, tenant_id, "https://phish.example/login")["matches"]


def test_an_untyped_lookup_finds_a_username_leak_and_a_ja3_fingerprint(db: Database, tenant_id: str) -> None:
    from bastion.intel.feeds.base import make_indicator
    from bastion.intel.store import load_indicators
    from bastion.model.intel import IndicatorType as T

    ja3 = "e7d705a3286e19ea42f587b344ee6865"
    load_indicators(
        db,
        tenant_id,
        [make_indicator(T.LEAKED_CREDENTIAL, "bob", "leaks"), make_indicator(T.JA3, ja3, "sslbl")],
        actor="test",
    )
    assert [m["indicator"] for m in lookup(db, tenant_id, "bob")["matches"]] == ["bob"]
    assert [m["type"] for m in lookup(db, tenant_id, ja3)["matches"]] == ["ja3"]


def test_a_mapped_feed_can_list_a_domain_as_exact(db: Database, tenant_id: str, tmp_path: Path) -> None:
    feed = tmp_path / "domains.csv"
    feed.write_text("value,type,exact\nexact-only.example,domain,true\nwide.example,domain,\n")
    load_file(db, tenant_id, feed, "csv", actor="test")
    assert lookup(db, tenant_id, "exact-only.example")["matches"]
    assert not lookup(db, tenant_id, "www.exact-only.example")["matches"]  # its subdomains are not it
    assert lookup(db, tenant_id, "www.wide.example")["matches"]


def test_stix_links_hold_attack_technique_ids_and_tactics_become_tags() -> None:
    from bastion.intel.feeds import parse_bytes

    ind = {
        "type": "indicator", "id": "indicator--1", "pattern": "[ipv4-addr:value = '192.0.2.9']",
        "pattern_type": "stix", "valid_from": "2026-01-01T00:00:00Z",
        "kill_chain_phases": [{"kill_chain_name": "mitre-attack", "phase_name": "command-and-control"}],
    }  # fmt: skip
    objects = [
        ind,
        {"type": "attack-pattern", "id": "attack-pattern--1", "name": "Application Layer Protocol",
         "external_references": [{"source_name": "mitre-attack", "external_id": "T1071"},
                                 {"source_name": "capec", "external_id": "CAPEC-1"}]},
        {"type": "attack-pattern", "id": "attack-pattern--2", "name": "Phish",
         "external_references": [{"source_name": "capec", "external_id": "CAPEC-98"}]},
        {"type": "relationship", "id": "relationship--1", "relationship_type": "indicates",
         "source_ref": "indicator--1", "target_ref": "attack-pattern--1"},
        {"type": "relationship", "id": "relationship--2", "relationship_type": "indicates",
         "source_ref": "indicator--1", "target_ref": "attack-pattern--2"},
    ]  # fmt: skip
    [parsed] = parse_bytes(
        "stix", orjson.dumps({"type": "bundle", "id": "bundle--1", "objects": objects})
    ).indicators
    assert parsed.techniques == ["T1071"]  # not the tactic, not CAPEC, not a name
    assert {"tactic:command-and-control", "attack-pattern:Phish"} <= set(parsed.tags)
