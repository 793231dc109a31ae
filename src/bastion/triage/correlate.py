"""Correlation: which open case an alert joins, and why; and re-deriving a case's triage state from the
alerts it holds (after an analyst merges, splits or moves alerts).

An alert joins an open case that shares one of its entities and whose newest alert is within the window;
an ATT&CK progression on a shared entity (an earlier kill-chain tactic already seen there) is preferred
and may reach twice as far back. Among the rest, most shared entities wins, then the most recent case.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import msgspec
import orjson

from bastion.model import Alert, ScoreComponent
from bastion.store._util import now_ms
from bastion.store.triage import TriageRepository
from bastion.triage.entities import Entity, candidate_entities, describe
from bastion.triage.policy import CorrelationPolicy, TriagePolicy, load_policy
from bastion.triage.score import case_score
from bastion.triage.tactics import earlier_tactics, order, tactics_of

if TYPE_CHECKING:
    from bastion.store import TenantScope

__all__ = ["CaseView", "EntitySeen", "choose_case", "reindex_case"]

_components = msgspec.json.Decoder(list[ScoreComponent]).decode
_alert = msgspec.json.Decoder(Alert).decode


@dataclass
class EntitySeen:
    """One entity's row in ``case_entities``: when the case saw it, and in which tactics."""

    first: int
    last: int
    tactics: set[str] = field(default_factory=set)
    stored: bool = False  # the row exists (update it) or not (insert it)
    dirty: bool = False


@dataclass
class CaseView:
    """An open case as triage holds it during one batch."""

    id: str
    number: int
    title: str
    last_alert: int
    techniques: set[str] = field(default_factory=set)
    tactics: set[str] = field(default_factory=set)
    score: int = 0
    components: list[ScoreComponent] = field(default_factory=list)
    entities: dict[Entity, EntitySeen] = field(default_factory=dict)
    hosts: set[str] = field(default_factory=set)  # every host of the case, not only this batch's
    severity: int = 3
    status: str = "new"
    new: bool = False
    dirty: bool = False  # to be saved
    linked: bool = False  # an alert joined it in this batch

    @classmethod
    def from_row(cls, row: Any) -> CaseView:
        return cls(
            id=row.id,
            number=row.number,
            title=row.title,
            last_alert=row.last_alert or row.created,
            techniques=set(orjson.loads(row.techniques or "[]")),
            tactics=set(orjson.loads(row.tactics or "[]")),
            score=row.score,
            components=_components(row.score_components or "[]"),
            severity=row.severity_id,
            status=row.status,
        )


def _progression_phrase(case: CaseView, shared: list[Entity], tactics: list[str]) -> str | None:
    best: tuple[int, str] | None = None
    for e in sorted(shared, key=lambda x: (x[0] != "host", x[0] != "user", x)):
        earlier = earlier_tactics(case.entities[e].tactics, tactics)
        if earlier and (best is None or len(earlier) > best[0]):
            chain = " -> ".join(order(set(earlier) | set(tactics)))
            best = (len(earlier), f"continues ATT&CK progression {chain} on {e[0]} {e[1]}")
    return best[1] if best else None


def choose_case(
    alert_time: int,
    entities: list[Entity],
    tactics: list[str],
    candidates: Iterable[CaseView],
    policy: CorrelationPolicy,
) -> tuple[CaseView, str] | None:
    """The open case this alert joins and the reason, or None."""
    window = policy.window_s * 1000
    best: tuple[tuple[bool, int, int], CaseView, str] | None = None
    for case in candidates:
        shared = [e for e in entities if e in case.entities]
        if not shared:
            continue
        gap = abs(alert_time - case.last_alert)
        if gap > window * 2:  # beyond even a progression's reach: skip the tactic work
            continue
        phrase = _progression_phrase(case, shared, tactics) if policy.progression else None
        if gap > (window * 2 if phrase else window):
            continue
        key = (phrase is not None, len(shared), case.last_alert)
        if best is None or key > best[0]:
            reason = f"shares {describe(shared)} with case #{case.number}"
            if phrase:
                reason += f"; {phrase}"
            best = (key, case, reason)
    return (best[1], best[2]) if best else None


def reindex_case(scope: TenantScope, case_id: str, policy: TriagePolicy | None = None) -> None:
    """Recompute a case's entity rows, techniques, tactics, newest-alert time and score from the
    alerts now linked to it (``alerts.case_id``), after a merge, split or move."""
    policy = policy or load_policy(scope.conn, scope.tenant_id)
    repo = TriageRepository(scope.conn, scope.tenant_id)
    linked = [_alert(d) for d in repo.case_alert_documents(case_id)]
    seen: dict[Entity, EntitySeen] = {}
    techniques: set[str] = set()
    tactics: set[str] = set()
    last = 0
    for a in linked:
        t_first, t_last = a.time, a.last_seen or a.time
        last = max(last, t_last)
        techniques.update(a.techniques)
        a_tactics = tactics_of(a)
        tactics.update(a_tactics)
        for e in candidate_entities(a, policy.correlation.entity_types):
            s = seen.setdefault(e, EntitySeen(first=t_first, last=t_last))
            s.first, s.last = min(s.first, t_first), max(s.last, t_last)
            s.tactics.update(a_tactics)
    repo.replace_case_entities(
        case_id,
        [
            {
                "case_id": case_id,
                "type": t,
                "value": v,
                "first_seen": s.first,
                "last_seen": s.last,
                "tactics": orjson.dumps(order(s.tactics)).decode(),
            }
            for (t, v), s in sorted(seen.items())
        ],
    )
    score, comps = case_score([a.score_components for a in linked], techniques, policy)
    row = repo.cases([case_id])
    repo.update_cases(
        [
            {
                "id": case_id,
                "score": score if linked else 0,
                "score_components": msgspec.json.encode(comps if linked else []).decode(),
                "techniques": orjson.dumps(sorted(techniques)).decode(),
                "tactics": orjson.dumps(order(tactics)).decode(),
                "last_alert": last or (row[0].last_alert if row else None),
                "updated": now_ms(),
            }
        ]
    )
