"""Correlation entities: the hosts, users and significant observables an alert can share with a case.

Known-benign values (on a warning list) never link alerts; very common values are dropped by the engine,
which knows how many open cases already hold each value.
"""

from __future__ import annotations

from functools import lru_cache

from bastion.model import OBSERVABLE_TYPE_NAMES, Alert, ObservableType

__all__ = ["Entity", "benign_values", "candidate_entities", "describe"]

Entity = tuple[str, str]  # (observable type, lower-cased value)


def benign_values(alert: Alert) -> set[Entity]:
    """(type, value) pairs the enrichment stage found on a warning list."""
    out: set[Entity] = set()
    for item in (alert.enrichment or {}).get("known_benign") or ():
        if isinstance(item, dict) and item.get("value") is not None:
            out.add((str(item.get("type", "")), str(item["value"]).lower()))
    return out


def candidate_entities(alert: Alert, entity_types: list[str]) -> list[Entity]:
    """The alert's observables of ``entity_types``, lower-cased, without known-benign ones, in order."""
    names = _type_names(tuple(entity_types))
    found: dict[Entity, None] = {}  # ordered and unique: alerts from rich events carry many observables
    for o in alert.observables:
        t = names.get(o.type)
        if t is not None:
            found[(t, o.value.lower()[:2048])] = None
    if alert.enrichment and alert.enrichment.get("known_benign"):
        for e in benign_values(alert):
            found.pop(e, None)
    return list(found)


@lru_cache(maxsize=64)
def _type_names(entity_types: tuple[str, ...]) -> dict[ObservableType, str]:
    """The plain type name of each observable type in ``entity_types``: one lookup per observable
    both tells whether it is of an entity type and gives the name."""
    return {t: name for t, name in OBSERVABLE_TYPE_NAMES.items() if name in entity_types}


def describe(entities: list[Entity]) -> str:
    """``host ws01 and user alice`` for a link reason."""
    parts = [f"{t} {v}" for t, v in sorted(entities)]
    if len(parts) > 3:
        parts = [*parts[:3], f"{len(entities) - 3} more"]
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
