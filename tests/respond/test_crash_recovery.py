"""Crash recovery with real worker processes killed by SIGKILL: between a step's side effect and the
next step, while a step waits between retries, and while a run waits for approval. A local HTTP
server counts side effects; after a new worker starts every run completes and no completed step ran
twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from bastion.model import Role
from bastion.respond import service
from bastion.store import Database
from bastion.tenancy.connections import set_connection
from bastion.tenancy.service import add_user, create_tenant


class Effects(BaseHTTPRequestHandler):
    hits: list[str] = []
    fail_first: dict[str, int] = {}

    def do_POST(self) -> None:
        Effects.hits.append(self.path)
        if Effects.fail_first.get(self.path, 0):
            Effects.fail_first[self.path] -= 1
            self.send_response(503)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: Any) -> None:
        pass


def until(check: Callable[[], bool], what: str, limit: float = 90) -> None:
    deadline = time.monotonic() + limit
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.1)


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[dict[str, Any]]:
    Effects.hits, Effects.fail_first = [], {}
    server = ThreadingHTTPServer(("127.0.0.1", 0), Effects)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"sqlite:///{tmp_path / 'bastion.db'}"
    db = Database(url)
    db.migrate()
    tenant, _ = create_tenant(db, "acme")
    add_user(db, "acme", "alice", Role.APPROVER)
    set_connection(
        db,
        tenant.id,
        "fx",
        {"base_url": f"http://127.0.0.1:{server.server_address[1]}", "allow_private": True},
        actor="t",
    )
    service.add_workflow(
        db,
        tenant.id,
        """
id: crashy
steps:
  - id: effect
    action: core.http_request
    connection: fx
    with: {url: /effect, method: POST}
  - id: pause
    action: core.sleep
    with: {seconds: 2}
  - id: flaky
    action: core.http_request
    connection: fx
    retry: {max_attempts: 2, interval: 3, backoff: 1}
    with: {url: /flaky, method: POST}
  - id: gated
    action: core.http_request
    connection: fx
    approval: {roles: [approver]}
    with: {url: /gated, method: POST}
""",
        actor="t",
    )
    procs: list[subprocess.Popen[bytes]] = []

    def start_worker() -> subprocess.Popen[bytes]:
        env = {
            **os.environ,
            "BASTION_DATABASE_URL": url,
            "BASTION_WORKER_STALE_S": "2",
            "BASTION_SECRET_KEY_FILE": str(tmp_path / "secret.key"),
        }
        proc = subprocess.Popen(
            [sys.executable, "-m", "bastion.cli", "worker"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        procs.append(proc)
        return proc

    os.environ["BASTION_SECRET_KEY_FILE"] = str(tmp_path / "secret.key")
    yield {"db": db, "tenant": tenant.id, "start_worker": start_worker}
    os.environ.pop("BASTION_SECRET_KEY_FILE", None)
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
    server.shutdown()
    db.dispose()


def test_sigkill_at_three_places_and_every_run_completes(setup: dict[str, Any]) -> None:
    db, tenant = setup["db"], setup["tenant"]
    Effects.fail_first = {"/flaky": 1}
    rid = service.start_run(db, tenant, "crashy", None, {}, trigger={}, actor="user:bob")

    def status() -> str:
        return str(service.run_detail(db, tenant, rid)["status"])

    def step_status(key: str) -> str | None:
        steps = {s["key"]: s for s in service.run_detail(db, tenant, rid)["steps"]}
        return steps[key]["status"] if key in steps else None

    # 1. after the side effect, before the next step (the run sleeps durably in 'pause').
    worker = setup["start_worker"]()
    # The 'pause' record is written by the step after 'effect' was checkpointed (a kill between the HTTP
    # call and the checkpoint would repeat the call: that is what the idempotency key is for).
    until(lambda: step_status("pause") == "sleeping", "the first side effect to be checkpointed")
    assert Effects.hits == ["/effect"]
    worker.send_signal(signal.SIGKILL)
    worker.wait()

    # 2. between retries of 'flaky' (its first attempt failed; a 3 s durable sleep follows).
    worker = setup["start_worker"]()
    until(lambda: step_status("flaky") == "retry_wait", "the first attempt of flaky to be checkpointed")
    worker.send_signal(signal.SIGKILL)
    worker.wait()

    # 3. while the run waits for approval.
    worker = setup["start_worker"]()
    until(lambda: status() == "waiting_approval", "the approval wait")
    worker.send_signal(signal.SIGKILL)
    worker.wait()

    from bastion.respond.approvals import decide, list_approvals
    from bastion.respond.runtime import install_delivery

    install_delivery(db)
    pending = [a for a in list_approvals(db, tenant) if a.run_id == rid]
    assert len(pending) == 1
    setup["start_worker"]()
    decide(db, tenant, pending[0].id, user="alice", decision="approve", comment=None, channel="cli")
    until(lambda: status() == "succeeded", "the run to finish")

    assert Effects.hits.count("/effect") == 1
    assert Effects.hits.count("/flaky") == 2  # one failure, one success: the failed attempt was not repeated
    assert Effects.hits.count("/gated") == 1
    steps = {s["key"]: s for s in service.run_detail(db, tenant, rid)["steps"]}
    assert steps["flaky"]["attempts"] == 2 and steps["gated"]["status"] == "succeeded"
