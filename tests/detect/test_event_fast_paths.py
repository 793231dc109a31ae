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
