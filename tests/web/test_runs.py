"""The console's run pages against a real server, the real engine and a real chromium: per-step status,
timing, inputs and outputs with secrets masked, errors, Cancel, "Retry from the failed step" (the steps
that succeeded are reused), live status from the event stream, roles and CSRF on every POST."""

from __future__ import annotations

import re
import time
from collections.abc import Callable

import pytest
from playwright.sync_api import Page, expect

from bastion.respond.approvals.service import decide, list_approvals
from bastion.respond.service import add_workflow, start_run, wait_run
from bastion.store.workflows import WorkflowRepository
from bastion.tenancy.secrets import set_secret
from tests.web.conftest import PHONE, Console, expect_run_status, off_loop, shot, sign_in

SECRET = "s3cr3t-console-token-value"

NEEDS_SECRET = """\
id: console-needs-secret
title: Needs a secret
inputs:
  who: {type: string}
steps:
  - id: first
    action: core.set
    with: {values: {greeting: "hello ${{ inputs.who }}"}}
  - id: token
    action: core.log
    with: {message: "using ${{ secrets.console_token }}"}
  - id: last
    action: core.log
    with: {message: "${{ steps.first.output.greeting }} after ${{ steps.token.output.level }}"}
outputs:
  said: "${{ steps.token.output.message }}"
"""

GATED = """\
id: console-gated
title: Gated
steps:
  - id: ask
    action: core.log
    approval: {roles: [approver]}
    with: {message: approved}
  - id: after
    action: core.log
    with: {message: done}
"""


@pytest.fixture(scope="module")
def flows(console: Console) -> None:
    for text in (NEEDS_SECRET, GATED):
        add_workflow(console.db, console.tenant_id, text, actor="user:engineer")


def _run_id(location: str) -> str:
    m = re.fullmatch(r"/runs/([0-9a-f]{32})", location)
    assert m, location
    return m.group(1)


def _steps(console: Console, run_id: str) -> dict[str, dict[str, object]]:
    with console.db.read() as conn:
        return {s["key"]: s for s in WorkflowRepository(conn, console.tenant_id).steps(run_id)}


def _pending_for(console: Console, run_id: str) -> str:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = [a for a in list_approvals(console.db, console.tenant_id) if a.run_id == run_id]
        if found:
            return found[0].id
        time.sleep(0.1)
    raise AssertionError(f"run {run_id} never asked for its approval")


def test_failed_run_is_retried_from_the_failed_step(console: Console, flows: None) -> None:
    analyst, viewer = console.client("analyst"), console.client("viewer")
    started = analyst.post_form("/workflows/console-needs-secret/run", {"in.who": "Ada"})
    assert started.status_code == 303
    failed_id = _run_id(started.headers["location"])
    assert wait_run(console.db, console.tenant_id, failed_id, timeout_s=60)["status"] == "failed"

    page = analyst.get(f"/runs/{failed_id}").text
    assert 'data-status="failed"' in page
    assert re.search(r'<tr data-step="first" data-status="succeeded"', page)
    assert re.search(r'<tr data-step="token" data-status="failed"', page)
    assert "console_token" in page  # the step's error names the missing secret
    assert 'id="retry-run"' in page and 'id="cancel-run"' not in page
    assert 'id="retry-run"' not in viewer.get(f"/runs/{failed_id}").text

    # Forged: a viewer may not retry; without the CSRF token nobody may.
    assert viewer.post_form(f"/runs/{failed_id}/retry", {}).status_code == 403
    assert analyst.post_form(f"/runs/{failed_id}/retry", {}, csrf=False).status_code == 403
    with console.db.read() as conn:
        runs = WorkflowRepository(conn, console.tenant_id).list_runs(workflow_id="console-needs-secret")
    assert len(runs) == 1  # nothing was retried

    set_secret(console.db, console.tenant_id, "console_token", SECRET, actor="user:admin")
    retried = analyst.post_form(f"/runs/{failed_id}/retry", {})
    assert retried.status_code == 303
    retry_id = _run_id(retried.headers["location"])
    done = wait_run(console.db, console.tenant_id, retry_id, timeout_s=60)
    assert done["status"] == "succeeded" and done["retry_of"] == failed_id
    steps = _steps(console, retry_id)
    assert steps["first"]["attempts"] == 0  # reused: the retry resumed at the failed step
    assert steps["token"]["attempts"] == 1 and steps["token"]["status"] == "succeeded"

    page = analyst.get(f"/runs/{retry_id}").text
    assert 'data-status="succeeded"' in page
    assert f'href="/runs/{failed_id}"' in page  # "retry of"
    assert "reused" in page
    assert SECRET not in page and "***" in page  # rendered inputs and outputs, masked
    assert f'href="/runs/{retry_id}"' in analyst.get(f"/runs/{failed_id}").text  # "retried as"
    # A finished run can no longer be cancelled or retried.
    assert analyst.post_form(f"/runs/{retry_id}/retry", {}).status_code == 303
    assert "only failed or cancelled runs" in analyst.get(f"/runs/{retry_id}").text


