"""The streaming matcher: every compiled rule, indexed so an event meets only rules that can match.

Rules are indexed first by log source: for Windows by (channel, EventID), for other JSON documents by
the source maps an event satisfies. Within the rules an event's log source selects, each rule is
filed under the literals it requires (see ``compiler.requirement``): substrings, exact values and
keywords of all fields go into one RE2 set per log source (``_Literals``), which scans the event's
keyword text (every lowercased value) once; each literal found is checked against its own field. Only
rules whose literals were seen (those of their best requirement and of up to two more), plus the few
that require no literal (rules made only of ``not``, numeric or CIDR tests), are evaluated in full.

Merged indexes are built on first sight of a log source and cached, so start-up stays proportional to
the rule count and the per-event cost to the rules that can still match.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ahocorasick
import re2
from sigma.conditions import SigmaCondition
from sigma.exceptions import SigmaError
from sigma.rule import SigmaRule

from bastion.detect.compiler import (
    Atom,
    Matcher,
    Requirement,
    Unsupported,
    all_of,
    any_of,
    compile_tree,
    equals,
    fields_of,
    requirement_alternatives,
)
from bastion.detect.events import ANY_FIELD, UNSET, FlatEvent, flatten
from bastion.detect.logsource import DEFAULT_SOURCE_MAPS, SourceMap, WindowsTarget, windows_targets
from bastion.detect.rules import LoadedRules, RuleProblem, load_rules
from bastion.detect.selectivity import req_cost
from bastion.model import Alert

__all__ = ["CompiledRule", "Detector", "Match"]


@dataclass
class CompiledRule:
    """A usable rule and its metadata. ``index`` is its position in ``Detector.rules``."""

    index: int
    rule: SigmaRule
    rule_id: str
    title: str
    level: str | None
    source: str
    mapped: bool = True
    # Where the rule applies: (index key, extra (field, value) conditions, Sigma-to-event field renames).
    # Keys are (channel lowercased | None, EventID | None) for Windows, a source map index or None else.
    targets: list[tuple[Any, tuple[tuple[str, str], ...], Mapping[str, str]]] = field(default_factory=list)
    _explain: dict[int, list[tuple[str, Matcher, list[str]]]] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class _Variant:
    rule: int
    matcher: Matcher
    req: Requirement
    fieldmap: Mapping[str, str]
    alts: tuple[frozenset[Atom], ...] = ()


def _static(atom: Atom, known: Mapping[str, str]) -> bool | None:
    """An atom's truth when its field is fixed by the index key, else None."""
    value = known.get(atom[0])
    if value is None:
        return None
    return value == atom[2] if atom[1] == "eq" else atom[2] in value


def _groups(v: _Variant, known: Mapping[str, str]) -> list[frozenset[Atom]] | None:
    """The requirements to index a variant under, given fields the index key fixes, most selective first.

    Each holds in every event the variant matches (one per conjunct of its top-level AND, and the
    requirement of the whole). Atoms the key decides are dropped; a requirement the key satisfies says
    nothing. None when the key rules the variant out; empty when it must always be evaluated.
    """
    out: list[frozenset[Atom]] = []
    for req in (*v.alts, v.req) if v.alts else (v.req,):
        if not req:
            continue
        truth = [_static(a, known) for a in req]
        if any(t is True for t in truth):
            continue
        left = frozenset(a for a, t in zip(req, truth, strict=True) if t is None)
        if not left:
            return None
        if left not in out:
            out.append(left)
    return sorted(out, key=req_cost)


@dataclass(frozen=True)
class Match:
    """One rule that matched one event, with the field map of the log source it matched under."""

    rule: CompiledRule
    fieldmap: Mapping[str, str]


# How many requirements besides the best one a variant is filed under, and the highest cost (see
# ``selectivity.req_cost``) one may have: hits on very common literals ("/c") cost more than they save.
_EXTRA_GROUPS = 2
_EXTRA_MAX_COST = 0.5
# The memory one log source's RE2 set may use (program and DFA state cache). A set that does not fit
# fails to compile and is searched by Aho-Corasick instead; a DFA that outgrows it while searching
# flushes its cache and goes on (RE2 never gives up on a set search), so this bounds memory, not results.
_RE2_MAX_MEM = 64 << 20

# How a literal found in the keyword text is checked against the field it was required on:
# (field, exact, literal, ids). ``field`` None: its ids count unchecked (see ``_Bucket.__init__``).
_Use = tuple[str | None, bool, str, tuple[int, ...]]


