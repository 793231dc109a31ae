"""The agents page in a real browser: an objective typed in the box runs the ``objective`` agent through
the agent runtime (offline reasoner, the engine's DBOS), and its page shows the plan and the approvals its
high-impact steps wait for; viewers see the runs but cannot start one."""

from __future__ import annotations

from collections.abc import Callable

from playwright.sync_api import Page, expect

from bastion.agents.runtime import get_agent_run
from bastion.respond.approvals.service import decide
from tests.web.conftest import PHONE, Console, off_loop, shot, sign_in

OBJECTIVE = "block ip 203.0.113.7 and find related alerts"


def test_an_objective_runs_and_shows_its_plan_and_approvals(console: Console, page: Page) -> None:
    sign_in(page, console, "analyst")
    page.goto(f"{console.url}/agents")
    page.fill("#objective", OBJECTIVE)
    with page.expect_navigation(timeout=60_000):
        page.click("#objective-form button[type=submit]")
    assert "/agents/runs/" in page.url
    run_id = page.url.rsplit("/", 1)[1]
    run = get_agent_run(console.db, console.tenant_id, run_id)
    assert run is not None and run["objective"] == OBJECTIVE and run["actor"] == "user:analyst"
    assert run["agent"] == "objective" and run["status"] == "waiting_approval"
    expect(page.locator("h1")).to_have_text(OBJECTIVE)
    expect(page.locator("#run-status .badge")).to_have_text("waiting approval")
    plan = page.locator("#run-plan").inner_text()
    assert run["plan"] and all(step["tool"] in plan for step in run["plan"])
    assert "search_alerts" in plan and "edl.add" in plan  # it looked around, and asked to block
    # the high-impact block waits for a person: shown with a way to the inbox
    [approval] = run["approvals"]
    assert approval["tool"] == "edl.add" and approval["status"] == "pending"
    row = page.locator(f'#run-approvals tr[data-row="{approval["approval_id"]}"]')
    expect(row).to_contain_text("pending")
    expect(row.locator('a[href="/approvals"]')).to_be_visible()
    shot(page, "agent-run")

    # approved elsewhere: the open page follows the run to its end without a reload
    off_loop(
        decide,
        console.db,
        console.tenant_id,
        approval["approval_id"],
        user="approver",
        decision="approve",
        comment="block it",
        channel="cli",
    )
    expect(page.locator("#run-status .badge")).to_have_text("succeeded", timeout=30_000)
    expect(row).to_contain_text("approved")
    expect(page.locator("#run-report")).to_contain_text("203.0.113.7")
    page.goto(f"{console.url}/agents")
    expect(page.locator(f'#agent-runs tr[data-row="{run_id}"]')).to_contain_text(OBJECTIVE)


def test_viewers_see_runs_but_cannot_start_one(console: Console, new_page: Callable[..., Page]) -> None:
    page = new_page(PHONE)
    sign_in(page, console, "viewer")
    page.goto(f"{console.url}/agents")
    expect(page.locator("#objective")).to_be_disabled()
    expect(page.locator("#objective-form button[type=submit]")).to_be_disabled()
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 1
    c = console.client("viewer")
    r = c.post_form("/agents/runs", {"objective": "disable every user"})
    assert r.status_code == 403
    assert "disable every user" not in c.get("/agents").text
    r = console.client("analyst").get("/agents/runs/nope")
    assert r.status_code == 404


def test_ask_an_agent_from_a_case_page(console: Console) -> None:
    """The case page's "Ask an agent" form starts an objective run tied to the case: it is listed with
    the case's runs, and an unknown case is a 400 with the reason, not a run."""
    analyst = console.client("analyst")
    page = analyst.get(f"/cases/{console.case_id}")
    assert page.status_code == 200 and 'id="ask-agent"' in page.text
    r = analyst.post_form(
        "/agents/runs", {"objective": "find related alerts for host ws-0142", "case_id": console.case_id}
    )
    assert r.status_code == 303 and r.headers["location"].startswith("/agents/runs/")
    run_id = r.headers["location"].rsplit("/", 1)[1]
    run = get_agent_run(console.db, console.tenant_id, run_id)
    assert run is not None and run["case_id"] == console.case_id and run["agent"] == "objective"
    assert run_id in analyst.get(f"/agents?case={console.case_id}").text
    bad = analyst.post_form("/agents/runs", {"objective": "find related alerts", "case_id": "no-such-case"})
    assert bad.status_code == 400 and "no-such-case" in bad.text
