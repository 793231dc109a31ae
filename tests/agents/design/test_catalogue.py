"""The effects catalogue matches the action registry: every id exists, every high-impact action is
described, and every input template fills each required input with known inputs only."""

from __future__ import annotations

import re

from bastion.agents.planner.catalogue import ACTIONS, EFFECTS, ENTITY_INPUTS, PRODUCERS, SETTINGS
from bastion.connectors.registry import all_actions, get_action

_SPECIAL = {
    "target",
    "target_type",
    "title",
    "severity",
    "alert_ids",
    "subject",
    "description",
    "outcome",
    "case_ref",
}


def test_every_catalogue_id_is_a_registered_action() -> None:
    missing = [aid for aid in ACTIONS if get_action(aid) is None]
    assert missing == []


def test_every_high_impact_action_is_in_the_catalogue() -> None:
    # Bastion's own actions: a test module on the same pytest worker may have registered others.
    high = {a.id for a in all_actions() if a.impact == "high" and a.fn.__module__.startswith("bastion.")}
    assert high, "the registry has high-impact actions"
    assert sorted(high - set(ACTIONS)) == []


def test_templates_fill_every_required_input_and_only_known_ones() -> None:
    for aid, entry in ACTIONS.items():
        defn = get_action(aid)
        assert defn is not None
        props = set(defn.schema.get("properties", {}))
        assert set(entry.with_) <= props, (aid, set(entry.with_) - props)
        if aid != "core.set":
            assert set(defn.schema.get("required", [])) <= set(entry.with_), aid


def test_every_placeholder_can_be_resolved() -> None:
    known = set(ENTITY_INPUTS) | set(SETTINGS) | set(PRODUCERS) | _SPECIAL | {"machine", "cs_device"}
    for aid, entry in ACTIONS.items():
        for name in re.findall(r"<<(\w+)>>", str(entry.with_)):
            assert name in known, (aid, name)


def test_effects_named_by_actions_exist_and_each_effect_has_an_action_or_a_builder() -> None:
    used = {e for entry in ACTIONS.values() for e in entry.effects}
    assert used <= set(EFFECTS)
    assert set(EFFECTS) - used == {"extract-iocs"}  # written by the planner as a core.set step
    for name in EFFECTS:
        if name != "extract-iocs":
            assert any(ACTIONS[a].default for a in ACTIONS if name in ACTIONS[a].effects), name
