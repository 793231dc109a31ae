"""Enrichment inside the pipeline: alerts posted to the API are stored with their intel matches,
known-benign marks and asset context, and a live intel match raises severity while a warning-listed
value does not."""

from __future__ import annotations

from bastion.enrich.inventory import parse_assets, store_assets
from bastion.intel.feeds.base import make_indicator
from bastion.intel.store import load_indicators
from bastion.model.intel import IndicatorType
from bastion.store import TenantRepository
from bastion.tenancy.service import create_tenant
from tests.conftest import RunningServer


def test_posted_alerts_are_enriched_before_they_are_stored(server: RunningServer) -> None:
    db = server.db
    _, key = create_tenant(db, "acme")
    with db.read() as conn:
        tenant = TenantRepository(conn).by_name("acme")
    assert tenant is not None
    load_indicators(
        db,
        tenant.id,
        [
            make_indicator(
                IndicatorType.IPV4, "91.215.85.17", "c2-feed", confidence=90, techniques=["T1071.001"]
            ),
            make_indicator(IndicatorType.IPV4, "8.8.8.8", "sloppy-feed", confidence=95),
        ],
        actor="test",
    )
    assets, _ = parse_assets(b"hostname,ips,criticality,owner\nws-7,10.1.2.3,high,carol\n")
    store_assets(db, tenant.id, assets, actor="test")
    with server.client(key) as c:
        c2 = c.post(
            "/api/v1/alerts",
            json={
                "title": "Beacon",
                "severity": "low",
                "source": "edr",
                "observables": [
                    {"type": "ipv4", "value": "91.215.85.17"},
                    {"type": "ipv4", "value": "10.1.2.3"},
                ],
            },
        ).json()["ids"][0]
        dns = c.post(
            "/api/v1/alerts",
            json={
                "title": "Lookup",
                "severity": "low",
                "source": "edr",
                "observables": [{"type": "ipv4", "value": "8.8.8.8"}],
            },
        ).json()["ids"][0]
        beacon = c.get(f"/api/v1/alerts/{c2}").json()
        lookup = c.get(f"/api/v1/alerts/{dns}").json()
    assert beacon["severity"] in ("high", 4)  # a live match at confidence 90
    assert "T1071.001" in beacon["techniques"] and "intel-match" in beacon["tags"]
    found = beacon["enrichment"]
    assert [m["indicator"] for m in found["intel"]] == ["91.215.85.17"]
    assert [a["hostname"] for a in found["assets"]] == ["ws-7"]
    # 8.8.8.8 is on the MISP public-DNS warning list: marked, kept, and no severity raise
    assert lookup["severity"] in ("low", 2)
    assert "known-benign" in lookup["tags"]
    assert lookup["enrichment"]["known_benign"][0]["value"] == "8.8.8.8"
