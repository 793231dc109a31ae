"""Compiling pySigma condition trees into matcher functions, and the literals each rule requires.

pySigma turns a rule into a tree of AND/OR/NOT over field tests but does not evaluate events, so this
is our own code. Each test becomes a small closure over a ``FlatEvent``; a list of plain strings on one
field (the common ``Image|endswith: [...]``) becomes one tuple/set test.

Semantics follow the Sigma specification: string tests are case-insensitive unless ``cased``; ``*`` and
``?`` are wildcards; regular expressions are searched (not anchored) and case-sensitive unless the ``i``
flag says otherwise; a missing field matches nothing but ``null`` (and ``exists: false``), so ``not``
of a test on a missing field is true; a keyword (field-less value) searches every field of the event.

``requirement()`` returns, for a tree, a set of (field, kind, literal) atoms at least one of which must
hold in any matching event (kind ``eq``: the lowercased value equals the literal; ``sub``: contains it),
or None when no such set is known. The engine indexes rules by these atoms so that an event is checked
only against rules that can still match.
"""

from __future__ import annotations

import ipaddress
import itertools
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import ahocorasick
from sigma.conditions import (
    ConditionAND,
    ConditionFieldEqualsValueExpression,
    ConditionNOT,
    ConditionOR,
    ConditionValueExpression,
)
from sigma.types import (
    CompareOperators,
    Placeholder,
    SigmaBool,
    SigmaCasedString,
    SigmaCIDRExpression,
    SigmaCompareExpression,
    SigmaExists,
    SigmaExpansion,
    SigmaFieldReference,
    SigmaNull,
    SigmaNumber,
    SigmaRegularExpression,
    SigmaRegularExpressionFlag,
    SigmaString,
    SpecialChars,
)

from bastion.detect.events import ANY_FIELD, UNSET, FlatEvent
from bastion.detect.selectivity import Atom, regex_literal_chain
from bastion.detect.selectivity import regex_literal as _regex_literal
from bastion.detect.selectivity import req_cost as _req_cost

__all__ = [
    "Atom",
    "Matcher",
    "Requirement",
    "Unsupported",
    "all_of",
    "any_of",
    "compile_tree",
    "equals",
    "fields_of",
    "requirement",
    "requirement_alternatives",
]

Matcher = Callable[[FlatEvent], bool]
Requirement = frozenset[Atom] | None

_MULTI = SpecialChars.WILDCARD_MULTI
_SINGLE = SpecialChars.WILDCARD_SINGLE
_RE_FLAGS = {
    SigmaRegularExpressionFlag.IGNORECASE: re.IGNORECASE,
    SigmaRegularExpressionFlag.MULTILINE: re.MULTILINE,
    SigmaRegularExpressionFlag.DOTALL: re.DOTALL,
}


class Unsupported(Exception):
    """A rule uses something the matcher cannot evaluate; the message says what."""


class _Ctx:
    def __init__(self, fieldmap: Mapping[str, str], placeholders: Mapping[str, Sequence[str]]) -> None:
        self.fieldmap = fieldmap
        self.placeholders = placeholders

    def field(self, name: str) -> str:
        return self.fieldmap.get(name, name)


# ---------------------------------------------------------------- string patterns


def _expand_placeholders(value: SigmaString, ctx: _Ctx) -> list[list[Any]]:
    """Parts lists with placeholders replaced: known ones by their values, unknown ones by ``*``."""
    choices: list[list[Any]] = []
    for part in value.s:
        if isinstance(part, Placeholder):
            vals = ctx.placeholders.get(part.name)
            choices.append([[v] for v in vals] if vals else [[_MULTI]])
        else:
            choices.append([[part]])
    return [[p for seg in combo for p in seg] for combo in itertools.product(*choices)]


def _merge(parts: Sequence[Any]) -> list[Any]:
    out: list[Any] = []
    for p in parts:
        if isinstance(p, str) and out and isinstance(out[-1], str):
            out[-1] += p
        elif (p is _MULTI and out and out[-1] is _MULTI) or p == "":
            continue
        else:
            out.append(p)
    return out


def _classify(parts: list[Any]) -> tuple[str, str] | None:
    """(kind, literal) for the plain forms eq/startswith/endswith/contains; None for general patterns."""
    if not parts:
        return ("eq", "")
    if all(isinstance(p, str) for p in parts):
        return ("eq", parts[0])
    if len(parts) == 2 and parts[0] is _MULTI and isinstance(parts[1], str):
        return ("end", parts[1])
    if len(parts) == 2 and parts[1] is _MULTI and isinstance(parts[0], str):
        return ("start", parts[0])
    if len(parts) == 3 and parts[0] is _MULTI and parts[2] is _MULTI and isinstance(parts[1], str):
        return ("sub", parts[1])
    if parts == [_MULTI]:
        return ("any", "")
    return None


