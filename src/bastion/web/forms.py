"""The "Run" form of a workflow, generated from its typed inputs, and the posted form read back.

A workflow declares its inputs (``string``, ``integer``, ``number``, ``boolean``, ``object``, ``array``,
``any``; optionally ``enum``, ``default``, ``required``, ``description``). The console turns them into
an HTML form so an analyst can start a run without writing JSON, and reads the posted text back into
typed values with one error per field, so a mistake is shown beside the field that has it and nothing
else typed is lost. Objects, arrays and ``any`` are edited as JSON text; an ``enum`` is a select; a
boolean is a true/false select (a checkbox cannot say "not given, use the default").

Pure functions over :class:`~bastion.respond.model.InputSpec`; the markup is built with MarkupSafe so
every name, description and value is escaped. The run service checks the values again
(:func:`bastion.respond.validate.bind_inputs`) when the run starts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from markupsafe import Markup, escape

from bastion.respond.model import InputSpec

__all__ = ["FIELD_PREFIX", "FormField", "form_fields", "parse_form", "render_fields"]

FIELD_PREFIX = "in."
"""Form field names are ``in.<input name>`` so inputs never collide with ``csrf`` or other fields."""

_JSON_TYPES = ("object", "array", "any")


@dataclass
class FormField:
    """One input as the form shows it: its widget, the text in it, and its error if any."""

    name: str
    field_name: str
    type: str
    widget: str  # text, integer, number, boolean, select, json
    required: bool
    text: str
    description: str = ""
    choices: list[tuple[str, str]] = field(default_factory=list)  # (value text, label)
    default_text: str | None = None
    error: str | None = None


def _text(value: Any, kind: str) -> str:
    """How a value is written in the form (the inverse of :func:`_read`)."""
    if value is None:
        return ""
    if kind == "boolean" and isinstance(value, bool):
        return "true" if value else "false"
    if kind in _JSON_TYPES:
        return orjson.dumps(value, option=orjson.OPT_INDENT_2, default=str).decode()
    return str(value)


def _choice_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def form_fields(
    inputs: Mapping[str, InputSpec],
    values: Mapping[str, Any] | None = None,
    errors: Mapping[str, str] | None = None,
    *,
    texts: Mapping[str, str] | None = None,
) -> list[FormField]:
    """The fields of the form, in declaration order. ``values`` prefill typed values (a re-run, or a
    case's data); ``texts`` prefill what was typed (the posted form shown again with ``errors``)."""
    values = values or {}
    errors = errors or {}
    texts = texts or {}
    out: list[FormField] = []
    for name, spec in inputs.items():
        has_default = spec.default is not None
        needed = spec.required and not has_default
        default_text = _text(spec.default, spec.type) if has_default else None
        if name in texts:
            text = texts[name]
        elif name in values:
            text = _text(values[name], spec.type)
        else:
            text = default_text or ""
        choices: list[tuple[str, str]] = []
        if spec.enum is not None:
            widget = "select"
            choices = [(_choice_text(c), _choice_text(c)) for c in spec.enum]
        elif spec.type == "boolean":
            widget = "boolean"
            choices = [("true", "true"), ("false", "false")]
        elif spec.type in ("integer", "number"):
            widget = spec.type
        elif spec.type in _JSON_TYPES:
            widget = "json"
        else:
            widget = "text"
        if widget in ("select", "boolean"):
            blank = "choose…" if needed else "(default)" if has_default else "(not set)"
            choices = [("", blank), *choices]
            if name not in texts and name not in values:
                text = ""  # "(default)": the run service applies it
        out.append(
            FormField(
                name=name,
                field_name=FIELD_PREFIX + name,
                type=spec.type,
                widget=widget,
                required=needed,
                text=text,
                description=spec.description,
                choices=choices,
                default_text=default_text,
                error=errors.get(name),
            )
        )
    return out


def _read(spec: InputSpec, raw: str) -> Any:
    """The typed value of one field's text; ValueError with the reason."""
    kind = spec.type
    text = raw.strip() if kind != "string" else raw
    if spec.enum is not None:
        for choice in spec.enum:
            if _choice_text(choice) == text.strip():
                return choice
        raise ValueError("choose one of: " + ", ".join(_choice_text(c) for c in spec.enum))
    if kind == "string":
        return text
    if kind == "integer":
        try:
            return int(text)
        except ValueError:
            raise ValueError(f"{text!r} is not a whole number") from None
    if kind == "number":
        try:
            return int(text)
        except ValueError:
            pass
        try:
            number = float(text)
        except ValueError:
            raise ValueError(f"{text!r} is not a number") from None
        if not math.isfinite(number):
            raise ValueError(f"{text!r} is not a finite number")
        return number
    if kind == "boolean":
        if text.lower() in ("true", "false"):
            return text.lower() == "true"
        raise ValueError("choose true or false")
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        if kind == "any":
            return raw
        raise ValueError(f"not valid JSON: {exc}") from None
    if kind == "object" and not isinstance(value, dict):
        raise ValueError('must be a JSON object, like {"key": "value"}')
    if kind == "array" and not isinstance(value, list):
        raise ValueError('must be a JSON array, like ["a", "b"]')
    return value


def parse_form(
    inputs: Mapping[str, InputSpec], form: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, str], dict[str, str]]:
    """Read a posted form back into typed inputs: (values, errors by input name, texts by input name).

    An empty field is "not given", so the run uses the input's default; an empty field for an input
    that is required and has no default is an error. Only inputs with no error are in ``values``.
    """
    values: dict[str, Any] = {}
    errors: dict[str, str] = {}
    texts: dict[str, str] = {}
    for name, spec in inputs.items():
        posted = form.get(FIELD_PREFIX + name)
        raw = posted if isinstance(posted, str) else ""
        texts[name] = raw
        if raw.strip() == "":
            if spec.required and spec.default is None:
                errors[name] = "required"
            continue
        try:
            values[name] = _read(spec, raw)
        except ValueError as exc:
            errors[name] = str(exc)
    return values, errors, texts


