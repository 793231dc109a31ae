"""The streaming matcher: every compiled rule, indexed so an event meets only rules that can match.

Rules are indexed first by log source: for Windows by (channel, EventID), for other JSON documents by
the source maps an event satisfies. Within the rules an event's log source selects, each rule is
filed under the literals it requires (see ``compiler.requirement``): exact values go into a hash table
per field, substrings into one Aho-Corasick automaton per field (pyahocorasick). An event runs each
automaton once over the field's lowercased value; only rules whose literals were seen, plus the few that
require no literal (rules made only of ``not``, numeric or CIDR tests), are evaluated in full.

Merged indexes are built on first sight of a log source and cached, so start-up stays proportional to
the rule count and the per-event cost to the rules that can still match.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ahocorasick
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


def _choose(v: _Variant, known: Mapping[str, str]) -> frozenset[Atom] | bool | None:
    """The requirement to index a variant under, given fields the index key fixes.

    Returns False when the key rules the variant out, None when it must always be evaluated.
    """
    for req in (*v.alts, v.req) if v.alts else (v.req,):
        if not req:
            continue
        truth = [_static(a, known) for a in req]
        if any(t is None for t in truth):
            if any(t is True for t in truth):
                continue  # one alternative already holds: this requirement says nothing
            return frozenset(a for a, t in zip(req, truth, strict=True) if t is None)
        if not any(truth):
            return False
    return None


@dataclass(frozen=True)
class Match:
    """One rule that matched one event, with the field map of the log source it matched under."""

    rule: CompiledRule
    fieldmap: Mapping[str, str]


class _Bucket:
    """The rules of one log source, with their literal prefilter."""

    __slots__ = ("ac", "ac_keys", "always", "any_ac", "eq", "eq_keys")

    def __init__(self, variants: Sequence[_Variant], ids: Iterable[int], known: Mapping[str, str]) -> None:
        always: list[int] = []
        eq: dict[str, dict[str, list[int]]] = {}
        sub: dict[str, dict[str, list[int]]] = {}
        for i in ids:
            req = _choose(variants[i], known)
            if req is False:
                continue
            if req is None or req is True or not req:
                always.append(i)
                continue
            for fname, kind, lit in req:
                table = eq if kind == "eq" else sub
                table.setdefault(fname, {}).setdefault(lit, []).append(i)
        self.always = frozenset(always)
        self.eq = {f: {k: tuple(v) for k, v in t.items()} for f, t in eq.items()}
        self.eq_keys = frozenset(self.eq)
        self.ac: dict[str, Any] = {}
        for fname, lits in sub.items():
            auto = ahocorasick.Automaton()
            for lit, idx in lits.items():
                auto.add_word(lit, tuple(idx))
            auto.make_automaton()
            self.ac[fname] = auto
        self.any_ac = self.ac.pop(ANY_FIELD, None)
        self.ac_keys = frozenset(self.ac)

    def candidates(self, ev: FlatEvent) -> set[int]:
        cands = set(self.always) if self.always else set()
        low = ev.lowd
        fields = ev.fields
        eq = self.eq
        for fname in self.eq_keys.intersection(fields):
            v = low[fname]
            if type(v) is str:
                hit = eq[fname].get(v)
                if hit:
                    cands.update(hit)
            elif v is not None:
                table = eq[fname]
                for x in v:
                    hit = table.get(x)
                    if hit:
                        cands.update(hit)
        ac = self.ac
        for fname in self.ac_keys.intersection(fields):
            v = low[fname]
            if v is None:
                continue
            auto = ac[fname]
            for s in (v,) if type(v) is str else v:
                for _end, payload in auto.iter(s):
                    cands.update(payload)
        if self.any_ac is not None:
            for _end, payload in self.any_ac.iter(ev.any_low()):
                cands.update(payload)
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
        cands = self._bucket(ev).candidates(ev)
        if not cands:
            return []
        out: list[Match] = []
        seen: set[int] = set()
        variants = self._variants
        for vid in sorted(cands):
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
