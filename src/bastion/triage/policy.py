"""A tenant's triage policy: score weights, dedupe and correlation windows, auto-close safety limits,
queues, SLA targets, manual-minute estimates and case templates, as one validated document.

Everything has a default, so a tenant with no stored policy triages sensibly. A stored policy is a
partial document merged over the defaults; unknown keys, ill-typed values and numbers outside their
field's range (:data:`RANGES`) are refused with the path of the problem, so a typo never silently turns a
safety limit off, and a window of a billion years never reaches a query as a time no column can hold.
"""

from __future__ import annotations

from typing import Any

import msgspec
import orjson
from sqlalchemy import Connection, select

from bastion.store._util import now_ms
from bastion.store.triage import triage_policies

__all__ = [
    "RANGES",
    "AssistantPolicy",
    "AutoClosePolicy",
    "CaseTemplate",
    "CorrelationPolicy",
    "DedupePolicy",
    "DedupeRule",
    "PolicyError",
    "QueueRule",
    "RoutingPolicy",
    "ScoreWeights",
    "SlaPolicy",
    "SlaTarget",
    "TriagePolicy",
    "load_policy",
    "parse_policy",
    "save_policy",
]


class PolicyError(ValueError):
    """The policy document is invalid; the message names the offending key."""


class _Doc(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=False):
    pass


class ScoreWeights(_Doc):
    """The most points each score component can add (``warninglist`` subtracts). Positive weights sum
    to 100 by default; the total is clamped to 0-100 whatever the weights."""

    severity: float = 35.0  # detection severity: informational 0 ... critical full
    fidelity: float = 10.0  # how much the rule is trusted: Sigma status and level, or the source tool
    intel: float = 20.0  # the best live, non-benign intel match's confidence
    asset: float = 10.0  # criticality of the assets involved
    identity: float = 10.0  # privilege of the identities involved
    techniques: float = 10.0  # distinct ATT&CK techniques the case spans
    history: float = 5.0  # the entities' recent alert history
    warninglist: float = 15.0  # subtracted when an observable of the alert is on a warning list


class DedupeRule(_Doc):
    """A fingerprint override for alerts of one source and/or rule (``None`` matches any)."""

    fields: list[str]
    source: str | None = None
    rule_id: str | None = None
    window_s: int | None = None


class DedupePolicy(_Doc):
    """Alerts with the same fingerprint within ``window_s`` of the last one update it instead of
    creating a new alert. A fingerprint field is an alert attribute (``source``, ``rule_id``, ``title``,
    ``severity``, ``external_id``), ``entities`` (the alert's hosts and users), or ``observable:TYPE``."""

    window_s: int = 3600
    fields: list[str] = msgspec.field(default_factory=lambda: ["source", "rule_id", "title", "entities"])
    rules: list[DedupeRule] = msgspec.field(default_factory=list)


class CorrelationPolicy(_Doc):
    """When alerts join an open case: a shared entity within ``window_s`` of the case's newest alert,
    or an ATT&CK progression on the same entity. An observable value counts as an entity only if it is
    of ``entity_types``, not on a warning list, and not seen in more than ``common_after`` open cases
    (very common values link unrelated alerts). An alert that joins no case opens one when its score
    is at least ``open_case_score``."""

    window_s: int = 86400
    entity_types: list[str] = msgspec.field(
        default_factory=lambda: [
            "host",
            "user",
            "ipv4",
            "ipv6",
            "domain",
            "url",
            "sha256",
            "sha1",
            "md5",
            "email",
        ]
    )
    common_after: int = 20
    progression: bool = True
    open_case_score: int = 30


class AutoClosePolicy(_Doc):
    """Low-score alerts may be closed automatically, but never one with an intel match at or above
    ``intel_confidence``, one on an asset at or above ``critical_asset`` criticality, or one in a case
    spanning ``multi_technique`` or more distinct techniques."""

    enabled: bool = True
    max_score: int = 20
    intel_confidence: int = 50
    critical_asset: int = 4  # Criticality.CRITICAL
    multi_technique: int = 2


class QueueRule(_Doc):
    """Route matching alerts and cases to ``queue`` at ``tier``. Every given condition must hold."""

    queue: str
    tier: int = 1
    min_score: int | None = None
    max_score: int | None = None
    tenants: list[str] | None = None  # tenant names (an MSSP's parent policy routes its customers)
    asset_owner: str | None = None
    sources: list[str] | None = None
    rule_ids: list[str] | None = None
    tags: list[str] | None = None


class RoutingPolicy(_Doc):
    """Queues, tried in order; the first matching rule wins, else the tier-1 default queue. Escalation
    moves a case to the next tier's queue (``tiers[tier-1]``)."""

    default_queue: str = "tier1"
    tiers: list[str] = msgspec.field(default_factory=lambda: ["tier1", "tier2", "tier3"])
    rules: list[QueueRule] = msgspec.field(default_factory=list)


