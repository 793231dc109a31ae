"""The cases API on a real uvicorn server: list filters and pagination, the full case document, every
change endpoint, attachments (raw and multipart), merge/split/move, and the 400/403/404/409/413 answers."""

from __future__ import annotations

import hashlib

import pytest

from bastion.model import Role
from bastion.tenancy.service import create_api_key, create_tenant
from bastion.triage.policy import save_policy
from tests.conftest import RunningServer


@pytest.fixture
def key(server: RunningServer) -> str:
    """A tenant whose triage neither opens cases nor auto-closes alerts: these tests make every case."""
    tenant, api_key = create_tenant(server.db, "acme")
    with server.db.write() as conn:
        save_policy(
            conn,
            tenant.id,
            {"correlation": {"open_case_score": 101}, "autoclose": {"enabled": False}},
            "test",
        )
    return api_key


def _alert(c, title: str, host: str = "ws-1", **extra) -> str:  # type: ignore[no-untyped-def]
    doc = {
        "title": title,
        "severity": "high",
        "source": "edr",
        "observables": [{"type": "host", "value": host}],
        **extra,
    }
    r = c.post("/api/v1/alerts", json=doc)
    assert r.status_code == 200, r.text
    return str(r.json()["ids"][0])


def _case(c, title: str, **extra) -> dict:  # type: ignore[no-untyped-def]
    r = c.post("/api/v1/cases", json={"title": title, **extra})
    assert r.status_code == 201, r.text
    return dict(r.json())


def test_open_list_filter_and_paginate(server: RunningServer, key: str) -> None:
    with server.client(key) as c:
        _case(c, "Phishing wave", severity="low")
        _case(c, "Ransomware on FS-01", severity="critical", assignee="ana", queue="tier2")
        _case(c, "Phishing follow-up", severity="medium")
        listed = c.get("/api/v1/cases").json()
        assert listed["total"] == 3 and len(listed["cases"]) == 3
        first = listed["cases"][0]
        assert set(first) >= {"id", "number", "title", "status", "severity", "score", "alerts", "queue"}
        assert first["status"] == "new"

        def titles(**params: str | int) -> list[str]:
            r = c.get("/api/v1/cases", params=params)
            assert r.status_code == 200, r.text
            return sorted(x["title"] for x in r.json()["cases"])

        assert titles(q="phishing") == ["Phishing follow-up", "Phishing wave"]
        assert titles(severity="medium") == ["Phishing follow-up", "Ransomware on FS-01"]
        assert titles(assignee="ana") == ["Ransomware on FS-01"] == titles(queue="tier2")
        assert titles(min_score=1) == []
        assert titles(status="new,triaged") == sorted(x["title"] for x in listed["cases"])
        page = c.get("/api/v1/cases", params={"limit": 2, "offset": 2}).json()
        assert page["total"] == 3 and len(page["cases"]) == 1 and (page["limit"], page["offset"]) == (2, 2)
        assert c.get("/api/v1/cases", params={"status": "open"}).status_code == 400
        assert c.get("/api/v1/cases", params={"severity": "loud"}).status_code == 400
        assert c.get("/api/v1/cases", params={"limit": 0}).status_code == 400
        assert c.post("/api/v1/cases", json={"severity": "low"}).status_code == 400
        assert c.post("/api/v1/cases", json={"title": "x", "severity": "loud"}).status_code == 400
        r = c.post("/api/v1/cases", json={"title": "x", "alert_ids": ["0" * 32]})
        assert r.status_code == 404 and "no alert" in r.json()["error"]
        assert c.post("/api/v1/cases", content=b"[1]").status_code == 400


def test_get_one_case_with_timeline_alerts_and_fields(server: RunningServer, key: str) -> None:
    with server.client(key) as c:
        alert_id = _alert(c, "Mimikatz")
        case = _case(
            c,
            "Credential theft",
            severity="high",
            alert_ids=[alert_id],
            reason="same host",
            custom_fields={"ticket": "SEC-1"},
        )
        assert case["number"] == 1 and case["custom_fields"] == {"ticket": "SEC-1"}
        for ref in (case["id"], "1", "%231"):
            doc = c.get(f"/api/v1/cases/{ref}").json()
            assert doc["id"] == case["id"]
        assert doc["alerts"][0]["id"] == alert_id and doc["alerts"][0]["reason"] == "same host"
        assert doc["alerts"][0]["title"] == "Mimikatz" and doc["severity"] == "high"
        assert [e["kind"] for e in doc["timeline"]][:2] == ["case.opened", "alert.added"]
        assert "score_components" in doc and doc["attachments"] == []
        assert c.get("/api/v1/cases/nope").status_code == 404
        assert c.get("/api/v1/cases/%2399").status_code == 404


