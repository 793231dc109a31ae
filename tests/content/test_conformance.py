"""Conformance of what Bastion ships: every workflow in the library validates against the real action
registry, and every registered action (Python connectors and YAML templates) documents and types its
inputs, declares a known impact and lower-case secret names, and takes its address from its connection.
Each test lists every offender in its failure message, so one run shows all that needs fixing."""

from __future__ import annotations

import inspect
import re
import typing
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from bastion.connectors import all_actions
from bastion.connectors.registry import IMPACTS, ActionDef
from bastion.content.library import load_shipped, shipped_names, shipped_workflows
from bastion.respond.validate import parse_workflow, validate_text
from tests.conftest import run_cli

TEMPLATES = Path(__file__).resolve().parents[2] / "src" / "bastion" / "connectors" / "templates"
SECRET_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
CONTRACT = {
    "ldap.disable_user",
    "ldap.enable_user",
    "ldap.reset_password",
    "okta.suspend_user",
    "entra.revoke_sessions",
    "crowdstrike.contain_host",
    "defender.isolate_machine",
    "edl.add",
    "dns.block_domain",
    "slack.post_message",
    "teams.post_card",
    "email.send",
    "pagerduty.trigger",
    "jira.create_issue",
    "servicenow.create_incident",
    "thehive.create_case",
    "cases.create",
}


def _fail_with(offenders: list[str], what: str) -> None:
    assert not offenders, f"{len(offenders)} {what}:\n" + "\n".join(offenders)


# ------------------------------------------------------------------------------------------ workflows


def test_the_library_is_not_empty_and_names_are_file_names() -> None:
    names = shipped_names()
    assert {
        "phishing-report",
        "malware-endpoint",
        "brute-force",
        "impossible-travel",
        "c2-beaconing",
        "ransomware-containment",
    } <= set(names)
    summaries = shipped_workflows()
    assert [s["file"] for s in summaries] == [f"{n}.yml" for n in names]


def test_every_shipped_workflow_validates_and_is_documented() -> None:
    offenders: list[str] = []
    seen: dict[str, str] = {}
    for name in shipped_names():
        text = load_shipped(name)
        workflow, problems = validate_text(text)
        for p in problems:
            offenders.append(f"{name}.yml:{p.line}:{p.column}: {p.message}")
        if workflow is None:
            continue
        if workflow.id != name:
            offenders.append(f"{name}.yml: id {workflow.id!r} is not the file name")
        if workflow.id in seen:
            offenders.append(f"{name}.yml: id {workflow.id!r} also in {seen[workflow.id]}")
        seen[workflow.id] = f"{name}.yml"
        if len(workflow.description.strip()) < 40:
            offenders.append(f"{name}.yml: no description (say what it does and why, 40+ characters)")
        if not workflow.triggers:
            offenders.append(f"{name}.yml: no trigger")
        if not workflow.inputs:
            offenders.append(f"{name}.yml: no inputs")
        raw = yaml.safe_load(text).get("inputs") or {}
        for key, spec in raw.items():
            if not isinstance(spec, dict) or "type" not in spec:
                offenders.append(f"{name}.yml: input {key!r} has no explicit type")
        for step in workflow.all_steps():
            if (
                step.action
                and step.action.startswith("core.")
                and step.action
                not in (
                    "core.set",
                    "core.fail",
                    "core.transform",
                    "core.log",
                )
            ):
                offenders.append(f"{name}.yml: step {step.id} calls {step.action}; use the vendor's action")
    _fail_with(offenders, "problems in the shipped workflows")


def test_shipped_summaries_match_the_files() -> None:
    for summary in shipped_workflows():
        workflow = parse_workflow(load_shipped(summary["id"]))
        assert summary["title"] == workflow.title and summary["version"] == workflow.version
        assert summary["triggers"] == [t.kind for t in workflow.triggers]
        assert summary["trigger"] in summary["triggers"]


# ------------------------------------------------------------------------------------------- actions


def _any_annotated(defn: ActionDef, name: str) -> bool:
    """Whether a Python action's input is explicitly ``Any`` (a JSON value of any shape), which the
    schema shows as ``{}`` just like a missing annotation."""
    if defn.source != "python":
        return False
    param = inspect.signature(defn.fn).parameters.get(name)
    if param is None or param.annotation is inspect.Parameter.empty:
        return False
    hints = typing.get_type_hints(defn.fn, localns={"ActionContext": Any})
    return hints.get(name) is Any


def _uses_its_connection(defn: ActionDef) -> bool:
    """A Python action with a connection reads it: its module sends through the shared vendor HTTP or
    LDAP helpers (which join paths to the connection's base_url) or reads ``ctx.connection`` itself."""
    module = inspect.getmodule(defn.fn)
    source = inspect.getsource(module) if module else ""
    return any(
        marker in source
        for marker in ("bastion.connectors.vendor_http", "bastion.connectors.ldap_client", "ctx.connection")
    )


def _shipped_actions() -> list[ActionDef]:
    """The product's actions: other tests register throwaway ones in the same process registry."""
    return [a for a in all_actions() if getattr(a.fn, "__module__", "").startswith("bastion.")]


