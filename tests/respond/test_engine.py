"""The engine on DBOS in this process (a real SQLite store and DBOS system database), with a local HTTP
server counting side effects: outputs, masking, retries, for_each, parallel, on_error, retry-from-failed
step, cancel, and an approval that resumes the run."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from dbos import DBOS

from bastion.connectors.policy import RESULTS
from bastion.connectors.registry import ActionContext, action
from bastion.model import Role
from bastion.respond import service
from bastion.respond.runtime import Executor
from bastion.store import Database
from bastion.store.workflows import WorkflowRepository, workflow_runs
from bastion.tenancy.connections import set_connection
from bastion.tenancy.secrets import set_secret
from bastion.tenancy.service import add_user, create_tenant
from tests.approvals.conftest import SIGNING_SECRET, SLACK_TOKEN, FakeSlack, fake_slack  # noqa: F401
from tests.approvals.test_approval_slack import ENDPOINT, click, signed
from tests.conftest import start_server
from tests.enrich.test_reputation import _vendor
from tests.intel.servers import http_server


class Counter(BaseHTTPRequestHandler):
    hits: list[str] = []
    keys: list[str] = []
    fail_first: dict[str, int] = {}

    def do_POST(self) -> None:
        Counter.hits.append(self.path)
        Counter.keys.append(self.headers.get("Idempotency-Key", ""))
        left = Counter.fail_first.get(self.path, 0)
        if left:
            Counter.fail_first[self.path] = left - 1
            self.send_response(503)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"ok": true}')

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp: Path = tmp_path_factory.mktemp("engine")
    server = ThreadingHTTPServer(("127.0.0.1", 0), Counter)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    db = Database(f"sqlite:///{tmp / 'bastion.db'}")
    db.migrate()
    tenant, _ = create_tenant(db, "acme")
    add_user(db, "acme", "alice", Role.APPROVER)
    set_secret(db, tenant.id, "api_token", "tok-SECRET-42", actor="test")
    set_connection(
        db,
        tenant.id,
        "counter",
        {"base_url": f"http://127.0.0.1:{server.server_address[1]}", "allow_private": True},
        actor="test",
    )
    executor = Executor(db)
    executor.launch()
    yield {"db": db, "tenant": tenant.id, "counter_url": f"http://127.0.0.1:{server.server_address[1]}"}
    executor.shutdown()
    server.shutdown()
    db.dispose()


def run(env: dict[str, Any], text: str, inputs: dict[str, Any] | None = None) -> dict[str, Any]:
    added = service.add_workflow(env["db"], env["tenant"], text, actor="test")
    rid = service.start_run(
        env["db"],
        env["tenant"],
        added["workflow_id"],
        None,
        inputs or {},
        trigger={"type": "manual"},
        actor="user:bob",
    )
    service.wait_run(env["db"], env["tenant"], rid, timeout_s=60)
    return service.run_detail(env["db"], env["tenant"], rid)


def test_run_records_steps_masks_secrets_and_passes_idempotency_keys(env: dict[str, Any]) -> None:
    Counter.hits, Counter.keys = [], []
    detail = run(
        env,
        """
id: basic
inputs: {host: {type: string}}
steps:
  - id: prep
    action: core.set
    with: {values: {host: "${{ inputs.host | lower }}"}}
  - id: call
    action: core.http_request
    connection: counter
    with:
      url: /isolate
      method: POST
      headers: {Authorization: "Bearer ${{ secrets.api_token }}"}
      json: {host: "${{ steps.prep.output.host }}"}
  - id: skipped
    action: core.log
    if: "${{ steps.prep.output.host == 'other' }}"
    with: {message: never}
outputs: {host: "${{ steps.prep.output.host }}", status: "${{ steps.call.output.status }}"}
""",
        {"host": "WS-01"},
    )
    assert detail["status"] == "succeeded", detail
    assert detail["outputs"] == {"host": "ws-01", "status": 200}
    steps = {s["key"]: s for s in detail["steps"]}
    assert steps["call"]["inputs"]["headers"]["Authorization"] == "Bearer ***"
    assert "tok-SECRET-42" not in str(detail)
    assert steps["skipped"]["status"] == "skipped"
    assert Counter.hits == ["/isolate"]
    assert Counter.keys == [f"{detail['run_id']}:call"]


def test_retry_with_backoff_then_success(env: dict[str, Any]) -> None:
    Counter.hits = []
    Counter.fail_first = {"/flaky": 2}
    detail = run(
        env,
        """
