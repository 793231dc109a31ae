"""The command line: `bastion agent design` (the contract), `agent build`, and `agent drafts
list|show|publish` with the publication decided by `bastion approve` / `bastion deny`."""

from __future__ import annotations

from pathlib import Path

from bastion.agents.drafts import DraftRepository, get_draft, request_publish
from bastion.agents.offline import play
from bastion.agents.runtime import get_agent_run
from bastion.agents.spec import Task
from bastion.respond.validate import validate_text
from bastion.store import Database
from bastion.store.workflows import WorkflowRepository
from tests.conftest import cli_json, run_cli, sqlite_url

from .conftest import Tenant

OBJECTIVE = (
    "When a user's credentials leak, suspend them, open a case and ask an approver to reset the password"
)


def _setup(tmp_path: Path) -> tuple[str, Tenant]:
    url = sqlite_url(tmp_path)
    db = Database(url)
    db.migrate()
    return url, Tenant(db, "acme")


def test_design_json_contract_through_a_recorded_agent_run(tmp_path: Path) -> None:
    url, tenant = _setup(tmp_path)
    out = cli_json("agent", "design", OBJECTIVE, "--tenant", "acme", db_url=url)
    assert [s["action"] for s in out["steps"]] == ["ldap.disable_user", "cases.create", "ldap.reset_password"]
    assert all(isinstance(s["why"], str) and s["why"] for s in out["steps"])
    workflow, problems = validate_text(out["workflow_yaml"])
    assert problems == [] and workflow is not None
    assert workflow.trigger("intel") is not None
    run = out["run"]
    assert run["status"] == "succeeded" and run["model"] == "offline"
    recorded = get_agent_run(tenant.db, tenant.id, run["run_id"])
    assert recorded is not None and recorded["agent"] == "design" and recorded["status"] == "succeeded"
    assert [p["tool"] for p in recorded["plan"]] == ["plan_workflow", "validate_workflow"]


def test_design_and_user_errors(tmp_path: Path) -> None:
    url, _ = _setup(tmp_path)
    out = cli_json("agent", "design", "contain host web-01", "--tenant", "acme", db_url=url)
    assert out["run"]["status"] == "succeeded" and out["valid"] is True
    assert out["steps"][0]["action"] == "crowdstrike.find_device"
    bad = run_cli("agent", "design", "the weather is nice", "--tenant", "acme", db_url=url)
    assert bad.returncode == 2 and bad.stderr.startswith("error: ") and "no step found" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_build_publish_approve_installs_and_deny_rejects(tmp_path: Path) -> None:
    url, tenant = _setup(tmp_path)
    built = cli_json(
        "agent",
        "build",
        "Isolate host web-01 and open a case",
        "--tenant",
        "acme",
        "--as",
        "alice",
        db_url=url,
    )
    draft_id = built["draft_id"]
    assert built["valid"] and built["status"] == "draft" and built["approvals_needed"] == ["isolate"]
    pending = cli_json(
        "agent", "drafts", "publish", draft_id, "--tenant", "acme", "--as", "alice", db_url=url
    )
    assert pending["status"] == "pending"
    with tenant.db.read() as conn:
        assert WorkflowRepository(conn, tenant.id).list_definitions() == []  # nothing before the decision
    approved = run_cli("approve", f"draft:{draft_id}", "--tenant", "acme", "--as", "bob", db_url=url)
    assert approved.returncode == 0, approved.stderr
    assert "Traceback" not in approved.stderr
    stored = cli_json("workflow", "list", "--tenant", "acme", db_url=url)["workflows"]
    assert [(w["workflow_id"], w["version"]) for w in stored] == [(built["workflow_id"], 1)]
    shown = get_draft(tenant.db, tenant.id, draft_id)
    assert shown["status"] == "published" and shown["published_version"] == 1

    task = Task(agent="construct", objective="Block 203.0.113.9 on the firewall")
    other = play("construct", task, tenant.deps()).output
    request_publish(tenant.db, tenant.id, other["draft_id"], actor="user:alice")
    denied = run_cli("deny", f"draft:{other['draft_id']}", "--tenant", "acme", "--as", "bob", db_url=url)
    assert denied.returncode == 0, denied.stderr
    with tenant.db.read() as conn:  # read without settling: the CLI's publisher already rejected it
        row = DraftRepository(conn, tenant.id).get(other["draft_id"])
    assert row is not None and row["status"] == "rejected"
    with tenant.db.read() as conn:
        stored_ids = [w["workflow_id"] for w in WorkflowRepository(conn, tenant.id).list_definitions()]
    assert stored_ids == [built["workflow_id"]]


def test_a_user_mistake_raised_in_a_workflow_is_not_logged_with_its_traceback() -> None:
    """DBOS logs every exception a workflow raises; a user's mistake is told in one line instead."""
    import logging

    from bastion.agents.planner import PlanError
    from bastion.respond.runtime import _QuietUserMistakes

    quiet = _QuietUserMistakes()

    def record(exc: BaseException) -> logging.LogRecord:
        return logging.LogRecord("dbos", logging.ERROR, __file__, 1, "boom", None, (type(exc), exc, None))

    assert quiet.filter(record(PlanError("no step found"))) is False
    assert quiet.filter(record(RuntimeError("a real failure"))) is True