def test_every_action_declares_impact_description_typed_documented_inputs_and_secrets() -> None:
    offenders: list[str] = []
    shipped = _shipped_actions()
    assert len(shipped) >= 60  # every connector module is loaded
    for defn in shipped:
        where = f"{defn.source} {defn.id}"
        if defn.impact not in IMPACTS:
            offenders.append(f"{where}: impact {defn.impact!r} is not one of {IMPACTS}")
        if not defn.description.strip():
            offenders.append(f"{where}: no description")
        for name, prop in defn.schema.get("properties", {}).items():
            typed = bool({"type", "enum", "anyOf"} & set(prop)) or _any_annotated(defn, name)
            if not typed:
                offenders.append(f"{where}: input {name!r} has no type")
            if not str(prop.get("description", "")).strip():
                offenders.append(f"{where}: input {name!r} has no description (docstring Args)")
        for secret in defn.secrets:
            if not SECRET_NAME.match(secret):
                offenders.append(f"{where}: secret name {secret!r} is not lower-case snake_case")
        if defn.connection is not None and defn.source == "python" and not _uses_its_connection(defn):
            offenders.append(f"{where}: has connection {defn.connection!r} but never reads it")
    _fail_with(offenders, "action conformance problems")


def test_every_template_passes_the_same_checks() -> None:
    files = sorted(TEMPLATES.glob("*.yaml"))
    assert files, "no templates found"
    registered = {a.id: a for a in all_actions()}
    offenders: list[str] = []
    for path in files:
        doc = yaml.safe_load(path.read_text())
        where = f"templates/{path.name} {doc.get('id')}"
        if doc.get("id") not in registered:
            offenders.append(f"{where}: not registered")
        if doc.get("impact") not in IMPACTS:
            offenders.append(f"{where}: impact {doc.get('impact')!r} is not one of {IMPACTS}")
        if not str(doc.get("description", "")).strip():
            offenders.append(f"{where}: no description")
        for name, spec in (doc.get("inputs") or {}).items():
            if not isinstance(spec, dict) or "type" not in spec:
                offenders.append(f"{where}: input {name!r} has no explicit type")
            if not isinstance(spec, dict) or not str(spec.get("description", "")).strip():
                offenders.append(f"{where}: input {name!r} has no description")
        for secret in doc.get("secrets") or []:
            if not SECRET_NAME.match(str(secret)):
                offenders.append(f"{where}: secret name {secret!r} is not lower-case snake_case")
        url = str((doc.get("request") or {}).get("url", ""))
        if doc.get("connection") and not url.startswith("/"):
            offenders.append(f"{where}: request.url {url!r} is not a path under the connection's base_url")
    _fail_with(offenders, "template conformance problems")


# ---------------------------------------------------------------------------------- contract (CLI)


@pytest.fixture(scope="module")
def cli_lists(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    url = f"sqlite:///{tmp_path_factory.mktemp('cli') / 'bastion.db'}"
    actions = run_cli("actions", "list", "--json", db_url=url, check=True)
    workflows = run_cli("workflow", "list", "--json", db_url=url, check=True)
    return {"actions": orjson.loads(actions.stdout), "workflows": orjson.loads(workflows.stdout)}


def test_contract_actions_are_listed_by_the_real_cli(cli_lists: dict[str, Any]) -> None:
    listed = {a["id"]: a for a in cli_lists["actions"]["actions"]}
    missing = sorted(CONTRACT - set(listed))
    assert not missing, f"`bastion actions list --json` lacks {missing}"
    for action_id in CONTRACT:
        entry = listed[action_id]
        assert entry["impact"] in IMPACTS and entry["description"] and entry["input_schema"]["properties"]
    assert {
        listed[i]["impact"]
        for i in ("ldap.disable_user", "crowdstrike.contain_host", "defender.isolate_machine", "edl.add")
    } == {"high"}


def test_shipped_workflows_are_listed_by_the_real_cli(cli_lists: dict[str, Any]) -> None:
    listed = cli_lists["workflows"]["workflows"]
    assert [w["id"] for w in listed] == shipped_names()
    for entry in listed:
        assert {"id", "title", "version", "trigger", "triggers", "description", "file"} <= set(entry)
    by_id = {w["id"]: w for w in listed}
    assert by_id["ransomware-containment"]["trigger"] == "alert"
    assert by_id["phishing-report"]["trigger"] == "webhook"


def test_install_stores_shipped_workflows_and_the_tenant_list_marks_them(tmp_path: Path) -> None:
    from bastion.respond.service import add_workflow
    from bastion.store import Database
    from bastion.tenancy.service import create_tenant

    url = f"sqlite:///{tmp_path / 'bastion.db'}"
    db = Database(url)
    db.migrate()
    tenant, _ = create_tenant(db, "acme")
    add_workflow(
        db, tenant.id, "id: own\nsteps:\n  - {id: a, action: core.log, with: {message: hi}}\n", actor="t"
    )
    db.dispose()
    refused = run_cli("workflow", "install", "no-such-flow", "--tenant", "acme", db_url=url)
    assert refused.returncode != 0 and "no shipped workflow 'no-such-flow'" in refused.stderr
    done = run_cli(
        "workflow", "install", "brute-force", "phishing-report", "--tenant", "acme", "--json", db_url=url
    )
    assert done.returncode == 0, done.stderr
    installed = orjson.loads(done.stdout)["installed"]
    assert [(r["workflow_id"], r["version"], r["created"]) for r in installed] == [
        ("brute-force", 1, True),
        ("phishing-report", 1, True),
    ]
    assert installed[1]["webhook_token"].startswith("bwh_")  # phishing-report has a webhook trigger
    again = orjson.loads(
        run_cli("workflow", "install", "--all", "--tenant", "acme", "--json", db_url=url).stdout
    )
    assert {r["workflow_id"]: r["created"] for r in again["installed"]}["brute-force"] is False
    assert len(again["installed"]) == len(shipped_names())
    listed = orjson.loads(run_cli("workflow", "list", "--tenant", "acme", "--json", db_url=url).stdout)
    marks = {w["workflow_id"]: w["shipped"] for w in listed["workflows"]}
    assert marks["own"] is False and marks["brute-force"] is True
    assert set(marks) == {"own", *shipped_names()}
