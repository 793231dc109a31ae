"""Construction: plan -> YAML that the real validator accepts, and the dry-run interpreter (real
expression engine, simulated outputs, input checks, the tenant policy's approvals)."""

from __future__ import annotations

import yaml

from bastion.agents.construct import build, dry_run, plan_to_yaml
from bastion.agents.offline import play
from bastion.agents.planner import plan_objective
from bastion.agents.spec import Task
from bastion.agents.specialists.construct import reason
from bastion.connectors.policy import DEFAULT_POLICY
from bastion.respond.validate import parse_workflow

from .conftest import Tenant

WORKFLOW = """\
id: dry
steps:
  - id: find
    action: crowdstrike.find_device
    with: {hostname: "${{ inputs.host }}"}
  - id: contain
    action: crowdstrike.contain_host
    for_each: "${{ steps.find.output.device_ids }}"
    with: {device_id: "${{ item }}"}
  - id: skipped
    action: cases.comment
    if: "${{ inputs.host == 'nobody' }}"
    with: {case_id: "x", body: "never"}
  - id: case
    action: cases.create
    with: {title: "Contained ${{ inputs.host }}", severity: "${{ inputs.level }}"}
inputs:
  host: {type: string, default: web-01}
  level: {type: integer, default: 3}
outputs:
  case: "${{ steps.case.output.id }}"
"""


def test_plan_becomes_yaml_with_the_workflow_keys() -> None:
    plan = plan_objective("Disable user jdoe and open a case")
    doc = yaml.safe_load(plan_to_yaml(plan))
    assert list(doc)[:5] == ["id", "title", "version", "description", "trigger"]
    assert doc["version"] == 1 and doc["steps"][0]["action"] == "ldap.disable_user"
    assert doc["outputs"]["case_id"] == "${{ steps.case.output.id }}"
    parse_workflow(plan_to_yaml(plan))  # raises when invalid


def test_dry_run_renders_each_call_loops_skips_and_asks_the_policy() -> None:
    report = dry_run(parse_workflow(WORKFLOW), policy=DEFAULT_POLICY)
    steps = {s["id"]: s for s in report["steps"]}
    assert steps["find"]["calls"] == [{"hostname": "web-01"}]
    assert steps["find"]["approval"] is None  # read
    assert steps["contain"]["calls"] == [{"device_id": "dev-1"}]  # one per simulated device id
    assert steps["contain"]["approval"]["roles"] == ["approver"]  # high impact under the default policy
    assert steps["skipped"]["status"] == "skipped" and steps["skipped"]["calls"] == []
    assert report["approvals"] == ["contain"]
    # severity rendered from an integer input fails the action's schema: the dry-run catches what the
    # validator cannot see (values known only when rendered)
    assert steps["case"]["status"] == "error"
    assert any("severity" in p for p in steps["case"]["problems"])
    assert report["ok"] is False
    assert report["outputs"] == {"case": "case_1"}


def test_dry_run_with_given_inputs_and_a_policy_without_approvals() -> None:
    report = dry_run(
        parse_workflow(WORKFLOW), inputs={"host": "nobody", "level": 2}, policy={"require_approval": []}
    )
    steps = {s["id"]: s for s in report["steps"]}
    assert steps["find"]["calls"] == [{"hostname": "nobody"}]
    assert steps["skipped"]["status"] == "would_run"
    assert report["approvals"] == []


def test_build_validates_and_dry_runs_a_designed_workflow() -> None:
    plan = plan_objective("When ransomware is detected, page on-call, contain the host and open a case")
    result = build(plan)
    assert result["valid"] and result["problems"] == []
    dry = result["dry_run"]
    assert dry["ok"]
    by_id = {s["id"]: s for s in dry["steps"]}
    assert by_id["page"]["calls"][0]["summary"].startswith("Ransomware response: host ws-0042")
    assert by_id["isolate"]["approval"] is not None


def test_construct_agent_plans_validates_dry_runs_and_saves_a_draft(tenant: Tenant) -> None:
    task = Task(agent="construct", objective="Isolate host web-01 and open a case")
    output = play("construct", task, tenant.deps()).output
    assert output["draft_id"] and output["valid"] and output["status"] == "draft"
    assert output["dry_run"]["ok"]
    assert output["approvals_needed"] == ["isolate"]
    from bastion.agents.drafts import get_draft

    draft = get_draft(tenant.db, tenant.id, output["draft_id"])
    assert draft["source"] == output["workflow_yaml"] and draft["validation"] == []
    assert draft["dry_run"]["steps"][0]["id"] == "device"


def test_construct_reasoner_saves_an_invalid_yaml_without_dry_running_it() -> None:
    from bastion.agents.spec import Finish, Seen

    bad = "id: x\nsteps:\n  - id: a\n    action: nope.nothing\n"
    task = Task(agent="construct", objective="x", input={"source": bad})
    first = reason(task, [])
    assert [c.tool for c in first] == ["validate_workflow"]
    checked = [Seen("validate_workflow", {"source": bad}, result={"valid": False, "problems": [{"line": 4}]})]
    second = reason(task, checked)
    assert [c.tool for c in second] == ["save_draft"]
    done = reason(task, [*checked, Seen("save_draft", {}, result={"draft_id": "d1", "status": "draft"})])
    assert isinstance(done, Finish) and done.output["valid"] is False and done.output["dry_run"] is None
