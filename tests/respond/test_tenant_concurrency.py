"""Per-tenant concurrency: a worker runs at most BASTION_TENANT_CONCURRENCY runs of one tenant at once
(DBOS queue partitions by tenant), while another tenant's runs go on beside them. A real `bastion worker`
process on a SQLite store; each run marks its start and end on a local HTTP server."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from bastion.respond import service
from bastion.store import Database
from bastion.tenancy.connections import set_connection
from bastion.tenancy.service import create_tenant

PACED = """
id: paced
inputs: {n: {type: string}}
steps:
  - id: begin
    action: core.http_request
    connection: marks
    with: {url: "/begin/${{ inputs.n }}", method: POST}
  - id: hold
    action: core.sleep
    with: {seconds: 1}
  - id: end
    action: core.http_request
    connection: marks
    with: {url: "/end/${{ inputs.n }}", method: POST}
"""


class Marks(BaseHTTPRequestHandler):
    seen: dict[str, float] = {}

    def do_POST(self) -> None:
        Marks.seen[self.path] = time.monotonic()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: Any) -> None:
        pass


def test_one_tenants_runs_wait_for_each_other_but_not_for_another_tenants(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    Marks.seen = {}
    server = ThreadingHTTPServer(("127.0.0.1", 0), Marks)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"sqlite:///{tmp_path / 'bastion.db'}"
    monkeypatch.setenv("BASTION_SECRET_KEY_FILE", str(tmp_path / "secret.key"))
    db = Database(url)
    db.migrate()
    tenants = {}
    for name in ("acme", "globex"):
        tenant, _ = create_tenant(db, name)
        tenants[name] = tenant.id
        marks = {"base_url": f"http://127.0.0.1:{server.server_address[1]}", "allow_private": True}
        set_connection(db, tenant.id, "marks", marks, actor="t")
        service.add_workflow(db, tenant.id, PACED, actor="t")
    env = {
        **os.environ,
        "BASTION_DATABASE_URL": url,
        "BASTION_TENANT_CONCURRENCY": "1",
        "BASTION_SECRET_KEY_FILE": str(tmp_path / "secret.key"),
    }
    log = (tmp_path / "worker.log").open("wb")
    worker = subprocess.Popen(
        [sys.executable, "-m", "bastion.cli", "worker", "--concurrency", "4"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        runs = [
            (tenants["acme"], service.start_run(db, tenants["acme"], "paced", None, {"n": f"a{i}"},
                                                trigger={}, actor="t"))
            for i in range(3)
        ]  # fmt: skip
        runs.append(
            (tenants["globex"], service.start_run(db, tenants["globex"], "paced", None, {"n": "g0"},
                                                  trigger={}, actor="t"))
        )  # fmt: skip
        for tid, rid in runs:
            done = service.wait_run(db, tid, rid, timeout_s=120)
            assert done["status"] == "succeeded", (done, (tmp_path / "worker.log").read_text()[-2000:])
    finally:
        worker.terminate()
        try:
            worker.wait(20)
        except subprocess.TimeoutExpired:
            worker.kill()
        server.shutdown()
        db.dispose()
    spans = {n: (Marks.seen[f"/begin/{n}"], Marks.seen[f"/end/{n}"]) for n in ("a0", "a1", "a2", "g0")}
    acme = sorted(spans[n] for n in ("a0", "a1", "a2"))
    # One acme run at a time: each began after the one before it ended.
    assert all(later[0] >= earlier[1] for earlier, later in pairwise(acme)), acme
    # globex's run did not queue behind acme's: it began while an acme run was still going.
    assert spans["g0"][0] < acme[-1][0], spans
