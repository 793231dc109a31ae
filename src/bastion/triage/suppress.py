"""Suppression rules: close matching alerts as they arrive, each rule scoped, owned and expiring.

A suppression names conditions on an alert: its rule id, its source, alert attribute values (``fields``:
title, severity, rule_id, rule_name, source, tag, technique) and one entity (an observable type and
value). Every given condition must hold, values compare case-insensitively, and ``*``/``?`` are
wildcards (``fnmatch`` style; other characters are literal). A suppression with no condition would mute
everything, and one without an expiry would outlive the reason for it: both are refused.

The triage engine calls :func:`active_suppressions` once per batch, :func:`match` per alert and
:func:`record_hits` once per batch, inside its write transaction. People add and remove suppressions
through :func:`add_suppression` and :func:`remove_suppression`, which audit.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import Connection

from bastion.ingest.alerts import normalize_observable
from bastion.model import Alert, Severity
from bastion.model.observable import ObservableType
from bastion.model.timefmt import MAX_MS, parse_time
from bastion.store import TenantScope
from bastion.store._util import new_id, now_ms
from bastion.store.triage import SuppressionRepository

__all__ = [
    "FIELD_NAMES",
    "Suppression",
    "SuppressionError",
    "UnknownSuppression",
    "active_suppressions",
    "add_suppression",
    "get_suppression",
    "list_suppressions",
    "match",
    "parse_expiry",
    "record_hits",
    "remove_suppression",
]

# Alert attributes a suppression's ``fields`` may name.
FIELD_NAMES = ("title", "severity", "rule_id", "rule_name", "source", "tag", "technique")
_DURATION = re.compile(r"^\s*([0-9]+)\s*([smhdw])\s*$")
_UNIT_MS = {"s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}


class SuppressionError(ValueError):
    """A suppression a user asked for is not acceptable; the message says why."""


class UnknownSuppression(SuppressionError):
    """No suppression with that id in this tenant."""


def _pattern(value: str) -> Callable[[str | None], bool]:
    """A case-insensitive matcher for ``value``, where only ``*`` and ``?`` are wildcards."""
    want = value.strip().lower()
    if "*" not in want and "?" not in want:
        return lambda got: got is not None and got.strip().lower() == want
    rx = re.compile(fnmatch.translate(want.replace("[", "[[]")), re.DOTALL)
    return lambda got: got is not None and rx.match(got.strip().lower()) is not None


def _any(pattern: Callable[[str | None], bool], values: Iterable[str]) -> bool:
    return any(pattern(v) for v in values)


def _field_check(name: str, value: str) -> Callable[[Alert], bool]:
    p = _pattern(value)
    if name == "title":
        return lambda a: p(a.title)
    if name == "severity":
        return lambda a: p(a.severity.name.lower())
    if name == "rule_id":
        return lambda a: p(a.rule_id)
    if name == "rule_name":
        return lambda a: p(a.rule_name)
    if name == "source":
        return lambda a: p(a.source)
    if name == "tag":
        return lambda a: _any(p, a.tags)
    if name == "technique":
        return lambda a: _any(p, a.techniques)
    raise SuppressionError(f"unknown suppression field {name!r}; use one of {', '.join(FIELD_NAMES)}")


@dataclass
class Suppression:
    """One stored suppression; ``expires``, ``created`` and ``last_hit`` are epoch milliseconds."""

    id: str
    owner: str
    expires: int
    created: int
    created_by: str
    rule_id: str | None = None
    source: str | None = None
    fields: dict[str, str] = field(default_factory=dict)
    entity_type: str | None = None
    entity_value: str | None = None
    reason: str | None = None
    hits: int = 0
    last_hit: int | None = None
    _checks: list[Callable[[Alert], bool]] = field(
        default_factory=list, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        checks = [_field_check(k, v) for k, v in sorted(self.fields.items())]
        if self.rule_id is not None:
            checks.append(_field_check("rule_id", self.rule_id))
        if self.source is not None:
            checks.append(_field_check("source", self.source))
        if self.entity_type is not None and self.entity_value is not None:
            etype, p = self.entity_type, _pattern(self.entity_value)
            checks.append(lambda a: any(o.type.value == etype and p(o.value) for o in a.observables))
        self._checks = checks

    @property
    def entity(self) -> tuple[str, str] | None:
        if self.entity_type is None or self.entity_value is None:
            return None
        return self.entity_type, self.entity_value

    @property
    def conditions(self) -> int:
        return len(self._checks)

    def matches(self, alert: Alert) -> bool:
        """Every condition holds (a suppression without conditions matches nothing)."""
        return bool(self._checks) and all(check(alert) for check in self._checks)

    def expired(self, now: int) -> bool:
        return self.expires <= now

    def to_dict(self) -> dict[str, Any]:
        entity = {"type": self.entity_type, "value": self.entity_value} if self.entity else None
        return {
            "id": self.id,
            "rule_id": self.rule_id,
            "source": self.source,
            "fields": dict(self.fields),
            "entity": entity,
            "reason": self.reason,
            "owner": self.owner,
            "created": self.created,
            "created_by": self.created_by,
            "expires": self.expires,
            "hits": self.hits,
            "last_hit": self.last_hit,
        }


def _from_row(row: Mapping[str, Any]) -> Suppression:
    return Suppression(
        id=row["id"],
        owner=row["owner"],
        expires=int(row["expires"]),
        created=int(row["created"]),
        created_by=row["created_by"],
        rule_id=row["rule_id"],
        source=row["source"],
        fields=orjson.loads(row["fields"] or "{}"),
        entity_type=row["entity_type"],
        entity_value=row["entity_value"],
        reason=row["reason"],
        hits=int(row["hits"] or 0),
        last_hit=row["last_hit"],
    )


# ---------------------------------------------------------------- used by the triage engine


def active_suppressions(conn: Connection, tenant_id: str, now: int) -> list[Suppression]:
    """The tenant's unexpired suppressions at ``now``, oldest first (the first match wins)."""
    return [_from_row(r) for r in SuppressionRepository(conn, tenant_id).list(active_at=now)]


