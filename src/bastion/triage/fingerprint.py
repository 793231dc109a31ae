"""Dedupe keys: which alerts count as "the same alert again" under a tenant's dedupe policy.

A fingerprint is a hash over the policy's fields (or the first matching per-source/per-rule override),
so the key is short, indexable and says nothing about the values themselves.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from functools import lru_cache
from operator import attrgetter

from bastion.model import Alert, ObservableType
from bastion.triage.policy import DedupePolicy

__all__ = ["FIELDS", "alert_entities_key", "dedupe_rule", "fingerprint", "unknown_fields"]

log = logging.getLogger(__name__)
# ``host:`` and ``user:``, formatted once: formatting the enum for every observable cost more than the rest
_PEOPLE = {t: f"{t}:" for t in (ObservableType.HOST, ObservableType.USER)}


def alert_entities_key(alert: Alert) -> str:
    """The alert's hosts and users, sorted and lower-cased: what ``entities`` means in a fingerprint."""
    people = _PEOPLE
    vals = sorted({people[o.type] + o.value.lower() for o in alert.observables if o.type in people})
    return ",".join(vals)


def dedupe_rule(policy: DedupePolicy, alert: Alert) -> tuple[list[str], int]:
    """The fields and window (seconds) that apply to ``alert``: the first rule matching its source and
    rule id, else the policy's defaults."""
    for rule in policy.rules:
        if rule.source is not None and rule.source != alert.source:
            continue
        if rule.rule_id is not None and rule.rule_id != alert.rule_id:
            continue
        return rule.fields, rule.window_s if rule.window_s is not None else policy.window_s
    return policy.fields, policy.window_s


_ATTRS = ("source", "rule_id", "title", "external_id", "rule_name", "description")
_LISTS = ("techniques", "tags")
FIELDS = frozenset({*_ATTRS, *_LISTS, "severity", "entities"})


def unknown_fields(fields: list[str]) -> list[str]:
    """The names in ``fields`` that are not fingerprint fields (for policy validation)."""
    return [f for f in fields if f not in FIELDS and not f.startswith("observable:")]


def _field(alert: Alert, name: str) -> str:
    if name == "entities":
        return alert_entities_key(alert)
    if name in _ATTRS:
        return str(getattr(alert, name) or "")
    if name.startswith("observable:"):
        kind = name[11:]
        return ",".join(sorted({o.value.lower() for o in alert.observables if o.type == kind}))
    if name == "severity":
        return str(int(alert.severity))
    if name in _LISTS:
        return ",".join(sorted(getattr(alert, name)))
    _warn_unknown(name)
    return ""  # an unknown field must not cost the alert: it adds nothing to the key


@lru_cache(maxsize=64)
def _warn_unknown(name: str) -> None:
    log.warning("dedupe field %r is unknown; it is ignored (see bastion.triage.fingerprint.FIELDS)", name)


def fingerprint(policy: DedupePolicy, alert: Alert) -> tuple[str, int]:
    """(fingerprint hex, window in seconds) of ``alert`` under ``policy``."""
    fields, window = dedupe_rule(policy, alert)
    text = "\x1e".join([label + value(alert) for label, value in _readers(tuple(fields))])
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest(), window


@lru_cache(maxsize=64)
def _readers(fields: tuple[str, ...]) -> tuple[tuple[str, Callable[[Alert], str]], ...]:
    """``(label, reader)`` per field: ``label + reader(alert)`` is the field's part of the key, as
    :func:`_field` gives it. Chosen once per field list rather than by name for every alert of a batch."""
    return tuple((f"{name}\x1f", _reader(name)) for name in fields)


def _reader(name: str) -> Callable[[Alert], str]:
    if name == "entities":
        return alert_entities_key
    if name in _ATTRS:
        get = attrgetter(name)
        return lambda alert: str(get(alert) or "")
    return lambda alert: _field(alert, name)
