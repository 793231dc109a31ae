"""On PostgreSQL two worker processes share runs; when the one running a run is killed, the other
finishes it (no completed step runs twice)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bastion.respond import service
from bastion.respond.runtime import dbos_location
from bastion.store import Database
from bastion.store.workflows import respond_workers
from bastion.tenancy.connections import set_connection
from bastion.tenancy.service import create_tenant
from tests.conftest import PG_BASE

pytestmark = pytest.mark.postgres


class Effects(BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_POST(self) -> None:
        Effects.hits.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: Any) -> None:
        pass


def until(check: Callable[[], bool], what: str, limit: float = 120) -> None:
    deadline = time.monotonic() + limit
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.1)


def test_two_workers_share_runs_and_survive_a_kill(pg_url: str, tmp_path: Path) -> None:
    Effects.hits = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Effects)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    db = Database(pg_url)
    db.migrate()
    tenant, _ = create_tenant(db, f"pg{int(time.time() * 1000) % 10**9}")
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
id: shared
inputs: {n: {type: integer}}
steps:
  - id: effect
    action: core.http_request
    connection: fx
    with: {url: "/effect/${{ inputs.n }}", method: POST}
  - id: pause
    action: core.sleep
    with: {seconds: 10}
  - id: after
    action: core.http_request
    connection: fx
    with: {url: "/after/${{ inputs.n }}", method: POST}
""",
        actor="t",
    )
    env = {
        **os.environ,
        "BASTION_DATABASE_URL": pg_url,
        "BASTION_WORKER_STALE_S": "2",
        "BASTION_SECRET_KEY_FILE": str(tmp_path / "secret.key"),
    }
    os.environ["BASTION_SECRET_KEY_FILE"] = str(tmp_path / "secret.key")
    workers = {}
    try:
        for _ in range(2):
            log = (tmp_path / f"worker{len(workers)}.log").open("wb")
            p = subprocess.Popen(
                [sys.executable, "-m", "bastion.cli", "worker", "--concurrency", "2"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            workers[p.pid] = p

        def live() -> int:
            with db.read() as conn:
                return len(conn.execute(select(respond_workers)).all())

        until(lambda: live() == 2, "both workers")
        rids = [
            service.start_run(db, tenant.id, "shared", None, {"n": i}, trigger={}, actor="t")
            for i in range(4)
        ]

        def pausing() -> bool:  # written after 'effect' was checkpointed
            return all(
                any(
                    s["key"] == "pause" and s["status"] in ("sleeping", "succeeded")
                    for s in service.run_detail(db, tenant.id, r)["steps"]
                )
                for r in rids
            )

        until(pausing, "every first step to be checkpointed")

        from dbos import DBOSClient

        loc = dbos_location(db)
        client = DBOSClient(system_database_url=loc.url, dbos_system_schema=loc.schema or "dbos")
        statuses = client.list_workflows(workflow_ids=rids)
        client.destroy()
        owners = {s.executor_id for s in statuses}
        with db.read() as conn:
            pids = {r.executor_id: r.pid for r in conn.execute(select(respond_workers))}
        assert len(owners) == 2, owners  # the runs were shared between the two workers
        victim = pids[sorted(owners)[0]]
        workers[victim].send_signal(signal.SIGKILL)
        workers[victim].wait()

        def done() -> bool:
            return all(service.run_detail(db, tenant.id, r)["status"] == "succeeded" for r in rids)

        try:
            until(done, "every run to finish")
        except AssertionError:
            for f in sorted(tmp_path.glob("worker*.log")):
                print(f.name, f.read_text()[-3000:])
            print([service.run_detail(db, tenant.id, r)["status"] for r in rids], Effects.hits)
            raise
        for i in range(4):
            assert Effects.hits.count(f"/effect/{i}") == 1
            assert Effects.hits.count(f"/after/{i}") == 1
    finally:
        os.environ.pop("BASTION_SECRET_KEY_FILE", None)
        for p in workers.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(20)
                except subprocess.TimeoutExpired:
                    p.kill()
        server.shutdown()
        import psycopg

        with psycopg.connect(PG_BASE, autocommit=True) as conn:  # DBOS's schema beside the test schema
            conn.execute(f'DROP SCHEMA IF EXISTS "{dbos_location(db).schema}" CASCADE')
        from bastion.store.tables import metadata

        with db.engine.begin() as conn:  # leave the shared test schema empty, as the db fixture does
            for table in reversed(metadata.sorted_tables):
                conn.execute(table.delete())
        db.dispose()
