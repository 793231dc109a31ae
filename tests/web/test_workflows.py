"""The console's workflow pages against a real server and a real chromium: the list with versions, the
graph, the YAML editor showing a validation problem at its line, saving a new version through the
workflow service, the Run form generated from the typed inputs, roles and CSRF on every POST."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Callable

import pytest
from playwright.sync_api import Page, expect

from bastion.agents.drafts import save_draft
from bastion.respond.approvals.service import decide
from bastion.respond.service import add_workflow
from bastion.store.workflows import WorkflowRepository
from tests.web.conftest import ARTIFACTS, PHONE, Console, allow_errors, expect_run_status, shot, sign_in

WORKFLOW = """\
id: console-demo
title: Console demo
description: Greets someone, then logs the result.
trigger: {manual: true}
inputs:
  who: {type: string, description: "the name to greet"}
  level: {type: string, enum: [info, warning], default: info}
  times: {type: integer, default: 1}
  tags: {type: array, default: []}
steps:
  - id: greet
    action: core.set
    with: {values: {greeting: "hello ${{ inputs.who }}"}}
  - id: check
    action: core.log
    if: "${{ inputs.times > 0 }}"
    with: {message: "${{ steps.greet.output.greeting }}", level: "${{ inputs.level }}"}
  - id: fanout
    parallel:
      - - {id: left, action: core.log, with: {message: left}}
      - - {id: right, action: core.log, with: {message: right}}
outputs:
  greeting: "${{ steps.greet.output.greeting }}"