def _pattern_regex(parts: list[Any], lower: bool, *, search: bool = False) -> re.Pattern[str]:
    out = []
    for p in parts:
        if p is _MULTI:
            out.append(".*")
        elif p is _SINGLE:
            out.append(".")
        else:
            out.append(re.escape(p.lower() if lower else p))
    return re.compile("".join(out) if search else "(?:" + "".join(out) + r")\Z", re.DOTALL)


def _longest_literal(parts: list[Any]) -> str:
    lits = [p for p in parts if isinstance(p, str)]
    return max(lits, key=len) if lits else ""


def _on_field(field: str, test: Callable[[str], bool], lower: bool) -> Matcher:
    if lower:

        def m(ev: FlatEvent) -> bool:
            v = ev.lowd.get(field, UNSET)
            if v is UNSET:
                v = ev.lower_field(field)
            if type(v) is str:
                return test(v)
            return v is not None and any(test(x) for x in v)

    else:

        def m(ev: FlatEvent) -> bool:
            v = ev.text(field)
            if type(v) is str:
                return test(v)
            return v is not None and any(test(x) for x in v)

    return m


def _group_matcher(field: str, kind: str, lits: list[str], lower: bool) -> Matcher:
    """One test for several plain patterns of one kind on one field (an OR of them)."""
    if kind == "eq":
        vals = frozenset(lits)
        return _on_field(field, vals.__contains__, lower)
    if kind == "start":
        t = tuple(lits)
        return _on_field(field, lambda s: s.startswith(t), lower)
    if kind == "end":
        t = tuple(lits)
        return _on_field(field, lambda s: s.endswith(t), lower)
    if kind == "sub":
        return _on_field(field, _any_substring(lits), lower)
    if kind == "any":
        return _on_field(field, lambda s: True, lower)
    raise AssertionError(kind)


_FEW_SUBSTRINGS = 8


def _any_substring(lits: list[str]) -> Callable[[str], bool]:
    """A test for "one of ``lits`` occurs in the value". A few are tried one by one; more go into one
    Aho-Corasick automaton, which is built and searched faster than an alternation regex (a SigmaHQ
    selection can list hundreds of substrings, and compiling those regexes was a quarter of rule load)."""
    uniq = sorted(set(lits), key=len, reverse=True)
    if "" in uniq:
        return lambda s: True
    if len(uniq) == 1:
        lit = uniq[0]
        return lambda s: lit in s
    if len(uniq) <= _FEW_SUBSTRINGS:
        few = tuple(uniq)
        return lambda s: any(x in s for x in few)
    auto = ahocorasick.Automaton()
    for x in uniq:
        auto.add_word(x, None)
    auto.make_automaton()
    return lambda s: next(auto.iter(s), None) is not None


def _string_leaf(field: str, parts: list[Any], cased: bool) -> tuple[Matcher, Requirement]:
    parts = _merge(parts)
    lower = not cased
    if lower:
        parts = [p.lower() if isinstance(p, str) else p for p in parts]
    cls = _classify(parts)
    if cls is not None:
        kind, lit = cls
        m = _group_matcher(field, kind, [lit], lower)
        return m, _atoms(field, kind, [lit])
    lit = _longest_literal(parts)
    req = frozenset({(field, "sub", lit.lower())}) if lit else None
    test = _glob_test(parts)
    if test is None:
        rx = _pattern_regex(parts, lower=False)
        test = lambda s: rx.match(s) is not None  # noqa: E731
    return _on_field(field, test, lower), req


def _glob_test(parts: list[Any]) -> Callable[[str], bool] | None:
    """A whole-value test for a pattern of literals and ``*`` only, without a regex (None if it has
    ``?``): the first literal is a prefix and the last a suffix unless a ``*`` stands there, and the
    literals between are found in order in what is left. Taking each at its leftmost place is enough: a
    later place only leaves less room for the rest. Same answers as ``_pattern_regex``'s match."""
    if any(p is not _MULTI and not isinstance(p, str) for p in parts):
        return None
    lits: list[str] = [p for p in parts if isinstance(p, str)]
    if len(lits) == len(parts):
        whole = "".join(lits)
        return lambda s: s == whole
    head = lits.pop(0) if isinstance(parts[0], str) else ""
    tail = lits.pop() if isinstance(parts[-1], str) and len(parts) > 1 else ""
    middle = tuple(lits)

    def test(s: str) -> bool:
        end = len(s) - len(tail)
        if end < len(head) or not s.startswith(head) or not s.endswith(tail):
            return False
        return _in_order(s, middle, len(head), end)

    return test