class SlaTarget(_Doc):
    """Seconds from the case's first alert to acknowledgement, containment and resolution."""

    acknowledge_s: int
    contain_s: int
    resolve_s: int


def _default_sla() -> dict[str, SlaTarget]:
    hour, day = 3600, 86400
    return {
        "critical": SlaTarget(acknowledge_s=15 * 60, contain_s=1 * hour, resolve_s=24 * hour),
        "high": SlaTarget(acknowledge_s=30 * 60, contain_s=4 * hour, resolve_s=72 * hour),
        "medium": SlaTarget(acknowledge_s=4 * hour, contain_s=24 * hour, resolve_s=7 * 24 * hour),
        "low": SlaTarget(acknowledge_s=24 * hour, contain_s=72 * hour, resolve_s=30 * 24 * hour),
        "informational": SlaTarget(acknowledge_s=3 * day, contain_s=7 * day, resolve_s=30 * day),
    }


class SlaPolicy(_Doc):
    """SLA targets by case severity name, and who is told when one is breached (through the
    ``notify_action`` action, e-mail by default)."""

    targets: dict[str, SlaTarget] = msgspec.field(default_factory=_default_sla)
    notify: list[str] = msgspec.field(default_factory=list)
    notify_action: str = "notify.email"


class CaseTemplate(_Doc):
    """Tasks (a checklist) and custom fields given to a new case whose alerts match: any of ``tags``,
    ``techniques`` (prefix match, so T1003 covers T1003.001) or ``rule_ids``; no condition matches all."""

    name: str
    tasks: list[str] = msgspec.field(default_factory=list)
    custom_fields: dict[str, Any] = msgspec.field(default_factory=dict)
    tags: list[str] = msgspec.field(default_factory=list)
    techniques: list[str] = msgspec.field(default_factory=list)
    rule_ids: list[str] = msgspec.field(default_factory=list)


class AssistantPolicy(_Doc):
    """The triage assistant (``bastion.agents.assistant``): a proposed verdict for each new case, shown
    to the analyst. It changes a case only with ``auto_apply`` and a confidence of at least
    ``min_confidence``."""

    enabled: bool = True
    auto_apply: bool = False
    min_confidence: int = 90


def _default_minutes() -> dict[str, float]:
    # Minutes an analyst would spend doing by hand what Bastion did: the metrics' "hours saved".
    return {"alert.auto_close": 5.0, "alert.deduplicate": 2.0, "alert.suppress": 3.0, "action.default": 10.0}


class TriagePolicy(_Doc):
    weights: ScoreWeights = msgspec.field(default_factory=ScoreWeights)
    dedupe: DedupePolicy = msgspec.field(default_factory=DedupePolicy)
    correlation: CorrelationPolicy = msgspec.field(default_factory=CorrelationPolicy)
    autoclose: AutoClosePolicy = msgspec.field(default_factory=AutoClosePolicy)
    routing: RoutingPolicy = msgspec.field(default_factory=RoutingPolicy)
    sla: SlaPolicy = msgspec.field(default_factory=SlaPolicy)
    # Manual-minute estimates by action id (``core.http_request``, ``ldap.disable_user``...) and by the
    # triage's own automated work (``alert.*``); ``action.default`` covers any action not listed.
    manual_minutes: dict[str, float] = msgspec.field(default_factory=_default_minutes)
    templates: list[CaseTemplate] = msgspec.field(default_factory=list)
    history_days: int = 30
    assistant: AssistantPolicy = msgspec.field(default_factory=AssistantPolicy)


_YEAR_S = 365 * 86_400
_WINDOW = (0, _YEAR_S, "seconds, up to 365 days")
_SLA = (1, _YEAR_S, "seconds, up to 365 days")
_SCORE = (0, 100, "a score")

#: The allowed range (inclusive) of each number of the policy, by (section, field); for a mapping, of
#: each of its values. Times are multiplied into epoch milliseconds and subtracted from alert times, so
#: an unbounded one overflows the store's 64-bit integers (and stops ingest); a negative weight or
#: window means nothing. ``None`` (a rule's unset window or score) is always allowed.
RANGES: dict[tuple[type[_Doc], str], tuple[int, int, str]] = {
    **{(ScoreWeights, name): (0, 100, "points") for name in ScoreWeights.__struct_fields__},
    (DedupePolicy, "window_s"): _WINDOW,
    (DedupeRule, "window_s"): _WINDOW,
    (CorrelationPolicy, "window_s"): _WINDOW,
    (CorrelationPolicy, "common_after"): (0, 1_000_000, "open cases or hosts"),
    (CorrelationPolicy, "open_case_score"): (0, 101, "a score; 101 opens no case by score"),
    (AutoClosePolicy, "max_score"): _SCORE,
    (AutoClosePolicy, "intel_confidence"): (0, 100, "a confidence"),
    (AutoClosePolicy, "critical_asset"): (1, 5, "a criticality; 5 lets no asset block"),
    (AutoClosePolicy, "multi_technique"): (1, 1000, "distinct techniques"),
    (QueueRule, "min_score"): _SCORE,
    (QueueRule, "max_score"): _SCORE,
    (SlaTarget, "acknowledge_s"): _SLA,
    (SlaTarget, "contain_s"): _SLA,
    (SlaTarget, "resolve_s"): _SLA,
    (TriagePolicy, "manual_minutes"): (0, 7 * 24 * 60, "minutes, up to a week"),
    (TriagePolicy, "history_days"): (0, 365, "days"),
    (AssistantPolicy, "min_confidence"): (0, 100, "a confidence"),
}


