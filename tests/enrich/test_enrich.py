"""The enrichment stage over a real store: intel matches, warning lists (no severity raise), asset and
identity context, and GeoIP/ASN from a MaxMind-format database the test builds."""

from __future__ import annotations

from pathlib import Path

import pytest
from mmdb_writer import MMDBWriter
from netaddr import IPSet

from bastion.enrich.enricher import apply, enrich_alert, enrich_alerts
from bastion.enrich.geoip import GeoIp
from bastion.enrich.inventory import parse_assets, parse_identities, store_assets, store_identities
from bastion.intel.feeds.base import make_indicator
from bastion.intel.store import load_indicators
from bastion.intel.warninglists import WarningLists
from bastion.model import Alert, Observable, ObservableType, Severity
from bastion.model.intel import IndicatorType as T
from bastion.store import Database


def _mmdb(path: Path) -> Path:
    writer = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="GeoLite2-City")
    writer.insert_network(
        IPSet(["203.0.113.0/24"]),
        {
            "country": {"iso_code": "NL", "names": {"en": "Netherlands"}},
            "city": {"names": {"en": "Amsterdam"}},
            "autonomous_system_number": 64500,
            "autonomous_system_organization": "Example Hosting",
        },
    )
    writer.to_db_file(str(path))
    return path


def _warninglists() -> WarningLists:
    wl = WarningLists()
    wl.add(
        "public-dns-v4", {"type": "cidr", "list": ["8.8.8.8/32", "1.1.1.1/32"], "description": "resolvers"}
    )
    return wl


def test_geoip_lookup(tmp_path: Path) -> None:
    geo = GeoIp(_mmdb(tmp_path / "city.mmdb"))
    assert geo.lookup("203.0.113.9") == {
        "country": "NL",
        "country_name": "Netherlands",
        "city": "Amsterdam",
        "asn": 64500,
        "as_org": "Example Hosting",
    }
    assert geo.lookup("198.51.100.1") is None
    assert geo.lookup("10.0.0.1") is None
    assert geo.lookup("not-an-ip") is None
    with pytest.raises(ValueError, match="GeoIP database not found"):
        GeoIp(tmp_path / "missing.mmdb")


def test_enrich_alert(db: Database, tenant_id: str, tmp_path: Path) -> None:
    load_indicators(
        db,
        tenant_id,
        [
            make_indicator(T.IPV4, "203.0.113.66", "feed", confidence=90, techniques=["T1071.001"]),
            make_indicator(T.IPV4, "8.8.8.8", "sloppy-feed", confidence=95),
        ],
        actor="test",
    )
    assets, _ = parse_assets(b"hostname,ips,criticality,owner\nweb01,10.0.0.5,critical,alice\n")
    store_assets(db, tenant_id, assets, actor="test")
    people, _ = parse_identities(b"username,email,privileged\nalice,alice@example.org,true\n")
    store_identities(db, tenant_id, people, actor="test")

    def alert(*obs: tuple[ObservableType, str]) -> Alert:
        return Alert(
            title="t",
            severity=Severity.LOW,
            time=1,
            source="test",
            observables=[Observable(type=t, value=v) for t, v in obs],
        )

    geo = GeoIp(_mmdb(tmp_path / "city.mmdb"))
    a = alert(
        (ObservableType.IPV4, "10.0.0.5"),
        (ObservableType.IPV4, "203.0.113.66"),
        (ObservableType.USER, "ALICE"),
    )
    e = enrich_alert(db, tenant_id, a, warninglists=_warninglists(), geoip=geo)
    assert [m["indicator"] for m in e.intel] == ["203.0.113.66"]
    assert e.assets[0]["hostname"] == "web01" and e.identities[0]["privileged"] is True
    assert e.geo["203.0.113.66"]["asn"] == 64500
    assert e.severity == int(Severity.CRITICAL)  # high from intel, one step for the critical asset
    assert e.techniques == ["T1071.001"]
    enriched = apply(a, e)
    assert enriched.severity is Severity.CRITICAL and "intel-match" in enriched.tags

    # A warning-listed value is marked known-benign and its match does not raise severity.
    b = alert((ObservableType.IPV4, "8.8.8.8"))
    e = enrich_alert(db, tenant_id, b, warninglists=_warninglists())
    assert e.known_benign == [{"type": "ipv4", "value": "8.8.8.8", "warninglists": ["public-dns-v4"]}]
    assert e.intel[0]["known_benign"] is True
    assert e.severity == int(Severity.LOW)
    assert "known-benign" in apply(b, e).tags

    # The batch stage gives the same answers.
    staged = enrich_alerts(db, tenant_id, [a, b], warninglists=_warninglists())
    assert [x.severity for x, _ in staged] == [Severity.CRITICAL, Severity.LOW]


def test_the_tenants_decay_policy_lowers_what_an_old_sighting_adds(db: Database, tenant_id: str) -> None:
    """A 90-confidence match last seen 30 days ago: under the default half-life (180 days, 80 left) it
    raises the alert to high; once the profile gives its source a 10-day half-life (11 left), only to
    medium (the profile's decay was applied to lookups only)."""
    from bastion.intel.service import update_profile

    day = 86_400_000
    now = 1_800_000_000_000
    seen = now - 30 * day
    old = make_indicator(T.IPV4, "203.0.113.91", "slowfeed", confidence=90, first_seen=seen, last_seen=seen)
    load_indicators(db, tenant_id, [old], actor="test")
    a = Alert(
        title="t",
        severity=Severity.LOW,
        time=now,
        source="test",
        observables=[Observable(type=ObservableType.IPV4, value="203.0.113.91")],
    )
    assert enrich_alert(db, tenant_id, a, now=now).severity == int(Severity.HIGH)
    update_profile(db, tenant_id, {"decay": {"slowfeed": 10}}, actor="test")
    e = enrich_alert(db, tenant_id, a, now=now)
    assert e.intel[0]["confidence"] == 11 and e.severity == int(Severity.MEDIUM)
    with pytest.raises(ValueError, match="decay for 'x' must be a number"):
        update_profile(db, tenant_id, {"decay": {"x": "soon"}}, actor="test")


def test_warning_list_addresses_and_ranges_of_both_families() -> None:
    """Single addresses (IPv4 and IPv6, written with or without a /32 or /128) and ranges match what
    they hold and nothing beside; a malformed entry is skipped, not fatal."""
    wl = WarningLists()
    wl.add(
        "resolvers",
        {
            "type": "cidr",
            "list": ["192.0.2.53", "198.51.100.7/32", "::1/128", "2001:db8::53", "203.0.113.0/24",
                     "2001:db8:1::/48", "not-an-address", "010.0.0.1"],
        },
    )  # fmt: skip
    for hit in ("192.0.2.53", "198.51.100.7", "203.0.113.200", "::1", "2001:db8::53", "2001:db8:1::9"):
        assert [x.name for x in wl.check(hit)] == ["resolvers"], hit
    for miss in ("192.0.2.54", "203.0.114.1", "0.0.0.1", "2001:db8:2::1", "8.0.0.1"):
        assert wl.check(miss) == [], miss
    assert wl.lists[0].size == 8
