"""The Run form (``bastion.web.forms``): generated from a workflow's typed inputs, posted back into
typed values that the run service accepts, with one error per wrong field."""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Any

import pytest

from bastion.respond.validate import WorkflowInvalid, bind_inputs, parse_workflow
from bastion.web.forms import FIELD_PREFIX, form_fields, parse_form, render_fields

SOURCE = """\
id: form-demo
inputs:
  email: {type: string, description: "the <user>'s address"}
  note: {type: string, default: ""}
  count: {type: integer, default: 3}
  ratio: {type: number, required: false}
  dry_run: {type: boolean, default: true}
  force: {type: boolean}
  tags: {type: array, default: []}
  extra: {type: object, required: false}
  anything: {type: any, required: false}
  severity: {type: string, enum: [low, medium, high], default: medium}
  level: {type: integer, enum: [1, 2, 3]}
steps:
  - {id: s, action: core.log, with: {message: hi}}
"""


class _Controls(HTMLParser):
    """The form controls in rendered HTML: name -> (tag, attributes, text or selected option)."""

    def __init__(self) -> None:
        super().__init__()
        self.controls: dict[str, tuple[str, dict[str, str | None], str]] = {}
        self.options: dict[str, list[str]] = {}
        self._open: tuple[str, str] | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag in ("input", "select", "textarea"):
            name = a.get("name") or ""
            self.controls[name] = (tag, a, a.get("value") or "")
            if tag != "input":
                self._open = (tag, name)
                self._text = []
        elif tag == "option" and self._open:
            name = self._open[1]
            self.options.setdefault(name, []).append(a.get("value") or "")
            if "selected" in a:
                t, attrs_, _ = self.controls[name]
                self.controls[name] = (t, attrs_, a.get("value") or "")

    def handle_data(self, data: str) -> None:
        if self._open and self._open[0] == "textarea":
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if self._open and tag == self._open[0]:
            if tag == "textarea":
                t, attrs_, _ = self.controls[self._open[1]]
                self.controls[self._open[1]] = (t, attrs_, "".join(self._text))
            self._open = None


def _controls(html: str) -> _Controls:
    parser = _Controls()
    parser.feed(html)
    return parser


def test_widgets_follow_the_types() -> None:
    wf = parse_workflow(SOURCE)
    html = str(render_fields(form_fields(wf.inputs)))
    c = _controls(html)
    kinds = {
        name.removeprefix(FIELD_PREFIX): (tag, a.get("type")) for name, (tag, a, _) in c.controls.items()
    }
    assert kinds == {
        "email": ("input", "text"),
        "note": ("input", "text"),
        "count": ("input", "number"),
        "ratio": ("input", "number"),
        "dry_run": ("select", None),
        "force": ("select", None),
        "tags": ("textarea", None),
        "extra": ("textarea", None),
        "anything": ("textarea", None),
        "severity": ("select", None),
        "level": ("select", None),
    }
    ctl = c.controls
    assert ctl["in.count"][1]["step"] == "1" and ctl["in.ratio"][1]["step"] == "any"
    # Required marks: inputs with no default that are required; the browser enforces them too.
    required = {n.removeprefix(FIELD_PREFIX) for n, (_, a, _) in ctl.items() if "required" in a}
    assert required == {"email", "force", "level"}
    assert html.count('class="required"') == 3
    # Defaults prefilled; selects with a default start on "(default)" so the run service applies it.
    assert ctl["in.count"][2] == "3"
    assert ctl["in.tags"][2] == "[]"
    assert ctl["in.severity"][2] == "" and c.options["in.severity"] == ["", "low", "medium", "high"]
    assert c.options["in.level"] == ["", "1", "2", "3"]
    assert c.options["in.force"] == ["", "true", "false"]
    # Text is escaped: the description's "<user>" is text, not a tag.
    assert "&lt;user&gt;" in html and "<user>" not in html


def test_round_trip_gives_the_values_back() -> None:
    wf = parse_workflow(SOURCE)
    values: dict[str, Any] = {
        "email": "  Ann@Example.org ",
        "note": "a <b> & 'c'",
        "count": 7,
        "ratio": 0.25,
        "dry_run": False,
        "force": True,
        "tags": ["x", "y"],
        "extra": {"a": {"b": [1, 2]}},
        "anything": "123",
        "severity": "high",
        "level": 2,
    }
    html = str(render_fields(form_fields(wf.inputs, values)))
    posted = {name: text for name, (_, _, text) in _controls(html).controls.items()}
    posted["csrf"] = "ignored"
    parsed, errors, _ = parse_form(wf.inputs, posted)
    assert errors == {}
    assert parsed == values
    assert type(parsed["anything"]) is str  # "123" stays a string for an `any` input
    assert bind_inputs(wf, parsed) == values


def test_empty_fields_take_the_defaults() -> None:
    wf = parse_workflow(SOURCE)
    html = str(render_fields(form_fields(wf.inputs)))
    posted = {name: text for name, (_, _, text) in _controls(html).controls.items()}
    posted.update({"in.email": "a@b.c", "in.force": "false", "in.level": "3"})
    parsed, errors, _ = parse_form(wf.inputs, posted)
    assert errors == {}
    bound = bind_inputs(wf, parsed)
    assert bound["severity"] == "medium" and bound["dry_run"] is True and bound["count"] == 3
    assert bound["ratio"] is None and bound["level"] == 3


def test_errors_are_per_field_and_keep_what_was_typed() -> None:
    wf = parse_workflow(SOURCE)
    posted = {
        "in.email": "",
        "in.count": "three",
        "in.ratio": "inf",
        "in.force": "maybe",
        "in.tags": '{"not": "a list"}',
        "in.extra": "{broken",
        "in.anything": "plain words",
        "in.severity": "urgent",
        "in.level": "2",
    }
    parsed, errors, texts = parse_form(wf.inputs, posted)
    assert set(errors) == {"email", "count", "ratio", "force", "tags", "extra", "severity"}
    assert errors["email"] == "required"
    assert "whole number" in errors["count"]
    assert "finite" in errors["ratio"]
    assert "true or false" in errors["force"]
    assert "JSON array" in errors["tags"]
    assert "not valid JSON" in errors["extra"]
    assert "low, medium, high" in errors["severity"]
    assert parsed == {"anything": "plain words", "level": 2}
    # Shown again: the typed text stays in each field, the error beside it.
    html = str(render_fields(form_fields(wf.inputs, parsed, errors, texts=texts)))
    c = _controls(html)
    assert c.controls["in.count"][2] == "three"
    assert c.controls["in.extra"][2] == "{broken"
    assert c.controls["in.count"][1].get("aria-invalid") == "true"
    assert html.count('role="alert"') == 7
    assert "whole number" in html


def test_enum_is_part_of_the_language() -> None:
    with pytest.raises(WorkflowInvalid) as exc:
        parse_workflow(SOURCE.replace("default: medium", "default: extreme"))
    assert "not one of its enum values" in str(exc.value)
    assert exc.value.problems[0].line == 12
    with pytest.raises(WorkflowInvalid):
        parse_workflow(SOURCE.replace("enum: [1, 2, 3]", "enum: [one, two]"))
    wf = parse_workflow(SOURCE)
    with pytest.raises(ValueError, match="one of 1, 2, 3"):
        bind_inputs(wf, {"email": "a", "force": True, "level": 9})