def test_cancel_a_waiting_run(console: Console, flows: None) -> None:
    analyst, viewer = console.client("analyst"), console.client("viewer")
    started = analyst.post_form("/workflows/console-gated/run", {})
    assert started.status_code == 303
    run_id = _run_id(started.headers["location"])
    _pending_for(console, run_id)
    page = analyst.get(f"/runs/{run_id}").text
    assert 'data-status="waiting_approval"' in page and 'id="cancel-run"' in page
    assert 'id="cancel-run"' not in viewer.get(f"/runs/{run_id}").text
    assert viewer.post_form(f"/runs/{run_id}/cancel", {}).status_code == 403
    assert analyst.post_form(f"/runs/{run_id}/cancel", {}, csrf=False).status_code == 403
    assert wait_run(console.db, console.tenant_id, run_id, timeout_s=0.5)["status"] == "waiting_approval"

    cancelled = analyst.post_form(f"/runs/{run_id}/cancel", {})
    assert cancelled.status_code == 303 and cancelled.headers["location"] == f"/runs/{run_id}"
    assert wait_run(console.db, console.tenant_id, run_id, timeout_s=10)["status"] == "cancelled"
    assert [a for a in list_approvals(console.db, console.tenant_id) if a.run_id == run_id] == []
    page = analyst.get(f"/runs/{run_id}").text
    assert 'data-status="cancelled"' in page and "cancelled by user:analyst" in page
    assert 'id="cancel-run"' not in page and 'id="retry-run"' in page
    listing = viewer.get("/runs?status=cancelled").text
    assert f'data-run="{run_id}"' in listing
    assert f'data-run="{run_id}"' not in viewer.get("/runs?status=succeeded").text
    assert analyst.get("/runs/0123456789abcdef0123456789abcdef").status_code == 404


def test_run_page_follows_the_run_live(console: Console, flows: None, new_page: Callable[..., Page]) -> None:
    run_id = off_loop(
        start_run,
        console.db,
        console.tenant_id,
        "console-gated",
        None,
        {},
        trigger={"type": "test"},
        actor="user:analyst",
    )
    approval_id = _pending_for(console, run_id)
    page = new_page()
    sign_in(page, console, "analyst", next=f"/runs/{run_id}")
    expect(page.locator("#run")).to_have_attribute("data-status", "waiting_approval")
    expect(page.locator('#run-graph g[data-node="ask"]')).to_have_attribute("data-approval", "step")
    expect(page.locator("body")).to_have_attribute("data-stream", "on")
    shot(page, "run-waiting")
    # Decided elsewhere (as from Slack or the CLI): the page follows without a reload.
    off_loop(
        decide,
        console.db,
        console.tenant_id,
        approval_id,
        user="approver",
        decision="approve",
        comment=None,
        channel="web",
    )
    expect_run_status(page, console, "succeeded")
    assert int(page.locator("body").get_attribute("data-refreshes") or "0") >= 1
    expect(page.locator('#run-steps tr[data-step="after"]')).to_have_attribute("data-status", "succeeded")
    expect(page.locator('#run-graph g[data-node="ask"]')).to_have_attribute("data-status", "succeeded")
    page.goto(f"{console.url}/runs")
    expect(page.locator(f'tr[data-run="{run_id}"]')).to_be_visible()
    shot(page, "runs")

    phone = new_page(PHONE)
    sign_in(phone, console, "viewer", next=f"/runs/{run_id}")
    expect(phone.locator("#run")).to_have_attribute("data-status", "succeeded")
    expect(phone.locator("#retry-run")).to_have_count(0)
    shot(phone, "run")
    phone.goto(f"{console.url}/runs")
    expect(phone.locator(f'tr[data-run="{run_id}"]')).to_be_visible()
    shot(phone, "runs")
