"""The fast paths of event preparation give what the general paths give."""

from __future__ import annotations

from typing import Any

import pytest

from bastion.detect.events import FlatEvent, _leaves, flatten


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
        assert "\x00" + ev.lowd[name] + "\x00" in "\x00" + ev.any_low() + "\x00"


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