def _attrs(**attrs: Any) -> Markup:
    parts: list[Markup] = []
    for key, value in attrs.items():
        if value is None or value is False:
            continue
        name = key.rstrip("_").replace("_", "-")  # keyword names: letters, digits and '-' only
        if value is True:
            parts.append(Markup("{}").format(Markup.escape(name)))
        else:
            parts.append(Markup('{}="{}"').format(Markup.escape(name), str(value)))
    return Markup(" ").join(parts)


def render_fields(fields: list[FormField]) -> Markup:
    """The form's fields as HTML (labels, widgets, descriptions and errors); the caller adds the
    ``<form>``, the CSRF field and the submit button."""
    out: list[Markup] = []
    for i, f in enumerate(fields):
        fid = f"input-{i}"
        show_default = f.default_text is not None and f.widget != "json"
        described = f"{fid}-help" if f.description or show_default else None
        err_id = f"{fid}-error" if f.error else None
        aria = " ".join(x for x in (described, err_id) if x) or None
        common = {
            "id": fid,
            "name": f.field_name,
            "required": f.required,
            "aria_describedby": aria,
            "aria_invalid": "true" if f.error else None,
            "data_input": f.name,
            "data_type": f.type,
        }
        label = escape(f.name)
        mark = Markup(' <span class="required" title="required">*</span>') if f.required else Markup("")
        kind = Markup(' <span class="muted">({})</span>').format(f.type)
        html = [Markup('<div class="field{}">').format(" has-error" if f.error else "")]
        html.append(Markup('<label for="{}">{}{}{}</label>').format(fid, label, mark, kind))
        if f.widget in ("select", "boolean"):
            opts = [
                Markup("<option {}>{}</option>").format(
                    _attrs(value=value, selected=(value == f.text)), label_text
                )
                for value, label_text in f.choices
            ]
            html.append(Markup("<select {}>{}</select>").format(_attrs(**common), Markup("").join(opts)))
        elif f.widget == "json":
            rows = max(3, min(12, f.text.count("\n") + 2))
            html.append(
                Markup("<textarea {}>{}</textarea>").format(
                    _attrs(**common, rows=rows, spellcheck="false", class_="mono"), f.text
                )
            )
        else:
            extra: dict[str, Any] = {"type": "text"}
            if f.widget == "integer":
                extra = {"type": "number", "step": "1", "inputmode": "numeric"}
            elif f.widget == "number":
                extra = {"type": "number", "step": "any", "inputmode": "decimal"}
            html.append(Markup("<input {}>").format(_attrs(**common, **extra, value=f.text)))
        if described:
            note = escape(f.description)
            if show_default:
                default = f.default_text if f.default_text else '""'
                sep = Markup(" · ") if note else Markup("")
                note = Markup("{}{}default: <code>{}</code>").format(note, sep, default)
            html.append(Markup('<p class="help" id="{}">{}</p>').format(described, note))
        if f.error:
            html.append(Markup('<p class="error" id="{}" role="alert">{}</p>').format(err_id, f.error))
        html.append(Markup("</div>"))
        out.append(Markup("").join(html))
    return Markup("\n").join(out)
