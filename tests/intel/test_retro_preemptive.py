"""Retro-hunt over stored events through the observable index, and preemptive matching: lookalike
domains, CVEs against installed software, sector/region tags, each raising the intel trigger hook."""

from __future__ import annotations

from collections.abc import Iterator

import orjson
import pytest

from bastion.enrich.inventory import parse_assets, store_assets
from bastion.ingest.records import RawRecord
from bastion.intel.feeds import parse_bytes
from bastion.intel.feeds.base import ParseResult, make_indicator
from bastion.intel.service import ingest_parsed, update_profile
from bastion.intel.triggers import IntelTrigger, emit, on_intel_match, subscribers, unsubscribe
from bastion.model import Severity
from bastion.model.intel import IndicatorType as T
from bastion.pipeline import prepare_events, store_events
from bastion.store import Database
from bastion.store.scope import TenantScope

DAY = 86_400_000


@pytest.fixture
def fired() -> Iterator[list[IntelTrigger]]:
    got: list[IntelTrigger] = []
    sub = on_intel_match(got.append)
    yield got
    unsubscribe(sub)


def _event(ts: str, dst_ip: str, domain: str) -> RawRecord:
    return RawRecord(
        data={
            "@timestamp": ts,
            "event": {"category": ["network"]},
            "source": {"ip": "10.0.0.5"},
            "destination": {"ip": dst_ip, "domain": domain},
        },
        format="ecs",
        line=1,
    )


def test_retro_hunt_raises_linked_alerts(db: Database, tenant_id: str) -> None:
    import time

    now = int(time.time() * 1000)
    recent = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now / 1000 - 2 * 86400))
    old = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now / 1000 - 60 * 86400))
    rows, errors = prepare_events(
        [
            _event(recent, "203.0.113.50", "c2.evil.example"),
            _event(old, "203.0.113.50", "old.example"),
            _event(recent, "198.51.100.1", "benign.example"),
        ]
    )
    assert not errors
    store_events(db, tenant_id, "test", rows, errors)
    parsed = ParseResult(
        indicators=[
            make_indicator(T.IPV4, "203.0.113.50", "feed", confidence=90),
            make_indicator(T.DOMAIN, "c2.evil.example", "feed", confidence=60),
            make_indicator(T.IPV4, "192.0.2.200", "feed"),
        ]
    )
    summary = ingest_parsed(db, tenant_id, parsed, actor="test")
    # The IP is in the recent event and in a 60-day-old one (outside the 30-day window): one hit;
    # the domain hits the same recent event: a second alert, linked to its own indicator.
    assert summary.retro_alerts == 2
    with db.read() as conn:
        alerts, _ = TenantScope(conn, tenant_id).alerts.list(source="retro-hunt")
    assert len(alerts) == 2
    for a in alerts:
        assert "retro-hunt" in a.tags and a.raw["retro_hunt"] is True
        assert a.event_ids and a.raw["indicator_id"]
    assert {a.observables[0].value for a in alerts} == {"203.0.113.50", "c2.evil.example"}
    # Re-running the same indicators raises nothing twice.
    assert ingest_parsed(db, tenant_id, parsed, actor="test").retro_alerts == 0

    # A wider window reaches the old event for new indicators.
    update_profile(db, tenant_id, {"retro_days": 90}, actor="test")
    more = ingest_parsed(
        db, tenant_id, ParseResult([make_indicator(T.DOMAIN, "old.example", "f")]), actor="test"
    )
    assert more.retro_alerts == 1


def test_a_retro_hunt_hit_on_a_warning_listed_value_is_marked_known_benign(
    db: Database, tenant_id: str
) -> None:
    """A public DNS resolver in a stored event and then in a feed: the alert is raised, marked
    known-benign with its lists, at informational severity; an unlisted address keeps its severity."""
    import time

    recent = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 86400))
    events = [_event(recent, "8.8.8.8", "x.example"), _event(recent, "91.203.5.146", "y.example")]
    rows, errors = prepare_events(events)
    store_events(db, tenant_id, "test", rows, errors)
    parsed = ParseResult(
        indicators=[
            make_indicator(T.IPV4, "8.8.8.8", "feed", confidence=90),
            make_indicator(T.IPV4, "91.203.5.146", "feed", confidence=90),
        ]
    )
    assert ingest_parsed(db, tenant_id, parsed, actor="test").retro_alerts == 2
    with db.read() as conn:
        alerts, _ = TenantScope(conn, tenant_id).alerts.list(source="retro-hunt")
    by_ip = {a.observables[0].value: a for a in alerts}
    dns = by_ip["8.8.8.8"]
    assert "known-benign" in dns.tags and dns.severity == Severity.INFORMATIONAL
    assert "public-dns-v4" in dns.raw["warninglists"]
    other = by_ip["91.203.5.146"]
    assert "known-benign" not in other.tags and other.severity == Severity.HIGH


