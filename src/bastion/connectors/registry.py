"""The action registry: every action a workflow (or an agent) may call, under a ``namespace.name`` id.

An action is one typed async function registered with :func:`action`. It declares its impact
(``read``, ``low``, ``high``: the tenant's policy decides which impacts need an approval), the secrets it
needs, and whether it accepts an idempotency key. Its signature is its input schema and its docstring
(Google style, an ``Args:`` section) its documentation, as in Tracecat's registry and pydantic-ai tools.
Plain REST actions can be YAML templates instead (see :mod:`bastion.connectors.templates`); they become
the same :class:`ActionDef`. Policy (approval, tenant scoping, audit, rate limits, masking) is applied
by wrappers in :mod:`bastion.connectors.policy`, never inside the actions.
"""

from __future__ import annotations

import inspect
import re
import types
import typing
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal, get_args, get_origin

__all__ = [
    "IMPACTS",
    "ActionContext",
    "ActionDef",
    "ActionError",
    "Impact",
    "action",
    "all_actions",
    "check_inputs",
    "get_action",
    "register",
]

Impact = Literal["read", "low", "high"]
IMPACTS: tuple[str, ...] = ("read", "low", "high")
_ID = re.compile(r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$")


class ActionError(Exception):
    """An action failed in a way worth showing to the user (a refused request, a bad answer)."""


@dataclass
class ActionContext:
    """What an action gets besides its inputs: who it runs for, the key to pass on, secrets, connection."""

    tenant_id: str
    run_id: str = ""
    step_id: str = ""
    idempotency_key: str = ""
    secrets: dict[str, str] = field(default_factory=dict)
    connection: dict[str, Any] = field(default_factory=dict)
    logs: list[str] = field(default_factory=list)

    def log(self, message: str) -> None:
        self.logs.append(message)


@dataclass
class ActionDef:
    id: str
    fn: Callable[..., Awaitable[Any]]
    impact: str
    description: str
    schema: dict[str, Any]
    secrets: tuple[str, ...] = ()
    idempotent: bool = False
    connection: str | None = None
    source: str = "python"
    # A read action may keep its answers a while (per tenant, connection and inputs), and name its vendor's
    # default quota (calls, seconds) for when the connection sets no ``rate_limit`` of its own.
    cache_ttl_s: float | None = None
    rate_limit: tuple[int, float] | None = None

    def describe(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "impact": self.impact,
            "description": self.description,
            "secrets": list(self.secrets),
            "idempotency_key": self.idempotent,
            "connection": self.connection,
            "source": self.source,
            "cache_ttl_s": self.cache_ttl_s,
            "rate_limit": {"limit": self.rate_limit[0], "period_s": self.rate_limit[1]}
            if self.rate_limit
            else None,
            "input_schema": self.schema,
        }


_REGISTRY: dict[str, ActionDef] = {}


def _json_type(hint: Any) -> dict[str, Any]:
    if hint is Any or hint is inspect.Parameter.empty:
        return {}
    origin = get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        members = [a for a in get_args(hint) if a is not type(None)]
        inner = _json_type(members[0]) if len(members) == 1 else {"anyOf": [_json_type(m) for m in members]}
        if type(None) in get_args(hint):
            if "type" in inner and isinstance(inner["type"], str):
                return {**inner, "type": [inner["type"], "null"]}
            return {"anyOf": [inner, {"type": "null"}]}
        return inner
    if origin is Literal:
        return {"enum": list(get_args(hint))}
    base = origin or hint
    if base is str:
        return {"type": "string"}
    if base is bool:
        return {"type": "boolean"}
    if base is int:
        return {"type": "integer"}
    if base is float:
        return {"type": "number"}
    if base in (dict, typing.Mapping) or (isinstance(base, type) and issubclass(base, dict)):
        return {"type": "object"}
    if base in (list, tuple, set, typing.Sequence):
        args = get_args(hint)
        return {"type": "array", **({"items": _json_type(args[0])} if args else {})}
    return {}


def _arg_docs(doc: str) -> tuple[str, dict[str, str]]:
    lines = inspect.cleandoc(doc).splitlines() if doc else []
    summary: list[str] = []
    args: dict[str, str] = {}
    in_args = False
    current = ""
    for line in lines:
        stripped = line.strip()
        if stripped in ("Args:", "Arguments:", "Parameters:"):
            in_args = True
            continue
        if in_args:
            m = re.match(r"^(\w+)(?:\s*\([^)]*\))?:\s*(.*)$", stripped)
            if m and line.startswith("    ") and not line.startswith("        "):
                current = m.group(1)
                args[current] = m.group(2)
            elif stripped and current and line.startswith("        "):
                args[current] += " " + stripped
            elif stripped.endswith(":") and not line.startswith(" "):
                in_args = False
        elif not args:
            summary.append(line)
    return "\n".join(summary).strip(), args


def schema_from_signature(fn: Callable[..., Any]) -> tuple[str, dict[str, Any]]:
    """(description, JSON Schema of the inputs) from ``fn``'s signature and docstring."""
    sig = inspect.signature(fn)
    try:
        hints = typing.get_type_hints(fn)
    except NameError:  # a function defined where ActionContext is only a local name
        hints = typing.get_type_hints(fn, localns={"ActionContext": ActionContext})
    description, docs = _arg_docs(fn.__doc__ or "")
    props: dict[str, Any] = {}
    required: list[str] = []
    for name, param in sig.parameters.items():
        if name == "ctx" or param.kind in (param.VAR_KEYWORD, param.VAR_POSITIONAL):
            continue
        prop = _json_type(hints.get(name, Any))
        if name in docs:
            prop["description"] = docs[name]
        if param.default is inspect.Parameter.empty:
            required.append(name)
        elif param.default is not None:
            prop["default"] = param.default
        props[name] = prop
    schema: dict[str, Any] = {"type": "object", "properties": props, "additionalProperties": False}
    if required:
        schema["required"] = required
    return description, schema


def register(defn: ActionDef) -> ActionDef:
    if not _ID.match(defn.id):
        raise ValueError(f"invalid action id {defn.id!r}: use namespace.name in lower case")
    if defn.impact not in IMPACTS:
        raise ValueError(f"action {defn.id}: impact must be one of {', '.join(IMPACTS)}")
    if defn.id in _REGISTRY and _REGISTRY[defn.id].fn is not defn.fn:
        raise ValueError(f"action {defn.id} is registered twice")
    _REGISTRY[defn.id] = defn
    return defn


def action(
    id: str,
    *,
    impact: Impact,
    secrets: tuple[str, ...] | list[str] = (),
    idempotent: bool = False,
    connection: str | None = None,
    cache_ttl_s: float | None = None,
    rate_limit: tuple[int, float] | None = None,
) -> Callable[[Callable[..., Awaitable[Any]]], Callable[..., Awaitable[Any]]]:
    """Register an async function as the action ``id`` (``namespace.name``). ``cache_ttl_s`` (``read``
    actions only) keeps answers that long; ``rate_limit`` is the vendor's default quota."""
    if cache_ttl_s is not None and impact != "read":
        raise ValueError(f"action {id}: only a read action's answers may be cached")

    def wrap(fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        if not inspect.iscoroutinefunction(fn):
            raise TypeError(f"action {id}: {fn.__qualname__} must be an async function")
        description, schema = schema_from_signature(fn)
        register(
            ActionDef(
                id=id,
                fn=fn,
                impact=impact,
                description=description,
                schema=schema,
                secrets=tuple(secrets),
                idempotent=idempotent,
                connection=connection,
                cache_ttl_s=cache_ttl_s,
                rate_limit=rate_limit,
            )
        )
        return fn

    return wrap


_builtins_loaded = False


def _load_builtins() -> None:
    """Import the built-in connectors (each registers its actions), once: every step looks its action
    up, and twenty ``from ... import`` statements cost more than the lookup."""
    global _builtins_loaded
    if _builtins_loaded:
        return
    from bastion.connectors import (  # noqa: F401  (each module registers its actions on import)
        cases,
        core,
        crowdstrike,
        defender,
        dns,
        edl,
        email,
        entra,
        jira,
        ldap,
        notify,
        okta,
        pagerduty,
        reputation,
        sentinelone,
        servicenow,
        slack,
        teams,
        templates,
        thehive,
        webhook,
    )

    templates.load_all()
    _builtins_loaded = True


def get_action(action_id: str) -> ActionDef | None:
    _load_builtins()
    return _REGISTRY.get(action_id)


def all_actions() -> list[ActionDef]:
    _load_builtins()
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]


_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
    "null": (type(None),),
}