def _in_order(s: str, lits: tuple[str, ...], pos: int, end: int) -> bool:
    """Whether ``lits`` occur in ``s[pos:end]`` one after another, without overlapping."""
    for lit in lits:
        i = s.find(lit, pos, end)
        if i < 0:
            return False
        pos = i + len(lit)
    return True


def _atoms(field: str, kind: str, lits: list[str]) -> Requirement:
    if kind == "any":
        return None
    if kind == "eq":
        return frozenset((field, "eq", x.lower()) for x in lits)
    if any(not x for x in lits):
        return None
    return frozenset((field, "sub", x.lower()) for x in lits)


# ---------------------------------------------------------------- regular expressions


def _regex_leaf(field: str, value: SigmaRegularExpression) -> tuple[Matcher, Requirement]:
    flags = 0
    for f in value.flags:
        flags |= _RE_FLAGS[f]
    pattern = value.regexp.original
    try:
        rx = re.compile(pattern, flags)
    except re.error as exc:
        raise Unsupported(f"invalid regular expression {pattern!r} on {field}: {exc}") from None
    lit = _regex_literal(pattern, flags)
    req = frozenset({(field, "sub", lit.lower())}) if lit else None
    chain = regex_literal_chain(pattern, flags)
    if chain is None:
        return _on_field(field, lambda s: rx.search(s) is not None, lower=False), req
    return _on_field(field, _chain_search(*chain), lower=False), req


def _chain_search(lits: tuple[str, ...], dotall: bool) -> Callable[[str], bool]:
    """``re.search`` of ``lit.*lit.*...`` (``selectivity.regex_literal_chain``) as a test: without DOTALL
    ``.`` stops at a newline, so the literals must follow each other within one line."""

    def test(s: str) -> bool:
        if dotall or "\n" not in s:
            return _in_order(s, lits, 0, len(s))
        return any(_in_order(line, lits, 0, len(line)) for line in s.split("\n"))

    return test


# ---------------------------------------------------------------- other value types


def _number(v: Any) -> float | None:
    if type(v) is int or type(v) is float:
        return float(v)
    if type(v) is str:
        try:
            return float(int(v, 0)) if v[:2].lower() == "0x" else float(v)
        except ValueError:
            return None
    return None


def _compare_leaf(field: str, value: SigmaCompareExpression) -> Matcher:
    n = float(value.number.number)
    op = value.op
    test: Callable[[float], bool]
    if op == CompareOperators.LT:
        test = n.__gt__
    elif op == CompareOperators.LTE:
        test = n.__ge__
    elif op == CompareOperators.GT:
        test = n.__lt__
    else:
        test = n.__le__

    def m(ev: FlatEvent) -> bool:
        v = ev.fields.get(field)
        vals = v if type(v) is list else [v]
        for x in vals:
            num = _number(x)
            if num is not None and test(num):
                return True
        return False

    return m


def _cidr_leaf(field: str, value: SigmaCIDRExpression) -> Matcher:
    net = value.network

    def test(s: str) -> bool:
        try:
            return ipaddress.ip_address(s.strip()) in net
        except ValueError:
            return False

    return _on_field(field, test, lower=False)


def _fieldref_leaf(field: str, value: SigmaFieldReference, ctx: _Ctx) -> Matcher:
    other = ctx.field(value.field)
    start, end = value.starts_with, value.ends_with

    def m(ev: FlatEvent) -> bool:
        a, b = ev.low(field), ev.low(other)
        if a is None or b is None:
            return False
        avals = (a,) if type(a) is str else a
        bvals = (b,) if type(b) is str else b
        for x in avals:
            for y in bvals:
                if (
                    (start and x.startswith(y))
                    or (end and x.endswith(y))
                    or (not start and not end and x == y)
                ):
                    return True
        return False

    return m