def test_a_ja3_fingerprint_in_a_stored_event_is_retro_hunted_and_enriched(
    db: Database, tenant_id: str
) -> None:
    """JA3 indicators (abuse.ch SSLBL publishes them) meet the fingerprints events carry."""
    import time

    from bastion.enrich.enricher import enrich_alert
    from bastion.model import Alert, Observable, ObservableType

    ja3 = "e7d705a3286e19ea42f587b344ee6865"
    record = _event(
        time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 3600)), "91.203.5.146", "t.example"
    )
    record.data["tls"] = {"client": {"ja3": ja3}}
    rows, errors = prepare_events([record])
    store_events(db, tenant_id, "test", rows, errors)
    parsed = ParseResult(indicators=[make_indicator(T.JA3, ja3, "sslbl", confidence=80, tags=["trickbot"])])
    assert ingest_parsed(db, tenant_id, parsed, actor="test").retro_alerts == 1
    alert = Alert(
        title="tls", severity=Severity.LOW, time=1, source="ids",
        observables=[Observable(type=ObservableType.JA3, value=ja3)],
    )  # fmt: skip
    assert [m["indicator"] for m in enrich_alert(db, tenant_id, alert).intel] == [ja3]


def test_lookalike_domains_of_owned_domains(
    sqlite_db: Database, sqlite_tenant: str, fired: list[IntelTrigger]
) -> None:
    update_profile(sqlite_db, sqlite_tenant, {"owned_domains": ["ExampleBank.com"]}, actor="test")
    feed = b"\n".join(
        [
            b"examplebank-login.com",
            b"examp1ebank.com",
            b"examplebank.net",
            b"wikipedia.org",
            b"unrelated-shop.io",
            b"mail.examplebank.com",
        ]
    )
    summary = ingest_parsed(sqlite_db, sqlite_tenant, parse_bytes("list", feed), actor="test")
    assert summary.load.loaded == 6
    flagged = sorted(t.domain or "" for t in fired)
    assert flagged == ["examp1ebank.com", "examplebank-login.com", "examplebank.net"]
    assert all(t.type == "lookalike-domain" and t.owned_domain == "examplebank.com" for t in fired)
    assert summary.triggers == 3


def test_cve_against_installed_software(
    sqlite_db: Database, sqlite_tenant: str, fired: list[IntelTrigger]
) -> None:
    assets, problems = parse_assets(
        b"hostname,ips,criticality,software\n"
        b"web01,10.0.0.5,critical,openssl@3.0.1;nginx@1.24.0\n"
        b"db01,10.0.0.9,high,postgresql@16.2\n"
    )
    assert not problems
    store_assets(sqlite_db, sqlite_tenant, assets, actor="test")
    cves = ParseResult(
        indicators=[
            make_indicator(T.CVE, "CVE-2099-0001", "nvd", details={"affects": "openssl@3.0.1"}),
            make_indicator(
                T.CVE, "CVE-2099-0002", "nvd", details={"affects": "cpe:2.3:a:openssl:openssl:1.1.1:*"}
            ),
            make_indicator(T.CVE, "CVE-2099-0003", "nvd", details={"affects": "exchange_server"}),
        ]
    )
    summary = ingest_parsed(sqlite_db, sqlite_tenant, cves, actor="test")
    assert summary.triggers == 1
    assert [(t.type, (t.asset or {}).get("hostname"), t.indicator["value"]) for t in fired] == [
        ("vulnerable-software", "web01", "CVE-2099-0001")
    ]


