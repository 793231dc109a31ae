"""The whole noise-reduction loop over HTTP with the real triage engine: a policy that auto-closes low
alerts, a suppression added from a false positive, and both kinds of closed alert found and reopened."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from bastion.store import Database
from bastion.tenancy.service import create_tenant
from tests.conftest import RunningServer, start_server


@pytest.fixture
def api(db: Database) -> Iterator[tuple[RunningServer, str]]:
    running, srv, thread = start_server(db)
    key = create_tenant(db, "acme")[1]
    yield running, key
    srv.should_exit = True
    thread.join(10)
    running.queue.close()


def _doc(n: int, *, host: str, severity: str = "critical", rule: str = "r-svc") -> dict:
    return {
        "title": "Service installed",
        "severity": severity,
        "source": "edr",
        "external_id": f"e-{n}",
        "rule_id": rule,
        "time": int(time.time() * 1000) - 60_000 + n,
        "observables": [{"type": "host", "value": host}, {"type": "user", "value": f"u{n}"}],
    }


def test_auto_closed_and_suppressed_alerts_stay_searchable_and_reopen(api: tuple[RunningServer, str]) -> None:
    server, key = api
    with server.client(key) as c:
        r = c.put("/api/v1/triage/policy", json={"autoclose": {"max_score": 15}})
        assert r.status_code == 200, r.text
        low = c.post("/api/v1/alerts", json=_doc(1, host="kiosk-1", severity="informational", rule="r-low"))
        low_id = low.json()["ids"][0]
        auto = c.get("/api/v1/alerts", params={"auto_closed": "true"}).json()["alerts"]
        assert [a["id"] for a in auto] == [low_id]
        assert auto[0]["status"] == "closed" and auto[0]["close_reason"].startswith("auto-closed")

        first = c.post("/api/v1/alerts", json=_doc(2, host="ws-01")).json()["ids"][0]
        assert c.get(f"/api/v1/alerts/{first}").json()["status"] != "closed"
        r = c.post(
            f"/api/v1/alerts/{first}/close",
            json={"verdict": "false_positive", "reason": "software deployment", "suppress_similar": True},
        )
        assert r.status_code == 200, r.text
        sid = r.json()["suppression"]["id"]
        ids = c.post("/api/v1/alerts", json=[_doc(3, host="ws-01"), _doc(4, host="ws-02")]).json()["ids"]
        same, other = (c.get(f"/api/v1/alerts/{i}").json() for i in ids)
        assert same["status"] == "closed" and same["close_reason"].startswith(f"suppressed by {sid}")
        assert other["status"] != "closed"  # another host: not suppressed
        closed = {a["id"] for a in c.get("/api/v1/alerts", params={"status": "closed"}).json()["alerts"]}
        assert {low_id, first, ids[0]} <= closed and ids[1] not in closed
        (s,) = c.get("/api/v1/triage/suppressions").json()["suppressions"]
        assert s["hits"] == 1

        r = c.post(f"/api/v1/alerts/{low_id}/reopen", json={"reason": "kiosk is in the server room"})
        assert r.status_code == 200 and r.json()["alert"]["status"] == "new"
        assert r.json()["alert"]["auto_closed"] is False
        assert "auto-closed" in r.json()["alert"]["close_reason"]  # the old reason is kept in the note
        assert c.get("/api/v1/alerts", params={"auto_closed": "true"}).json()["alerts"] == []
        r = c.post(f"/api/v1/alerts/{ids[0]}/reopen", json={"reason": "check this one"})
        assert r.status_code == 200 and "suppressed by" in r.json()["alert"]["close_reason"]
