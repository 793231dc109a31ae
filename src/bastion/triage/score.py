"""The explained 0-100 risk score of an alert or case.

Every component is computed and listed, even at zero points, so an analyst sees what was considered and
what was not found. Each component's share is its policy weight times a factor in 0..1; the warning-list
component subtracts. The total is clamped to 0..100 and rounded.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Any

from bastion.model import Alert, ScoreComponent, Severity
from bastion.model.asset import Criticality
from bastion.triage.policy import TriagePolicy

__all__ = [
    "ADMIN_GROUPS",
    "HISTORY_SPAN",
    "case_score",
    "explain",
    "score_alert",
    "techniques_component",
    "total",
]

# Groups whose members count as privileged even when the identity is not flagged so.
ADMIN_GROUPS = frozenset(
    {
        "domain admins",
        "enterprise admins",
        "schema admins",
        "administrators",
        "account operators",
        "backup operators",
        "server operators",
        "admins",
        "root",
        "wheel",
        "sudo",
    }
)
_STATUS = {"stable": 1.0, "test": 0.7, "experimental": 0.4}
_LEVEL = {"critical": 0.9, "high": 0.8, "medium": 0.6, "low": 0.4, "informational": 0.3}
_OTHER_SOURCE_FIDELITY = 0.5
_TECHNIQUE_SPAN = 5  # distinct techniques for the full techniques weight
HISTORY_SPAN = 10  # prior alerts on the same entities for the full history weight


@lru_cache(maxsize=8192)
def _c(name: str, weight: float, factor: float, detail: str) -> ScoreComponent:
    """One component; cached, as alerts repeat the same few (components are frozen, so shared)."""
    return ScoreComponent(name=name, points=round(weight * factor, 1), detail=detail, weight=weight)


def _fidelity(alert: Alert, weight: float) -> ScoreComponent:
    if alert.source != "sigma":
        return _other_fidelity(alert.source, weight)
    raw = alert.raw if isinstance(alert.raw, dict) else {}
    return _sigma_fidelity(str(raw.get("status") or "").lower(), str(raw.get("level") or "").lower(), weight)


@lru_cache(maxsize=256)
def _other_fidelity(source: str, weight: float) -> ScoreComponent:
    return _c("fidelity", weight, _OTHER_SOURCE_FIDELITY, f"alert from {source}: medium fidelity")


@lru_cache(maxsize=256)
def _sigma_fidelity(status: str, level: str, weight: float) -> ScoreComponent:
    """The fidelity of a Sigma rule's alerts, from its status and level (cached: a handful of pairs)."""
    if status in _STATUS:
        factor = _STATUS[status]
        if level in ("high", "critical"):
            factor = min(1.0, factor + 0.1)
        return _c("fidelity", weight, factor, f"Sigma rule status {status}, level {level or 'unset'}")
    factor = _LEVEL.get(level, _OTHER_SOURCE_FIDELITY) * 0.8  # no status: the rule is unproven
    return _c("fidelity", weight, factor, f"Sigma rule level {level or 'unset'}, status unknown")


def _intel(enr: dict[str, Any], weight: float) -> ScoreComponent:
    best: dict[str, Any] | None = None
    for m in enr.get("intel") or ():
        if not isinstance(m, dict) or m.get("known_benign"):
            continue
        if best is None or (m.get("confidence") or 0) > (best.get("confidence") or 0):
            best = m
    if best is None:
        return _c("intel", weight, 0.0, "no intel match")
    conf = max(0, min(100, int(best.get("confidence") or 0)))
    value = (best.get("observable") or {}).get("value") or best.get("indicator")
    return _c(
        "intel", weight, conf / 100, f"intel match {value} from {best.get('source')}, confidence {conf}"
    )


def _asset(enr: dict[str, Any], weight: float) -> ScoreComponent:
    best: tuple[int, str] | None = None
    for a in enr.get("assets") or ():
        if not isinstance(a, dict):
            continue
        crit = int(a.get("criticality") or Criticality.MEDIUM)
        if best is None or crit > best[0]:
            best = (crit, str(a.get("hostname")))
    if best is None:
        return _c("asset", weight, 0.0, "no known asset")
    return _asset_component(*best, weight)


@lru_cache(maxsize=4096)
def _asset_component(crit: int, host: str, weight: float) -> ScoreComponent:
    """The asset component of the most critical known asset (cached: alerts repeat their hosts)."""
    name = Criticality(crit).name.lower() if crit in Criticality._value2member_map_ else str(crit)
    return _c("asset", weight, crit / 4, f"asset {host} criticality {name} ({crit}/4)")


def _identity(enr: dict[str, Any], weight: float) -> ScoreComponent:
    known = [i for i in enr.get("identities") or () if isinstance(i, dict)]
    for ident in known:
        if ident.get("privileged"):
            return _c("identity", weight, 1.0, f"identity {ident.get('username')} is privileged")
    for ident in known:
        groups = [g for g in ident.get("groups") or () if str(g).lower() in ADMIN_GROUPS]
        if groups:
            return _c("identity", weight, 1.0, f"identity {ident.get('username')} is in {groups[0]}")
    if known:
        names = ", ".join(str(i.get("username")) for i in known[:3])
        return _c("identity", weight, 0.0, f"identity {names}: not privileged")
    return _c("identity", weight, 0.0, "no known identity")


def techniques_component(techniques: Iterable[str], weight: float) -> ScoreComponent:
    """Points for the distinct ATT&CK techniques a case spans (one technique earns nothing)."""
    return _c("techniques", weight, *_techniques_factor_detail(frozenset(techniques)))