def test_cves_from_feeds_name_the_software_they_affect(
    sqlite_db: Database, sqlite_tenant: str, fired: list[IntelTrigger]
) -> None:
    """The affected software reaches preemptive matching from feeds, not only from code: a mapped CSV's
    ``affects`` column, and STIX software objects related to a vulnerability (either direction)."""
    assets, _ = parse_assets(b"hostname,ips,software\nweb07,10.0.0.7,openssl@3.0.1;nginx@1.24.0\n")
    store_assets(sqlite_db, sqlite_tenant, assets, actor="test")
    csv = parse_bytes("csv", b"value,affects\nCVE-2099-0101,openssl@3.0.1\nCVE-2099-0102,openssl@1.0.2\n")
    assert [i.details.get("affects") for i in csv.indicators] == ["openssl@3.0.1", "openssl@1.0.2"]
    bundle = {
        "type": "bundle",
        "id": "bundle--1",
        "objects": [
            {"type": "vulnerability", "id": "vulnerability--1", "name": "CVE-2099-0201"},
            {"type": "vulnerability", "id": "vulnerability--2", "name": "CVE-2099-0202"},
            {"type": "software", "id": "software--1", "name": "nginx", "version": "1.24.0"},
            {"type": "software", "id": "software--2", "name": "nginx", "version": "9.9"},
            {"type": "relationship", "id": "relationship--1", "relationship_type": "has",
             "source_ref": "software--1", "target_ref": "vulnerability--1"},
            {"type": "relationship", "id": "relationship--2", "relationship_type": "targets",
             "source_ref": "vulnerability--2", "target_ref": "software--2"},
        ],
    }  # fmt: skip
    stix = parse_bytes("stix", orjson.dumps(bundle))
    assert {i.value: i.details.get("affects") for i in stix.indicators} == {
        "CVE-2099-0201": "nginx@1.24.0",
        "CVE-2099-0202": "nginx@9.9",
    }
    for parsed in (csv, stix):
        ingest_parsed(sqlite_db, sqlite_tenant, parsed, actor="test")
    assert sorted((t.type, t.indicator["value"], (t.asset or {}).get("hostname")) for t in fired) == [
        ("vulnerable-software", "CVE-2099-0101", "web07"),
        ("vulnerable-software", "CVE-2099-0201", "web07"),
    ]


def test_intel_that_came_before_the_inventory_fires_when_the_identity_or_asset_arrives(
    sqlite_db: Database, sqlite_tenant: str, fired: list[IntelTrigger]
) -> None:
    from bastion.enrich.inventory import parse_identities, store_identities

    leak = parse_bytes("credential-leak", b'[{"email": "dave@example.com", "source": "breachZ"}]')
    cve = ParseResult(
        indicators=[make_indicator(T.CVE, "CVE-2099-0301", "nvd", details={"affects": "openssl@3.0.1"})]
    )
    for parsed in (leak, cve):
        ingest_parsed(sqlite_db, sqlite_tenant, parsed, actor="test")
    assert fired == []  # nobody to match yet
    people, _ = parse_identities(b"username,email\ndave,Dave@Example.com\n")
    store_identities(sqlite_db, sqlite_tenant, people, actor="test")
    assets, _ = parse_assets(b"hostname,ips,software\nweb09,10.0.0.9,openssl@3.0.1\n")
    store_assets(sqlite_db, sqlite_tenant, assets, actor="test")
    assert [(t.type, t.indicator["value"]) for t in fired] == [
        ("credential-leak", "dave@example.com"),
        ("vulnerable-software", "CVE-2099-0301"),
    ]
    store_identities(sqlite_db, sqlite_tenant, people, actor="test")  # synced again: not fired twice
    store_assets(sqlite_db, sqlite_tenant, assets, actor="test")
    assert len(fired) == 2


def test_sector_and_region_tags(sqlite_db: Database, sqlite_tenant: str, fired: list[IntelTrigger]) -> None:
    update_profile(sqlite_db, sqlite_tenant, {"sector": "finance", "region": "europe"}, actor="test")
    inds = ParseResult(
        indicators=[
            make_indicator(T.IPV4, "192.0.2.1", "isac", tags=["sector:finance"]),
            make_indicator(T.IPV4, "192.0.2.2", "isac", tags=["region:europe"]),
            make_indicator(T.IPV4, "192.0.2.3", "isac", tags=["sector:energy", "region:asia"]),
        ]
    )
    ingest_parsed(sqlite_db, sqlite_tenant, inds, actor="test")
    assert sorted((t.type, t.indicator["value"]) for t in fired) == [
        ("region", "192.0.2.2"),
        ("sector", "192.0.2.1"),
    ]


def test_profile_rejects_unknown_fields(sqlite_db: Database, sqlite_tenant: str) -> None:
    with pytest.raises(ValueError, match="unknown intel profile field"):
        update_profile(sqlite_db, sqlite_tenant, {"colour": "blue"}, actor="test")
    with pytest.raises(ValueError, match="retro_days"):
        update_profile(sqlite_db, sqlite_tenant, {"retro_days": 0}, actor="test")


def test_a_failing_subscriber_does_not_stop_others(fired: list[IntelTrigger]) -> None:
    def broken(_t: IntelTrigger) -> None:
        raise RuntimeError("subscriber bug")

    on_intel_match(broken)
    try:
        trig = IntelTrigger(tenant_id="t", type="sector", key="k", indicator={"value": "x"})
        # every subscriber but the broken one takes it (the product's own binding may be one of them)
        assert emit(trig) == len(subscribers()) - 1
        assert fired == [trig]
    finally:
        unsubscribe(broken)
