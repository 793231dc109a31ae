"""The indicator store as a service: merge incoming indicators into the stored ones, keep a live matcher
per tenant in step with the table, decay confidence by source, and answer lookups.

Merging: one stored indicator per canonical (type, value). A second source adds a sighting instead of a
row; tags and links are unioned, first/last seen widened, and the indicator's confidence is the best
decayed confidence of its sightings. Decay is exponential with a per-source half-life (the feed's
``half_life_days``, else the tenant profile's ``decay`` map, else 180 days). An indicator past
``valid_until`` stays stored but stops matching.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from typing import Any

import msgspec

from bastion.intel.matcher import Matcher
from bastion.intel.normalize import InvalidIndicator, classify, normalize
from bastion.model.intel import Indicator, IndicatorType, Sighting
from bastion.store import Database
from bastion.store._util import now_ms
from bastion.store.intel import IntelRepository
from bastion.store.scope import TenantScope

__all__ = [
    "DEFAULT_HALF_LIFE_DAYS",
    "LoadResult",
    "TenantMatcher",
    "decayed_confidence",
    "load_indicators",
    "lookup",
    "match_observables",
    "merge",
    "tenant_matcher",
]

DEFAULT_HALF_LIFE_DAYS = 180.0
_DAY_MS = 86_400_000


class LoadResult(msgspec.Struct):
    loaded: int = 0
    merged: int = 0
    rejected: int = 0
    problems: list[str] = msgspec.field(default_factory=list)
    new: list[Indicator] = msgspec.field(default_factory=list)

    def contract(self) -> dict[str, int]:
        return {"loaded": self.loaded, "merged": self.merged, "rejected": self.rejected}


def decayed_confidence(ind: Indicator, now: int, policy: dict[str, float] | None = None) -> int:
    """The best confidence among the indicator's sightings after exponential decay by age."""
    sightings = ind.sightings or [
        Sighting(source=ind.source, confidence=ind.confidence, last_seen=ind.last_seen or ind.first_seen)
    ]
    best = 0.0
    for s in sightings:
        half = s.half_life_days or (policy or {}).get(s.source) or (policy or {}).get("default")
        half = float(half or DEFAULT_HALF_LIFE_DAYS)
        seen = s.last_seen or s.first_seen
        age_days = max(0.0, (now - seen) / _DAY_MS) if seen else 0.0
        best = max(best, s.confidence * 0.5 ** (age_days / half))
    return round(best)


def decay_policy(db: Database, tenant_id: str) -> dict[str, float]:
    """The tenant's per-source half-lives (its intel profile's ``decay``), for :func:`decayed_confidence`."""
    with db.read() as conn:
        return dict(IntelRepository(conn, tenant_id).profile().get("decay") or {})


def _sighting(ind: Indicator, half_life: float | None) -> Sighting:
    return Sighting(
        source=ind.source,
        confidence=ind.confidence,
        first_seen=ind.first_seen,
        last_seen=ind.last_seen or ind.first_seen,
        half_life_days=half_life,
    )


def _union(a: list[str], b: list[str]) -> list[str]:
    return sorted(set(a) | set(b))


def merge(old: Indicator, new: Indicator, half_life: float | None = None) -> Indicator:
    """``old`` with ``new``'s report folded in as a sighting."""
    sightings = list(old.sightings) or [_sighting(old, None)]
    for i, s in enumerate(sightings):
        if s.source == new.source:
            sightings[i] = Sighting(
                source=s.source,
                confidence=new.confidence,
                first_seen=min(x for x in (s.first_seen, new.first_seen) if x)
                if (s.first_seen or new.first_seen)
                else None,
                last_seen=max(x for x in (s.last_seen, new.last_seen, new.first_seen) if x)
                if (s.last_seen or new.last_seen or new.first_seen)
                else None,
                count=s.count + 1,
                half_life_days=half_life if half_life is not None else s.half_life_days,
            )
            break
    else:
        sightings.append(_sighting(new, half_life))
    firsts = [x for x in (old.first_seen, new.first_seen) if x]
    lasts = [x for x in (old.last_seen, new.last_seen) if x]
    details = {**old.details, **new.details}
    return msgspec.structs.replace(
        old,
        confidence=max(s.confidence for s in sightings),
        first_seen=min(firsts) if firsts else None,
        last_seen=max(lasts) if lasts else None,
        valid_until=new.valid_until if new.valid_until is not None else old.valid_until,
        tags=_union(old.tags, new.tags),
        techniques=_union(old.techniques, new.techniques),
        actors=_union(old.actors, new.actors),
        malware=_union(old.malware, new.malware),
        description=old.description or new.description,
        details=details,
        sightings=sightings,
        tlp=max(old.tlp, new.tlp, key=_TLP_RANK.index),
    )