def test_change_close_reopen_comment_tasks_observables(server: RunningServer, key: str) -> None:
    with server.client(key) as c:
        alert_id = _alert(c, "Beacon")
        case = _case(c, "Beacon", alert_ids=[alert_id])
        url = f"/api/v1/cases/{case['id']}"
        r = c.patch(
            url,
            json={
                "status": "contained",
                "assignee": "ana",
                "severity": "critical",
                "title": "Beacon to C2",
                "custom_fields": {"impact": 3, "ticket": "SEC-9"},
            },
        )
        assert r.status_code == 200, r.text
        doc = r.json()
        assert (doc["status"], doc["assignee"], doc["severity"], doc["title"]) == (
            "contained",
            "ana",
            "critical",
            "Beacon to C2",
        )
        assert (
            doc["contained"]
            and doc["acknowledged"]
            and doc["custom_fields"] == {"impact": 3, "ticket": "SEC-9"}
        )
        doc = c.patch(url, json={"custom_fields": {"impact": None}, "assignee": None}).json()
        assert doc["custom_fields"] == {"ticket": "SEC-9"} and doc.get("assignee") is None
        assert c.patch(url, json={"colour": "red"}).status_code == 400
        assert c.patch(url, json={}).status_code == 400
        assert c.patch(url, json={"status": "finished"}).status_code == 400

        comment = c.post(f"{url}/comments", json={"body": "isolated the host"})
        assert comment.status_code == 201 and comment.json()["author"].startswith("apikey:")
        assert c.post(f"{url}/comments", json={"body": " "}).status_code == 400
        task = c.post(f"{url}/tasks", json={"title": "Reimage", "assignee": "ana"}).json()
        done = c.patch(f"{url}/tasks/{task['id']}", json={"status": "done"})
        assert done.status_code == 200 and done.json()["status"] == "done"
        assert c.patch(f"{url}/tasks/{'0' * 32}", json={"status": "done"}).status_code == 404
        assert c.patch(f"{url}/tasks/{task['id']}", json={"status": "finished"}).status_code == 400
        obs = c.post(f"{url}/observables", json={"observables": [{"type": "ipv4", "value": "203.0.113.5"}]})
        assert obs.json() == {"added": 1}
        assert c.post(f"{url}/observables", json={"type": "planet", "value": "mars"}).status_code == 400

        r = c.post(f"{url}/close", json={})
        assert r.status_code == 400 and "verdict" in r.json()["error"]
        assert c.patch(url, json={"status": "closed"}).status_code == 400
        closed = c.post(f"{url}/close", json={"verdict": "true_positive", "reason": "confirmed"}).json()
        assert closed["status"] == "closed" and closed["verdict"] == "true_positive"
        assert closed["alerts"][0]["status"] == "closed" and closed["alerts"][0]["verdict"] == "true_positive"
        assert c.get(f"/api/v1/alerts/{alert_id}").json()["verdict"] == "true_positive"
        r = c.patch(url, json={"status": "in_progress"})
        assert r.status_code == 409 and "reopen" in r.json()["error"]
        assert c.post(f"{url}/close", json={"verdict": "true_positive"}).status_code == 409
        assert c.post(f"{url}/reopen", json={}).status_code == 400
        reopened = c.post(f"{url}/reopen", json={"reason": "new evidence"}).json()
        assert reopened["status"] == "in_progress" and reopened.get("verdict") is None
        kinds = [e["kind"] for e in reopened["timeline"]]
        for wanted in (
            "status",
            "assigned",
            "field.set",
            "field.unset",
            "comment",
            "task.created",
            "task.completed",
            "observable.added",
            "closed",
            "reopened",
            "alert.closed",
        ):
            assert wanted in kinds, wanted