id: flaky
steps:
  - id: call
    action: core.http_request
    connection: counter
    retry: {max_attempts: 3, interval: 0.1, backoff: 1}
    with: {url: /flaky, method: POST}
""",
    )
    assert detail["status"] == "succeeded", detail
    assert detail["steps"][0]["attempts"] == 3
    assert Counter.hits == ["/flaky"] * 3


def test_for_each_parallel_and_on_error(env: dict[str, Any]) -> None:
    detail = run(
        env,
        """
id: fan
inputs: {ips: {type: array}}
steps:
  - id: each
    action: core.transform
    for_each: "${{ inputs.ips }}"
    concurrency: 2
    with: {value: "${{ index }}:${{ item | defang }}"}
  - id: both
    parallel:
      - - id: left
          action: core.set
          with: {values: {side: left}}
      - - id: right
          action: core.set
          with: {values: {side: right}}
  - id: broken
    action: core.fail
    on_error: continue
    with: {message: expected failure}
  - id: guarded
    action: core.fail
    on_error: {handler: recover}
    with: {message: handled}
handlers:
  - id: recover
    action: core.set
    with: {values: {recovered: true}}
outputs:
  each: "${{ steps.each.output }}"
  sides: "${{ [steps.left.output.side, steps.right.output.side] }}"
  recovered: "${{ steps.recover.output.recovered }}"
""",
        {"ips": ["1.2.3.4", "5.6.7.8", "9.9.9.9"]},
    )
    assert detail["status"] == "succeeded", detail
    assert detail["outputs"] == {
        "each": ["0:1[.]2[.]3[.]4", "1:5[.]6[.]7[.]8", "2:9[.]9[.]9[.]9"],
        "sides": ["left", "right"],
        "recovered": True,
    }
    keys = {s["key"]: s["status"] for s in detail["steps"]}
    assert keys["broken"] == "failed" and keys["each[2]"] == "succeeded"


def test_calls_through_a_rate_limited_connection_wait_for_their_window(env: dict[str, Any]) -> None:
    """Three concurrent items through a connection allowing one call a second: all succeed, spaced by
    the window, and the steps that waited say so in their logs."""
    Counter.hits = []
    counter = env["counter_url"]
    limited = {"base_url": counter, "allow_private": True, "rate_limit": {"limit": 1, "period_s": 1}}
    set_connection(env["db"], env["tenant"], "limited", limited, actor="test")
    detail = run(
        env,
        """
id: limited
steps:
  - id: each
    for_each: [a, b, c]
    concurrency: 3
    action: core.http_request
    connection: limited
    with: {url: "/limited/${{ item }}", method: POST}
""",
    )
    assert detail["status"] == "succeeded", detail
    assert sorted(Counter.hits) == ["/limited/a", "/limited/b", "/limited/c"]
    logs = [line for s in detail["steps"] for line in s.get("logs") or []]
    waits = [line for line in logs if "rate limit (1 per 1 s)" in line]
    assert len(waits) >= 2, logs  # two of the three found the window taken


def test_reputation_lookups_run_as_steps_and_a_repeat_is_answered_from_the_cache(env: dict[str, Any]) -> None:
    RESULTS.clear()
    with http_server(_vendor) as (base, rec):
        set_secret(env["db"], env["tenant"], "virustotal_api_key", "vt-key", actor="test")
        local = {"base_url": f"{base}/vt", "allow_private": True}
        set_connection(env["db"], env["tenant"], "virustotal", local, actor="test")
        detail = run(
            env,
            """
id: reputation
inputs: {ip: {type: string}}
steps:
  - id: vt
    action: virustotal.lookup
    with: {value: "${{ inputs.ip }}", kind: ip}
  - id: again
    action: virustotal.lookup
    with: {value: "${{ inputs.ip }}", kind: ip}
outputs: {malicious: "${{ steps.vt.output.malicious }}", score: "${{ steps.again.output.score }}"}
""",
            {"ip": "203.0.113.66"},
        )
    assert detail["status"] == "succeeded", detail
    assert detail["outputs"] == {"malicious": True, "score": 10}
    assert len(rec.requests) == 1 and rec.requests[0][2].get("x-apikey") == "vt-key"
    steps = {s["key"]: s for s in detail["steps"]}
    assert "virustotal.lookup: answered from the cache" in steps["again"]["logs"]
    assert "vt-key" not in str(detail)


def test_failed_run_retried_from_the_failed_step(env: dict[str, Any]) -> None:
    Counter.hits = []
    Counter.fail_first = {"/second": 1}
    detail = run(
        env,
        """
