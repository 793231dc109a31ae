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
from bastion.triage.tactics import earlier_tactics, order, tactics_before_latest, tactics_of

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
    _techniques_snapshot: frozenset[str] = field(
        default_factory=frozenset, init=False, repr=False, compare=False
    )

    def techniques_with(self, more: Iterable[str]) -> frozenset[str]:
        """The case's techniques and ``more``. A large case's alerts rarely bring a new technique:
        the same frozenset is then returned for each, with no copy, and the techniques score
        component is computed once for it. Techniques only grow during a batch, so a change in size
        tells that the snapshot is stale."""
        if len(self._techniques_snapshot) != len(self.techniques):
            self._techniques_snapshot = frozenset(self.techniques)
        snapshot = self._techniques_snapshot
        return snapshot if snapshot.issuperset(more) else snapshot.union(more)

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


def _host_user_first(entity: Entity) -> tuple[bool, bool, Entity]:
    return entity[0] != "host", entity[0] != "user", entity


def _progression_phrase(case: CaseView, shared: list[Entity], tactics: list[str]) -> str | None:
    """``continues ATT&CK progression A -> B on host x``: the shared entity with the most earlier
    tactics (hosts, then users, first on a tie), or None when no shared entity shows a progression."""
    best: tuple[int, Entity, list[str]] | None = None
    for e in sorted(shared, key=_host_user_first):
        earlier = earlier_tactics(case.entities[e].tactics, tactics)
        if earlier and (best is None or len(earlier) > best[0]):
            best = (len(earlier), e, earlier)
    if best is None:
        return None
    _, (kind, value), earlier = best
    chain = " -> ".join(order({*earlier, *tactics}))
    return f"continues ATT&CK progression {chain} on {kind} {value}"


def choose_case(
    alert_time: int,
    entities: list[Entity],
    tactics: list[str],
    candidates: Iterable[CaseView],
    policy: CorrelationPolicy,
) -> tuple[CaseView, str] | None:
    """The open case this alert joins and the reason, or None."""
    window = policy.window_s * 1000
    # a shared entity that saw one of these continues a progression (as _progression_phrase finds)
    earlier = tactics_before_latest(tactics) if policy.progression else frozenset()
    best: tuple[tuple[bool, int, int], CaseView, list[Entity]] | None = None
    for case in candidates:
        shared = [e for e in entities if e in case.entities]
        if not shared:
            continue
        gap = abs(alert_time - case.last_alert)
        if gap > window * 2:  # beyond even a progression's reach: skip the tactic work
            continue
        progression = bool(earlier) and any(not earlier.isdisjoint(case.entities[e].tactics) for e in shared)
        if gap > (window * 2 if progression else window):
            continue
        key = (progression, len(shared), case.last_alert)
        if best is None or key > best[0]:
            best = (key, case, shared)
    if best is None:
        return None
    # the reason's text only for the chosen case (an alert often shares entities with several)
    (progression, _, _), case, shared = best
    reason = f"shares {describe(shared)} with case #{case.number}"
    phrase = _progression_phrase(case, shared, tactics) if progression else None
    if phrase:
        reason += f"; {phrase}"
    return case, reason


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
