"""ATT&CK tactics of an alert and the kill-chain order used to recognise a progression on one entity.

Tactics come from Sigma tags (``attack.credential_access``) and, for alerts that carry only technique ids,
from the ATT&CK matrix (``bastion.intel.attack``), loaded once per process and only when needed.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable
from functools import lru_cache

from bastion.model import Alert

__all__ = [
    "KILL_CHAIN",
    "earlier_tactics",
    "order",
    "tactics_before_latest",
    "tactics_of",
    "technique_tactics",
]

log = logging.getLogger(__name__)

KILL_CHAIN: tuple[str, ...] = (
    "reconnaissance",
    "resource-development",
    "initial-access",
    "execution",
    "persistence",
    "privilege-escalation",
    "defense-evasion",
    "credential-access",
    "discovery",
    "lateral-movement",
    "collection",
    "command-and-control",
    "exfiltration",
    "impact",
)
_RANK = {t: i for i, t in enumerate(KILL_CHAIN)}
_NO_ATTACK = object()
_attack: object | None = None


def order(tactics: Iterable[str]) -> list[str]:
    """Known tactics, without repeats, in kill-chain order."""
    have = set(tactics)
    return [t for t in KILL_CHAIN if t in have]


def _matrix() -> object:
    global _attack
    if _attack is None:
        try:
            from bastion.intel.attack import shared_attack

            _attack = shared_attack()
        except ValueError as exc:  # no usable ATT&CK data on this machine: tags alone give the tactics
            log.info("ATT&CK data not usable (%s); tactics come from alert tags only", exc)
            _attack = _NO_ATTACK
    return _attack


@lru_cache(maxsize=4096)
def technique_tactics(technique: str) -> tuple[str, ...]:
    """The tactics ATT&CK lists for a technique id (a sub-technique falls back to its parent)."""
    att = _matrix()
    if att is _NO_ATTACK:
        return ()
    get = att.get  # type: ignore[attr-defined]
    obj = get(technique) or (get(technique.split(".")[0]) if "." in technique else None)
    return tuple(obj.tactics) if obj is not None else ()


def tactics_of(alert: Alert) -> list[str]:
    """The alert's tactics in kill-chain order: tags first; techniques through ATT&CK only when the
    tags name no tactic (Sigma rules almost always tag both, and the matrix costs a second to load)."""
    return list(_tactics(tuple(alert.tags), tuple(alert.techniques)))


@lru_cache(maxsize=8192)
def _tactics(tags: tuple[str, ...], techniques: tuple[str, ...]) -> tuple[str, ...]:
    found = set()
    for tag in tags:
        low = tag.lower()
        if low.startswith("attack."):
            name = low[7:].replace("_", "-")
            if name in _RANK:
                found.add(name)
    if not found:
        for tech in techniques:
            found.update(technique_tactics(tech.upper()))
    return tuple(order(found))


def earlier_tactics(seen: Collection[str], tactics: list[str]) -> list[str]:
    """The tactics in ``seen`` that come before the latest of ``tactics`` in the kill chain: non-empty
    means ``tactics`` continue a progression."""
    if not tactics or not seen:
        return []
    latest = max(_RANK.get(t, -1) for t in tactics)
    if latest <= 0:
        return []
    return [t for t in KILL_CHAIN[:latest] if t in seen]


_BEFORE = [frozenset(KILL_CHAIN[:i]) for i in range(len(KILL_CHAIN))]  # tactics before position i


def tactics_before_latest(tactics: Iterable[str]) -> frozenset[str]:
    """The kill-chain tactics before the latest of ``tactics``: ``earlier_tactics(seen, tactics)`` is
    non-empty exactly when ``seen`` holds one of them (a set test, for every candidate case)."""
    latest = max((_RANK.get(t, -1) for t in tactics), default=-1)
    return _BEFORE[max(latest, 0)]