id: twostep
steps:
  - id: first
    action: core.http_request
    connection: counter
    with: {url: /first, method: POST}
  - id: second
    action: core.http_request
    connection: counter
    with: {url: /second, method: POST}
""",
    )
    assert detail["status"] == "failed"
    assert "second" in detail["error"]
    new_id = service.retry_run(env["db"], env["tenant"], detail["run_id"], actor="test")
    retried = service.wait_run(env["db"], env["tenant"], new_id, timeout_s=60)
    assert retried["status"] == "succeeded", retried
    assert retried["retry_of"] == detail["run_id"]
    assert Counter.hits == ["/first", "/second", "/second"]  # the first step did not run again
    with pytest.raises(service.RunStateError):
        service.retry_run(env["db"], env["tenant"], new_id, actor="test")


def test_bad_inputs_are_refused_before_anything_runs(env: dict[str, Any]) -> None:
    service.add_workflow(
        env["db"],
        env["tenant"],
        "id: typed\ninputs: {n: {type: integer}}\nsteps:\n"
        "  - {id: a, action: core.log, with: {message: x}}\n",
        actor="t",
    )
    with pytest.raises(ValueError, match="'n'"):
        service.start_run(env["db"], env["tenant"], "typed", None, {"n": "many"}, trigger={}, actor="t")
    with pytest.raises(ValueError, match="no input 'm'"):
        service.start_run(env["db"], env["tenant"], "typed", None, {"m": "1"}, trigger={}, actor="t")


def test_cancel_a_waiting_run(env: dict[str, Any]) -> None:
    service.add_workflow(
        env["db"],
        env["tenant"],
        """
id: slow
steps:
  - id: nap
    action: core.sleep
    with: {seconds: 600}
""",
        actor="t",
    )
    rid = service.start_run(env["db"], env["tenant"], "slow", None, {}, trigger={}, actor="t")
    result = service.cancel_run(env["db"], env["tenant"], rid, actor="t")
    assert result["status"] == "cancelled"
    assert service.run_detail(env["db"], env["tenant"], rid)["status"] == "cancelled"
    with pytest.raises(service.RunStateError):
        service.cancel_run(env["db"], env["tenant"], rid, actor="t")


def test_cancelling_a_run_that_waits_for_approval_closes_its_request(env: dict[str, Any]) -> None:
    from bastion.respond.approvals import list_approvals

    service.add_workflow(
        env["db"],
        env["tenant"],
        """
id: wait-then-cancel
steps:
  - id: act
    action: core.log
    approval: {roles: [approver]}
    with: {message: never}
""",
        actor="t",
    )
    rid = service.start_run(env["db"], env["tenant"], "wait-then-cancel", None, {}, trigger={}, actor="t")
    _wait_status(env, rid, "waiting_approval")
    service.cancel_run(env["db"], env["tenant"], rid, actor="t")
    mine = [a for a in list_approvals(env["db"], env["tenant"], status=None) if a.run_id == rid]
    assert [a.status for a in mine] == ["expired"]
    assert not [a for a in list_approvals(env["db"], env["tenant"]) if a.run_id == rid]
    # The closed request starts no continuation (nor does a worker's sweep, a heartbeat later), so nothing
    # acts for the cancelled run or overwrites its status.
    from dbos import DBOS

    from bastion.respond.parking import continuation_id

    threading.Event().wait(1.5)
    assert DBOS.get_workflow_status(continuation_id(mine[0].id)) is None
    assert service.run_detail(env["db"], env["tenant"], rid)["status"] == "cancelled"


def test_approval_parks_the_run_and_a_decision_resumes_it(env: dict[str, Any]) -> None:
    from bastion.respond.approvals import decide, list_approvals

    Counter.hits = []
    service.add_workflow(
        env["db"],
        env["tenant"],
        """
id: approve-me
steps:
  - id: act
    action: core.http_request
    connection: counter
    approval: {roles: [approver], quorum: 1}
    with: {url: /approved-action, method: POST}