def _bounded(value: Any, lo: int, hi: int, where: str, what: str, fix: bool) -> Any:
    """``value`` when within ``lo``-``hi``; else, with ``fix``, the nearest bound (NaN: ``lo``), or a
    :class:`PolicyError` naming ``where`` and the range."""
    if lo <= value <= hi:
        return value
    if not fix:
        raise PolicyError(f"invalid triage policy: {where} must be {lo}-{hi} ({what}), not {value!r}")
    return type(value)(hi if value > hi else lo)


def _check_ranges(node: Any, path: str, fix: bool) -> None:
    """Hold every number under ``node`` (a policy section) to :data:`RANGES`, recursively."""
    if isinstance(node, list):
        for i, item in enumerate(node):
            _check_ranges(item, f"{path}[{i}]", fix)
        return
    if isinstance(node, dict):
        for key, item in node.items():
            _check_ranges(item, f"{path}.{key}", fix)
        return
    if not isinstance(node, _Doc):
        return
    for name in node.__struct_fields__:
        value = getattr(node, name)
        where = f"{path}.{name}" if path else name
        bounds = RANGES.get((type(node), name))
        if bounds is None:
            _check_ranges(value, where, fix)
            continue
        lo, hi, what = bounds
        if isinstance(value, dict):
            for key, item in value.items():
                value[key] = _bounded(item, lo, hi, f"{where}.{key}", what, fix)
        elif value is not None:
            setattr(node, name, _bounded(value, lo, hi, where, what, fix))
    if isinstance(node, RoutingPolicy):  # a rule's tier is a position in this policy's tiers
        for i, rule in enumerate(node.rules):
            where = f"{path}.rules[{i}].tier"
            rule.tier = _bounded(rule.tier, 1, max(len(node.tiers), 1), where, "a position in tiers", fix)


def _merge(base: Any, over: Any) -> Any:
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for k, v in over.items():
            out[k] = _merge(base[k], v) if k in base and isinstance(base[k], dict) else v
        return out
    return over


def parse_policy(document: dict[str, Any] | None, *, clamp: bool = False) -> TriagePolicy:
    """The policy ``document`` describes, merged over the defaults. Raises :class:`PolicyError`; with
    ``clamp``, a number out of its range is moved to the nearest bound instead (stored policies)."""
    if document is None:
        return TriagePolicy()
    if not isinstance(document, dict):
        raise PolicyError("a triage policy must be a mapping")
    merged = _merge(msgspec.to_builtins(TriagePolicy()), document)
    try:
        policy = msgspec.convert(merged, TriagePolicy)
    except msgspec.ValidationError as exc:
        raise PolicyError(f"invalid triage policy: {exc}") from None
    if not policy.routing.tiers:
        raise PolicyError("invalid triage policy: routing.tiers needs at least one queue")
    _check_ranges(policy, "", clamp)
    from bastion.triage.fingerprint import unknown_fields

    for where, fields in [("dedupe.fields", policy.dedupe.fields)] + [
        (f"dedupe.rules[{i}].fields", r.fields) for i, r in enumerate(policy.dedupe.rules)
    ]:
        bad = unknown_fields(fields)
        if bad:
            raise PolicyError(
                f"invalid triage policy: {where} has unknown fingerprint field(s) {', '.join(bad)}"
            )
    return policy


def load_policy(conn: Connection, tenant_id: str) -> TriagePolicy:
    """The tenant's policy (defaults when none is stored). A number a policy stored before its range was
    checked holds is clamped into the range, so that such a policy cannot stop ingest."""
    doc = conn.execute(
        select(triage_policies.c.document).where(triage_policies.c.tenant_id == tenant_id)
    ).scalar()
    return parse_policy(orjson.loads(doc), clamp=True) if doc else TriagePolicy()


def save_policy(conn: Connection, tenant_id: str, document: dict[str, Any], actor: str) -> TriagePolicy:
    """Validate and store ``document`` as the tenant's policy (the caller audits)."""
    policy = parse_policy(document)
    text = orjson.dumps(document).decode()
    row = {"document": text, "updated": now_ms(), "updated_by": actor}
    found = conn.execute(
        select(triage_policies.c.tenant_id).where(triage_policies.c.tenant_id == tenant_id)
    ).first()
    if found:
        conn.execute(triage_policies.update().where(triage_policies.c.tenant_id == tenant_id).values(**row))
    else:
        conn.execute(triage_policies.insert().values(tenant_id=tenant_id, **row))
    return policy
