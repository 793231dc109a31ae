"""``/api/v1/agents`` on the real app under uvicorn, with the agent runtime's engine (DBOS) launched in
this process as ``bastion up`` does: starting objective runs (analyst or above), a run that finishes
(200) and one parked on a high-impact approval (202), listing and reading runs (viewer), the errors a
caller can cause, and the triage assistant's proposal for a case."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bastion.agents.assistant import propose
from bastion.agents.runtime import wait_agent_run
from bastion.model import Role, Severity
from bastion.respond.approvals import decide
from bastion.store import Database
from bastion.tenancy.service import add_user, create_api_key, create_tenant
from tests.agents.objective.world import EVIL_IP, add_intel, alert, ingest, obs
from tests.conftest import RunningServer, start_server


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    from bastion.respond.runtime import Executor

    tmp: Path = tmp_path_factory.mktemp("agents-api")
    db = Database(f"sqlite:///{tmp / 'bastion.db'}")
    db.migrate()
    tenant, _ = create_tenant(db, "acme")
    create_tenant(db, "other")
    executor = Executor(db)
    executor.launch()
    running, srv, thread = start_server(db)
    try:
        yield {
            "db": db,
            "tenant": tenant.id,
            "server": running,
            "analyst": create_api_key(db, "acme", role=Role.ANALYST, name="a"),
            "viewer": create_api_key(db, "acme", role=Role.VIEWER, name="v"),
            "other": create_api_key(db, "other", role=Role.ADMIN, name="o"),
        }
    finally:
        srv.should_exit = True
        thread.join(10)
        running.queue.close()
        executor.shutdown()
        db.dispose()


def test_runs_start_read_and_errors(api: dict[str, Any]) -> None:
    server: RunningServer = api["server"]
    ingest(api["db"], api["tenant"], alert("Mimikatz on web-01", host="web-01", user="alice"))
    with server.client(api["analyst"]) as analyst, server.client(api["viewer"]) as viewer:
        done = analyst.post(
            "/api/v1/agents/runs", json={"objective": "find related alerts for host web-01", "wait_s": 120}
        )
        assert done.status_code == 200, done.text
        body = done.json()
        assert body["status"] == "succeeded" and body["agent"] == "objective"
        assert [p["tool"] for p in body["plan"]] == ["search_alerts"] and body["approvals"] == []
        assert "Mimikatz on web-01" in body["report"]

        parked = analyst.post(
            "/api/v1/agents/runs", json={"objective": "suspend user mallory", "wait_s": 120}
        )
        assert parked.status_code == 202, parked.text
        run = parked.json()
        assert run["status"] == "waiting_approval"
        assert [(a["tool"], a["status"]) for a in run["approvals"]] == [("ldap.disable_user", "pending")]

        assert viewer.post("/api/v1/agents/runs", json={"objective": "x"}).status_code == 403
        listed = viewer.get("/api/v1/agents/runs").json()["runs"]
        assert [r["run_id"] for r in listed] == [run["run_id"], body["run_id"]]
        one = viewer.get(f"/api/v1/agents/runs/{run['run_id']}").json()
        assert one["approvals"][0]["approval_id"] == run["approvals"][0]["approval_id"]
        assert one["transcript"] and one["objective"] == "suspend user mallory"
        assert viewer.get("/api/v1/agents/runs/nope").status_code == 404

        bad = analyst.post("/api/v1/agents/runs", json={"objective": "x", "agent": "no-such-agent"})
        assert bad.status_code == 400 and "unknown agent" in bad.json()["error"]
        assert analyst.post("/api/v1/agents/runs", json={"objective": ""}).status_code == 400
        assert analyst.post("/api/v1/agents/runs", json={"objective": "x", "agent": "mcp"}).status_code == 400
        assert (
            analyst.post("/api/v1/agents/runs", json={"objective": "x", "case_id": "#999"}).status_code == 400
        )
    with server.client(api["other"]) as other:  # another tenant sees none of it
        assert other.get("/api/v1/agents/runs").json()["runs"] == []
        assert other.get(f"/api/v1/agents/runs/{run['run_id']}").status_code == 404
    # settle the parked run (denied: nothing is disabled), so no run is left waiting at shutdown
    add_user(api["db"], "acme", "sam", Role.APPROVER)
    aid = run["approvals"][0]["approval_id"]
    decide(api["db"], api["tenant"], aid, user="sam", decision="deny", comment="not now", channel="cli")
    settled = wait_agent_run(api["db"], api["tenant"], run["run_id"], wait_s=120)
    assert settled.status == "succeeded" and settled.output is not None and settled.output["done"] == []


def test_case_proposal(api: dict[str, Any]) -> None:
    db, tid = api["db"], api["tenant"]
    add_intel(db, tid)
    (case_id,) = ingest(
        db, tid, alert("Beacon", host="ws-12", severity=Severity.HIGH, extra=[obs("ipv4", EVIL_IP)])
    )
    server: RunningServer = api["server"]
    with server.client(api["viewer"]) as viewer:
        assert viewer.get(f"/api/v1/agents/cases/{case_id}/proposal").status_code == 404
        propose(db, tid, case_id)
        got = viewer.get(f"/api/v1/agents/cases/{case_id}/proposal")
        assert got.status_code == 200, got.text
        body = got.json()
        assert body["proposal"]["verdict"] == "malicious" and body["auto_apply"] is False
        assert any(EVIL_IP in r for r in body["proposal"]["reasons"])
        assert viewer.get("/api/v1/agents/cases/ffffffffffffffffffffffffffffffff/proposal").status_code == 404


def test_a_waiting_run_is_cancelled_over_the_api(api: dict[str, Any]) -> None:
    server: RunningServer = api["server"]
    with server.client(api["analyst"]) as analyst, server.client(api["viewer"]) as viewer:
        parked = analyst.post(
            "/api/v1/agents/runs", json={"objective": "block ip 198.51.100.99", "wait_s": 60}
        ).json()
        assert parked["status"] == "waiting_approval", parked
        url = f"/api/v1/agents/runs/{parked['run_id']}/cancel"
        assert viewer.post(url).status_code == 403
        assert analyst.post("/api/v1/agents/runs/nope/cancel").status_code == 404
        r = analyst.post(url)
        assert r.status_code == 200 and r.json() == {"run_id": parked["run_id"], "status": "stopped"}
        again = analyst.post(url)
        assert again.status_code == 409 and "stopped" in again.json()["error"]
        shown = analyst.get(f"/api/v1/agents/runs/{parked['run_id']}").json()
        assert shown["status"] == "stopped" and shown["approvals"][0]["status"] == "expired"