""",
        actor="t",
    )
    rid = service.start_run(env["db"], env["tenant"], "approve-me", None, {}, trigger={}, actor="user:bob")
    parked = service.wait_run(env["db"], env["tenant"], rid, timeout_s=60)
    assert parked["status"] == "waiting_approval", parked
    assert Counter.hits == []
    pending = [a for a in list_approvals(env["db"], env["tenant"]) if a.run_id == rid]
    assert len(pending) == 1 and pending[0].action == "core.http_request"
    # Parked: the run's workflow ended at the gate, so no worker thread or queue slot waits with it.
    from dbos import DBOS

    status = ""
    for _ in range(300):
        status = DBOS.get_workflow_status(rid).status  # type: ignore[union-attr]
        if status != "PENDING":
            break
        threading.Event().wait(0.1)
    assert status == "SUCCESS"
    decide(
        env["db"], env["tenant"], pending[0].id, user="alice", decision="approve", comment="ok", channel="cli"
    )
    deadline_run = None
    for _ in range(600):
        deadline_run = service.run_detail(env["db"], env["tenant"], rid)
        if deadline_run["status"] == "succeeded":
            break
        threading.Event().wait(0.1)
    assert deadline_run is not None and deadline_run["status"] == "succeeded", deadline_run
    assert Counter.hits == ["/approved-action"]
    # The run's record says who decided, when, from where and why (not only the approvals table).
    gate = {s["key"]: s for s in deadline_run["steps"]}["act"]["approval"]
    assert gate["status"] == "approved" and gate["roles"] == ["approver"] and gate["quorum"] == 1
    assert gate["requested_by"] == "user:bob" and gate["resolved_at"] >= gate["requested_at"]
    [vote] = gate["decisions"]
    assert (vote["user"], vote["decision"], vote["channel"], vote["comment"]) == (
        "alice",
        "approve",
        "cli",
        "ok",
    )


def test_a_run_parked_twice_continues_without_repeating_a_finished_step(env: dict[str, Any]) -> None:
    from bastion.respond.approvals import decide, list_approvals

    Counter.hits = []
    service.add_workflow(
        env["db"],
        env["tenant"],
        """
id: two-gates
steps:
  - id: first
    action: core.http_request
    connection: counter
    with: {url: /first, method: POST}
  - id: targets
    for_each: [a, b]
    concurrency: 2
    action: core.http_request
    connection: counter
    with: {url: "/item-${{ item }}", method: POST}
  - id: gate1
    action: core.http_request
    connection: counter
    approval: {roles: [approver]}
    with: {url: /gate1, method: POST}
  - id: middle
    action: core.set
    with: {values: {seen: "${{ steps.first.output.status }}"}}
  - id: gate2
    action: core.http_request
    connection: counter
    approval: {roles: [approver]}
    with: {url: /gate2, method: POST}
outputs:
  first: "${{ steps.first.output.status }}"
  targets: "${{ steps.targets.output | length }}"
  middle: "${{ steps.middle.output.seen }}"
""",
        actor="t",
    )
    rid = service.start_run(env["db"], env["tenant"], "two-gates", None, {}, trigger={}, actor="user:bob")
    for gate in ("gate1", "gate2"):
        pending: list[Any] = []
        for _ in range(600):
            pending = [a for a in list_approvals(env["db"], env["tenant"]) if a.run_id == rid]
            if pending:
                break
            threading.Event().wait(0.1)
        assert [a.step_id for a in pending] == [gate]
        db, tenant = env["db"], env["tenant"]
        decide(db, tenant, pending[0].id, user="alice", decision="approve", comment=None, channel="web")
    detail = _wait_status(env, rid, "succeeded")
    # Each side effect happened once, across the original run and its two continuations (which start the
    # concurrent items' child workflows again under the same ids and get their recorded results).
    assert Counter.hits[0] == "/first" and Counter.hits[3:] == ["/gate1", "/gate2"]
    assert sorted(Counter.hits[1:3]) == ["/item-a", "/item-b"]
    assert detail["outputs"] == {"first": 200, "targets": 2, "middle": 200}
    first = next(s for s in detail["steps"] if s["key"] == "first")
    assert first["attempts"] == 1 and first["status"] == "succeeded"


def _wait_status(env: dict[str, Any], rid: str, wanted: str) -> dict[str, Any]:
    detail: dict[str, Any] = {}
    for _ in range(600):
        detail = service.run_detail(env["db"], env["tenant"], rid)
        if detail["status"] == wanted:
            return detail
        threading.Event().wait(0.1)
    raise AssertionError(f"run {rid} is {detail.get('status')}, not {wanted}")


def test_decisions_reach_steps_waiting_in_concurrent_items_and_parallel_branches(env: dict[str, Any]) -> None:
    """Such steps park in child workflows: a decision must wake the child, not only the run."""
    from bastion.respond.approvals import decide, list_approvals

    Counter.hits = []
    service.add_workflow(
        env["db"],
        env["tenant"],
        """