_TLP_RANK = ["clear", "green", "amber", "amber+strict", "red"]


def load_indicators(
    db: Database,
    tenant_id: str,
    indicators: Iterable[Indicator],
    *,
    actor: str,
    rejected: Sequence[str] = (),
    half_life_days: float | None = None,
    feed: str | None = None,
) -> LoadResult:
    """Store indicators, merging with what is there, in one transaction with one audit entry."""
    result = LoadResult(rejected=len(rejected), problems=list(rejected))
    batch: dict[tuple[str, str], Indicator] = {}
    for ind in indicators:
        key = (ind.type.value, ind.value)
        if key in batch:
            batch[key] = merge(batch[key], ind, half_life_days)
            result.merged += 1
        else:
            batch[key] = msgspec.structs.replace(
                ind, sightings=ind.sightings or [_sighting(ind, half_life_days)]
            )
    if not batch and not rejected:
        return result
    with db.write() as conn:
        repo = IntelRepository(conn, tenant_id)
        existing = repo.find(list(batch))
        todo: list[Indicator] = []
        for key, ind in batch.items():
            old = existing.get(key)
            if old is None:
                todo.append(ind)
                result.loaded += 1
            else:
                merged = ind
                for s in ind.sightings:
                    merged = merge(
                        old,
                        msgspec.structs.replace(ind, source=s.source, confidence=s.confidence),
                        half_life_days,
                    )
                    old = merged
                todo.append(msgspec.structs.replace(merged, id=old.id))
                result.merged += 1
        stored = repo.upsert(todo)
        new_keys = {k for k in batch if k not in existing}
        result.new = [i for i in stored if (i.type.value, i.value) in new_keys]
        TenantScope(conn, tenant_id).audit.append(
            actor,
            "intel.load",
            "intel",
            feed,
            {"feed": feed, **result.contract()},
        )
    tm = _matchers.get(f"{db.url}|{tenant_id}")
    if tm is not None:
        tm.apply(stored)
    return result


class TenantMatcher:
    """A tenant's matcher kept in step with its indicator table (incrementally, by ``updated``)."""

    def __init__(self, tenant_id: str) -> None:
        self.tenant_id = tenant_id
        self.matcher = Matcher()
        self.known: set[int] = set()
        self.synced = -1
        self.lock = threading.Lock()

    def refresh(self, db: Database) -> Matcher:
        with self.lock, db.read() as conn:
            repo = IntelRepository(conn, self.tenant_id)
            since = None if self.synced < 0 else self.synced - 1
            top = self.synced
            for row in repo.iter_all(since=since):
                top = max(top, int(row.updated))
                pk = int(row.pk)
                if pk in self.known:
                    self.matcher.set_valid_until(pk, row.valid_until)
                    continue
                self.known.add(pk)
                self.matcher.add(
                    pk,
                    IndicatorType(row.type),
                    row.value,
                    exact=bool(row.exact),
                    pattern=bool(row.pattern),
                    valid_until=row.valid_until,
                )
            self.synced = max(top, 0)
            if since is None:  # the first, full load: build the lookup structures now, not in a lookup
                self.matcher.prepare()
        return self.matcher

    def apply(self, stored: Sequence[Indicator]) -> None:
        with self.lock:
            for ind in stored:
                if ind.id is None:
                    continue
                pk = int(ind.id)
                if pk in self.known:
                    self.matcher.set_valid_until(pk, ind.valid_until)
                    continue
                self.known.add(pk)
                self.matcher.add(
                    pk, ind.type, ind.value, exact=ind.exact, pattern=ind.pattern, valid_until=ind.valid_until
                )


