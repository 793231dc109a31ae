"""The troubleshooting agent on real failures: workflow runs executed by the engine (DBOS in this process)
against the local Okta double answering 401 (a wrong token) and 429 (throttled), and against a closed
port; intel feeds whose URL answers 404 or whose server is down. It must name the cause, run the health
checks, propose a fix, and with ``fix`` apply only a safe one, only where it can work (the retried run
then succeeds)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import select

from bastion.agents.offline import play
from bastion.agents.spec import AgentDeps, Task, get_agent
from bastion.agents.specialists.troubleshoot import TroubleshootReport
from bastion.connectors import okta
from bastion.intel.polling import add_feed, poll_feeds
from bastion.respond import service
from bastion.respond.runtime import Executor
from bastion.store import Database
from bastion.store.tables import audit_log
from bastion.tenancy.connections import set_connection
from bastion.tenancy.secrets import set_secret
from bastion.tenancy.service import create_tenant
from tests.conftest import free_port, run_cli
from tests.connectors.vendor_servers import OktaDouble, serve
from tests.intel.servers import LOCAL

LOGIN = "j.morales@northwind.example"
WORKFLOW = """
id: lookup-user
title: Look up a user at the identity provider
inputs: {user: {type: string}}
steps:
  - id: lookup
    action: okta.get_user
    with: {user: "${{ inputs.user }}"}
outputs: {status: "${{ steps.lookup.output.status }}"}
"""
PING = """
id: ping-hook
title: Tell the web hook
steps:
  - id: ping
    action: core.http_request
    connection: hook
    with: {url: /hook, method: POST, json: {hello: world}}