def _leaf(field: str, value: Any, ctx: _Ctx) -> tuple[Matcher, Requirement]:
    if isinstance(value, SigmaExpansion):
        return _or([_leaf(field, v, ctx) for v in value.values])
    if isinstance(value, SigmaString):
        cased = isinstance(value, SigmaCasedString)
        if value.contains_placeholder():
            alts = [_string_leaf(field, parts, cased) for parts in _expand_placeholders(value, ctx)]
            return _or(alts)
        return _string_leaf(field, list(value.s), cased)
    if isinstance(value, SigmaBool):
        return _string_leaf(field, ["true" if value.boolean else "false"], False)
    if isinstance(value, SigmaNumber):
        return _string_leaf(field, [str(value.number)], False)
    if isinstance(value, SigmaNull):
        return (lambda ev: ev.fields.get(field) is None), None
    if isinstance(value, SigmaExists):
        if value.exists:
            return (lambda ev: ev.fields.get(field) is not None), None
        return (lambda ev: ev.fields.get(field) is None), None
    if isinstance(value, SigmaRegularExpression):
        return _regex_leaf(field, value)
    if isinstance(value, SigmaCIDRExpression):
        return _cidr_leaf(field, value), None
    if isinstance(value, SigmaCompareExpression):
        return _compare_leaf(field, value), None
    if isinstance(value, SigmaFieldReference):
        return _fieldref_leaf(field, value, ctx), None
    raise Unsupported(f"value type {type(value).__name__} on field {field} is not supported")


def _keyword_regex(parts: list[Any]) -> re.Pattern[str]:
    out = []
    for p in parts:
        if p is _MULTI:
            out.append("[^\\x00]*")
        elif p is _SINGLE:
            out.append("[^\\x00]")
        else:
            out.append(re.escape(p))
    return re.compile("".join(out))


def _keyword_literal(lit: str, cased: bool) -> Matcher:
    if cased:
        return lambda ev: lit in ev.all_text()[0]
    return lambda ev: lit in ev.any_low()


def _keyword_pattern(rx: re.Pattern[str], cased: bool) -> Matcher:
    if cased:
        return lambda ev: rx.search(ev.all_text()[0]) is not None
    return lambda ev: rx.search(ev.any_low()) is not None


def _keyword_leaf(value: Any, ctx: _Ctx) -> tuple[Matcher, Requirement]:
    """A field-less value: searched for in every field's value (NUL-joined, so no match spans two)."""
    if isinstance(value, SigmaExpansion):
        return _or([_keyword_leaf(v, ctx) for v in value.values])
    if isinstance(value, SigmaNumber):
        value = SigmaString(str(value.number))
    if not isinstance(value, SigmaString):
        raise Unsupported(f"keyword of type {type(value).__name__} is not supported")
    cased = isinstance(value, SigmaCasedString)
    alts = _expand_placeholders(value, ctx) if value.contains_placeholder() else [list(value.s)]
    out: list[tuple[Matcher, Requirement]] = []
    for raw in alts:
        parts = _merge(raw)
        if not cased:
            parts = [p.lower() if isinstance(p, str) else p for p in parts]
        lit = _longest_literal(parts)
        req = frozenset({(ANY_FIELD, "sub", lit.lower())}) if lit else None
        if (
            all(isinstance(p, str) or p is _MULTI for p in parts)
            and len([p for p in parts if isinstance(p, str)]) == 1
        ):
            out.append((_keyword_literal(lit, cased), req))
        else:
            out.append((_keyword_pattern(_keyword_regex(parts), cased), req))
    return _or(out)


# ---------------------------------------------------------------- tree


def _and(items: list[tuple[Matcher, Requirement]]) -> tuple[Matcher, Requirement]:
    ms = [m for m, _ in items]
    reqs = [r for _, r in items if r is not None]
    req = min(reqs, key=_req_cost) if reqs else None
    if len(ms) == 1:
        return ms[0], req
    if len(ms) == 2:
        a, b = ms
        return (lambda ev: a(ev) and b(ev)), req
    tm = tuple(ms)

    def m(ev: FlatEvent) -> bool:
        for x in tm:  # noqa: SIM110  (a plain loop is faster than all() over a generator here)
            if not x(ev):
                return False
        return True

    return m, req


def _or(items: list[tuple[Matcher, Requirement]]) -> tuple[Matcher, Requirement]:
    ms = [m for m, _ in items]
    req: Requirement = frozenset()
    for _, r in items:
        req = None if r is None or req is None else req | r
    if len(ms) == 1:
        return ms[0], req
    if len(ms) == 2:
        a, b = ms
        return (lambda ev: a(ev) or b(ev)), req
    tm = tuple(ms)

    def m(ev: FlatEvent) -> bool:
        for x in tm:  # noqa: SIM110  (a plain loop is faster than any() over a generator here)
            if x(ev):
                return True
        return False

    return m, req


