"""The EDR actions' declarations: ids, impact, secrets, connection, and a documented schema for every
input (what approval policy, the action list and workflow validation rely on)."""

from __future__ import annotations

import pytest

import bastion.connectors.crowdstrike
import bastion.connectors.defender
import bastion.connectors.sentinelone  # noqa: F401  (register the EDR actions)
from bastion.connectors import get_action

EXPECTED = {
    "crowdstrike.get_device": "read",
    "crowdstrike.find_device": "read",
    "crowdstrike.contain_host": "high",
    "crowdstrike.lift_containment": "high",
    "defender.get_machine": "read",
    "defender.isolate_machine": "high",
    "defender.release_machine": "high",
    "defender.run_av_scan": "low",
    "defender.collect_investigation_package": "low",
    "sentinelone.get_agent": "read",
    "sentinelone.disconnect_agent": "high",
    "sentinelone.reconnect_agent": "high",
}


@pytest.mark.parametrize("action_id", sorted(EXPECTED))
def test_declared_impact_secrets_and_documented_inputs(action_id: str) -> None:
    defn = get_action(action_id)
    assert defn is not None, action_id
    vendor = action_id.split(".")[0]
    assert defn.impact == EXPECTED[action_id]
    assert defn.connection == vendor
    assert defn.secrets and all(s.startswith(vendor + "_") for s in defn.secrets)
    assert defn.description and not defn.description.startswith("Args")
    props = defn.schema["properties"]
    assert props, f"{action_id} takes no input"
    for name, prop in props.items():
        assert prop.get("description"), f"{action_id}: input {name} is not documented"
        assert "type" in prop or "enum" in prop, f"{action_id}: input {name} has no type"
    if defn.impact == "high":
        assert defn.idempotent


def test_enumerated_choices_are_the_vendors() -> None:
    isolate = get_action("defender.isolate_machine")
    scan = get_action("defender.run_av_scan")
    assert isolate is not None and scan is not None
    assert isolate.schema["properties"]["isolation_type"] == {
        "enum": ["Full", "Selective"],
        "description": isolate.schema["properties"]["isolation_type"]["description"],
        "default": "Full",
    }
    assert scan.schema["properties"]["scan_type"]["enum"] == ["Quick", "Full"]
    assert isolate.schema["required"] == ["machine_id", "comment"]