@lru_cache(maxsize=4096)
def _techniques_factor_detail(techniques: frozenset[str]) -> tuple[float, str]:
    """(factor, detail) of the techniques component; cached, as alerts and cases repeat technique sets."""
    found = sorted(techniques)
    n = len(found)
    factor = min(max(n - 1, 0), _TECHNIQUE_SPAN - 1) / (_TECHNIQUE_SPAN - 1)
    shown = ", ".join(found[:5]) + (" ..." if n > 5 else "")
    detail = f"{n} distinct technique{'s' if n != 1 else ''}" + (f" ({shown})" if n else "")
    return factor, detail


# Informational detections carry no risk by themselves; each step up adds a quarter of the weight.
# OCSF's unknown (0) and other (99) count as medium; fatal (6) as critical.
_SEVERITY_FACTOR = {1: 0.0, 2: 0.25, 3: 0.5, 4: 0.75, 5: 1.0, 6: 1.0}


def _severity(severity: Severity, weight: float) -> ScoreComponent:
    return _c("severity", weight, *_severity_factor_detail(int(severity)))


@lru_cache(maxsize=16)
def _severity_factor_detail(sev: int) -> tuple[float, str]:
    """(factor, detail) of the severity component (cached: a handful of values, and enum lookups)."""
    factor = _SEVERITY_FACTOR.get(sev)
    if factor is None:
        return 0.5, f"{Severity(sev).name.lower()} severity, counted as medium"
    return factor, f"{Severity(sev).name.lower()} ({min(sev, 5)}/5)"


@lru_cache(maxsize=256)
def _history_detail(history: int, days: int) -> str:
    """The history component's detail (cached: a few counts over a few day spans)."""
    if history >= HISTORY_SPAN:
        seen = f"{HISTORY_SPAN} or more alerts"
    else:
        seen = f"{history} alert{'s' * (history != 1)}"
    return f"{seen} on the same hosts and users in the last {days} days"


def _technique_span(case_techniques: Iterable[str], own: list[str]) -> frozenset[str]:
    """The case's techniques and the alert's own; no copy when the caller passes a frozenset that
    already holds them (the triage engine does, for alerts joining a large case)."""
    span = frozenset(case_techniques)
    return span if span.issuperset(own) else span.union(own)


def score_alert(
    alert: Alert, *, policy: TriagePolicy, history: int = 0, case_techniques: Iterable[str] = ()
) -> tuple[int, list[ScoreComponent]]:
    """The alert's score and its components. ``history`` counts prior alerts on its entities within
    ``policy.history_days``; ``case_techniques`` are the techniques of the case it joins (its own count
    too)."""
    w = policy.weights
    enr = alert.enrichment or {}
    comps = [
        _severity(alert.severity, w.severity),
        _fidelity(alert, w.fidelity),
        _intel(enr, w.intel),
        _asset(enr, w.asset),
        _identity(enr, w.identity),
        techniques_component(_technique_span(case_techniques, alert.techniques), w.techniques),
        _c(
            "history",
            w.history,
            min(history, HISTORY_SPAN) / HISTORY_SPAN,
            _history_detail(min(history, HISTORY_SPAN), policy.history_days),
        ),
    ]
    benign = [b for b in enr.get("known_benign") or () if isinstance(b, dict)]
    if benign:
        lists = sorted({str(n) for b in benign for n in b.get("warninglists") or ()})
        what = ", ".join(str(b.get("value")) for b in benign[:3])
        comps.append(
            ScoreComponent(
                name="warninglist",
                points=-round(w.warninglist, 1),
                detail=f"{what} on warning list {', '.join(lists[:3]) or 'unnamed'}",
                weight=w.warninglist,
            )
        )
    else:
        comps.append(
            ScoreComponent(
                name="warninglist", points=0.0, detail="not on a warning list", weight=w.warninglist
            )
        )
    return total(comps), comps


def total(components: Sequence[ScoreComponent]) -> int:
    """Sum of the components, clamped to 0..100 and rounded."""
    return round(max(0.0, min(100.0, sum(c.points for c in components))))


def case_score(
    components: Iterable[Sequence[ScoreComponent]], techniques: Iterable[str], policy: TriagePolicy
) -> tuple[int, list[ScoreComponent]]:
    """A case's score from its alerts' components: per component the strongest alert's (the most
    negative for the warning list only when every alert is on one), with the techniques component
    recomputed over the case's whole technique span."""
    best: dict[str, ScoreComponent] = {}
    benign_all = True
    seen = False
    for comps in components:
        seen = True
        alert_benign = False
        for c in comps:
            if c.name == "warninglist":
                alert_benign = alert_benign or c.points < 0
                if c.name not in best or c.points < best[c.name].points:
                    best[c.name] = c
                continue
            if c.name not in best or c.points > best[c.name].points:
                best[c.name] = c
        benign_all = benign_all and alert_benign
    if seen and not benign_all and "warninglist" in best:
        wl = best["warninglist"]
        best["warninglist"] = ScoreComponent(
            name="warninglist", points=0.0, detail="not every alert is on a warning list", weight=wl.weight
        )
    best["techniques"] = techniques_component(techniques, policy.weights.techniques)
    names = ["severity", "fidelity", "intel", "asset", "identity", "techniques", "history", "warninglist"]
    comps = [best[n] for n in names if n in best] + [c for n, c in best.items() if n not in names]
    return total(comps), comps


def explain(components: Iterable[ScoreComponent]) -> list[str]:
    """One line per component, e.g. ``+28.0 severity: high (4/5)``."""
    return [f"{c.points:+.1f} {c.name}: {c.detail}" for c in components]
