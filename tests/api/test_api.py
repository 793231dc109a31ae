"""The HTTP API end to end: a real uvicorn server on a free port, real sockets, a SQLite store."""

from __future__ import annotations

import gzip
import os
import socket
import time
from pathlib import Path

import httpx
import orjson
import pytest
from tests.conftest import RunningServer, serving, start_server

from bastion.model import Role, Severity
from bastion.store import Database, TenantRepository, TenantScope
from bastion.tenancy.service import create_api_key, create_tenant

ECS_EVENT = {
    "@timestamp": "2026-11-30T10:00:00Z",
    "event": {"category": ["network"], "kind": "event"},
    "host": {"name": "ws-7"},
    "source": {"ip": "10.1.2.3", "port": 50123},
    "destination": {"ip": "203.0.113.50", "port": 443},
    "user": {"name": "carol"},
}


def _event(n: int) -> dict:
    return {
        **ECS_EVENT,
        "@timestamp": f"2026-11-30T10:{n // 60:02d}:{n % 60:02d}Z",
        "source": {"ip": f"10.1.2.{n % 250 + 1}", "port": 40000 + n},
    }


@pytest.fixture
def key(server: RunningServer) -> str:
    return create_tenant(server.db, "acme")[1]


def test_health_and_openapi(server: RunningServer) -> None:
    with server.client() as c:
        health = c.get("/healthz").json()
        assert health["status"] == "ok" and health["database"] == "sqlite"
        assert health["native"]["compiled"] == (os.environ.get("BASTION_NATIVE") != "0"), health["native"]
        spec = c.get("/openapi.json").json()
        assert "/api/v1/events" in spec["paths"] and "/api/v1/webhooks/{source}" in spec["paths"]
        assert c.get("/docs").status_code == 200


def test_requests_need_a_valid_key(server: RunningServer, key: str) -> None:
    with server.client() as c:
        r = c.get("/api/v1/events")
        assert r.status_code == 401 and "Authorization: Bearer" in r.json()["error"]
    with server.client("bst_not-a-key") as c:
        assert c.get("/api/v1/alerts").status_code == 401
    with server.client(key) as c:
        assert c.get("/api/v1/alerts").status_code == 200


def test_ingest_object_array_ndjson_and_gzip_then_dedupe(server: RunningServer, key: str) -> None:
    with server.client(key) as c:
        assert c.post("/api/v1/events", json=_event(1)).json() == {
            "accepted": 1,
            "duplicates": 0,
            "rejected": 0,
            "errors": [],
        }
        assert c.post("/api/v1/events", json=[_event(2), _event(3)]).json()["accepted"] == 2
        ndjson = b"\n".join(orjson.dumps(_event(n)) for n in range(4, 10)) + b"\n"
        r = c.post("/api/v1/events", content=ndjson, headers={"Content-Type": "application/x-ndjson"})
        assert r.json()["accepted"] == 6
        body = gzip.compress(orjson.dumps([_event(n) for n in range(10, 20)]))
        r = c.post(
            "/api/v1/events",
            content=body,
            headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
        )
        assert r.json()["accepted"] == 10
        again = c.post("/api/v1/events", json=[_event(n) for n in range(1, 20)]).json()
        assert again == {"accepted": 0, "duplicates": 19, "rejected": 0, "errors": []}
        found = c.get("/api/v1/events", params={"value": "203.0.113.50", "limit": 1000}).json()
        assert len(found["events"]) == 19 and found["next_cursor"] is None
        one = found["events"][0]
        assert one["raw"]["destination"]["ip"] == "203.0.113.50"
        assert {"type": "ipv4", "value": "203.0.113.50"}.items() <= next(
            o for o in one["event"]["observables"] if o["value"] == "203.0.113.50"
        ).items()
        assert c.get(f"/api/v1/events/{one['id']}").json()["id"] == one["id"]
        assert c.get("/api/v1/events/ffff").status_code == 404