id: approve-children
steps:
  - id: each
    for_each: ["/item-a", "/item-b"]
    concurrency: 2
    action: core.http_request
    connection: counter
    approval: {roles: [approver]}
    with: {url: "${{ item }}", method: POST}
  - id: branches
    parallel:
      - - id: left
          action: core.http_request
          connection: counter
          approval: {roles: [approver]}
          with: {url: /branch-left, method: POST}
""",
        actor="t",
    )
    rid = service.start_run(
        env["db"], env["tenant"], "approve-children", None, {}, trigger={}, actor="user:bob"
    )
    decided: set[str] = set()
    for _ in range(600):
        for a in list_approvals(env["db"], env["tenant"]):
            if a.run_id == rid and a.id not in decided and a.status == "pending":
                decide(
                    env["db"],
                    env["tenant"],
                    a.id,
                    user="alice",
                    decision="approve",
                    comment="",
                    channel="cli",
                )
                decided.add(a.id)
        if service.run_detail(env["db"], env["tenant"], rid)["status"] == "succeeded":
            break
        threading.Event().wait(0.1)
    assert service.run_detail(env["db"], env["tenant"], rid)["status"] == "succeeded"
    assert len(decided) == 3
    assert sorted(Counter.hits) == ["/branch-left", "/item-a", "/item-b"]


def test_approval_timeout_denies_and_the_run_fails(env: dict[str, Any]) -> None:
    Counter.hits = []
    service.add_workflow(
        env["db"],
        env["tenant"],
        """
id: times-out
steps:
  - id: act
    action: core.http_request
    connection: counter
    approval: {roles: [approver], timeout: 1s, on_timeout: deny}
    with: {url: /never, method: POST}
""",
        actor="t",
    )
    rid = service.start_run(env["db"], env["tenant"], "times-out", None, {}, trigger={}, actor="user:bob")
    detail = _wait_status(env, rid, "failed")
    assert "approval" in detail["error"]
    assert next(s for s in detail["steps"] if s["key"] == "act")["status"] == "denied"
    assert Counter.hits == []


def test_high_impact_action_needs_approval_by_policy_and_lost_messages_are_rechecked(
    env: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from bastion.respond.approvals import decide, list_approvals, set_resolution_listener
    from bastion.respond.runtime import install_delivery

    @action("testns.wipe", impact="high")
    async def wipe(host: str, *, ctx: ActionContext) -> dict[str, str]:
        """Wipe a host (test action).

        Args:
            host: the host
        """
        return {"wiped": host}

    monkeypatch.setenv("BASTION_APPROVAL_RECHECK_S", "1")
    service.add_workflow(
        env["db"],
        env["tenant"],
        """
id: policy-gated
steps:
  - id: wipe
    action: testns.wipe
    with: {host: ws-9}
outputs: {result: "${{ steps.wipe.output.wiped }}"}
""",
        actor="t",
    )
    rid = service.start_run(env["db"], env["tenant"], "policy-gated", None, {}, trigger={}, actor="user:bob")
    _wait_status(env, rid, "waiting_approval")
    pending = [a for a in list_approvals(env["db"], env["tenant"]) if a.run_id == rid]
    assert len(pending) == 1 and pending[0].roles == ["approver"]
    set_resolution_listener(None)  # the decision's message is lost: the run must find it anyway
    try:
        decide(
            env["db"],
            env["tenant"],
            pending[0].id,
            user="alice",
            decision="approve",
            comment=None,
            channel="cli",
        )
        detail = _wait_status(env, rid, "succeeded")
    finally:
        install_delivery(env["db"])
    assert detail["outputs"] == {"result": "ws-9"}


def test_slack_approval_resumes_the_run(env: dict[str, Any], fake_slack: FakeSlack) -> None:  # noqa: F811
    """Issue 3: the run parks, the request goes to Slack (a local server speaking the Web API), a
    correctly signed interaction to Bastion's endpoint resumes it; a bad signature is refused."""
    from bastion.respond.approvals import list_approvals, map_slack_user
    from bastion.respond.approvals.service import configure

    db = env["db"]
    Counter.hits = []
    running, srv, thread = start_server(
        db,
        approval_link_key="k",
        slack_bot_token=SLACK_TOKEN,
        slack_signing_secret=SIGNING_SECRET,
        slack_api_url=fake_slack.url,
        slack_channel="#soc-approvals",
    )
    configure(running.settings)  # what `bastion up` does for the approvals its engine requests
    try:
        service.add_workflow(
            db,
            env["tenant"],
            """
id: slack-approve-me
steps:
  - id: act
    action: core.http_request
    connection: counter
    approval: {roles: [approver], channels: [slack]}
    with: {url: /slack-approved, method: POST}
""",
            actor="t",
        )
        rid = service.start_run(db, env["tenant"], "slack-approve-me", None, {}, trigger={}, actor="user:bob")
        _wait_status(env, rid, "waiting_approval")
        [pending] = [a for a in list_approvals(db, env["tenant"]) if a.run_id == rid]
        assert [p["channel"] for p in fake_slack.called("chat.postMessage")] == ["#soc-approvals"]
        map_slack_user(db, env["tenant"], "U0ALICE", "alice", actor="test")
        body = click(fake_slack, pending.id, "U0ALICE")
        with httpx.Client(base_url=running.url, timeout=30) as c:
            forged = c.post(ENDPOINT, content=body, headers=signed(body, secret="not-the-secret"))
            assert forged.status_code == 401
            assert service.run_detail(db, env["tenant"], rid)["status"] == "waiting_approval"
            ok = c.post(ENDPOINT, content=body, headers=signed(body))
            assert ok.status_code == 200 and ok.json()["status"] == "approved"
        _wait_status(env, rid, "succeeded")
        assert Counter.hits == ["/slack-approved"]
    finally:
        configure(None)
        srv.should_exit = True
        thread.join(10)
        running.queue.close()


