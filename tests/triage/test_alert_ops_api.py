"""Alert operations and triage filters through the real HTTP API (uvicorn on a free port), on SQLite and
PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bastion.model import Role
from bastion.store import Database, TenantScope
from bastion.tenancy.service import create_api_key, create_tenant
from tests.conftest import RunningServer, start_server
from tests.triage.test_alert_ops import insert, make_alert


@pytest.fixture
def api(db: Database) -> Iterator[tuple[RunningServer, str, str]]:
    running, srv, thread = start_server(db)
    tenant, key = create_tenant(db, "acme")
    yield running, tenant.id, key
    srv.should_exit = True
    thread.join(10)
    running.queue.close()


def test_list_filters_find_auto_closed_alerts(api: tuple[RunningServer, str, str]) -> None:
    server, tenant, key = api
    ids = insert(
        server.db,
        tenant,
        make_alert(1, auto_closed=True, score=5),
        make_alert(2, score=70, queue="tier2", rule="r-9"),
        make_alert(3, score=30),
    )
    with server.client(key) as c:

        def listed(**params: object) -> list[str]:
            r = c.get("/api/v1/alerts", params=params)
            assert r.status_code == 200, r.text
            return [a["id"] for a in r.json()["alerts"]]

        assert listed(auto_closed="true") == [ids[0]]
        assert listed(auto_closed="false") == [ids[2], ids[1]]
        assert listed(status="closed") == [ids[0]]
        assert listed(queue="tier2") == [ids[1]]
        assert listed(min_score=30) == [ids[2], ids[1]]
        assert listed(rule_id="r-9") == [ids[1]]
        assert listed() == [ids[2], ids[1], ids[0]]  # the plain listing is unchanged
        doc = c.get("/api/v1/alerts", params={"auto_closed": "true"}).json()["alerts"][0]
        assert doc["auto_closed"] is True and doc["close_reason"].startswith("auto-closed")
        bad = c.get("/api/v1/alerts", params={"verdict": "maybe"})
        assert bad.status_code == 400 and "verdict" in bad.json()["error"]
        assert c.get("/api/v1/alerts", params={"min_score": 101}).status_code == 400
        assert c.get("/api/v1/alerts", params={"auto_closed": "perhaps"}).status_code == 400


def test_acknowledge_close_reopen_over_http(api: tuple[RunningServer, str, str]) -> None:
    server, tenant, key = api
    aid, other = insert(server.db, tenant, make_alert(1), make_alert(2, host="WS02"))
    with server.client(key) as c:
        r = c.post(f"/api/v1/alerts/{aid}/acknowledge")
        assert r.status_code == 200 and r.json()["alert"]["status"] == "acknowledged"
        assert c.post("/api/v1/alerts/nope/acknowledge").status_code == 404
        r = c.post(f"/api/v1/alerts/{aid}/close", json={"verdict": "fine"})
        assert r.status_code == 400 and "verdict" in r.json()["error"]
        r = c.post(f"/api/v1/alerts/{aid}/close", json={"verdict": "true_positive", "suppress_similar": True})
        assert r.status_code == 400 and "false_positive" in r.json()["error"]
        r = c.post(f"/api/v1/alerts/{aid}/close", json={"verdict": "false_positive", "colour": "x"})
        assert r.status_code == 400  # unknown body keys are refused
        r = c.post(
            f"/api/v1/alerts/{aid}/close",
            json={
                "verdict": "false_positive",
                "reason": "IT script",
                "suppress_similar": True,
                "suppress_for": "7d",
            },
        )
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["alert"]["status"] == "closed" and body["alert"]["verdict"] == "false_positive"
        s = body["suppression"]
        assert s["rule_id"] == "r-1" and s["entity"] == {"type": "host", "value": "WS01"}
        assert s["owner"].startswith("apikey:")
        r = c.post(f"/api/v1/alerts/{aid}/close", json={"verdict": "false_positive"})
        assert r.status_code == 409
        assert c.post(f"/api/v1/alerts/{other}/reopen", json={"reason": "why not"}).status_code == 409
        assert c.post(f"/api/v1/alerts/{aid}/reopen", json={}).status_code == 400
        assert c.post("/api/v1/alerts/nope/close", json={"verdict": "true_positive"}).status_code == 404
        r = c.post(f"/api/v1/alerts/{aid}/reopen", json={"reason": "seen on a server too"})
        assert r.status_code == 200 and r.json()["alert"]["status"] == "new"
        assert r.json()["alert"]["verdict"] is None
        listed = c.get("/api/v1/triage/suppressions").json()["suppressions"]
        assert [x["id"] for x in listed] == [s["id"]]  # reopening does not remove the suppression
    with server.db.read() as conn:
        actions = [e.action for e in TenantScope(conn, tenant).audit.entries() if e.target_id == aid]
    assert actions == ["alert.acknowledge", "alert.close", "alert.reopen"]


def test_roles_and_tenants(api: tuple[RunningServer, str, str]) -> None:
    server, tenant, _ = api
    (aid,) = insert(server.db, tenant, make_alert(1))
    viewer = create_api_key(server.db, "acme", role=Role.VIEWER, name="ro")
    other = create_tenant(server.db, "beta")[1]
    with server.client(viewer) as c:
        assert c.get("/api/v1/alerts", params={"auto_closed": "false"}).status_code == 200
        r = c.post(f"/api/v1/alerts/{aid}/close", json={"verdict": "true_positive"})
        assert r.status_code == 403
        assert c.post(f"/api/v1/alerts/{aid}/acknowledge").status_code == 403
    with server.client(other) as c:
        assert c.post(f"/api/v1/alerts/{aid}/close", json={"verdict": "true_positive"}).status_code == 404
        assert c.get("/api/v1/alerts", params={"auto_closed": "false"}).json()["alerts"] == []