def test_attachments_raw_and_multipart_with_hash_and_limit(server: RunningServer, key: str) -> None:
    with server.client(key) as c:
        case = _case(c, "Exfil")
        url = f"/api/v1/cases/{case['number']}/attachments"
        data = bytes(range(256)) * 40
        raw = c.post(
            url,
            params={"name": "dump.bin"},
            content=data,
            headers={"Content-Type": "application/octet-stream"},
        )
        assert raw.status_code == 201, raw.text
        meta = raw.json()
        assert meta["sha256"] == hashlib.sha256(data).hexdigest() and meta["size"] == len(data)
        form = c.post(url, files={"file": ("notes.txt", b"attacker notes\r\n--x--\r\n", "text/plain")})
        assert form.status_code == 201, form.text
        assert form.json()["name"] == "notes.txt" and form.json()["content_type"] == "text/plain"
        got = c.get(f"{url}/{meta['id']}")
        assert got.status_code == 200 and got.content == data
        assert got.headers["x-content-sha256"] == meta["sha256"]
        assert "dump.bin" in got.headers["content-disposition"]
        notes = c.get(f"{url}/{form.json()['id']}")
        assert notes.content == b"attacker notes\r\n--x--\r\n"
        assert c.get(f"{url}/{'0' * 32}").status_code == 404
        assert c.post(url, content=b"x").status_code == 400  # no name
        big = c.post(url, params={"name": "big.bin"}, content=b"x" * (20 * 1024 * 1024 + 1))
        assert big.status_code == 413 and "20 MB" in big.json()["error"]
        doc = c.get(f"/api/v1/cases/{case['id']}").json()
        assert [a["name"] for a in doc["attachments"]] == ["dump.bin", "notes.txt"]
        assert "data" not in doc["attachments"][0]


def test_merge_split_and_move_over_http(server: RunningServer, key: str) -> None:
    with server.client(key) as c:
        a1, a2, a3 = _alert(c, "One", "ws-1"), _alert(c, "Two", "ws-2"), _alert(c, "Three", "ws-3")
        loose = _alert(c, "Loose", "ws-4")
        t, s1 = _case(c, "Target", alert_ids=[a1]), _case(c, "Source", alert_ids=[a2, a3])
        r = c.post(f"/api/v1/cases/{t['id']}/merge", json={"sources": [s1["number"]], "reason": "same"})
        assert r.status_code == 200, r.text
        assert sorted(r.json()["alert_ids"]) == sorted([a1, a2, a3])
        src = c.get(f"/api/v1/cases/{s1['id']}").json()
        assert src["status"] == "closed" and src["custom_fields"]["merged_into"]["number"] == t["number"]
        assert c.post(f"/api/v1/cases/{t['id']}/merge", json={"sources": []}).status_code == 400
        assert c.post(f"/api/v1/cases/{t['id']}/merge", json={"sources": [s1["id"]]}).status_code == 409
        split = c.post(f"/api/v1/cases/{t['id']}/split", json={"alert_ids": [a3], "title": "Three alone"})
        assert split.status_code == 201, split.text
        new = split.json()
        assert new["alert_ids"] == [a3] and new["title"] == "Three alone" and new["number"] == 3
        assert (
            c.post(f"/api/v1/cases/{t['id']}/split", json={"alert_ids": [loose], "title": "x"}).status_code
            == 400
        )
        moved = c.post(f"/api/v1/cases/{new['id']}/alerts", json={"alert_id": a2, "reason": "with three"})
        assert moved.status_code == 200 and sorted(moved.json()["alert_ids"]) == sorted([a2, a3])
        again = c.post(f"/api/v1/cases/{new['id']}/alerts", json={"alert_id": a2})
        assert again.status_code == 409
        attached = c.post(f"/api/v1/cases/{new['id']}/alerts", json={"alert_id": loose})
        assert loose in attached.json()["alert_ids"]
        assert c.post(f"/api/v1/cases/{new['id']}/alerts", json={"alert_id": "0" * 32}).status_code == 404
        assert c.get(f"/api/v1/alerts/{a2}").json()["case_id"] == new["id"]
        assert sorted(c.get(f"/api/v1/cases/{t['id']}").json()["alert_ids"]) == [a1]


def test_viewers_read_and_analysts_write(server: RunningServer, key: str) -> None:
    viewer = create_api_key(server.db, "acme", role=Role.VIEWER, name="ro")
    with server.client(key) as c:
        case = _case(c, "Visible")
    with server.client(viewer) as c:
        assert c.get("/api/v1/cases").status_code == 200
        assert c.get(f"/api/v1/cases/{case['id']}").status_code == 200
        for method, path, body in (
            ("POST", "/api/v1/cases", {"title": "no"}),
            ("PATCH", f"/api/v1/cases/{case['id']}", {"status": "triaged"}),
            ("POST", f"/api/v1/cases/{case['id']}/close", {"verdict": "false_positive"}),
            ("POST", f"/api/v1/cases/{case['id']}/comments", {"body": "no"}),
        ):
            r = c.request(method, path, json=body)
            assert r.status_code == 403 and "viewer" in r.json()["error"], (method, path)
    other = create_tenant(server.db, "beta")[1]
    with server.client(other) as c:
        assert c.get(f"/api/v1/cases/{case['id']}").status_code == 404
        assert c.get("/api/v1/cases").json()["total"] == 0
        assert c.post(f"/api/v1/cases/{case['id']}/comments", json={"body": "x"}).status_code == 404