"""

INVALID_LINE = 13  # the `with:` line of step greet, where the broken expression goes


@pytest.fixture(scope="module")
def demo(console: Console) -> str:
    added = add_workflow(console.db, console.tenant_id, WORKFLOW, actor="user:engineer")
    return str(added["workflow_id"])


def _versions(console: Console, workflow_id: str) -> int:
    with console.db.read() as conn:
        return WorkflowRepository(conn, console.tenant_id).latest_version(workflow_id)


def test_pages_roles_and_csrf(console: Console, demo: str) -> None:
    viewer = console.client("viewer")
    listing = viewer.get("/workflows")
    assert listing.status_code == 200
    assert f'data-workflow="{demo}"' in listing.text
    assert "/workflows/new" not in listing.text  # a viewer is offered no editing
    assert f"/workflows/{demo}/run" not in listing.text

    page = viewer.get(f"/workflows/{demo}")
    assert page.status_code == 200
    svg = re.search(r"<svg .*?</svg>", page.text, re.S)
    assert svg is not None
    root = ET.fromstring(svg.group(0))  # noqa: S314  (our own markup, from our own server)
    nodes = {g.get("data-node") for g in root.iter("{http://www.w3.org/2000/svg}g") if g.get("data-node")}
    assert {"greet", "check", "if:check", "fanout", "left", "right", "join:fanout"} <= nodes
    assert 'id="edit-workflow"' not in page.text and 'id="run-workflow"' not in page.text

    # Forged requests: the viewer and the analyst may not save, the viewer may not run; no token, no entry.
    source = WORKFLOW.replace("Console demo", "Console demo (forged)")
    assert viewer.get(f"/workflows/{demo}/edit").status_code == 403
    assert viewer.post_form("/workflows/save", {"source": source}).status_code == 403
    assert viewer.post_form(f"/workflows/{demo}/run", {"in.who": "x"}).status_code == 403
    analyst = console.client("analyst")
    assert analyst.post_form("/workflows/save", {"source": source}).status_code == 403
    assert analyst.post_form("/workflows/validate", {"source": source}).status_code == 403
    engineer = console.client("engineer")
    before = _versions(console, demo)
    assert engineer.post_form("/workflows/save", {"source": source}, csrf=False).status_code == 403
    assert _versions(console, demo) == before

    # Validation while typing: problems as JSON with their line, nothing stored.
    broken = WORKFLOW.replace("action: core.set", "action: core.nope")
    r = engineer.post("/workflows/validate", json={"source": broken}, headers={"X-CSRF-Token": engineer.csrf})
    assert r.status_code == 200
    body = r.json()
    assert body["ok"] is False
    assert [p["line"] for p in body["problems"]] == [12]
    assert "unknown action 'core.nope'" in body["problems"][0]["message"]
    assert engineer.post(
        "/workflows/validate", json={"source": WORKFLOW}, headers={"X-CSRF-Token": engineer.csrf}
    ).json() == {
        "ok": True,
        "problems": [],
        "workflow_id": demo,
    }

    # Saving an invalid edit is refused with the problem at its line; a valid one is a new version.
    bad = engineer.post_form("/workflows/save", {"source": broken, "workflow_id": demo})
    assert bad.status_code == 422
    assert re.search(r'<span class="ln err" data-line="12"', bad.text)
    assert _versions(console, demo) == before
    ok = engineer.post_form("/workflows/save", {"source": source, "workflow_id": demo})
    assert ok.status_code == 303 and ok.headers["location"] == f"/workflows/{demo}?version={before + 1}"
    assert _versions(console, demo) == before + 1
    again = engineer.post_form("/workflows/save", {"source": source, "workflow_id": demo})
    assert again.status_code == 303 and _versions(console, demo) == before + 1  # unchanged text: no version
    shown = engineer.get(f"/workflows/{demo}")
    assert "Console demo (forged)" in shown.text and f"v{before + 1}" in shown.text
    listing = engineer.get("/workflows").text
    assert f"({before + 1} versions)" in listing

    # The run form: required marks and typed errors come back per field, nothing started.
    form = analyst.get(f"/workflows/{demo}/run")
    assert form.status_code == 200
    assert 'name="in.who"' in form.text and "required" in form.text
    wrong = analyst.post_form(
        f"/workflows/{demo}/run", {"in.who": "", "in.times": "many", "in.level": "loud"}
    )
    assert wrong.status_code == 422
    assert wrong.text.count('role="alert"') >= 3
    assert "whole number" in wrong.text and "choose one of: info, warning" in wrong.text
    with console.db.read() as conn:
        assert WorkflowRepository(conn, console.tenant_id).list_runs(workflow_id=demo) == []


def test_editor_shows_the_problem_at_its_line(
    console: Console, demo: str, new_page: Callable[..., Page]
) -> None:
    page = new_page()
    sign_in(page, console, "engineer", next=f"/workflows/{demo}")
    graph = page.locator("#workflow-graph svg")
    expect(graph).to_be_visible()
    expect(graph.locator('g[data-node="fanout"]')).to_have_count(1)
    shot(page, "workflow-graph")
    ARTIFACTS.mkdir(exist_ok=True)
    graph.screenshot(path=str(ARTIFACTS / "workflow-graph-svg.png"))  # the graph alone

    page.click("#edit-workflow")
    editor = page.locator("#editor")
    expect(editor).to_have_attribute("data-ready", "1")
    area = page.locator("#editor-source")
    text = area.input_value()
    lines = text.split("\n")
    assert lines[INVALID_LINE - 1].strip().startswith("with:")
    lines[INVALID_LINE - 1] = '    with: {values: {greeting: "hello ${{ inputs.who | }}"}}'
    area.fill("\n".join(lines))
    marker = page.locator(f'#editor-gutter .ln.err[data-line="{INVALID_LINE}"]')
    expect(marker).to_have_count(1)
    expect(page.locator("#editor-gutter .ln.err")).to_have_count(1)
    expect(page.locator(f'#editor-bands .band[data-line="{INVALID_LINE}"]')).to_have_count(1)
    problem = page.locator(f'#editor-problems li[data-line="{INVALID_LINE}"]')
    expect(problem).to_have_count(1)
    expect(problem).to_contain_text(f"line {INVALID_LINE}")
    expect(page.locator("#editor-status")).to_have_text("1 problem")
    shot(page, "workflow-editor-error")
    # Clicking the problem puts the caret on that line.
    problem.locator("button").click()
    caret_line = page.evaluate(
        "() => { const t = document.getElementById('editor-source');"
        " return t.value.slice(0, t.selectionStart).split('\\n').length; }"
    )
    assert caret_line == INVALID_LINE

    # Saving anyway is refused and the page comes back with the marker at the same line.
    before = _versions(console, demo)
    allow_errors(page, "422")
    page.click("#save-workflow")
    expect(page.locator(f'#editor-gutter .ln.err[data-line="{INVALID_LINE}"]')).to_have_count(1)
    expect(page.locator("#editor-problems li")).to_have_count(1)
    assert _versions(console, demo) == before

    # Fixed: the marker goes away, and saving stores a new version.
    fixed = page.locator("#editor-source").input_value().replace("inputs.who | }}", "inputs.who | upper }}")
    page.locator("#editor-source").fill(fixed)
    expect(page.locator("#editor-status")).to_have_text(f"Valid: {demo}")
    expect(page.locator("#editor-gutter .ln.err")).to_have_count(0)
    page.click("#save-workflow")
    expect(page.locator(".flash-ok")).to_contain_text(f"version {before + 1}")
    assert _versions(console, demo) == before + 1

    phone = new_page(PHONE)
    sign_in(phone, console, "engineer", next=f"/workflows/{demo}/edit")
    expect(phone.locator("#editor")).to_have_attribute("data-ready", "1")
    expect(phone.locator('#editor-gutter .ln[data-line="1"]')).to_be_visible()
    shot(phone, "workflow-editor")


def test_run_from_the_generated_form(console: Console, demo: str, new_page: Callable[..., Page]) -> None:
    page = new_page()
    sign_in(page, console, "analyst", next=f"/workflows/{demo}")
    page.click("#run-workflow")
    form = page.locator("#run-form")
    expect(form.locator('[name="in.who"]')).to_have_attribute("required", "")
    expect(form.locator('select[name="in.level"] option')).to_have_count(3)
    expect(form.locator('[name="in.times"]')).to_have_value("1")
    form.locator('[name="in.who"]').fill("Ada")
    form.locator('select[name="in.level"]').select_option("warning")
    form.locator('[name="in.times"]').fill("2")
    form.locator('[name="in.tags"]').fill('["a", "b"]')
    shot(page, "workflow-run-form")
    page.click("#start-run")
    page.wait_for_url(re.compile(r"/runs/[0-9a-f]{32}$"))
    expect_run_status(page, console, "succeeded")
    for step in ("greet", "check", "left", "right"):
        expect(page.locator(f'#run-steps tr[data-step="{step}"]')).to_have_attribute(
            "data-status", "succeeded"
        )
    expect(page.locator("#run-inputs")).to_contain_text('"who": "Ada"')
    expect(page.locator("#run-inputs")).to_contain_text('"times": 2')
    # "ADA": the editor test changed the greeting to upper case
    expect(page.locator("#run-outputs")).to_contain_text(re.compile("hello ada", re.I))
    expect(page.locator('#run-graph g[data-node="greet"]')).to_have_attribute("data-status", "succeeded")
    # The graph is named by the version the run ran (saved twice above), not the source's own (1 when unsaid).
    ran = page.locator(f'a[href^="/workflows/{demo}?version="]').first.inner_text().strip()
    assert re.fullmatch(rf"{demo} v[2-9]", ran), ran
    expect(page.locator("#run-graph svg")).to_have_attribute("aria-label", re.compile(re.escape(f"({ran})")))
    shot(page, "run")

    # The same pages on a phone.
    phone = new_page(PHONE)
    sign_in(phone, console, "analyst", next=f"/workflows/{demo}/run")
    expect(phone.locator("#run-form")).to_be_visible()
    shot(phone, "workflow-run-form")
    phone.goto(f"{console.url}/workflows/{demo}")
    expect(phone.locator("#workflow-graph svg")).to_be_visible()
    shot(phone, "workflow-graph")
    phone.goto(f"{console.url}/workflows/{demo}/edit")
    allow_errors(phone, "403")  # an analyst may not edit
    expect(phone.locator("h1")).to_contain_text("Not allowed")
    phone.goto(f"{console.url}/workflows")
    expect(phone.locator(f'tr[data-workflow="{demo}"]')).to_be_visible()
    shot(phone, "workflows")


DRAFT = """\
id: console-drafted
title: Drafted by an agent
steps:
  - id: note
    action: core.log
    with: {message: drafted}