def type_ok(value: Any, schema: dict[str, Any]) -> bool:
    """Whether ``value`` fits ``schema``'s ``type``/``enum``/``anyOf`` (the subset action schemas use)."""
    if "anyOf" in schema:
        return any(type_ok(value, s) for s in schema["anyOf"])
    if "enum" in schema:
        return value in schema["enum"]
    kinds = schema.get("type")
    if kinds is None:
        return True
    for kind in [kinds] if isinstance(kinds, str) else kinds:
        ok = _TYPES.get(kind, (object,))
        if isinstance(value, bool) and kind in ("integer", "number"):
            continue
        if isinstance(value, ok):
            return True
    return False


def _type_name(schema: dict[str, Any]) -> str:
    if "enum" in schema:
        return "one of " + ", ".join(repr(v) for v in schema["enum"])
    if "anyOf" in schema:
        return " or ".join(_type_name(s) for s in schema["anyOf"])
    kinds = schema.get("type", "any")
    return kinds if isinstance(kinds, str) else " or ".join(kinds)


def check_inputs(
    defn: ActionDef, inputs: dict[str, Any], *, literal_only: bool = False
) -> list[tuple[str, str]]:
    """Problems with ``inputs`` for ``defn``: (input name or "", message).

    With ``literal_only``, values holding a ``${{ }}`` expression are not type-checked (they are only
    known at run time).
    """
    problems: list[tuple[str, str]] = []
    props: dict[str, Any] = defn.schema.get("properties", {})
    for name in defn.schema.get("required", []):
        if name not in inputs:
            problems.append(("", f"action {defn.id} needs input {name!r}"))
    for name, value in inputs.items():
        if name not in props:
            known = ", ".join(props) or "none"
            problems.append((name, f"action {defn.id} has no input {name!r} (inputs: {known})"))
            continue
        if literal_only and isinstance(value, str) and "${{" in value:
            continue
        if literal_only and _holds_expression(value):
            continue
        if not type_ok(value, props[name]):
            problems.append(
                (
                    name,
                    f"input {name!r} of {defn.id} must be {_type_name(props[name])}, "
                    f"not {type(value).__name__}",
                )
            )
    return problems


def _holds_expression(value: Any) -> bool:
    if isinstance(value, str):
        return "${{" in value
    if isinstance(value, list):
        return any(_holds_expression(v) for v in value)
    if isinstance(value, dict):
        return any(_holds_expression(v) for v in value.values())
    return False
