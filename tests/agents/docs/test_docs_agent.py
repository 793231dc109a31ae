"""The documentation agent over real records: the demo intrusion's case (with a workflow run that acted on
it, one step failing against a closed port) and a shipped workflow. The case report is the shipped report
(same templates, same data); the post-incident report and the runbook carry analysis derived from the
records; the command writes Markdown or HTML."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bastion.agents.offline import play
from bastion.agents.spec import Task, get_agent
from bastion.agents.specialists.docs import Document, _md_doc
from bastion.connectors.registry import get_action
from bastion.content.library import install
from bastion.report.case_report import render_case_report
from bastion.respond import service
from bastion.respond.runtime import Executor
from bastion.tenancy.connections import set_connection
from tests.agents.tools.seed import Seeded, seed
from tests.conftest import free_port, run_cli

PLAYBOOK = """
id: note-and-notify
title: Note the case and notify the web hook
inputs: {case_id: {type: string}}
steps:
  - id: note
    action: cases.comment
    with: {case_id: "${{ inputs.case_id }}", body: "Playbook started"}
  - id: notify
    action: core.http_request
    connection: hook
    on_error: continue
    with: {url: /hook, method: POST, json: {case: "${{ inputs.case_id }}"}}
"""


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> Iterator[Seeded]:
    seeded = seed(tmp_path_factory.mktemp("docs"), shared_data)
    db, tid = seeded.db, seeded.tenant_id
    set_connection(
        db, tid, "hook", {"base_url": f"http://127.0.0.1:{free_port()}", "allow_private": True}, actor="test"
    )
    service.add_workflow(db, tid, PLAYBOOK, actor="test")
    install(db, tid, ["compromised-credential"], actor="test")
    executor = Executor(db)
    executor.launch()
    try:
        rid = service.start_run(
            db,
            tid,
            "note-and-notify",
            None,
            {"case_id": seeded.case_id},
            trigger={"type": "manual"},
            actor="test",
        )
        assert service.wait_run(db, tid, rid, timeout_s=60)["status"] == "succeeded"
    finally:
        executor.shutdown()
    yield seeded
    db.dispose()


def write(env: Seeded, kind: str, ref: str, fmt: str = "md") -> Document:
    task = Task(agent="docs", objective="document", input={"kind": kind, "ref": ref, "format": fmt})
    played = play("docs", task, env.deps())
    assert played.status == "succeeded", played
    assert [p["tool"] for p in played.plan] == ["workflow_outline" if kind == "runbook" else "case_report"]
    return Document.model_validate(played.output)


def _body(text: str) -> list[str]:
    return [line for line in text.splitlines() if "generated" not in line]


def test_the_case_report_is_the_shipped_report(env: Seeded) -> None:
    for fmt in ("md", "html"):
        doc = write(env, "case", "1", fmt)
        shipped = render_case_report(env.db, env.tenant_id, "1", fmt).decode()
        assert _body(doc.content) == _body(shipped)
        assert doc.title.startswith("Case #1: Intrusion on WS-0142")
    assert "Timeline" in write(env, "case", env.case_id).sections


def test_post_incident_report_analyses_the_response(env: Seeded) -> None:
    doc = write(env, "post_incident", "1")
    assert doc.sections[:4] == ["Summary", "Response phases", "Timeline", "Automation"]
    assert {"What went well", "What to improve", "Recommendations"} <= set(doc.sections)
    text = doc.content
    assert "note-and-notify" in text and "core.http\\_request" in text
    # the failed step is explained with the troubleshooting classifier's cause
    assert "Step notify (core.http_request) of note-and-notify failed: network." in doc.findings
    assert any("reachability" in r or "reach the failing connections" in r for r in doc.recommendations)
    assert "No containment action is recorded for this case." in doc.findings  # a high-severity case
    assert any(r.startswith("Hunt for the case's ATT&CK techniques") for r in doc.recommendations)
    assert "Automation ran 1 step(s) successfully." in doc.findings
    html = write(env, "post-incident", "1", "html")
    assert html.format == "html" and "<h2>What to improve</h2>" in html.content
    assert "<script" not in html.content


def test_runbook_from_a_shipped_workflow(env: Seeded) -> None:
    doc = write(env, "runbook", "compromised-credential")
    text = doc.content
    assert doc.title.startswith("Runbook: Compromised credential")
    assert doc.sections == ["Purpose", "Trigger", "Inputs", "Steps", "Error handlers", "Outputs"]
    order = [text.index(f"### {n}. {sid}") for n, sid in enumerate(["user", "suspend", "case", "tell"], 1)]
    assert order == sorted(order)
    suspend = text[text.index("### 2. suspend") : text.index("### 3. case")]
    assert "`ldap.disable_user`" in suspend and "Impact: high" in suspend
    assert "Approval: required (the tenant policy; role approver)" in suspend
    assert "undo it with `ldap.enable_user`" in suspend
    revoke = text[text.index("revoke: `ldap.reset_password`") :]
    assert "Approval: required (the step; role approver)" in revoke
    # what each step does is its action's own docstring
    defn = get_action("ldap.find_user")
    assert defn is not None
    does = defn.description.split("\n\n")[0].replace("\n", " ").strip()
    assert str(_md_doc(does)) in text and "``" not in text  # RST literals became code spans
    assert doc.findings[0].startswith("10 step(s)") or "need an approval" in doc.findings[0]
    html = write(env, "runbook", "compromised-credential", "html")
    assert "<h2>Steps</h2>" in html.content and "<code>ldap.disable_user</code>" in html.content


def test_the_agent_reads_only(env: Seeded) -> None:
    assert set(get_agent("docs").tools) == {"case_report", "workflow_outline"}
    task = Task(agent="docs", objective="document", input={"kind": "runbook", "ref": "no-such-workflow"})
    played = play("docs", task, env.deps())
    assert played.status == "failed" and "no workflow" in (played.error or ""), played


def test_command_writes_markdown_and_html(env: Seeded, tmp_path: Path) -> None:
    url = f"sqlite:///{env.path}"
    target = tmp_path / "out" / "runbook.html"
    proc = run_cli(
        "agent", "docs", "runbook", "compromised-credential", "--tenant", "demo", "--format", "html",
        "--output", str(target), db_url=url,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert target.read_text().startswith("<!DOCTYPE html>") and "<h2>Outputs</h2>" in target.read_text()
    md = run_cli("agent", "docs", "post-incident", "1", "--tenant", "demo", db_url=url)
    assert md.returncode == 0 and md.stdout.startswith("# Post-incident report: case #1")
    for args, message in ((("memo", "1"), "unknown document"), (("case", "999"), "no case 999")):
        bad = run_cli("agent", "docs", *args, "--tenant", "demo", db_url=url)
        assert bad.returncode == 2 and message in bad.stderr, (args, bad.stderr)
