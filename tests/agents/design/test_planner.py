"""The offline planner and the design agent: valid workflows for the objectives behind the shipped
library (and the rest of the labelled set), vendor choice, entities, triggers and approvals."""

from __future__ import annotations

from typing import Any

import pytest

from bastion.agents.construct import build
from bastion.agents.offline import play
from bastion.agents.planner import PlanError, plan_objective
from bastion.agents.spec import Task
from bastion.content.library import shipped_names
from bastion.respond.validate import validate_text

from .conftest import Tenant, labelled


def _actions(plan: dict[str, Any]) -> list[str]:
    return [s["action"] for s in plan["steps"]]


def test_the_labelled_set_covers_every_shipped_workflow_and_has_thirty() -> None:
    items = labelled()
    assert len(items) >= 30
    assert {i["shipped"] for i in items if i.get("shipped")} == set(shipped_names())


@pytest.mark.parametrize("item", [i for i in labelled() if i.get("shipped")], ids=lambda i: i["id"])
def test_design_agent_gives_a_valid_workflow_for_each_shipped_objective(
    tenant: Tenant, item: dict[str, Any]
) -> None:
    tenant.connect(*item.get("connections", []))
    task = Task(agent="design", objective=item["objective"], input={"objective": item["objective"]})
    output = play("design", task, tenant.deps()).output
    workflow, problems = validate_text(output["workflow_yaml"])
    assert problems == [] and workflow is not None
    assert output["valid"] is True
    assert output["steps"] and all(s["action"] and s["why"] for s in output["steps"])
    planned = {s.action for s in workflow.all_steps()}
    assert set(item["expect"]) <= planned, sorted(set(item["expect"]) - planned)


def test_every_labelled_objective_plans_validates_and_dry_runs() -> None:
    for item in labelled():
        plan = plan_objective(item["objective"], connections=item.get("connections", []))
        result = build(plan, connections=item.get("connections", []))
        assert result["valid"], (item["id"], result["problems"])
        assert result["dry_run"]["ok"], (item["id"], [s for s in result["dry_run"]["steps"] if s["problems"]])


def test_credential_leak_objective_reads_trigger_steps_and_approval() -> None:
    plan = plan_objective(
        "When a user's credentials leak, suspend them, open a case and ask an approver to reset the password"
    )
    assert plan["trigger"] == {"intel": {"type": "credential-leak"}}
    assert _actions(plan) == ["ldap.disable_user", "cases.create", "ldap.reset_password"]
    reset = plan["steps"][2]
    assert reset["approval"]["roles"] == ["approver"]
    assert "approval" not in plan["steps"][0]
    assert reset["with"]["username"] == "${{ inputs.username }}"
    assert plan["inputs"]["username"]["type"] == "string"


def test_vendor_named_in_the_objective_wins_then_connected_then_default() -> None:
    obj = "Isolate host web-01 and open a case"
    assert _actions(plan_objective(obj))[:2] == ["crowdstrike.find_device", "crowdstrike.contain_host"]
    assert _actions(plan_objective(obj, connections=["defender"]))[:2] == [
        "defender.find_machine",
        "defender.isolate_machine",
    ]
    named = plan_objective("Isolate host web-01 with SentinelOne and open a case", connections=["defender"])
    assert _actions(named)[:2] == ["sentinelone.get_agent", "sentinelone.disconnect_agent"]
    assert _actions(plan_objective("Suspend user jdoe", connections=["okta"])) == ["okta.suspend_user"]
    assert _actions(plan_objective("Suspend user jdoe", connections=["entra"])) == ["entra.disable_user"]


def test_inputs_chain_from_earlier_steps_and_literals_become_defaults() -> None:
    plan = plan_objective("Contain host web-01, note it on the case and page on-call")
    steps = {s["id"]: s for s in plan["steps"]}
    assert plan["inputs"]["hostname"]["default"] == "web-01"
    assert steps["device"]["with"]["hostname"] == "${{ inputs.hostname }}"
    assert steps["isolate"]["for_each"] == "${{ steps.device.output.device_ids }}"
    assert steps["isolate"]["with"]["device_id"] == "${{ item }}"
    # the comment needs a case: one is opened first and its id flows in
    order = [s["id"] for s in plan["steps"]]
    assert order.index("case") < order.index("note")
    assert steps["note"]["with"]["case_id"] == "${{ steps.case.output.id }}"


def test_alert_trigger_takes_entities_from_observables_with_guards() -> None:
    plan = plan_objective("When ransomware is detected, contain the host and disable the user")
    assert "ransomware" in plan["trigger"]["alert"]["condition"]
    facts = plan["steps"][0]
    assert facts["id"] == "facts" and facts["action"] == "core.set"
    assert "observables" in facts["with"]["values"]["host"]
    disable = next(s for s in plan["steps"] if s["action"] == "ldap.disable_user")
    assert disable["if"] == "${{ steps.facts.output.user != '' }}"
    assert plan["inputs"]["observables"]["type"] == "array"


def test_iocs_from_a_reported_message_are_extracted_and_blocked_one_by_one() -> None:
    plan = plan_objective(
        "When a user reports a phishing e-mail, extract the indicators, block the domains "
        "and thank the reporter"
    )
    assert plan["trigger"] == {"manual": True, "webhook": True}
    steps = {s["id"]: s for s in plan["steps"]}
    assert steps["indicators"]["action"] == "core.set"
    assert steps["block_domain"]["for_each"] == "${{ steps.indicators.output.domains }}"
    assert steps["mail"]["with"]["to"] == "${{ inputs.reporter }}"
    result = build(plan)
    assert result["valid"]
    blocked = next(s for s in result["dry_run"]["steps"] if s["id"] == "block_domain")
    assert [c["value"] for c in blocked["calls"]] == ["login-examp1e.com"]  # refanged from the sample body


def test_objective_with_nothing_to_do_is_a_clear_error() -> None:
    with pytest.raises(PlanError, match="no step found"):
        plan_objective("the weather is nice today")
    with pytest.raises(PlanError, match="empty"):
        plan_objective("   ")


def test_clauses_nobody_understood_are_reported() -> None:
    plan = plan_objective("Isolate host web-01, then bake a cake for the analysts")
    assert any("bake a cake" in n for n in plan["notes"])
