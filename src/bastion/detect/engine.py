"""The streaming matcher: every compiled rule, indexed so an event meets only rules that can match.

Rules are indexed first by log source: for Windows by (channel, EventID), for other JSON documents by
the source maps an event satisfies. Within the rules an event's log source selects, each rule is
filed under the literals it requires (see ``compiler.requirement``): exact values go into a hash table
per field, substrings into one Aho-Corasick automaton per field (pyahocorasick), keywords into one RE2
set. An event runs each automaton once over the field's lowercased value and the keyword set once over
its keyword text; only rules whose literals were seen (those of their best requirement and of up to two
more), plus the few that require no literal (rules made only of ``not``, numeric or CIDR tests), are
evaluated in full.

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
from bastion.detect.events import ANY_FIELD, FlatEvent, flatten
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
# The largest keyword set (UTF-8 bytes of its literals) searched with RE2: a DFA state per byte at most,
# each a few KB, well inside the memory RE2 may use for it.
_RE2_KEYWORD_BYTES = 4096
_RE2_MAX_MEM = 64 << 20


def _utf8(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


def _automaton(lits: Mapping[str, Sequence[int]]) -> Any:
    auto = ahocorasick.Automaton()
    for lit, idx in lits.items():
        auto.add_word(lit, tuple(idx))
    auto.make_automaton()
    return auto


class _Keywords:
    """The keyword (field-less) literals of one log source, searched for in an event's keyword text.

    A set of up to ``_RE2_KEYWORD_BYTES`` goes into an RE2 set, whose DFA scans that text (every value of
    the event) in a third of the time pyahocorasick's linked trie nodes take. Every state of that DFA
    fits in its memory, so no input can make it drop and rebuild states: the search stays linear. A
    larger set, or one RE2 cannot search (``RE2::Set`` reports no error when its DFA fails: it finds
    nothing, so the set must find its own first literal), goes into an Aho-Corasick automaton.
    """

    __slots__ = ("auto", "ids", "set")

    def __init__(self, lits: Mapping[str, Sequence[int]]) -> None:
        self.ids = [tuple(idx) for idx in lits.values()]
        self.set: Any = None
        self.auto: Any = None
        if sum(len(_utf8(lit)) for lit in lits) <= _RE2_KEYWORD_BYTES:
            opts = re2.Options()
            opts.literal = True
            opts.max_mem = _RE2_MAX_MEM
            rset = re2.Set.SearchSet(opts)
            for lit in lits:
                rset.Add(_utf8(lit))
            rset.Compile()
            if rset.Match(_utf8(next(iter(lits)))):
                self.set = rset
        if self.set is None:
            self.auto = _automaton(lits)

    def find(self, text: str, cands: set[int]) -> None:
        """Add the ids filed under the literals in ``text``."""
        if self.set is not None:
            found = self.set.Match(_utf8(text))
            if found:
                ids = self.ids
                for k in found:
                    cands.update(ids[k])
        else:
            for _end, payload in self.auto.iter(text):
                cands.update(payload)


class _Bucket:
    """The rules of one log source, with their literal prefilter.

    A variant is filed under the atoms of its most selective requirement (a hit there makes its id a
    candidate) and of up to two more (``_EXTRA_GROUPS``): each of those gets an id of its own, past
    every variant id, and ``needs`` maps the variant to them. A candidate whose needed ids were not all
    hit too cannot match and is not evaluated: that drops two thirds of the evaluations on SigmaHQ,
    where a rule's best-looking literal (``\\cmd.exe``) is often its most common one.
    """

    __slots__ = ("always", "keys", "keywords", "needs", "tables")

    def __init__(self, variants: Sequence[_Variant], ids: Iterable[int], known: Mapping[str, str]) -> None:
        always: list[int] = []
        eq: dict[str, dict[str, list[int]]] = {}
        sub: dict[str, dict[str, list[int]]] = {}
        self.needs: dict[int, frozenset[int]] = {}
        gid = len(variants)

        def file(req: frozenset[Atom], key: int) -> None:
            for fname, kind, lit in req:
                table = eq if kind == "eq" else sub
                table.setdefault(fname, {}).setdefault(lit, []).append(key)

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
        kw = sub.pop(ANY_FIELD, None)
        self.keywords = _Keywords(kw) if kw else None
        self.always = frozenset(always)
        # Per field: exact values to the ids filed under them, and an automaton of substrings.
        self.tables: dict[str, tuple[dict[str, tuple[int, ...]] | None, Any]] = {}
        for fname in eq.keys() | sub.keys():
            table = {k: tuple(v) for k, v in eq[fname].items()} if fname in eq else None
            self.tables[fname] = (table, _automaton(sub[fname]) if fname in sub else None)
        self.keys = frozenset(self.tables)

    def candidates(self, ev: FlatEvent) -> set[int]:
        cands = set(self.always)
        fields = ev.fields
        low = ev.lowd
        tables = self.tables
        for fname in self.keys.intersection(fields):
            v = fields[fname]
            if type(v) is str:
                v = low[fname] = v.lower()  # what low[fname] would compute, without its Python call
            else:
                v = low[fname]
                if v is None:
                    continue
            table, auto = tables[fname]
            for x in (v,) if type(v) is str else v:
                if table is not None:
                    hit = table.get(x)
                    if hit:
                        cands.update(hit)
                if auto is not None:
                    for _end, payload in auto.iter(x):
                        cands.update(payload)
        if self.keywords is not None:
            self.keywords.find(ev.any_low(), cands)
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
        for key, variant in new:
            self._variants.append(variant)
            vid = len(self._variants) - 1
            if isinstance(key, tuple):
                self._win.setdefault(key, []).append(vid)
            else:
                self._gen.setdefault(key, []).append(vid)

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
