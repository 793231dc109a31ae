"""The fast paths of event preparation give what the general paths give."""

from __future__ import annotations

from typing import Any

import pytest

from bastion.detect import events
from bastion.detect.events import UNSET, FlatEvent, _leaves, flatten


@pytest.mark.parametrize(
    "fields",
    [
        {"a": "ΑΣ", "b": "ΣΑ", "c": "ΟΔΟΣ"},  # final sigma at a value's end, none at its start
        {"a": True, "b": False, "c": 4688, "d": 1.5, "e": "MiXeD ®"},
        {"a": "x\x00y", "b": "Z"},
    ],
)
def test_keyword_text_fast_path_equals_the_general_one(fields: dict[str, Any]) -> None:
    ev = FlatEvent(dict(fields), None)
    assert ev.any_low() == ev._joined().lower()
    for name in fields:  # and every field's lowercased text is a NUL-separated part of it
        assert "\x00" + ev.low(name) + "\x00" in "\x00" + ev.any_low() + "\x00"


def test_flat_event_data_is_copied_as_the_leaf_walk_would() -> None:
    data = {"Image": "C:\\x.exe", "Pid": 4, "Flag": True, "Channel": "Other"}
    doc = {"Event": {"System": {"Channel": "Security", "EventID": 4688}, "EventData": data}}
    walked: dict[str, Any] = {"Channel": "Security", "EventID": 4688}
    _leaves(data, walked)
    ev = flatten(doc)
    assert ev.fields == walked and list(ev.fields) == list(walked)
    with_null = flatten({"Event": {"System": {"EventID": 1}, "EventData": {"A": None, "B": {"#text": "t"}}}})
    assert with_null.fields == {"EventID": 1, "B": "t"}


def test_latin1_keyword_text_is_lowered_as_str_lower_does() -> None:
    latin1 = "".join(map(chr, range(1, 256)))
    ev = FlatEvent({"a": latin1, "b": "MICROSOFT® WINDOWS®", "c": 7}, None, plain=True)
    assert ev.any_low() == ev._joined().lower()
    wide = FlatEvent({"a": "ΟΔΟΣ", "b": "Ä"}, None)  # not Latin-1: lowered value by value
    assert wide.any_low() == "οδος\x00ä"


@pytest.mark.parametrize(
    "system",
    [
        {"Channel": "Security", "EventID": 4688, "Tags": ["A", "B"]},
        {"Channel": "Security", "EventID": 4688, "Exec": {"#attributes": {"Ids": [1, 2]}}},
        {"Channel": "Security", "EventID": {"#attributes": {"Q": 0}, "#text": [4688]}},
    ],
)
def test_lists_in_system_clear_the_plain_flag(system: dict[str, Any]) -> None:
    ev = flatten({"Event": {"System": system, "EventData": {"X": "Y"}}})
    assert not ev.plain
    assert ev.any_low() == ev._joined().lower()
    assert flatten({"Event": {"System": {"Channel": "S", "EventID": 1}, "EventData": {"X": 1.5}}}).plain


def test_lowered_texts_are_computed_once_and_cached() -> None:
    ev = FlatEvent({"S": "MiXed", "N": 4688, "B": True, "L": ["A", None, {"x": 1}, 2], "D": {"x": 1}}, None)
    assert ev.lowd.get("S", UNSET) is UNSET
    assert ev.low("S") == "mixed" and ev.lowd["S"] == "mixed"
    assert (ev.low("N"), ev.low("B"), ev.low("L"), ev.low("D"), ev.low("Missing")) == (
        "4688",
        "true",
        ("a", "2"),
        None,
        None,
    )
    assert ev.lowd == {"S": "mixed", "N": "4688", "B": "true", "L": ("a", "2"), "D": None, "Missing": None}


@pytest.mark.parametrize("cache_full", [False, True])
def test_system_attribute_names_are_the_same_from_the_name_cache(
    cache_full: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if cache_full:  # a full cache still names every attribute, it only stops remembering new ones
        monkeypatch.setattr(events, "_ATTR_NAMES", {})
        monkeypatch.setattr(events, "_ATTR_NAMES_MAX", 0)
    system = {
        "Provider": {"#attributes": {"Name": "P", "Guid": None}},
        "EventID": {"#attributes": {"Qualifiers": 0}, "#text": 4625},
        "Execution": {"#attributes": {"ProcessID": 4, "ThreadID": 8}},
        "Channel": "Security",
    }
    for _ in range(2):  # the second time from the cache
        ev = flatten({"Event": {"System": system, "EventData": {"A": "b"}}})
        assert ev.fields == {
            "Provider_Name": "P",
            "EventID_Qualifiers": 0,
            "EventID": 4625,
            "Execution_ProcessID": 4,
            "Execution_ThreadID": 8,
            "Channel": "Security",
            "A": "b",
        }
        assert list(ev.fields)[:3] == ["Provider_Name", "EventID_Qualifiers", "EventID"]
        assert ev.windows == ("security", 4625) and ev.plain
    assert bool(events._ATTR_NAMES) is not cache_full
