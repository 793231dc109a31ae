"""How selective a required literal is, and which literals a regular expression requires.

The engine files each rule under literals that must occur in any event it matches; these helpers pick
good ones. ``req_cost`` estimates how often a set of alternative atoms holds (lower is better): longer
literals are rarer, exact values rarer than substrings, and values of a few low-cardinality Windows
fields, or path fragments found in most events, are treated as common whatever their length.
``regex_literal`` pulls the longest run of plain characters out of a regex's top-level sequence;
``regex_literal_chain`` tells a regex that is nothing but literals joined by ``.*``.
"""

from __future__ import annotations

import re
from re import _parser as sre_parse  # type: ignore[attr-defined]
from typing import Any

__all__ = ["Atom", "atom_cost", "regex_literal", "regex_literal_chain", "req_cost"]

Atom = tuple[str, str, str]  # (field, "eq" | "sub", lowercased literal)


# Fields whose values repeat across most events (few distinct values): an exact value there says little.
_COMMON_FIELDS = frozenset(
    {
        "integritylevel",
        "company",
        "product",
        "signed",
        "signaturestatus",
        "provider_name",
        "eventtype",
        "logontype",
        "user",
        "objecttype",
        "accessmask",
        "status",
        "level",
        "task",
        "version",
        "keywords",
        "opcode",
        "objectserver",
        "authenticationpackagename",
    }
)
# Path fragments in most Windows events: a required substring inside one of these is no filter.
_COMMON_TEXT = (
    "c:\\windows\\system32\\",
    "c:\\windows\\syswow64\\",
    "c:\\program files (x86)\\",
    "c:\\users\\",
    "\\appdata\\local\\temp\\",
    "\\appdata\\roaming\\",
    "microsoft corporation",
    "windows\\microsoft.net\\",
    ".exe",
    ".dll",
)


def atom_cost(atom: Atom) -> float:
    """Roughly the chance that an event has the atom: longer literals are rarer; common values are not."""
    fname, kind, lit = atom
    if fname.lower() in _COMMON_FIELDS:
        return 0.5
    if kind == "sub" and any(lit in common for common in _COMMON_TEXT):
        return 0.3
    return 0.5 ** min(len(lit) + (4 if kind == "eq" else 0), 24)


def req_cost(req: frozenset[Atom]) -> float:
    """Lower is more selective: the summed chance of any of the atoms holding."""
    return sum(atom_cost(a) for a in req)


def regex_literal(pattern: str, flags: int) -> str:
    """The longest run of literal characters every match must contain, or ""."""
    try:
        parsed = sre_parse.parse(pattern, flags)
    except re.error:
        return ""
    best, run = "", []
    for op, av in parsed:
        if op is sre_parse.LITERAL:
            run.append(chr(av))
            continue
        if len(run) > len(best):
            best = "".join(run)
        run = []
        if op is sre_parse.SUBPATTERN and av[-1] is not None:
            inner = _sub_literal(av[-1])
            if len(inner) > len(best):
                best = inner
    if len(run) > len(best):
        best = "".join(run)
    return best


# Flags that leave a chain's meaning alone: DOTALL only lets ``.`` cross newlines (the caller is told),
# MULTILINE only changes ``^`` and ``$`` (a chain has neither), UNICODE is every str pattern's default.
_CHAIN_FLAGS = re.DOTALL | re.MULTILINE | re.UNICODE


def regex_literal_chain(pattern: str, flags: int) -> tuple[tuple[str, ...], bool] | None:
    """``(literals, dotall)`` for a regex that is only literals joined by ``.*`` (``\\+.*\\+.*\\+``),
    else None: any other syntax, a literal holding a newline, or a flag beyond DOTALL and MULTILINE
    (inline flags included). ``re.search`` of such a pattern holds exactly when the literals occur in
    order, within one line unless ``dotall``; Python's backtracking search tries every start and split
    instead, which a SigmaHQ rule with fourteen of them turns into half a millisecond per value."""
    try:
        parsed = sre_parse.parse(pattern, flags)
    except re.error:
        return None
    if parsed.state.flags & ~_CHAIN_FLAGS:
        return None
    lits: list[str] = []
    run: list[str] = []
    for op, av in parsed:
        if op is sre_parse.LITERAL:
            run.append(chr(av))
        elif op is sre_parse.MAX_REPEAT and av[0] == 0 and av[1] == sre_parse.MAXREPEAT and _is_any(av[2]):
            if run:
                lits.append("".join(run))
                run = []
        else:
            return None
    if run:
        lits.append("".join(run))
    if any("\n" in x for x in lits):
        return None
    return tuple(lits), bool(parsed.state.flags & re.DOTALL)


def _is_any(sub: Any) -> bool:
    return len(sub) == 1 and sub[0][0] is sre_parse.ANY


def _sub_literal(sub: Any) -> str:
    best, run = "", []
    for op, av in sub:
        if op is sre_parse.LITERAL:
            run.append(chr(av))
        else:
            if len(run) > len(best):
                best = "".join(run)
            run = []
    if len(run) > len(best):
        best = "".join(run)
    return best
