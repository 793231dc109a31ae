"""The JSON Schema of the workflow language (``bastion workflow schema``), for editors and CI checks.

The validator in :mod:`bastion.respond.validate` enforces more than a schema can (known actions and
their inputs, step references, expression syntax, cycles) and reports positions; this schema gives
editors completion and a first check.
"""

from __future__ import annotations

from typing import Any

from bastion.respond.model import INPUT_TYPES

__all__ = ["workflow_schema"]

_EXPR = {"type": "string", "pattern": r"\$\{\{.*\}\}", "description": "a ${{ }} expression"}
_DURATION = {
    "description": "seconds, or a number with ms, s, m, h, d or w",
    "anyOf": [
        {"type": "number", "minimum": 0},
        {"type": "string", "pattern": r"^\d+(\.\d+)?(ms|s|m|h|d|w)?$"},
    ],
}


def workflow_schema() -> dict[str, Any]:
    step_ref = {"$ref": "#/$defs/step"}
    hook = {
        "type": "object",
        "properties": {"condition": _EXPR},
        "additionalProperties": True,
        "description": "fields the event must match, and an optional condition expression",
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://bastion.dev/schemas/workflow.json",
        "title": "Bastion workflow",
        "type": "object",
        "required": ["id", "steps"],
        "additionalProperties": False,
        "properties": {
            "id": {"type": "string", "pattern": r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$"},
            "title": {"type": "string"},
            "version": {"type": "integer", "minimum": 1},
            "description": {"type": "string"},
            "trigger": {
                "anyOf": [
                    {"enum": ["manual", "webhook"]},
                    {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            "manual": {"type": "boolean"},
                            "webhook": {"type": "boolean"},
                            "schedule": {"type": "string", "description": "five-field cron"},
                            "alert": hook,
                            "case": hook,
                            "intel": hook,
                        },
                    },
                ]
            },
            "inputs": {
                "type": "object",
                "additionalProperties": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "type": {"enum": list(INPUT_TYPES)},
                        "required": {"type": "boolean"},
                        "default": {},
                        "description": {"type": "string"},
                        "enum": {"type": "array", "minItems": 1, "description": "the allowed values"},
                    },
                },
            },
            "vars": {"type": "object"},
            "steps": {"type": "array", "minItems": 1, "items": step_ref},
            "handlers": {"type": "array", "items": step_ref},
            "outputs": {"type": "object"},
        },
        "$defs": {
            "step": {
                "type": "object",
                "required": ["id"],
                "additionalProperties": False,
                "oneOf": [{"required": ["action"]}, {"required": ["uses"]}, {"required": ["parallel"]}],
                "properties": {
                    "id": {"type": "string", "pattern": r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"},
                    "name": {"type": "string"},
                    "action": {"type": "string", "pattern": r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$"},
                    "uses": {"type": "string", "description": "workflow id, optionally @version"},
                    "with": {"type": "object"},
                    "if": _EXPR,
                    "for_each": {"anyOf": [_EXPR, {"type": "array"}]},
                    "concurrency": {"type": "integer", "minimum": 1, "maximum": 100},
                    "parallel": {"type": "array", "items": {"type": "array", "items": step_ref}},
                    "retry": {
                        "anyOf": [
                            {"type": "integer", "minimum": 1},
                            {
                                "type": "object",
                                "additionalProperties": False,
                                "properties": {
                                    "max_attempts": {"type": "integer", "minimum": 1, "maximum": 100},
                                    "interval": _DURATION,
                                    "backoff": {"type": "number", "minimum": 1},
                                },
                            },
                        ]
                    },
                    "timeout": _DURATION,
                    "on_error": {
                        "anyOf": [
                            {"enum": ["fail", "continue"]},
                            {
                                "type": "object",
                                "required": ["handler"],
                                "additionalProperties": False,
                                "properties": {"handler": {"type": "string"}},
                            },
                        ]
                    },
                    "approval": {
                        "type": "object",
                        "required": ["roles"],
                        "additionalProperties": False,
                        "properties": {
                            "roles": {"type": "array", "items": {"type": "string"}, "minItems": 1},
                            "quorum": {"type": "integer", "minimum": 1, "maximum": 100},
                            "allow_requester": {"type": "boolean"},
                            "timeout": _DURATION,
                            "on_timeout": {"enum": ["deny", "approve", "escalate"]},
                            "escalate_to": {"type": "array", "items": {"type": "string"}},
                            "channels": {"type": "array", "items": {"enum": ["web", "slack", "email"]}},
                        },
                    },
                    "connection": {"type": "string"},
                },
            }
        },
    }