def match(suppressions: Iterable[Suppression], alert: Alert) -> Suppression | None:
    """The first suppression whose every condition holds for ``alert``, else None."""
    for s in suppressions:
        if s.matches(alert):
            return s
    return None


def record_hits(conn: Connection, tenant_id: str, hits: dict[str, int], now: int) -> None:
    """Add ``hits[id]`` matches to each suppression's counter and set its ``last_hit`` to ``now``."""
    if hits:
        SuppressionRepository(conn, tenant_id).add_hits(hits, now)


# ---------------------------------------------------------------- people's changes (audited)


def parse_expiry(value: str | int, now: int) -> int:
    """Epoch ms from a duration after ``now`` (``7d``, ``12h``, ``30m``, ``2w``), an ISO date or time
    (``2026-12-31``, ``2026-12-31T18:00:00Z``) or epoch milliseconds. It must be in the future."""
    if isinstance(value, bool):
        raise SuppressionError(f"not an expiry: {value!r}")
    m = _DURATION.match(value) if isinstance(value, str) else None
    if m:
        amount = int(m.group(1))
        if amount <= 0:
            raise SuppressionError(f"expiry {value!r} must be longer than zero")
        at = now + amount * _UNIT_MS[m.group(2)]
    else:
        try:
            at = parse_time(value)
        except ValueError as exc:
            raise SuppressionError(
                f"not an expiry: {exc}; use a duration like 7d, 12h or 2w, or a date like 2026-12-31"
            ) from None
    if at <= now:
        raise SuppressionError(f"expiry {value!r} is in the past; a suppression must expire later")
    if at > MAX_MS:  # the last time a date can show; a later one overflowed the store
        raise SuppressionError(f"expiry {value!r} is too far ahead; a suppression must expire by 9999-12-31")
    return at


