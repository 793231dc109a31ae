"""Approvals over the HTTP API (real uvicorn, real sockets): list, get, decide, and the 4xx reasons;
tenant A's keys can neither see nor decide tenant B's approvals."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tests.approvals.conftest import Org, make_org
from tests.conftest import RunningServer, start_server

from bastion.respond.approvals import Approval, ApprovalSpec, request_approval
from bastion.store import Database


@pytest.fixture
def server(sqlite_db: Database) -> Iterator[RunningServer]:
    running, srv, thread = start_server(sqlite_db, approval_link_key="k" * 32)
    yield running
    srv.should_exit = True
    thread.join(10)
    running.queue.close()


@pytest.fixture
def org(server: RunningServer) -> Org:
    return make_org(server.db, "acme")


def ask(org: Org, approval_id: str = "run1:block", quorum: int = 1) -> Approval:
    return request_approval(
        org.db,
        org.id,
        approval_id=approval_id,
        run_id="run1",
        step_id="block",
        action="firewall.block_ip",
        summary="Block 203.0.113.50",
        target={"ip": "203.0.113.50"},
        reason="C2 beacon",
        requested_by="alice",
        spec=ApprovalSpec(roles=["approver"], quorum=quorum),
    )


def test_list_get_and_decide(server: RunningServer, org: Org, resolved: list[Approval]) -> None:
    a = ask(org, quorum=2)
    with server.client(org.key_for("bob")) as c:
        listed = c.get("/api/v1/approvals", params={"status": "pending"}).json()["approvals"]
        assert [x["id"] for x in listed] == [a.id] and listed[0]["topic"] == "approval:run1:block"
        one = c.get(f"/api/v1/approvals/{a.id}").json()
        assert one["action"] == "firewall.block_ip" and one["status"] == "pending" and "delivery" not in one
        r = c.post(f"/api/v1/approvals/{a.id}", json={"decision": "approve", "comment": "seen the beacon"})
        assert r.status_code == 200 and r.json()["status"] == "pending"
        assert r.json()["decisions"][0] == {
            "user": "bob",
            "decision": "approve",
            "time": r.json()["decisions"][0]["time"],
            "channel": "web",
            "comment": "seen the beacon",
        }
        r = c.post(f"/api/v1/approvals/{a.id}", json={"decision": "approve"})
        assert r.status_code == 409 and "already decided" in r.json()["error"]
    with server.client(org.key_for("carol")) as c:
        assert (
            c.post(f"/api/v1/approvals/{a.id}", json={"decision": "approve"}).json()["status"] == "approved"
        )
        assert c.get("/api/v1/approvals").json()["approvals"] == []
        done = c.get("/api/v1/approvals", params={"status": "approved"}).json()["approvals"]
        assert [x["id"] for x in done] == [a.id]
        r = c.post(f"/api/v1/approvals/{a.id}", json={"decision": "deny"})
        assert r.status_code == 409 and "already approved" in r.json()["error"]
    assert len(resolved) == 1


def test_refusals_carry_reasons(server: RunningServer, org: Org) -> None:
    a = ask(org)
    with server.client(org.admin_key) as c:  # a key that is not a user cannot be recorded as a decider
        r = c.post(f"/api/v1/approvals/{a.id}", json={"decision": "approve"})
        assert r.status_code == 403 and "acts as a user" in r.json()["error"]
    with server.client(org.key_for("vic")) as c:
        assert c.get(f"/api/v1/approvals/{a.id}").status_code == 200  # viewers may look
        r = c.post(f"/api/v1/approvals/{a.id}", json={"decision": "approve"})
        assert r.status_code == 403 and "role 'viewer'" in r.json()["error"]
    with server.client(org.key_for("ann")) as c:
        assert c.post(f"/api/v1/approvals/{a.id}", json={"decision": "approve"}).status_code == 403
    with server.client(org.key_for("alice")) as c:
        r = c.post(f"/api/v1/approvals/{a.id}", json={"decision": "approve"})
        assert r.status_code == 403 and "four-eyes" in r.json()["error"]
    with server.client(org.key_for("bob")) as c:
        r = c.post(f"/api/v1/approvals/{a.id}", json={"decision": "maybe"})
        assert r.status_code == 400 and r.json()["error"].startswith("decision:")
        r = c.post(f"/api/v1/approvals/{a.id}", json={"decision": "approve", "extra": 1})
        assert r.status_code == 400 and "extra" in r.json()["error"]
        r = c.post(
            f"/api/v1/approvals/{a.id}", content=b"{not json", headers={"Content-Type": "application/json"}
        )
        assert r.status_code == 400
        r = c.post("/api/v1/approvals/run9:none", json={"decision": "approve"})
        assert r.status_code == 404 and "no approval" in r.json()["error"]
        assert c.get("/api/v1/approvals", params={"status": "maybe"}).status_code == 400
    with server.client() as c:
        assert c.get("/api/v1/approvals").status_code == 401
        assert c.post(f"/api/v1/approvals/{a.id}", json={"decision": "approve"}).status_code == 401


def test_tenant_isolation(server: RunningServer, org: Org) -> None:
    a = ask(org)
    other = make_org(server.db, "globex")
    with server.client(other.key_for("bob")) as c:
        assert c.get("/api/v1/approvals", params={"status": "all"}).json()["approvals"] == []
        assert c.get(f"/api/v1/approvals/{a.id}").status_code == 404
        r = c.post(f"/api/v1/approvals/{a.id}", json={"decision": "approve"})
        assert r.status_code == 404
    with server.client(org.key_for("bob")) as c:
        assert c.get(f"/api/v1/approvals/{a.id}").json()["decisions"] == []