def test_uses_runs_a_pinned_sub_workflow_and_its_failure_fails_the_step(env: dict[str, Any]) -> None:
    """``uses: id@N`` runs that stored version as a child run: its outputs are the step's output, the
    child records its parent, and a failing child fails the calling step with the child's error."""
    db, tid = env["db"], env["tenant"]
    child = "id: {wid}\ninputs: {{name: {{type: string}}}}\nsteps:\n{steps}outputs: {{greeting: {out}}}\n"
    v1 = service.add_workflow(
        db,
        tid,
        child.format(
            wid="greet",
            steps="  - {id: say, action: core.set, with: {values: {g: 'v1 ${{ inputs.name }}'}}}\n",
            out="'${{ steps.say.output.g }}'",
        ),
        actor="t",
    )
    service.add_workflow(
        db,
        tid,
        child.format(
            wid="greet",
            steps="  - {id: say, action: core.fail, with: {message: 'v2 is broken'}}\n",
            out="'never'",
        ),
        actor="t",
    )
    parent = """
id: caller{n}
steps:
  - id: sub
    uses: greet{pin}
    with: {{name: "${{{{ 'World' }}}}"}}
outputs: {{said: "${{{{ steps.sub.output.greeting }}}}"}}
"""
    pinned = run(env, parent.format(n=1, pin=f"@{v1['version']}"))
    assert pinned["status"] == "succeeded", pinned
    assert pinned["outputs"] == {"said": "v1 World"}
    with db.read() as conn:
        runs = WorkflowRepository(conn, tid).list_runs(workflow_id="greet")
    children = [r for r in runs if r.get("parent_run_id") == pinned["run_id"]]
    assert len(children) == 1 and children[0]["workflow_id"] == "greet"
    assert children[0]["version"] == v1["version"] and children[0]["status"] == "succeeded"

    latest = run(env, parent.format(n=2, pin=""))  # no pin: the latest version, which fails
    assert latest["status"] == "failed"
    assert "sub-workflow greet" in latest["error"] and "v2 is broken" in latest["error"]


@action("enginetest.huge_number", impact="read")
async def _huge_number(*, ctx: ActionContext) -> dict[str, Any]:
    """Returns a number JSON cannot hold in 64 bits: the store refuses to record it."""
    return {"n": 2**70}


def test_a_store_error_while_recording_fails_the_run_instead_of_leaving_it_running(
    env: dict[str, Any],
) -> None:
    detail = run(env, "id: unstorable\nsteps:\n  - {id: big, action: enginetest.huge_number}\n")
    assert detail["status"] == "failed", detail
    assert detail["error"].startswith("internal error: ")
    # outputs the store cannot hold, after every step succeeded: the run still ends, failed
    detail = run(env, "id: unstorable-outputs\nsteps:\n  - {id: s, action: core.log, with: {message: m}}\n"
                 "outputs: {n: '${{ 2 ** 70 }}'}\n")  # fmt: skip
    assert detail["status"] == "failed", detail
    assert detail["error"].startswith("internal error: outputs not recorded: ")