def _clean_fields(fields: Mapping[str, Any] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, raw in (fields or {}).items():
        name = str(key).strip().lower()
        if name not in FIELD_NAMES:
            raise SuppressionError(f"unknown suppression field {key!r}; use one of {', '.join(FIELD_NAMES)}")
        if not isinstance(raw, str | int) or isinstance(raw, bool) or not str(raw).strip():
            raise SuppressionError(f"suppression field {name!r} needs a non-empty text value")
        value = str(raw).strip()
        if name == "severity" and "*" not in value and "?" not in value:
            try:
                value = Severity.parse(value).name.lower()
            except ValueError as exc:
                raise SuppressionError(f"suppression field 'severity': {exc}") from None
        out[name] = value
    return out


def _clean_entity(entity: tuple[str, str] | Mapping[str, Any] | str | None) -> tuple[str, str] | None:
    """``("host", "ws01")``, ``{"type": "host", "value": "ws01"}`` or ``"host:ws01"``. A value without
    wildcards must be a valid observable of its type (as in an alert), else it could never match."""
    if entity is None:
        return None
    etype: Any
    evalue: Any
    if isinstance(entity, str):
        etype, sep, evalue = entity.partition(":")
        if not sep:
            raise SuppressionError(f"entity {entity!r} must be TYPE:VALUE, like host:ws01")
    elif isinstance(entity, Mapping):
        etype, evalue = entity.get("type"), entity.get("value")
    else:
        etype, evalue = entity
    if not isinstance(etype, str) or not isinstance(evalue, str) or not evalue.strip():
        raise SuppressionError("an entity needs a type and a non-empty value")
    try:
        kind = ObservableType(etype.strip().lower())
    except ValueError:
        names = ", ".join(t.value for t in ObservableType)
        raise SuppressionError(f"unknown entity type {etype!r}; use one of {names}") from None
    value = evalue.strip()
    if any(ord(c) < 32 for c in value):
        raise SuppressionError(f"entity value: {value!r} contains control characters")
    if "*" not in value and "?" not in value:
        try:
            value = normalize_observable(kind, value)
        except ValueError as exc:
            raise SuppressionError(f"entity value: {exc}") from None
    return kind.value, value


def _matches_anything(value: str) -> bool:
    """Only wildcards (``*``, ``*?``): the condition holds for every alert that has the attribute."""
    text = value.strip()
    return "*" in text and set(text) <= {"*", "?"}


def add_suppression(
    scope: TenantScope,
    actor: str,
    *,
    owner: str,
    expires: str | int,
    rule_id: str | None = None,
    source: str | None = None,
    fields: Mapping[str, Any] | None = None,
    entity: tuple[str, str] | Mapping[str, Any] | str | None = None,
    reason: str | None = None,
    now: int | None = None,
) -> Suppression:
    """Store a suppression after checking it has a condition, an owner and a future expiry."""
    now = now if now is not None else now_ms()
    if not owner or not owner.strip():
        raise SuppressionError("a suppression needs an owner (who answers for it)")
    rule_id = rule_id.strip() if rule_id and rule_id.strip() else None
    source = source.strip() if source and source.strip() else None
    clean_fields = _clean_fields(fields)
    clean_entity = _clean_entity(entity)
    if rule_id is None and source is None and not clean_fields and clean_entity is None:
        raise SuppressionError(
            "a suppression needs at least one condition (rule, source, field or entity); "
            "one without would mute every alert"
        )
    given = {
        "rule": rule_id,
        "source": source,
        **{f"field {k}": v for k, v in clean_fields.items()},
        **({"entity": clean_entity[1]} if clean_entity else {}),
    }
    if all(isinstance(v, str) and _matches_anything(v) for v in given.values() if v is not None):
        names = ", ".join(f"{k} {v!r}" for k, v in given.items() if v is not None)
        raise SuppressionError(
            f"{names}: only wildcards, which match every alert; a suppression needs a condition that "
            "narrows it (a rule id, source, field value or entity)"
        )
    at = parse_expiry(expires, now)
    s = Suppression(
        id=new_id(),
        owner=owner.strip(),
        expires=at,
        created=now,
        created_by=actor,
        rule_id=rule_id,
        source=source,
        fields=clean_fields,
        entity_type=clean_entity[0] if clean_entity else None,
        entity_value=clean_entity[1] if clean_entity else None,
        reason=reason.strip() if reason and reason.strip() else None,
    )
    SuppressionRepository(scope.conn, scope.tenant_id).insert(
        {
            "id": s.id,
            "rule_id": s.rule_id,
            "source": s.source,
            "fields": orjson.dumps(s.fields).decode(),
            "entity_type": s.entity_type,
            "entity_value": s.entity_value,
            "reason": s.reason,
            "owner": s.owner,
            "created": s.created,
            "created_by": s.created_by,
            "expires": s.expires,
            "hits": 0,
            "last_hit": None,
        }
    )
    data = s.to_dict()
    for k in ("id", "hits", "last_hit", "created", "created_by"):
        data.pop(k)
    scope.audit.append(actor, "triage.suppression.add", "suppression", s.id, data)
    return s


def get_suppression(conn: Connection, tenant_id: str, suppression_id: str) -> Suppression:
    row = SuppressionRepository(conn, tenant_id).get(suppression_id)
    if row is None:
        raise UnknownSuppression(f"no suppression {suppression_id}")
    return _from_row(row)


def remove_suppression(scope: TenantScope, actor: str, suppression_id: str) -> Suppression:
    """Delete a suppression (its definition and hit count stay in the audit entry)."""
    s = get_suppression(scope.conn, scope.tenant_id, suppression_id)
    SuppressionRepository(scope.conn, scope.tenant_id).delete(suppression_id)
    data = s.to_dict()
    data.pop("id")
    scope.audit.append(actor, "triage.suppression.remove", "suppression", suppression_id, data)
    return s


def list_suppressions(
    conn: Connection, tenant_id: str, include_expired: bool = False, *, now: int | None = None
) -> list[Suppression]:
    """The tenant's suppressions, oldest first; expired ones only when asked for."""
    repo = SuppressionRepository(conn, tenant_id)
    rows = repo.list() if include_expired else repo.list(active_at=now if now is not None else now_ms())
    return [_from_row(r) for r in rows]
