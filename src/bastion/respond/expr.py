"""Workflow expressions: ``${{ ... }}`` is a Jinja2 expression run in the sandbox, never ``eval``.

A string that is exactly one ``${{ expr }}`` evaluates to the expression's native value (a list stays
a list); any other string containing ``${{ }}`` is interpolated and stays a string. Expressions see
``inputs``, ``steps.<id>.output``, ``trigger``, ``tenant``, ``vars``, ``secrets`` (and ``item``/``index``
inside ``for_each``). The few filters a responder needs are registered here: IOC extraction,
defang/refang, JSONPath and JMESPath.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import lru_cache
from typing import Any

import jmespath
from jinja2 import StrictUndefined, TemplateSyntaxError, nodes
from jinja2.exceptions import SecurityError, UndefinedError
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jsonpath_ng.exceptions import JsonPathParserError
from jsonpath_ng.ext import parse as jsonpath_parse

from bastion.ingest.observables import refang, scan_text

__all__ = [
    "EXPR",
    "ExpressionError",
    "check_syntax",
    "evaluate",
    "has_expression",
    "references",
    "render",
]

EXPR = re.compile(r"\$\{\{(.*?)\}\}", re.S)
_WHOLE = re.compile(r"^\s*\$\{\{(.*?)\}\}\s*$", re.S)


class ExpressionError(ValueError):
    """An expression failed to parse or to evaluate; the message names the expression."""


_TOO_DEEP = "expression nested too deeply (brackets, operators or filters): split it over vars or steps"


def _defang(value: Any) -> str:
    text = str(value)
    text = re.sub(r"^http", "hxxp", text, flags=re.I)
    text = text.replace("://", "[://]") if "[://]" not in text else text
    return re.sub(r"(?<=\w)\.(?=\w)", "[.]", text)


def _iocs(value: Any, kind: str | None = None) -> list[str] | list[dict[str, str]]:
    pairs = scan_text(value if isinstance(value, str) else str(value))
    if kind is not None:
        return [v for t, v in pairs if t.value == kind]
    return [{"type": t.value, "value": v} for t, v in pairs]


def _jsonpath(value: Any, path: str) -> list[Any]:
    try:
        expr = jsonpath_parse(path)
    except (JsonPathParserError, Exception) as exc:  # the parser raises several plain exception types
        raise ExpressionError(f"invalid JSONPath {path!r}: {exc}") from None
    return [m.value for m in expr.find(value)]


def _jmespath(value: Any, query: str) -> Any:
    try:
        return jmespath.search(query, value)
    except jmespath.exceptions.JMESPathError as exc:
        raise ExpressionError(f"invalid JMESPath {query!r}: {exc}") from None


@lru_cache(maxsize=1)
def _env() -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False)
    env.filters.update(
        {
            "iocs": _iocs,
            "extract_iocs": _iocs,
            "defang": _defang,
            "refang": lambda v: refang(str(v)),
            "jsonpath": _jsonpath,
            "jmespath": _jmespath,
        }
    )
    env.globals.clear()
    env.globals.update({"range": range, "dict": dict, "lipsum": None})
    del env.globals["lipsum"]
    return env


def has_expression(text: str) -> bool:
    return "${{" in text


@lru_cache(maxsize=4096)
def _compiled(source: str) -> Any:
    try:
        return _env().compile_expression(source, undefined_to_none=False)
    except TemplateSyntaxError as exc:
        raise ExpressionError(f"expression syntax error in '${{{{{source}}}}}': {exc.message}") from None
    except RecursionError:  # Jinja parses and compiles recursively: deep nesting exhausts the stack
        raise ExpressionError(_TOO_DEEP) from None


def check_syntax(text: str) -> list[tuple[int, str]]:
    """Problems in every ``${{ }}`` of ``text``: (character offset of the expression, message)."""
    problems: list[tuple[int, str]] = []
    opened = text.count("${{")
    found = list(EXPR.finditer(text))
    if opened != len(found):
        problems.append((text.rfind("${{"), "expression opened with '${{' but never closed with '}}'"))
    for m in found:
        source = m.group(1).strip()
        if not source:
            problems.append((m.start(), "empty expression '${{ }}'"))
            continue
        try:
            _compiled(source)
        except ExpressionError as exc:
            problems.append((m.start(), str(exc)))
    return problems


def _walk(node: nodes.Node) -> Iterator[nodes.Node]:
    """Every node of the tree, without recursion (a long chain of operators is a deep tree)."""
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        stack.extend(reversed(list(current.iter_child_nodes())))


def references(text: str) -> list[tuple[str, str]]:
    """Top-level names used by the expressions in ``text``, with step ids for ``steps.X``.

    Returns (name, step_id_or_empty) pairs, e.g. ``[("inputs", ""), ("steps", "lookup")]``.
    """
    refs: list[tuple[str, str]] = []
    for m in EXPR.finditer(text):
        try:
            tree = _env().parse("{{ " + m.group(1).strip() + " }}")
        except (TemplateSyntaxError, RecursionError):  # reported by check_syntax
            continue
        for node in _walk(tree):
            if isinstance(node, nodes.Getattr) and isinstance(node.node, nodes.Name):
                if node.node.name == "steps":
                    refs.append(("steps", node.attr))
            elif (
                isinstance(node, nodes.Getitem)
                and isinstance(node.node, nodes.Name)
                and node.node.name == "steps"
                and isinstance(node.arg, nodes.Const)
            ):
                refs.append(("steps", str(node.arg.value)))
            elif isinstance(node, nodes.Name) and node.ctx == "load":
                refs.append((node.name, ""))
    return refs


def evaluate(source: str, context: dict[str, Any]) -> Any:
    """The value of one expression (without the ``${{ }}``)."""
    fn = _compiled(source.strip())
    try:
        return fn(**context)
    except UndefinedError as exc:
        raise ExpressionError(f"in '${{{{ {source.strip()} }}}}': {exc.message}") from None
    except SecurityError as exc:
        raise ExpressionError(f"in '${{{{ {source.strip()} }}}}': refused by the sandbox: {exc}") from None
    except ExpressionError:
        raise
    except (TypeError, ValueError, KeyError, IndexError, AttributeError, ZeroDivisionError) as exc:
        raise ExpressionError(f"in '${{{{ {source.strip()} }}}}': {type(exc).__name__}: {exc}") from None


def render(value: Any, context: dict[str, Any]) -> Any:
    """Render every expression inside ``value`` (strings, lists and mappings, recursively)."""
    if isinstance(value, str):
        if "${{" not in value:
            return value
        whole = _WHOLE.match(value)
        if whole and whole.group(1).count("}}") == 0:
            return evaluate(whole.group(1), context)

        def sub(m: re.Match[str]) -> str:
            result = evaluate(m.group(1), context)
            return "" if result is None else str(result)

        return EXPR.sub(sub, value)
    if isinstance(value, list):
        return [render(v, context) for v in value]
    if isinstance(value, dict):
        return {k: render(v, context) for k, v in value.items()}
    return value