_matchers: dict[str, TenantMatcher] = {}
_matchers_lock = threading.Lock()


def tenant_matcher(db: Database, tenant_id: str) -> Matcher:
    """The tenant's live matcher, brought up to date with the store."""
    key = f"{db.url}|{tenant_id}"
    with _matchers_lock:
        tm = _matchers.get(key)
        if tm is None:
            tm = _matchers[key] = TenantMatcher(tenant_id)
    return tm.refresh(db)


def _match_kinds(value: str, kind: IndicatorType | None) -> tuple[IndicatorType | None, str, list[str]]:
    """The type and canonical value of a lookup, and the observable types to match it as."""
    kind = kind or classify(value)
    if kind is None:  # a bare word: a file name, a leaked credential's username, a serial, a subject
        return None, value.strip(), ["file_name", "leaked_credential", "x509_serial", "email_subject"]
    try:
        kind, canon = normalize(kind, value)
    except InvalidIndicator:
        canon = value.strip()
    obs = {
        IndicatorType.CIDR: ["ipv4"],
        IndicatorType.DOMAIN: ["domain", "file_name"],
        IndicatorType.EMAIL: ["email", "leaked_credential"],
        IndicatorType.FILE_NAME: ["file_name", "leaked_credential"],
        IndicatorType.MD5: ["md5", "ja3"],  # a JA3 fingerprint is an MD5 of the TLS hello
    }.get(kind, [kind.value])
    if kind is IndicatorType.CIDR:
        canon_ip = canon.split("/")[0]
        return kind, canon_ip, obs
    return kind, canon, obs


def match_observables(
    db: Database, tenant_id: str, observables: Sequence[tuple[str, str]], now: int | None = None
) -> list[list[Indicator]]:
    """The live indicators matching each (type, value) observable, in order."""
    now = now if now is not None else now_ms()
    matcher = tenant_matcher(db, tenant_id)
    hits = matcher.match_many(observables, now)
    pks = sorted({pk for h in hits for pk in h})
    if not pks:
        return [[] for _ in observables]
    with db.read() as conn:
        found = IntelRepository(conn, tenant_id).get_many(pks)
    return [[found[pk] for pk in h if pk in found] for h in hits]


def lookup(
    db: Database,
    tenant_id: str,
    value: str,
    *,
    kind: IndicatorType | None = None,
    warninglists: Any = None,
    now: int | None = None,
) -> dict[str, Any]:
    """The ``intel lookup`` answer: matching indicators (decayed confidence) and warning lists."""
    now = now if now is not None else now_ms()
    kind, canon, obs_types = _match_kinds(value, kind)
    matches: dict[int, Indicator] = {}
    policy = decay_policy(db, tenant_id)
    for hits in match_observables(db, tenant_id, [(t, canon) for t in obs_types], now):
        for ind in hits:
            matches[int(ind.id or 0)] = ind
    rows = [
        {
            "indicator": ind.value,
            "id": ind.id,
            "type": ind.type.value,
            "source": ind.source,
            "sources": sorted({s.source for s in ind.sightings} or {ind.source}),
            "confidence": decayed_confidence(ind, now, policy),
            "tags": ind.tags,
            "tlp": ind.tlp.value,
            "techniques": ind.techniques,
            "actors": ind.actors,
            "malware": ind.malware,
            "valid_until": ind.valid_until,
        }
        for _, ind in sorted(matches.items())
    ]
    wl = (
        [w.as_dict() for w in warninglists.check(canon, kind.value if kind else None)] if warninglists else []
    )
    return {
        "value": canon,
        "type": kind.value if kind else None,
        "matches": rows,
        "warninglists": wl,
        "known_benign": bool(wl),
    }