def test_a_run_sees_the_tenant_as_created_and_checkpoints_only_its_actions(env: dict[str, Any]) -> None:
    """``tenant`` (name, connection names) is fixed when the run is created, so the engine reads the plan
    without a checkpoint and a replay sees what the first execution saw: a connection added after the
    start does not show. The final status is not a checkpoint either: DBOS records the action steps only.
    A run created before runs recorded their tenant (no ``tenant_context``) loads its plan in a
    checkpointed step, as it did, and sees the tenant as it is when it runs."""
    db = env["db"]
    tenant, _ = create_tenant(db, "snapshot")
    set_connection(db, tenant.id, "edr", {"base_url": "https://edr.example"}, actor="test")
    service.add_workflow(
        db,
        tenant.id,
        "id: seen\nsteps:\n  - {id: t, action: core.set, with: {values: {later: "
        "\"${{ 'okta' in tenant.connections }}\", edr: \"${{ 'edr' in tenant.connections }}\", "
        'name: "${{ tenant.name }}"}}}\noutputs: {seen: "${{ steps.t.output }}"}\n',
        actor="test",
    )

    def start() -> str:
        return service.start_run(
            db, tenant.id, "seen", None, {}, trigger={"type": "manual"}, actor="test", enqueue=False
        )

    recorded, legacy = start(), start()
    with db.write() as conn:
        conn.execute(workflow_runs.update().where(workflow_runs.c.id == legacy).values(tenant_context=None))
    set_connection(db, tenant.id, "okta", {"base_url": "https://okta.example"}, actor="test")
    for rid in (recorded, legacy):
        assert service.run_inline(tenant.id, rid).get_result()["status"] == "succeeded"

    seen = service.run_detail(db, tenant.id, recorded)["outputs"]["seen"]
    assert seen == {"later": False, "edr": True, "name": "snapshot"}
    assert [s["function_name"] for s in DBOS.list_workflow_steps(recorded)] == ["bastion.action"]

    seen = service.run_detail(db, tenant.id, legacy)["outputs"]["seen"]
    assert seen == {"later": True, "edr": True, "name": "snapshot"}
    assert [s["function_name"] for s in DBOS.list_workflow_steps(legacy)] == [
        "bastion.load_run",
        "bastion.action",
    ]


def test_a_retry_sees_the_trigger_of_the_run_it_retries(env: dict[str, Any]) -> None:
    """A webhook run's steps read ``trigger.payload``: its retry must see the same payload."""
    Counter.hits, Counter.fail_first = [], {"/retry-trigger/ws-9": 1}
    service.add_workflow(
        env["db"],
        env["tenant"],
        """
id: from-hook
steps:
  - id: host
    action: core.set
    with: {values: {name: "${{ trigger.payload.host }}"}}
  - id: act
    action: core.http_request
    connection: counter
    with: {url: "/retry-trigger/${{ steps.host.output.name }}", method: POST}
outputs: {host: "${{ steps.host.output.name }}"}
""",
        actor="t",
    )
    hook = {"type": "webhook", "payload": {"host": "ws-9"}}
    rid = service.start_run(env["db"], env["tenant"], "from-hook", None, {}, trigger=hook, actor="hook")
    assert service.wait_run(env["db"], env["tenant"], rid, timeout_s=60)["status"] == "failed"
    new_id = service.retry_run(env["db"], env["tenant"], rid, actor="user:carol")
    retried = service.wait_run(env["db"], env["tenant"], new_id, timeout_s=60)
    assert retried["status"] == "succeeded", retried
    assert retried["outputs"] == {"host": "ws-9"}
    assert retried["trigger"]["payload"] == {"host": "ws-9"} and retried["trigger"]["retry_of"] == rid
    assert retried["trigger"]["requested_by"] == "user:carol"
    assert Counter.hits == ["/retry-trigger/ws-9", "/retry-trigger/ws-9"]


def test_an_error_handler_with_concurrent_items_runs_its_own_items(env: dict[str, Any]) -> None:
    Counter.hits = []
    detail = run(
        env,
        """
id: handled-fanout
steps:
  - id: main
    action: core.fail
    on_error: {handler: notify}
    with: {message: broken}
handlers:
  - id: notify
    action: core.http_request
    connection: counter
    for_each: [a, b, c]
    concurrency: 3
    with: {url: "/handler/${{ item }}", method: POST}
""",
    )
    assert detail["status"] == "succeeded", detail
    assert sorted(Counter.hits) == ["/handler/a", "/handler/b", "/handler/c"]