"""
FEED_CSV = b"indicator,type,confidence\n198.51.100.23,ipv4,70\nfastupdate-cdn.test,domain,70\n"


class FeedHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/feeds/iocs.csv":
            self.send_response(200)
            self.send_header("Content-Type", "text/csv")
            self.end_headers()
            self.wfile.write(FEED_CSV)
        else:
            self.send_response(404)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            self.wfile.write(b"Not Found")

    def log_message(self, *args: Any) -> None:
        pass


def feed_server(port: int = 0) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer(("127.0.0.1", port), FeedHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@dataclass
class Env:
    db: Database
    path: Path
    double: OktaDouble
    tenants: dict[str, str]  # name -> id


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    tmp = tmp_path_factory.mktemp("troubleshoot")
    double = OktaDouble()
    with serve(double):
        double.add_user(LOGIN)
        db = Database(f"sqlite:///{tmp / 'bastion.db'}")
        db.migrate()
        closed = f"http://127.0.0.1:{free_port()}"
        tenants: dict[str, str] = {}
        for name, token, url in (
            ("bad", "00-wrong-token", double.url),
            ("busy", double.token, double.url),
            ("down", double.token, closed),
        ):
            tid = create_tenant(db, name)[0].id
            tenants[name] = tid
            set_secret(db, tid, okta.SECRET, token, actor="test")
            set_connection(db, tid, "okta", {"base_url": url, "allow_private": True}, actor="test")
            service.add_workflow(db, tid, WORKFLOW, actor="test")
        set_connection(db, tenants["down"], "hook", {"base_url": closed, "allow_private": True}, actor="test")
        service.add_workflow(db, tenants["down"], PING, actor="test")
        executor = Executor(db)
        executor.launch()
        yield Env(db=db, path=tmp / "bastion.db", double=double, tenants=tenants)
        executor.shutdown()
        db.dispose()


def failed_run(env: Env, tenant: str, workflow: str = "lookup-user") -> str:
    tid = env.tenants[tenant]
    inputs = {"user": LOGIN} if workflow == "lookup-user" else {}
    rid = service.start_run(env.db, tid, workflow, None, inputs, trigger={"type": "manual"}, actor="user:bob")
    run = service.wait_run(env.db, tid, rid, timeout_s=60)
    assert run["status"] == "failed", run
    return rid


def troubleshoot(env: Env, tenant: str, **inp: Any) -> TroubleshootReport:
    tid = env.tenants[tenant]
    task = Task(agent="troubleshoot", objective="troubleshoot", input=inp, tenant_id=tid)
    played = play("troubleshoot", task, AgentDeps(db=env.db, tenant_id=tid, actor="test", run_id="test"))
    assert played.status == "succeeded", played
    return TroubleshootReport.model_validate(played.output)


def audited(env: Env, action: str) -> list[dict[str, Any]]:
    with env.db.read() as conn:
        rows = conn.execute(
            select(audit_log.c.target_id, audit_log.c.data).where(audit_log.c.action == action)
        )
        return [{"target": r.target_id, "data": orjson.loads(r.data)} for r in rows]


def test_a_refused_token_is_auth_and_is_retried_only_once_the_credential_works(env: Env) -> None:
    rid = failed_run(env, "bad")
    report = troubleshoot(env, "bad", run=rid, fix=True)
    assert report.cause == "auth" and report.subject_kind == "run"
    assert report.failed_steps[0].action == "okta.get_user" and report.failed_steps[0].cause == "auth"
    assert any("401" in e for e in report.evidence)
    assert report.healthy_now is False  # the live probe is refused the same way
    assert not report.fix.applied and report.fix.tool is None
    assert "bastion secret set okta_api_token" in report.fix.summary

    # The operator stores the right token: the health check passes, so the safe retry is applied.
    set_secret(env.db, env.tenants["bad"], okta.SECRET, env.double.token, actor="test")
    fixed = troubleshoot(env, "bad", run=rid, fix=True)
    assert fixed.cause == "auth" and fixed.healthy_now is True
    assert fixed.fix.applied and fixed.fix.tool == "retry_run"
    assert fixed.fix.result is not None
    new = service.wait_run(env.db, env.tenants["bad"], fixed.fix.result["new_run_id"], timeout_s=60)
    assert new["status"] == "succeeded" and new["retry_of"] == rid
    assert new["outputs"] == {"status": "ACTIVE"}
    assert any(a["target"] == rid for a in audited(env, "agent.fix.retry_run"))
    # A run already retried is not retried twice.
    again = troubleshoot(env, "bad", run=rid, fix=True)
    assert not again.fix.applied and "already retried" in again.fix.summary


def test_a_rate_limited_run_is_retried_with_backoff(env: Env) -> None:
    env.double.reset_in_s = 1
    env.double.throttle[f"/api/v1/users/{LOGIN}"] = 4  # every attempt of the step is answered 429
    rid = failed_run(env, "busy")
    report = troubleshoot(env, "busy", run=rid, fix=True)
    assert report.cause == "rate_limit"
    assert report.failed_steps[0].error is not None and "429" in report.failed_steps[0].error
    assert report.fix.applied and report.fix.tool == "retry_run"
    result = report.fix.result or {}
    assert result["retried"] is True and result["backoff_s"] >= 1.0 and result["retry_number"] == 1
    new = service.wait_run(env.db, env.tenants["busy"], result["new_run_id"], timeout_s=60)
    assert new["status"] == "succeeded" and new["retry_of"] == rid


def test_a_refused_connection_is_network_and_not_retried_while_down(env: Env) -> None:
    rid = failed_run(env, "down")
    report = troubleshoot(env, "down", run=rid, fix=True)
    assert report.cause == "network"
    assert "Connection refused" in (report.failed_steps[0].error or "") or "ConnectError" in (
        report.failed_steps[0].error or ""
    )
    assert report.healthy_now is False and not report.fix.applied
    assert "cannot be reached" in report.fix.summary
    assert not [a for a in audited(env, "agent.fix.retry_run") if a["target"] == rid]


def test_a_step_connection_override_is_the_one_checked(env: Env) -> None:
    rid = failed_run(env, "down", "ping-hook")
    report = troubleshoot(env, "down", run=rid)
    assert report.failed_steps[0].connection == "hook" and report.cause == "network"
    live = {c["check"]: c for c in report.health[0]["checks"]}["live"]
    assert live["ok"] is False and "Connect" in live["detail"]  # a GET of the base URL, refused


def test_a_connection_is_checked_directly(env: Env) -> None:
    report = troubleshoot(env, "down", connection="okta")
    assert report.subject_kind == "connection" and report.cause == "network"
    checks = {c["check"]: c for c in report.health[0]["checks"]}
    assert checks["config"]["ok"] and checks["secrets"]["ok"] and checks["live"]["ok"] is False
    assert checks["live"]["action"] == "okta.get_user"
    healthy = troubleshoot(env, "busy", connection="okta")
    assert healthy.healthy_now is True and "healthy" in healthy.fix.summary
    assert audited(env, "agent.health.connector")


def test_feeds_a_wrong_url_and_a_server_that_came_back(env: Env) -> None:
    tid = env.tenants["busy"]
    server = feed_server()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        add_feed(env.db, tid, "moved", url=f"{url}/old/iocs.csv", fmt="csv", config=LOCAL, actor="test")
        assert poll_feeds(env.db, tid, name="moved")[0].status == "error"
        moved = troubleshoot(env, "busy", feed="moved", fix=True)
        assert moved.subject_kind == "feed" and moved.cause == "bad_input"
        assert not moved.fix.applied and "wrong or moved" in moved.fix.summary
    finally:
        server.shutdown()
        server.server_close()

    port = free_port()
    add_feed(
        env.db,
        tid,
        "late",
        url=f"http://127.0.0.1:{port}/feeds/iocs.csv",
        fmt="csv",
        config=LOCAL,
        actor="test",
    )
    assert poll_feeds(env.db, tid, name="late")[0].status == "error"
    down = troubleshoot(env, "busy", feed="late", fix=True)
    assert down.cause == "network" and not down.fix.applied
    back = feed_server(port)
    try:
        fixed = troubleshoot(env, "busy", feed="late", fix=True)
        assert fixed.fix.applied and fixed.fix.tool == "requeue_feed"
        assert fixed.fix.result is not None and fixed.fix.result["status"] == "ok"
        assert fixed.fix.result["loaded"] == 2
    finally:
        back.shutdown()
        back.server_close()
    assert audited(env, "agent.fix.requeue_feed")


def test_only_safe_tools_are_allowed() -> None:
    from bastion.agents.spec import get_agent_tool

    spec = get_agent("troubleshoot")
    assert set(spec.tools) == {"run_history", "connector_health", "feed_health", "retry_run", "requeue_feed"}
    for name in spec.tools:
        tool = get_agent_tool(name)
        assert tool is not None and tool.impact in ("read", "low"), name


def test_command_fixes_a_rate_limited_run(env: Env) -> None:
    env.double.reset_in_s = 1
    env.double.throttle[f"/api/v1/users/{LOGIN}"] = 4
    rid = failed_run(env, "busy")
    url = f"sqlite:///{env.path}"
    proc = run_cli("agent", "troubleshoot", "--run", rid, "--tenant", "busy", "--fix", "--json", db_url=url)
    assert proc.returncode == 0, proc.stderr
    view = orjson.loads(proc.stdout)
    out = view["output"]
    assert out["cause"] == "rate_limit" and out["fix"]["applied"] is True
    new_id = out["fix"]["result"]["new_run_id"]
    assert service.wait_run(env.db, env.tenants["busy"], new_id, timeout_s=60)["retry_of"] == rid
    text = run_cli("agent", "troubleshoot", "--connection", "okta", "--tenant", "down", db_url=url)
    assert text.returncode == 0 and "cause network" in text.stdout
    for args, message in (((), "exactly one of"), (("--feed", "nope"), "no feed named 'nope'")):
        bad = run_cli("agent", "troubleshoot", *args, "--tenant", "busy", db_url=url)
        assert bad.returncode == 2 and message in bad.stderr, (args, bad.stderr)


def test_through_the_durable_runtime_the_safe_fix_needs_no_approval(env: Env) -> None:
    from bastion.agents.runtime import get_agent_run, run_agent

    env.double.reset_in_s = 1
    env.double.throttle[f"/api/v1/users/{LOGIN}"] = 4
    rid = failed_run(env, "busy")
    tid = env.tenants["busy"]
    task = Task(agent="troubleshoot", objective="fix the run", input={"run": rid, "fix": True}, tenant_id=tid)
    result = run_agent(env.db, tid, "troubleshoot", task, actor="user:alice", wait_s=120)
    assert result.status == "succeeded", result.error
    assert result.model == "offline" and not result.approvals
    assert [p["tool"] for p in result.plan] == ["run_history", "connector_health", "retry_run"]
    out = result.output or {}
    assert out["cause"] == "rate_limit" and out["fix"]["applied"] is True
    new = service.wait_run(env.db, tid, out["fix"]["result"]["new_run_id"], timeout_s=60)
    assert new["retry_of"] == rid and new["status"] == "succeeded"
    stored = get_agent_run(env.db, tid, result.run_id)
    assert stored is not None and stored["status"] == "succeeded" and stored["actor"] == "user:alice"