def _utf8(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


class _Literals:
    """Every literal one log source's rules are filed under, searched for in one pass per event.

    The text searched is the event's keyword text (every value lowercased, NUL-separated) between two
    NULs. A substring required of a field is searched as itself, an exact value as ``NUL value NUL``; a
    hit only says the literal is in some value, so it is checked against its field (``_Use``) before its
    ids count. One scan of all values by one RE2 set's DFA costs less than an Aho-Corasick pass per
    indexed field (pyahocorasick walks linked trie nodes, ~80 instructions a character, and each pass
    has its own call overhead). Matching UTF-8 bytes finds what matching the text finds: UTF-8 is
    self-synchronizing. A set RE2 cannot compile, or one that cannot find its own first literal (a DFA
    that fails reports no error, only no match), is searched by an Aho-Corasick automaton instead.
    """

    __slots__ = ("auto", "match", "set", "uses")

    def __init__(self, pats: Mapping[str, Sequence[_Use]]) -> None:
        self.uses = [tuple(u) for u in pats.values()]
        self.set: Any = None
        self.auto: Any = None
        self.match: Any = None
        opts = re2.Options()
        opts.literal = True
        opts.max_mem = _RE2_MAX_MEM
        rset: Any = re2.Set.SearchSet(opts)
        try:
            for p in pats:
                rset.Add(_utf8(p))
            rset.Compile()
        except re2.error:  # the set does not fit in _RE2_MAX_MEM
            rset = None
        if rset is not None and rset.Match(_utf8(next(iter(pats)))):
            self.set = rset
            # The binding's own Match, without the wrapper's Python frame (it returns a list).
            self.match = getattr(rset, "_set", rset).Match
        else:
            self.auto = _automaton({p: (k,) for k, p in enumerate(pats)})

    def find(self, text: str) -> Iterable[int]:
        """The indexes (into ``uses``) of the literals in ``text``, the NUL-bounded keyword text."""
        if self.match is not None:
            return self.match(_utf8(text)) or ()
        return {k for _end, (k,) in self.auto.iter(text)}


def _automaton(lits: Mapping[str, Sequence[int]]) -> Any:
    auto = ahocorasick.Automaton()
    for lit, idx in lits.items():
        auto.add_word(lit, tuple(idx))
    auto.make_automaton()
    return auto


class _Bucket:
    """The rules of one log source, with their literal prefilter.

    A variant is filed under the atoms of its most selective requirement (a hit there makes its id a
    candidate) and of up to two more (``_EXTRA_GROUPS``): each of those gets an id of its own, past
    every variant id, and ``needs`` maps the variant to them. A candidate whose needed ids were not all
    hit too cannot match and is not evaluated: that drops two thirds of the evaluations on SigmaHQ,
    where a rule's best-looking literal (``\\cmd.exe``) is often its most common one.
    """

    __slots__ = ("always", "literals", "needs")

    def __init__(self, variants: Sequence[_Variant], ids: Iterable[int], known: Mapping[str, str]) -> None:
        always: list[int] = []
        filed: dict[tuple[str, str, str], list[int]] = {}
        self.needs: dict[int, frozenset[int]] = {}
        gid = len(variants)

        def file(req: frozenset[Atom], key: int) -> None:
            for atom in req:
                filed.setdefault(atom, []).append(key)

        for i in ids:
            groups = _groups(variants[i], known)
            if groups is None:
                continue
            if not groups:
                always.append(i)
                continue
            file(groups[0], i)
            extra = []
            for req in groups[1 : 1 + _EXTRA_GROUPS]:
                if req_cost(req) <= _EXTRA_MAX_COST:
                    file(req, gid)
                    extra.append(gid)
                    gid += 1
            if extra:
                self.needs[i] = frozenset(extra)
        self.always = frozenset(always)
        pats: dict[str, list[_Use]] = {}
        nvar = len(variants)
        for (fname, kind, lit), keys in filed.items():
            exact = kind == "eq"
            pat = "\x00" + lit + "\x00" if exact else lit
            # A hit is checked against the literal's field only where that check pays. A keyword literal
            # found in the text is in some value: nothing to check (one holding a NUL might span two
            # values, which only makes its rules candidates: the matcher decides). A literal filed only
            # under extra requirements (ids past the variants') only lets candidates through: unchecked,
            # one found in another field costs at most an evaluation, and on the attack samples the
            # checks cost more than those evaluations.
            check = None if fname == ANY_FIELD or min(keys) >= nvar else fname
            pats.setdefault(pat, []).append((check, exact, lit, tuple(keys)))
        self.literals = _Literals(pats) if pats else None

    def candidates(self, ev: FlatEvent) -> set[int]:
        cands = set(self.always)
        lits = self.literals
        if lits is None:
            return cands
        lowd = ev.lowd
        uses = lits.uses
        for k in lits.find("\x00" + ev.any_low() + "\x00"):
            for fname, exact, lit, ids in uses[k]:
                if fname is not None:
                    v = lowd.get(fname, UNSET)
                    if v is UNSET:
                        v = ev.lower_field(fname)
                    if type(v) is str:
                        if not (v == lit if exact else lit in v):
                            continue
                    elif v is None or not (lit in v if exact else any(lit in x for x in v)):
                        continue
                cands.update(ids)
        return cands


def _rule_meta(rule: SigmaRule) -> tuple[str, str, str | None]:
    rid = str(rule.id) if rule.id is not None else (rule.title or "")
    level = rule.level.name.lower() if rule.level is not None else None
    return rid, rule.title or rid, level


class Detector:
    """Compiled Sigma rules, ready to match events one at a time or in batches.

    ``placeholders`` gives values for ``%name%`` placeholders (``expand`` modifier); unknown placeholders
    match anything, as pySigma's wildcard placeholder transformation does.
    """

    def __init__(
        self,
        loaded: LoadedRules,
        *,
        placeholders: Mapping[str, Sequence[str]] | None = None,
        source_maps: Sequence[SourceMap] = DEFAULT_SOURCE_MAPS,
        disabled: Iterable[str] = (),
    ) -> None:
        self.placeholders = dict(placeholders or {})
        self.source_maps = tuple(source_maps)
        self.rules: list[CompiledRule] = []
        self.unsupported: list[RuleProblem] = list(loaded.problems)
        self.correlations = list(loaded.correlations)
        self._variants: list[_Variant] = []
        self._win: dict[tuple[str | None, int | None], list[int]] = {}
        self._gen: dict[int | None, list[int]] = {}
        self._win_cache: dict[tuple[str, int | None], _Bucket] = {}
        self._gen_cache: dict[tuple[int, ...], _Bucket] = {}
        off = set(disabled)
        for rule, source in loaded.rules:
            rid, title, level = _rule_meta(rule)
            if rid in off:
                continue
            try:
                self._add(rule, source, rid, title, level)
            except (SigmaError, Unsupported) as exc:
                self.unsupported.append(RuleProblem(source, f"{type(exc).__name__}: {exc}", rid, title))

    @classmethod
    def from_paths(cls, paths: Iterable[str | Path], **kwargs: Any) -> Detector:
        """Load and compile every rule under the given files, folders and zip archives."""
        return cls(load_rules(paths), **kwargs)

    # ------------------------------------------------------------ compiling

    def _compile(
        self, rule: SigmaRule, fieldmap: Mapping[str, str]
    ) -> tuple[Matcher, Requirement, tuple[frozenset[Atom], ...]]:
        trees = [c.parsed for c in rule.detection.parsed_condition]
        m, req = any_of([compile_tree(t, fieldmap, self.placeholders) for t in trees])
        alts = (
            tuple(requirement_alternatives(trees[0], fieldmap, self.placeholders)) if len(trees) == 1 else ()
        )
        return m, req, alts

    def _add(self, rule: SigmaRule, source: str, rid: str, title: str, level: str | None) -> None:
        if rule.detection.parsed_condition and any(
            getattr(c, "aggregation", None) for c in rule.detection.parsed_condition
        ):
            raise Unsupported("aggregation conditions (count() by ...) are superseded by correlation rules")
        ls = rule.logsource
        product, service, category = ls.product, ls.service, ls.category
        base = self._compile(rule, {})  # compiles once even if unmapped, so errors surface
        idx = len(self.rules)
        compiled = CompiledRule(idx, rule, rid, title, level, source)
        new: list[tuple[Any, _Variant]] = []
        if product == "windows":
            targets = windows_targets(category, service)
            if targets is None:
                compiled.mapped = False
            else:
                cache: dict[
                    tuple[tuple[str, str], ...], tuple[Matcher, Requirement, tuple[frozenset[Atom], ...]]
                ]
                cache = {(): base}
                for t in targets:
                    key = (t.channel.lower() if t.channel else None, t.event_id)
                    new.append((key, self._variant(idx, rule, t, cache)))
                    compiled.targets.append((key, t.conditions, dict(t.fields)))
        else:
            covering = [i for i, sm in enumerate(self.source_maps) if sm.covers(product, service, category)]
            if covering:
                for i in covering:
                    fm = self.source_maps[i].fields
                    m, req, alts = self._compile(rule, fm) if fm else base
                    new.append((i, _Variant(idx, m, req, fm, alts)))
                    compiled.targets.append((i, (), fm))
            else:
                new.append((None, _Variant(idx, base[0], base[1], {}, base[2])))
                compiled.targets.append((None, (), {}))
        self.rules.append(compiled)
        for where, variant in new:
            self._variants.append(variant)
            vid = len(self._variants) - 1
            if isinstance(where, tuple):
                self._win.setdefault(where, []).append(vid)
            else:
                self._gen.setdefault(where, []).append(vid)

    def _variant(
        self,
        idx: int,
        rule: SigmaRule,
        t: WindowsTarget,
        cache: dict[tuple[tuple[str, str], ...], tuple[Matcher, Requirement, tuple[frozenset[Atom], ...]]],
    ) -> _Variant:
        fm = dict(t.fields)
        if t.fields not in cache:
            cache[t.fields] = self._compile(rule, fm)
        m, req, alts = cache[t.fields]
        if t.conditions:
            extra = [equals(f, v) for f, v in t.conditions]
            m, req = all_of([(m, req), *extra])
            alts = tuple(sorted({*alts, *(r for _, r in extra if r)}, key=len))
        return _Variant(idx, m, req, fm, alts)

    # ------------------------------------------------------------ matching

    def _bucket(self, ev: FlatEvent) -> _Bucket:
        key = ev.windows
        if key is not None:
            b = self._win_cache.get(key)
            if b is None:
                ids = (
                    self._win.get(key, [])
                    + (self._win.get((key[0], None), []) if key[1] is not None else [])
                    + self._win.get((None, None), [])
                )
                known = {"Channel": key[0]}
                if key[1] is not None:
                    known["EventID"] = str(key[1])
                b = self._win_cache[key] = _Bucket(self._variants, sorted(set(ids)), known)
            return b
        gkey = tuple(
            i
            for i, sm in enumerate(self.source_maps)
            if sm.requires and all(r in ev.fields for r in sm.requires)
        )
        b = self._gen_cache.get(gkey)
        if b is None:
            ids = list(self._gen.get(None, []))
            for i in gkey:
                ids.extend(self._gen.get(i, []))
            b = self._gen_cache[gkey] = _Bucket(self._variants, sorted(set(ids)), {})
        return b

    def source_keys(self, ev: FlatEvent) -> set[Any]:
        """The index keys (see ``CompiledRule.targets``) whose rules apply to an event."""
        key = ev.windows
        if key is not None:
            return {key, (key[0], None), (None, None)}
        keys: set[Any] = {None}
        keys.update(
            i
            for i, sm in enumerate(self.source_maps)
            if sm.requires and all(r in ev.fields for r in sm.requires)
        )
        return keys

    def match_flat(self, ev: FlatEvent) -> list[Match]:
        """The rules matching one prepared event, in rule order, each at most once."""
        key = ev.windows
        bucket = self._win_cache.get(key) if key is not None else None  # _bucket's common case, inline
        if bucket is None:
            bucket = self._bucket(ev)
        cands = bucket.candidates(ev)
        if not cands:
            return []
        out: list[Match] = []
        seen: set[int] = set()
        variants = self._variants
        n = len(variants)
        needs = bucket.needs
        for vid in sorted(cands):
            if vid >= n:
                break  # the ids of requirements, past every variant id
            need = needs.get(vid)
            if need is not None and not need <= cands:
                continue
            v = variants[vid]
            if v.rule not in seen and v.matcher(ev):
                seen.add(v.rule)
                out.append(Match(self.rules[v.rule], v.fieldmap))
        return out

    def match_document(self, doc: Any) -> list[Match]:
        """The rules matching one JSON document (evtx JSON form, flat Windows, or any JSON object)."""
        return self.match_flat(flatten(doc))

    def match_events(
        self,
        events: Iterable[Any],
        *,
        now: int | None = None,
        suppressions: Sequence[Any] = (),
        event_ids: Sequence[str] | None = None,
    ) -> list[Alert]:
        """Alerts for a batch of ``bastion.model.Event`` (matched on their ``raw`` document), after
        ``suppressions`` (``bastion.detect.alerts.Suppression``). See ``alerts.alerts_for_events``."""
        from bastion.detect.alerts import alerts_for_events

        return alerts_for_events(self, events, now=now, suppressions=suppressions, event_ids=event_ids)

    # ------------------------------------------------------------ explaining

    def explain(self, match: Match, ev: FlatEvent) -> dict[str, Any]:
        """Why a rule fired: the named detections that matched, and the fields they test with values."""
        rule = match.rule
        key = id(match.fieldmap)
        parts = rule._explain.get(key)
        if parts is None:
            parts = []
            for name in rule.rule.detection.detections:
                try:
                    tree = SigmaCondition(name, rule.rule.detection).parsed
                    m, _ = compile_tree(tree, match.fieldmap, self.placeholders)
                except (SigmaError, Unsupported):
                    continue
                parts.append((name, m, fields_of(tree, match.fieldmap)))
            rule._explain[key] = parts
        selections: list[str] = []
        values: dict[str, Any] = {}
        for name, m, fields in parts:
            if m(ev):
                selections.append(name)
                for f in fields:
                    v = ev.fields.get(f)
                    if v is not None:
                        values[f] = v
        return {"selections": selections, "fields": values}
