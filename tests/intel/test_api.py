"""The intel HTTP API on a real uvicorn server: load, lookup, profile, feeds, inventory, ATT&CK and
alert enrichment, with clear 4xx answers for bad input."""

from __future__ import annotations

from pathlib import Path

from bastion.model import Role
from bastion.tenancy.service import create_api_key, create_tenant
from tests.conftest import RunningServer


def test_intel_api(server: RunningServer, shared_data: Path) -> None:
    _, key = create_tenant(server.db, "acme")
    viewer = create_api_key(server.db, "acme", role=Role.VIEWER, name="ro")
    with server.client(key) as c:
        apt1 = (shared_data / "stix21" / "examples" / "threat-reports" / "apt1.json").read_bytes()
        r = c.post("/api/v1/intel/indicators", params={"format": "stix"}, content=apt1)
        assert r.status_code == 200, r.text
        assert (r.json()["loaded"], r.json()["rejected"]) == (12, 0)

        r = c.get("/api/v1/intel/lookup", params={"value": "58.247.1.1"})
        assert r.json()["matches"][0]["indicator"] == "58.246.0.0/15"
        r = c.get("/api/v1/intel/lookup", params={"value": "1.1.1.1"})
        assert r.json()["known_benign"] is True

        bad = c.post("/api/v1/intel/indicators", params={"format": "pdf"}, content=b"x")
        assert bad.status_code == 400 and "unknown feed format" in bad.json()["error"]
        bad = c.post("/api/v1/intel/indicators", params={"format": "stix"}, content=b"{oops")
        assert bad.status_code == 400 and "STIX" in bad.json()["error"]
        bad = c.get("/api/v1/intel/lookup", params={"value": "x", "type": "colour"})
        assert bad.status_code == 400

        r = c.patch("/api/v1/intel/profile", json={"owned_domains": ["acme.example"], "sector": "finance"})
        assert r.json()["profile"]["owned_domains"] == ["acme.example"]
        bad = c.patch("/api/v1/intel/profile", json={"favourite": 1})
        assert bad.status_code == 400 and "unknown intel profile field" in bad.json()["error"]

        r = c.post("/api/v1/intel/feeds", json={"name": "f", "url": "http://127.0.0.1:9/x", "format": "list"})
        assert r.status_code == 201
        bad = c.post("/api/v1/intel/feeds", json={"name": "g", "url": "http://x", "format": "nope"})
        assert bad.status_code == 400 and "unknown feed format" in bad.json()["error"]
        assert [f["name"] for f in c.get("/api/v1/intel/feeds").json()["feeds"]] == ["f"]
        assert c.post("/api/v1/intel/feeds/missing/poll").status_code == 404

        r = c.put(
            "/api/v1/assets", content=b'[{"hostname": "WEB01", "ips": ["10.0.0.5"], "criticality": "high"}]'
        )
        assert r.json()["imported"] == 1
        assert c.get("/api/v1/assets/web01").json()["criticality"] == 3
        assert c.get("/api/v1/assets/nope").status_code == 404
        r = c.put("/api/v1/identities", content=b"username,email\nbob,bob@acme.example\n")
        assert r.json()["imported"] == 1
        assert c.get("/api/v1/identities/bob").json()["email"] == "bob@acme.example"

        assert c.get("/api/v1/attack/T1566").json()["name"] == "Phishing"
        assert c.get("/api/v1/attack/T0000").status_code == 404

        alert = {
            "title": "beacon",
            "severity": "low",
            "source": "edr",
            "observables": [{"type": "ipv4", "value": "58.246.10.10"}, {"type": "ipv4", "value": "10.0.0.5"}],
        }
        r = c.post("/api/v1/alerts", json=alert)
        assert r.status_code == 200, r.text
        alert_id = r.json()["ids"][0]
        e = c.get(f"/api/v1/alerts/{alert_id}/enrichment").json()
        assert e["intel"][0]["indicator"] == "58.246.0.0/15"
        assert e["assets"][0]["hostname"] == "web01"

        # Kept current: a decommissioned host and a user who left are forgotten (404 when unknown).
        assert c.delete("/api/v1/assets/WEB01").json() == {"removed": "web01"}
        assert c.get("/api/v1/assets/web01").status_code == 404
        assert c.delete("/api/v1/assets/web01").status_code == 404
        assert c.delete("/api/v1/identities/bob").json() == {"removed": "bob"}
        assert c.get("/api/v1/identities/bob").status_code == 404
        again = c.post("/api/v1/alerts", json={**alert, "title": "beacon again"}).json()["ids"][0]
        assert c.get(f"/api/v1/alerts/{again}/enrichment").json()["assets"] == []
    with server.client(viewer) as c:
        r = c.post("/api/v1/intel/indicators", params={"format": "list"}, content=b"1.2.3.4\n")
        assert r.status_code == 403
        assert c.delete("/api/v1/identities/anyone").status_code == 403
        assert c.get("/api/v1/intel/lookup", params={"value": "58.246.1.1"}).json()["matches"]