def _plain(node: Any, ctx: _Ctx) -> tuple[str, str, str] | None:
    """(field, kind, literal) when a node is one case-insensitive plain string test."""
    if not isinstance(node, ConditionFieldEqualsValueExpression):
        return None
    v = node.value
    if type(v) is not SigmaString or v.contains_placeholder():
        return None
    parts = [p.lower() if isinstance(p, str) else p for p in _merge(list(v.s))]
    cls = _classify(parts)
    if cls is None or cls[0] == "any":
        return None
    return (ctx.field(node.field), cls[0], cls[1])


def _node(node: Any, ctx: _Ctx) -> tuple[Matcher, Requirement]:
    if isinstance(node, ConditionAND):
        return _and([_node(a, ctx) for a in node.args])
    if isinstance(node, ConditionOR):
        groups: dict[tuple[str, str], list[str]] = {}
        rest: list[tuple[Matcher, Requirement]] = []
        for a in node.args:
            p = _plain(a, ctx)
            if p is None:
                rest.append(_node(a, ctx))
            else:
                groups.setdefault((p[0], p[1]), []).append(p[2])
        for (field, kind), lits in groups.items():
            rest.append((_group_matcher(field, kind, lits, True), _atoms(field, kind, lits)))
        return _or(rest)
    if isinstance(node, ConditionNOT):
        inner, _ = _node(node.args[0], ctx)
        return (lambda ev: not inner(ev)), None
    if isinstance(node, ConditionFieldEqualsValueExpression):
        return _leaf(ctx.field(node.field), node.value, ctx)
    if isinstance(node, ConditionValueExpression):
        return _keyword_leaf(node.value, ctx)
    raise Unsupported(f"condition element {type(node).__name__} is not supported")


def compile_tree(
    tree: Any,
    fieldmap: Mapping[str, str] | None = None,
    placeholders: Mapping[str, Sequence[str]] | None = None,
) -> tuple[Matcher, Requirement]:
    """Compile a pySigma condition tree (``parsed_condition[i].parsed``) into (matcher, requirement)."""
    return _node(tree, _Ctx(fieldmap or {}, placeholders or {}))


def requirement(tree: Any, fieldmap: Mapping[str, str] | None = None) -> Requirement:
    """The atoms of which at least one holds in every event the tree matches (None: unknown)."""
    return compile_tree(tree, fieldmap)[1]


def equals(field: str, value: str) -> tuple[Matcher, Requirement]:
    """A case-insensitive equality test, as a compiled (matcher, requirement) pair."""
    return _string_leaf(field, [value], False)


def any_of(items: list[tuple[Matcher, Requirement]]) -> tuple[Matcher, Requirement]:
    """OR of compiled (matcher, requirement) pairs."""
    return _or(items)


def all_of(items: list[tuple[Matcher, Requirement]]) -> tuple[Matcher, Requirement]:
    """AND of compiled (matcher, requirement) pairs."""
    return _and(items)


def requirement_alternatives(
    tree: Any,
    fieldmap: Mapping[str, str] | None = None,
    placeholders: Mapping[str, Sequence[str]] | None = None,
) -> list[frozenset[Atom]]:
    """Every requirement that holds for the tree (one per conjunct of its top-level AND), best first.

    The engine takes the first one its log-source index does not already decide: a rule whose best
    requirement is ``EventID: 4624`` is dropped from other EventIDs' indexes and filed under its next
    literal in the 4624 one.
    """
    ctx = _Ctx(fieldmap or {}, placeholders or {})
    out: list[frozenset[Atom]] = []

    def walk(n: Any) -> None:
        if isinstance(n, ConditionAND):
            for a in n.args:
                walk(a)
            return
        try:
            req = _node(n, ctx)[1]
        except Unsupported:
            return
        if req is not None and req not in out:
            out.append(req)

    walk(tree)
    return sorted(out, key=_req_cost)


def fields_of(tree: Any, fieldmap: Mapping[str, str] | None = None) -> list[str]:
    """The event fields a tree tests, in order of first use."""
    fm = fieldmap or {}
    out: list[str] = []

    def walk(n: Any) -> None:
        if isinstance(n, ConditionFieldEqualsValueExpression):
            f = fm.get(n.field, n.field)
            if f not in out:
                out.append(f)
        for a in getattr(n, "args", None) or []:
            if not isinstance(a, str):
                walk(a)

    walk(tree)
    return out