_ONCE = """
id: {wid}
steps:
  - id: nap
    action: core.sleep
    with: {{seconds: {nap}}}
  - id: effect
    action: core.http_request
    connection: counter
    with: {{url: /{wid}, method: POST}}
outputs: {{done: true}}
"""


def _children(env: dict[str, Any], parent: str) -> list[dict[str, Any]]:
    with env["db"].read() as conn:
        runs = WorkflowRepository(conn, env["tenant"]).list_runs(limit=1000)
    return [r for r in runs if r.get("parent_run_id") == parent]


def test_cancelling_a_run_stops_its_concurrent_items_and_their_sub_workflow_runs(env: dict[str, Any]) -> None:
    Counter.hits = []
    service.add_workflow(env["db"], env["tenant"], _ONCE.format(wid="slow-child", nap=3), actor="t")
    service.add_workflow(
        env["db"],
        env["tenant"],
        """
id: fan-of-children
steps:
  - id: each
    for_each: [a, b]
    concurrency: 2
    uses: slow-child
""",
        actor="t",
    )
    rid = service.start_run(env["db"], env["tenant"], "fan-of-children", None, {}, trigger={}, actor="t")
    for _ in range(300):
        if len(_children(env, rid)) == 2:
            break
        threading.Event().wait(0.05)
    assert len(_children(env, rid)) == 2
    service.cancel_run(env["db"], env["tenant"], rid, actor="t")
    threading.Event().wait(4.5)  # past the children's nap: a child still running would now call out
    assert "/slow-child" not in Counter.hits
    assert {c["status"] for c in _children(env, rid)} == {"cancelled"}
    assert service.run_detail(env["db"], env["tenant"], rid)["status"] == "cancelled"
    for i in range(2):
        status = DBOS.get_workflow_status(f"{rid}:each[{i}]")
        assert status is not None and status.status == "CANCELLED", status


def test_a_retry_reuses_a_sub_workflow_that_succeeded(env: dict[str, Any]) -> None:
    Counter.hits, Counter.fail_first = [], {"/after-child": 1}
    service.add_workflow(env["db"], env["tenant"], _ONCE.format(wid="child-once", nap=0), actor="t")
    detail = run(
        env,
        """
id: child-then-fail
steps:
  - id: sub
    uses: child-once
  - id: after
    action: core.http_request
    connection: counter
    with: {url: /after-child, method: POST}
""",
    )
    assert detail["status"] == "failed", detail
    sub = {s["key"]: s for s in detail["steps"]}["sub"]
    assert sub["action"] == "uses:child-once" and sub["status"] == "succeeded"
    assert sub["output"] == {"done": True}
    new_id = service.retry_run(env["db"], env["tenant"], detail["run_id"], actor="t")
    retried = service.wait_run(env["db"], env["tenant"], new_id, timeout_s=60)
    assert retried["status"] == "succeeded", retried
    assert Counter.hits == ["/child-once", "/after-child", "/after-child"]  # the child ran once
    steps = service.run_detail(env["db"], env["tenant"], new_id)["steps"]
    reused = {s["key"]: s for s in steps}["sub"]
    assert reused["logs"] == ["output reused from the run this one retries"]


def test_an_approval_on_a_uses_step_is_asked_before_the_sub_workflow_runs(env: dict[str, Any]) -> None:
    from bastion.respond.approvals import decide, list_approvals

    Counter.hits = []
    service.add_workflow(env["db"], env["tenant"], _ONCE.format(wid="gated-child", nap=0), actor="t")
    service.add_workflow(
        env["db"],
        env["tenant"],
        """
id: gated-parent
steps:
  - id: sub
    uses: gated-child
    approval: {roles: [approver]}
""",
        actor="t",
    )
    rid = service.start_run(env["db"], env["tenant"], "gated-parent", None, {}, trigger={}, actor="user:bob")
    _wait_status(env, rid, "waiting_approval")
    assert Counter.hits == [] and _children(env, rid) == []
    pending = [a for a in list_approvals(env["db"], env["tenant"]) if a.run_id == rid]
    assert len(pending) == 1 and pending[0].action == "uses:gated-child"
    decide(
        env["db"], env["tenant"], pending[0].id, user="alice", decision="approve", comment="go", channel="cli"
    )
    done = _wait_status(env, rid, "succeeded")  # run_detail
    assert Counter.hits == ["/gated-child"]
    assert {s["key"]: s for s in done["steps"]}["sub"]["status"] == "succeeded"