def test_search_by_time_and_pages(server: RunningServer, key: str) -> None:
    with server.client(key) as c:
        c.post("/api/v1/events", json=[_event(n) for n in range(30)])
        window = c.get(
            "/api/v1/events", params={"start": "2026-11-30T10:00:10Z", "end": "2026-11-30T10:00:20Z"}
        ).json()["events"]
        assert len(window) == 10
        seen: list[str] = []
        cursor = None
        while True:
            params = {"limit": 7, **({"cursor": cursor} if cursor else {})}
            page = c.get("/api/v1/events", params=params).json()
            seen += [e["id"] for e in page["events"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert len(seen) == len(set(seen)) == 30
        bad = c.get("/api/v1/events", params={"start": "yesterday-ish"})
        assert bad.status_code == 400 and bad.json()["error"].startswith("start:")
        bad = c.get("/api/v1/events", params={"limit": 0})
        assert bad.status_code == 400 and "limit" in bad.json()["error"]
        assert c.get("/api/v1/events", params={"cursor": "nonsense"}).status_code == 400


def test_broken_input_is_a_clear_4xx_and_good_lines_are_kept(server: RunningServer, key: str) -> None:
    with server.client(key) as c:
        r = c.post(
            "/api/v1/events", content=b'[{"a": 1},\n {"b": }]', headers={"Content-Type": "application/json"}
        )
        assert r.status_code == 400
        assert "line 2" in r.json()["error"] and "column" in r.json()["error"]
        ndjson = orjson.dumps(_event(1)) + b"\n{not json\n" + orjson.dumps(_event(2)) + b"\n42\n"
        r = c.post("/api/v1/events", content=ndjson, headers={"Content-Type": "application/x-ndjson"})
        body = r.json()
        assert r.status_code == 200 and body["accepted"] == 2 and body["rejected"] == 2
        assert [e["line"] for e in body["errors"]] == [2, 4]
        r = c.post("/api/v1/events", params={"format": "nope"}, json=_event(3))
        assert r.status_code == 400 and "format" in r.json()["error"]


def test_body_limits(sqlite_db: Database) -> None:
    running, srv, thread = start_server(sqlite_db, max_body_bytes=4096)
    try:
        key = create_tenant(sqlite_db, "acme")[1]
        with running.client(key) as c:
            big = c.post("/api/v1/events", json=[_event(n) for n in range(100)])
            assert big.status_code == 413 and big.json()["limit"] == 4096
            bomb = gzip.compress(b"[" + b" " * 1_000_000 + b"]")
            r = c.post(
                "/api/v1/events",
                content=bomb,
                headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
            )
            assert r.status_code == 413
            assert c.post("/api/v1/events", json=_event(1)).json()["accepted"] == 1
    finally:
        srv.should_exit = True
        thread.join(10)
        running.queue.close()


def _read_response(sock: socket.socket) -> str:
    """One whole HTTP/1.1 response (headers and Content-Length body) from a raw socket."""
    sock.settimeout(30)
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += sock.recv(65536)
    return (head + b"\r\n\r\n" + body).decode()


def test_full_queue_answers_429_and_loses_nothing(sqlite_db: Database) -> None:
    running, srv, thread = start_server(sqlite_db, ingest_queue_size=1)
    try:
        key = create_tenant(sqlite_db, "acme")[1]
        body = orjson.dumps([_event(n) for n in range(5)])
        port = int(running.url.rsplit(":", 1)[1])
        slow = socket.create_connection(("127.0.0.1", port))
        head = (
            f"POST /api/v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        slow.sendall(head + body[:10])  # the queue place is held while the body trickles in
        with running.client(key) as c:
            deadline = time.monotonic() + 10
            while c.get("/healthz").json()["ingest_pending"] < 1 and time.monotonic() < deadline:
                time.sleep(0.02)
            r = c.post("/api/v1/events", json=_event(99))
            assert r.status_code == 429 and r.headers["Retry-After"] == "1"
            slow.sendall(body[10:])
            response = _read_response(slow)
            assert response.startswith("HTTP/1.1 200")
            assert '"accepted":5' in response
            assert c.post("/api/v1/events", json=_event(99)).json()["accepted"] == 1
            assert len(c.get("/api/v1/events").json()["events"]) == 6
        slow.close()
    finally:
        srv.should_exit = True
        thread.join(10)
        running.queue.close()


def test_a_stalled_body_gives_its_queue_place_back(sqlite_db: Database) -> None:
    """A client that stops sending mid-body is answered 408 once it has been idle for the configured
    time, and its ingest queue place is free again (it held every place of a one-place queue)."""
    with serving(sqlite_db, ingest_queue_size=1, body_idle_timeout_s=1.0) as running:
        key = create_tenant(sqlite_db, "acme")[1]
        port = int(running.url.rsplit(":", 1)[1])
        stalled = socket.create_connection(("127.0.0.1", port))
        stalled.sendall(
            f"POST /api/v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n"
            'Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"a"'.encode()
        )
        response = _read_response(stalled)
        assert response.startswith("HTTP/1.1 408") and "sent nothing for 1 s" in response
        stalled.close()
        with running.client(key) as c:
            assert c.get("/healthz").json()["ingest_pending"] == 0
            assert c.post("/api/v1/events", json=_event(1)).json()["accepted"] == 1


def test_records_the_store_cannot_hold_are_rejected_and_the_rest_stored(
    server: RunningServer, key: str
) -> None:
    """An event whose time is no date, or whose class is over 64 bits, failed the whole batch's insert
    with a 500 (and a batch beyond the first 2,000 events had already been committed)."""
    body = [
        _event(1),
        {**ECS_EVENT, "@timestamp": 1e30},
        {"class_uid": 2**63, "time": 1_700_000_000_000, "metadata": {"product": {"name": "x"}}},
        _event(2),
    ]
    with server.client(key) as c:
        r = c.post("/api/v1/events", json=body)
        assert r.status_code == 200, r.text
        doc = r.json()
        assert (doc["accepted"], doc["rejected"]) == (2, 2)
        reasons = {e["line"]: e["reason"] for e in doc["errors"]}
        assert "not a date" in reasons[2] and "64-bit" in reasons[3]
        assert len(c.get("/api/v1/events").json()["events"]) == 2


def test_alerts_generic_and_webhooks(server: RunningServer, key: str) -> None:
    webhooks = Path(__file__).resolve().parents[2] / "src" / "bastion" / "demo" / "data" / "webhooks"
    with server.client(key) as c:
        doc = {
            "title": "Beacon to C2",
            "severity": "high",
            "source": "edr",
            "external_id": "e-1",
            "time": "2026-11-30T09:00:00Z",
            "techniques": ["T1071.001"],
            "observables": [{"type": "ipv4", "value": "203.0.113.50"}, {"type": "host", "value": "ws-7"}],
            "raw": {"vendor": "x"},
        }
        r = c.post("/api/v1/alerts", json=doc)
        assert r.status_code == 200 and r.json()["accepted"] == 1
        alert_id = r.json()["ids"][0]
        assert c.post("/api/v1/alerts", json=doc).json() == {
            "accepted": 0,
            "duplicates": 1,
            "deduplicated": 0,
            "auto_closed": 0,
            "suppressed": 0,
            "cases": 0,
            "ids": [alert_id],
        }
        got = c.get(f"/api/v1/alerts/{alert_id}").json()
        assert got["title"] == "Beacon to C2" and got["severity"] == "high" and got["raw"] == {"vendor": "x"}
        assert got["time"] == 1796029200000
        bad = c.post("/api/v1/alerts", json={**doc, "observables": [{"type": "ipv4", "value": "999.1.1.1"}]})
        assert bad.status_code == 400 and "observables[0]" in bad.json()["error"]
        missing = c.post("/api/v1/alerts", json={"severity": "low", "source": "x"})
        assert missing.status_code == 400 and "title" in missing.json()["error"]
        for source in ("elastic", "sentinel"):
            payload = (webhooks / f"{source}.json").read_bytes()
            r = c.post(
                f"/api/v1/webhooks/{source}", content=payload, headers={"Content-Type": "application/json"}
            )
            assert r.status_code == 200 and r.json()["accepted"] >= 1, r.text
        assert c.post("/api/v1/webhooks/nosuchvendor", json={}).status_code == 404
        listed = c.get("/api/v1/alerts").json()["alerts"]
        assert len(listed) >= 3 and {a["source"] for a in listed} >= {"edr", "elastic"}
        assert [
            a["id"] for a in c.get("/api/v1/alerts", params={"value": "203.0.113.50"}).json()["alerts"]
        ] == [alert_id]
        assert c.get("/api/v1/alerts", params={"severity": "loud"}).status_code == 400


def test_cases_list_and_get(server: RunningServer, key: str) -> None:
    from bastion.cases.service import add_comment, open_case

    with server.client(key) as c:
        alert_id = c.post(
            "/api/v1/alerts", json={"title": "Mimikatz", "severity": "critical", "source": "edr"}
        ).json()["ids"][0]
    with server.db.write() as conn:
        tenant = TenantRepository(conn).by_name("acme")
        assert tenant is not None
        scope = TenantScope(conn, tenant.id)
        case = open_case(scope, "user:ana", "Credential theft", Severity.HIGH, alert_ids=[alert_id])
        add_comment(scope, "user:ana", case.id or "", "host isolated")
    with server.client(key) as c:
        cases = c.get("/api/v1/cases").json()["cases"]
        # triage grouped the critical alert into a case of its own; opening a case with it moved it
        mine = [(x["title"], x["alerts"], x["number"]) for x in cases if x["id"] == case.id]
        assert mine == [("Credential theft", 1, case.number)]
        assert sum(x["alerts"] for x in cases) == 1
        full = c.get(f"/api/v1/cases/{case.id}").json()
        assert full["alert_ids"] == [alert_id] and full["comments"][0]["body"] == "host isolated"
        assert full["timeline"][0]["kind"] == "case.opened"
        linked = [t["data"]["alert_id"] for t in full["timeline"] if t["kind"].startswith("alert.")]
        assert linked == [alert_id]
        assert c.get("/api/v1/alerts/" + alert_id).json()["case_id"] == case.id
        assert c.get("/api/v1/cases/nope").status_code == 404
        assert c.get("/api/v1/cases", params={"status": "weird"}).status_code == 400


def test_roles_are_enforced(server: RunningServer, key: str) -> None:
    viewer = create_api_key(server.db, "acme", role=Role.VIEWER, name="ro")
    with server.client(viewer) as c:
        assert c.get("/api/v1/events").status_code == 200
        r = c.post("/api/v1/events", json=_event(1))
        assert r.status_code == 403 and "viewer" in r.json()["error"]
        assert (
            c.post("/api/v1/alerts", json={"title": "x", "severity": "low", "source": "y"}).status_code == 403
        )


def test_api_keys_are_listed_and_revoked_by_admins_only(server: RunningServer, key: str) -> None:
    viewer = create_api_key(server.db, "acme", role=Role.VIEWER, name="ro")
    key_b = create_tenant(server.db, "beta")[1]
    with server.client(viewer) as c:
        assert c.get("/api/v1/apikeys").status_code == 403
    with server.client(key_b) as c:  # another tenant's admin sees only its own keys
        b_keys = c.get("/api/v1/apikeys").json()["api_keys"]
        assert [k["name"] for k in b_keys] == ["initial"]
    with server.client(key) as c:
        keys = c.get("/api/v1/apikeys").json()["api_keys"]
        assert sorted(k["name"] for k in keys) == ["initial", "ro"]
        ro = next(k for k in keys if k["name"] == "ro")
        assert c.delete(f"/api/v1/apikeys/{b_keys[0]['id']}").status_code == 404  # not this tenant's
        assert c.delete(f"/api/v1/apikeys/{ro['id']}").json() == {"revoked": ro["id"]}
    with server.client(viewer) as c:
        assert c.get("/api/v1/events").status_code == 401
    with server.client(key_b) as c:
        assert c.get("/api/v1/events").status_code == 200
    # a prefix that names two keys revokes neither: 409, asking for the id
    with server.db.write() as conn:
        repo = TenantRepository(conn)
        tenant = repo.by_name("acme")
        assert tenant is not None
        repo.add_api_key(tenant.id, key_hash="0" * 64, prefix="bst_same", name="x", role=Role.VIEWER)
        repo.add_api_key(tenant.id, key_hash="1" * 64, prefix="bst_same", name="y", role=Role.VIEWER)
    with server.client(key) as c:
        r = c.delete("/api/v1/apikeys/bst_same")
        assert r.status_code == 409 and "key id" in r.json()["error"]


def test_tenant_a_sees_nothing_of_tenant_b(server: RunningServer, key: str) -> None:
    from bastion.cases.service import open_case

    key_b = create_tenant(server.db, "beta")[1]
    with server.client(key_b) as c:
        c.post("/api/v1/events", json=[_event(n) for n in range(5)])
        alert_id = c.post(
            "/api/v1/alerts",
            json={
                "title": "B alert",
                "severity": "high",
                "source": "edr",
                "observables": [{"type": "ipv4", "value": "203.0.113.50"}],
            },
        ).json()["ids"][0]
        event_id = c.get("/api/v1/events").json()["events"][0]["id"]
    with server.db.write() as conn:
        tenant_b = TenantRepository(conn).by_name("beta")
        assert tenant_b is not None
        case = open_case(TenantScope(conn, tenant_b.id), "cli", "B case", Severity.LOW, alert_ids=[alert_id])
    with server.client(key) as c:  # tenant A
        assert c.get("/api/v1/events").json()["events"] == []
        assert c.get("/api/v1/events", params={"value": "203.0.113.50"}).json()["events"] == []
        assert c.get(f"/api/v1/events/{event_id}").status_code == 404
        assert c.get("/api/v1/alerts").json()["alerts"] == []
        assert c.get("/api/v1/alerts", params={"value": "203.0.113.50"}).json()["alerts"] == []
        assert c.get(f"/api/v1/alerts/{alert_id}").status_code == 404
        assert c.get("/api/v1/cases").json()["cases"] == []
        assert c.get(f"/api/v1/cases/{case.id}").status_code == 404
        # and tenant A's own ingest of the same events is independent of B's
        assert c.post("/api/v1/events", json=[_event(n) for n in range(5)]).json()["accepted"] == 5
    with server.client(key_b) as c:
        assert len(c.get("/api/v1/events").json()["events"]) == 5


def test_every_get_endpoint_with_tenant_a_key_shows_nothing_of_tenant_b(
    server: RunningServer, key: str
) -> None:
    """Every GET route the API serves (read from its OpenAPI document), called with tenant A's key and
    tenant B's identifiers: a 4xx, or an answer that holds none of B's identifiers or values."""
    from bastion.cases.service import open_case
    from bastion.enrich.inventory import parse_assets, parse_identities, store_assets, store_identities
    from bastion.intel.feeds.base import make_indicator
    from bastion.intel.polling import add_feed
    from bastion.intel.service import update_profile
    from bastion.intel.store import load_indicators
    from bastion.model.intel import IndicatorType
    from bastion.respond import service

    db = server.db
    tenant_b, key_b = create_tenant(db, "beta")
    with server.client(key_b) as c:
        c.post("/api/v1/events", json=[_event(n) for n in range(3)])
        alert_id = c.post(
            "/api/v1/alerts",
            json={"title": "beta-alert-77", "severity": "high", "source": "edr",
                  "observables": [{"type": "ipv4", "value": "203.0.113.177"}]},
        ).json()["ids"][0]  # fmt: skip
        event_id = c.get("/api/v1/events").json()["events"][0]["id"]
    with db.write() as conn:
        case = open_case(
            TenantScope(conn, tenant_b.id), "cli", "beta-case-77", Severity.LOW, alert_ids=[alert_id]
        )
    service.add_workflow(
        db,
        tenant_b.id,
        "id: beta-flow-77\nsteps:\n  - {id: a, action: core.log, with: {message: m}}\n",
        actor="t",
    )
    run_id = service.start_run(
        db, tenant_b.id, "beta-flow-77", None, {}, trigger={}, actor="t", enqueue=False
    )
    load_indicators(
        db, tenant_b.id, [make_indicator(IndicatorType.DOMAIN, "beta-intel-77.example", "x")], actor="t"
    )
    add_feed(db, tenant_b.id, "beta-feed-77", url="https://feeds.example/x", fmt="list", actor="t")
    update_profile(db, tenant_b.id, {"owned_domains": ["beta-owned-77.example"]}, actor="t")
    store_assets(db, tenant_b.id, parse_assets(b"hostname,ips\nbeta-host-77,10.9.9.77\n")[0], actor="t")
    store_identities(
        db, tenant_b.id, parse_identities(b"username,email\nbeta-user-77,b@beta.example\n")[0], actor="t"
    )
    marks = [alert_id, event_id, case.id, run_id, "beta-alert-77", "beta-case-77", "beta-flow-77"]
    marks += ["beta-intel-77", "beta-feed-77", "beta-owned-77", "beta-host-77", "beta-user-77", key_b[:12]]
    values = {
        "alert_id": alert_id, "event_id": event_id, "case_ref": case.id, "case_id": case.id, "run_id": run_id,
        "workflow_id": "beta-flow-77", "hostname": "beta-host-77", "username": "beta-user-77",
        "approval_id": f"{run_id}:a", "token": "x", "attack_id": "T1059", "attachment_id": "x",
    }  # fmt: skip
    queries = {
        "/api/v1/intel/lookup": {"value": "beta-intel-77.example"},
        "/api/v1/events": {"value": "203.0.113.177"},
    }
    spec = httpx.get(server.url + "/openapi.json").json()
    checked = 0
    with server.client(key) as c:
        for path, ops in sorted(spec["paths"].items()):
            if "get" not in ops or not path.startswith("/api/v1/"):
                continue
            url = path
            for p in ops["get"].get("parameters", []):
                if p["in"] == "path":
                    url = url.replace("{" + p["name"] + "}", values[p["name"]])
            query = queries.get(path)
            r = c.get(url, params=query)
            checked += 1
            assert r.status_code in (200, 400, 403, 404, 422), (url, r.status_code, r.text)
            asked = url + str(query or "")  # what the caller sent may be echoed back ("no case X")
            leaked = [m for m in marks if m in r.text and m not in asked]
            assert not leaked, (url, leaked)
        assert c.get("/api/v1/intel/lookup", params=queries["/api/v1/intel/lookup"]).json()["matches"] == []
    assert checked >= 25


def test_every_state_change_is_audited(server: RunningServer, key: str) -> None:
    with server.client(key) as c:
        c.post("/api/v1/events", json=[_event(1), _event(2)])
        c.post("/api/v1/alerts", json={"title": "x", "severity": "low", "source": "y"})
    with server.db.read() as conn:
        tenant = TenantRepository(conn).by_name("acme")
        assert tenant is not None
        audit = TenantScope(conn, tenant.id).audit
        actions = [e.action for e in audit.entries()]
        assert actions == ["tenant.create", "apikey.create", "events.ingest", "alert.create"]
        batch = next(e for e in audit.entries() if e.action == "events.ingest")
        assert batch.data["accepted"] == 2 and batch.actor.startswith("apikey:")
        assert audit.verify().ok
    # A repeat folded into a stored (open) alert changes it: audited as well.
    with server.client(key) as c:
        first = c.post("/api/v1/alerts", json={"title": "beacon", "severity": "high", "source": "edr"})
        again = c.post("/api/v1/alerts", json={"title": "beacon", "severity": "high", "source": "edr"})
        assert again.json()["deduplicated"] == 1, again.json()
    with server.db.read() as conn:
        audit = TenantScope(conn, tenant.id).audit
        folded = [e for e in audit.entries() if e.action == "alert.dedupe"]
        assert [(e.target_id, e.data["count"]) for e in folded] == [(first.json()["ids"][0], 2)]
        assert audit.verify().ok


def test_client_errors_are_never_500(server: RunningServer, key: str) -> None:
    with server.client(key) as c:
        probes = [
            c.post("/api/v1/events", content=b"", headers={"Content-Type": "application/json"}),
            c.post("/api/v1/events", content=b"\x1f\x8b\x08garbage", headers={"Content-Encoding": "gzip"}),
            c.post("/api/v1/events", content=b'"just a string"'),
            c.post("/api/v1/alerts", content=b"[1, 2]"),
            c.post("/api/v1/alerts", json={"title": "x", "severity": "apocalyptic", "source": "y"}),
            c.post("/api/v1/alerts", json={"title": "x", "severity": "low", "source": "y", "time": "soon"}),
            c.post("/api/v1/webhooks/elastic", json={"unexpected": True}),
            c.post("/api/v1/webhooks/sentinel", json=[1, 2, 3]),
            c.get("/api/v1/alerts", params={"status": "maybe"}),
        ]
    for r in probes:
        assert 400 <= r.status_code < 500, (r.status_code, r.text)
        assert r.json()["error"]


def test_http_client_error_payload_shape(server: RunningServer) -> None:
    r = httpx.get(server.url + "/nope")
    assert r.status_code == 404 and r.json() == {"error": "Not Found"}