"""


def test_agent_draft_waits_for_approval_to_publish(console: Console) -> None:
    draft = save_draft(
        console.db,
        console.tenant_id,
        workflow_id="console-drafted",
        objective="log that a draft was made <b>",
        source=DRAFT,
        plan={"steps": [{"action": "core.log"}]},
        validation=[],
        dry_run={"steps": []},
        actor="agent:construct",
    )
    engineer, viewer = console.client("engineer"), console.client("viewer")
    listing = viewer.get("/workflows").text
    assert f'data-draft="{draft["id"]}"' in listing and "&lt;b&gt;" in listing
    page = viewer.get(f"/workflow-drafts/{draft['id']}").text
    assert 'data-node="note"' in page and 'id="publish-draft"' not in page
    assert 'id="publish-draft"' in engineer.get(f"/workflow-drafts/{draft['id']}").text

    # Only an engineer may ask, with the CSRF token; asking does not publish anything yet.
    assert viewer.post_form(f"/workflow-drafts/{draft['id']}/publish", {}).status_code == 403
    assert engineer.post_form(f"/workflow-drafts/{draft['id']}/publish", {}, csrf=False).status_code == 403
    asked = engineer.post_form(f"/workflow-drafts/{draft['id']}/publish", {})
    assert asked.status_code == 303
    assert _versions(console, "console-drafted") == 0
    page = engineer.get(f"/workflow-drafts/{draft['id']}").text
    assert "status-pending" in page and "Waiting for an approver" in page
    again = engineer.post_form(f"/workflow-drafts/{draft['id']}/publish", {})
    assert again.status_code == 303
    assert "only a draft in status" in engineer.get(f"/workflow-drafts/{draft['id']}").text

    # The approver approves (as from the approvals inbox): the next read publishes it as a version.
    decide(
        console.db,
        console.tenant_id,
        f"draft:{draft['id']}",
        user="approver",
        decision="approve",
        comment=None,
        channel="web",
    )
    page = viewer.get(f"/workflow-drafts/{draft['id']}").text
    assert "status-published" in page
    assert _versions(console, "console-drafted") == 1
    assert 'data-workflow="console-drafted"' in viewer.get("/workflows").text
    assert viewer.get("/workflow-drafts/nope").status_code == 404
