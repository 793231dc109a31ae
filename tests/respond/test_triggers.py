"""Triggers without a worker: schedules (due times, one run per due time across callers), hooks with
conditions, and the webhook endpoint with its per-workflow token over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from bastion.respond import service
from bastion.respond.schedule import due_runs, fire_schedules
from bastion.store import Database
from bastion.store.workflows import WorkflowRepository
from bastion.tenancy.service import create_tenant
from tests.conftest import start_server


@pytest.fixture
def tenant(sqlite_db: Database) -> tuple[Database, str]:
    t, _ = create_tenant(sqlite_db, "acme")
    return sqlite_db, t.id


def runs(db: Database, tenant_id: str) -> list[dict[str, Any]]:
    with db.read() as conn:
        return WorkflowRepository(conn, tenant_id).list_runs()


def test_due_runs_follow_the_cron() -> None:
    start = 1_800_000_000.0  # 2027-01-15T08:00:00Z
    assert due_runs("*/15 * * * *", start, start + 3600) == [start + 900 * i for i in range(1, 5)]
    assert due_runs("0 0 1 1 *", start, start + 60) == []


def test_schedule_starts_one_run_per_due_time(tenant: tuple[Database, str]) -> None:
    db, tid = tenant
    service.add_workflow(
        db,
        tid,
        'id: tick\ntrigger: {schedule: "* * * * *"}\nsteps:\n'
        "  - {id: a, action: core.log, with: {message: tick}}\n",
        actor="t",
    )
    service.add_workflow(
        db, tid, "id: manual-only\nsteps:\n  - {id: a, action: core.log, with: {message: m}}\n", actor="t"
    )
    start = 1_800_000_000.0
    first = fire_schedules(db, start, start + 180)
    assert len(first) == 3
    assert fire_schedules(db, start, start + 180) == []  # a second worker seeing the same window
    found = runs(db, tid)
    assert {r["workflow_id"] for r in found} == {"tick"}
    assert sorted(r["trigger"]["scheduled_at"] for r in found) == [
        int((start + 60 * i) * 1000) for i in (1, 2, 3)
    ]


def test_hooks_match_fields_and_condition(tenant: tuple[Database, str]) -> None:
    db, tid = tenant
    service.add_workflow(
        db,
        tid,
        """
id: leak-response
trigger:
  intel:
    type: credential-leak
    condition: "${{ trigger.severity in ['high', 'critical'] }}"
inputs:
  email: {type: string}
steps:
  - {id: a, action: core.log, with: {message: "${{ inputs.email }}"}}
""",
        actor="t",
    )
    assert (
        service.fire_hooks(db, tid, "intel", {"type": "credential-leak", "severity": "low", "email": "a@b.c"})
        == []
    )
    assert (
        service.fire_hooks(db, tid, "intel", {"type": "phishing", "severity": "high", "email": "a@b.c"}) == []
    )
    assert service.fire_hooks(db, tid, "alert", {"type": "credential-leak", "severity": "high"}) == []
    started = service.fire_hooks(
        db, tid, "intel", {"type": "credential-leak", "severity": "high", "email": "a@b.c"}
    )
    assert len(started) == 1
    run = runs(db, tid)[0]
    assert run["inputs"] == {"email": "a@b.c"} and run["trigger"]["type"] == "intel"
    with pytest.raises(ValueError, match="unknown hook kind"):
        service.fire_hooks(db, tid, "weather", {})


@pytest.fixture
def api(sqlite_db: Database) -> Iterator[tuple[Any, str]]:
    _, key = create_tenant(sqlite_db, "acme")
    running, srv, thread = start_server(sqlite_db)
    yield running, key
    srv.should_exit = True
    thread.join(10)
    running.queue.close()


def test_api_workflows_runs_and_webhook(api: tuple[Any, str]) -> None:
    server, key = api
    with server.client(key) as c:
        bad = c.post("/api/v1/workflows", content="id: x\nsteps:\n  - {id: a, action: core.nope}\n")
        assert bad.status_code == 422
        assert bad.json()["errors"][0]["line"] == 3
        made = c.post(
            "/api/v1/workflows",
            content="id: hooked\ntrigger: {webhook: true}\ninputs: {n: {type: integer}}\n"
            'steps:\n  - {id: a, action: core.log, with: {message: "${{ inputs.n }}"}}\n',
        )
        assert made.status_code == 201, made.text
        token = made.json()["webhook_token"]
        assert c.get("/api/v1/workflows").json()["workflows"][0]["workflow_id"] == "hooked"
        assert c.post("/api/v1/workflows/hooked/runs", json={"inputs": {"n": "x"}}).status_code == 400
        assert c.post("/api/v1/workflows/nope/runs", json={"inputs": {}}).status_code == 404
        started = c.post("/api/v1/workflows/hooked/runs", json={"inputs": {"n": 3}})
        assert started.status_code == 202 and started.json()["status"] == "running"
        rid = started.json()["run_id"]
        assert c.get(f"/api/v1/runs/{rid}").json()["inputs"] == {"n": 3}
        assert c.get("/api/v1/runs", params={"status": "weird"}).status_code == 400
        assert c.post(f"/api/v1/runs/{rid}/retry").status_code == 409
        assert c.post(f"/api/v1/runs/{rid}/cancel").json()["status"] == "cancelled"
        assert c.post(f"/api/v1/runs/{rid}/cancel").status_code == 409
        assert c.get("/api/v1/runs/0000").status_code == 404
    with httpx.Client(base_url=server.url) as anon:
        url = "/api/v1/workflows/hooked/trigger"
        assert anon.post(url, json={"inputs": {"n": 1}}).status_code == 401
        assert (
            anon.post(url, json={"inputs": {"n": 1}}, headers={"X-Bastion-Token": "bwh_wrong"}).status_code
            == 403
        )
        ok = anon.post(url, json={"inputs": {"n": 1}, "alert": "x"}, headers={"X-Bastion-Token": token})
        assert ok.status_code == 202, ok.text
    with server.client(key) as c:
        run = c.get(f"/api/v1/runs/{ok.json()['run_id']}").json()
    assert run["trigger"]["type"] == "webhook" and run["trigger"]["payload"]["alert"] == "x"
