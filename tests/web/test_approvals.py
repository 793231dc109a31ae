"""The approvals inbox in a real browser: an approver approves a workflow step with one click and the
run (executed by the engine's Executor in the server process) finishes, seen live on the case's
timeline; a viewer gets no buttons and a forged POST is refused; a decision made in another process
(the real ``bastion approve`` CLI) shows up in an open inbox without a reload."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from playwright.sync_api import Page, expect

from bastion.respond import service
from bastion.respond.approvals import get_approval, list_approvals
from tests.conftest import run_cli
from tests.web.conftest import PHONE, Console, off_loop, shot, sign_in

WORKFLOW = """
id: web-contain
title: Contain a host (console test)
inputs:
  case_id: {type: string}
  host: {type: string, default: ws-0142}
steps:
  - id: contain
    action: core.log
    approval: {roles: [approver], quorum: 1}
    with: {message: "contain ${{ inputs.host }}"}
"""


def _start(console: Console) -> tuple[str, str]:
    """Start the workflow on the demo case; returns (run id, approval id) once the run waits."""
    service.add_workflow(console.db, console.tenant_id, WORKFLOW, actor="user:analyst")
    run_id = off_loop(
        service.start_run,
        console.db,
        console.tenant_id,
        "web-contain",
        None,
        {"case_id": console.case_id},
        trigger={"type": "manual"},
        actor="user:analyst",
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        mine = [a for a in list_approvals(console.db, console.tenant_id) if a.run_id == run_id]
        if mine:
            return run_id, mine[0].id
        time.sleep(0.1)
    raise AssertionError(f"run {run_id} asked for no approval")


def _run_status(console: Console, run_id: str, wanted: str) -> dict[str, Any]:
    detail: dict[str, Any] = {}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        detail = service.run_detail(console.db, console.tenant_id, run_id)
        if detail["status"] == wanted:
            return detail
        time.sleep(0.1)
    raise AssertionError(f"run {run_id} is {detail.get('status')}, not {wanted}")


def test_approve_with_one_click_and_watch_the_run_finish(
    console: Console, new_page: Callable[..., Page]
) -> None:
    run_id, approval_id = _start(console)
    watcher = new_page()  # the case page stays open: the run's steps arrive on its timeline live
    sign_in(watcher, console, "analyst", next=f"/cases/{console.case_id}")
    expect(watcher.locator("#case-timeline")).to_contain_text("Approval requested for core.log")
    expect(watcher.locator("body")).to_have_attribute("data-stream", "on")

    page = new_page()
    sign_in(page, console, "approver", next="/approvals")
    card = page.locator(f'#approvals-inbox article[data-approval="{approval_id}"]')
    expect(card).to_be_visible()
    expect(card.locator(".approval-facts")).to_contain_text("core.log")  # what will happen
    expect(card.locator(".approval-facts")).to_contain_text("user:analyst")  # who asked
    shot(page, "approvals")
    card.locator("input[name=comment]").fill("go ahead")
    with page.expect_navigation():
        card.locator("button[value=approve]").click()
    expect(page.locator(".flash-ok")).to_contain_text("Approved")
    expect(page.locator(f'article[data-approval="{approval_id}"]')).to_have_count(0)
    expect(page.locator("#approvals-recent")).to_contain_text("approver (approve via web)")

    detail = _run_status(console, run_id, "succeeded")
    assert [s["status"] for s in detail["steps"] if s["key"] == "contain"] == ["succeeded"]
    decided = get_approval(console.db, console.tenant_id, approval_id)
    assert decided.status == "approved"
    assert [(d.user, d.channel, d.comment) for d in decided.decisions] == [("approver", "web", "go ahead")]
    # the case page, never reloaded, shows the decision and the finished step
    expect(watcher.locator("#case-timeline")).to_contain_text(
        "approver approved core.log (via web): go ahead"
    )
    expect(watcher.locator("#case-timeline")).to_contain_text(
        "web-contain step contain (core.log): succeeded"
    )


def test_a_viewer_cannot_approve_from_the_page_or_by_a_forged_post(console: Console, page: Page) -> None:
    _, approval_id = _start(console)
    sign_in(page, console, "viewer", next="/approvals")
    card = page.locator(f'article[data-approval="{approval_id}"]')
    expect(card).to_be_visible()  # the viewer may see it...
    expect(card.locator("button")).to_have_count(0)  # ...but gets no approve or deny button
    expect(page.locator("#nothing-for-you")).to_be_visible()
    viewer = console.client("viewer")
    forged = viewer.post_form(
        f"/approvals/{approval_id}/decide", {"decision": "approve", "comment": "forged"}
    )
    assert forged.status_code == 403 and "needs one of: approver" in forged.text
    # an analyst is not an approver either (approving is a separate power)
    analyst = console.client("analyst")
    assert analyst.post_form(f"/approvals/{approval_id}/decide", {"decision": "approve"}).status_code == 403
    still = get_approval(console.db, console.tenant_id, approval_id)
    assert still.status == "pending" and still.decisions == []


def test_a_decision_made_elsewhere_appears_live(console: Console, new_page: Callable[..., Page]) -> None:
    _, approval_id = _start(console)
    page = new_page(PHONE)
    sign_in(page, console, "approver", next="/approvals")
    card = page.locator(f'#approvals-inbox article[data-approval="{approval_id}"]')
    expect(card.locator("button[value=approve]")).to_be_visible()
    expect(page.locator("body")).to_have_attribute("data-stream", "on")
    shot(page, "approvals")
    # admin denies from the command line: another process, the same store
    run_cli(
        "deny",
        approval_id,
        "--tenant",
        "demo",
        "--as",
        "admin",
        "--comment",
        "not now",
        db_url=console.db.url,
        check=True,
    )
    expect(card).to_have_count(0, timeout=20_000)
    expect(page.locator("#approvals-recent")).to_contain_text("admin (deny via cli)")
