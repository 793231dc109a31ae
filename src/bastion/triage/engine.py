"""The triage stage: every batch of new alerts is suppressed, deduplicated, scored, correlated into
cases, auto-closed and routed, inside the transaction that stores it.

The engine reads what it needs once per batch (open alerts by fingerprint, open cases by entity, entity
history, active suppressions), decides every alert in memory in time order (so repeats and links inside
one batch behave as if the alerts had come one by one), and writes each table with one statement.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import msgspec
import orjson

from bastion.cases.enrichment import enrichment_summary
from bastion.model import OBSERVABLE_TYPE_NAMES, Alert, AlertStatus, Observable, Severity
from bastion.store._util import new_id
from bastion.store.triage import TriageRepository
from bastion.triage import suppress
from bastion.triage.autoclose import autoclose_reason
from bastion.triage.correlate import CaseView, EntitySeen, choose_case
from bastion.triage.entities import Entity, candidate_entities
from bastion.triage.fingerprint import fingerprint
from bastion.triage.policy import CaseTemplate, TriagePolicy
from bastion.triage.routing import choose_queue
from bastion.triage.score import HISTORY_SPAN, case_score, score_alert
from bastion.triage.tactics import order, tactics_of

if TYPE_CHECKING:
    from bastion.store import TenantScope

__all__ = ["ACTOR", "TriageResult", "matching_template", "triage_alerts"]

ACTOR = "triage"
MAX_EVENT_IDS = 100  # events listed on one deduplicated alert
_DAY_MS = 86_400_000
_encode = msgspec.json.Encoder().encode


@dataclass
class TriageResult:
    """What triage did with one batch. ``ids`` has one entry per input alert, in input order: the stored
    alert it became or was folded into."""

    ids: list[str] = field(default_factory=list)
    new: list[Alert] = field(default_factory=list)  # stored for the first time (alert hooks, audit)
    duplicates: int = 0  # re-sent by their source (same source and external id)
    deduplicated: int = 0  # folded into an open alert with the same fingerprint
    suppressed: list[str] = field(default_factory=list)
    auto_closed: list[str] = field(default_factory=list)
    cases_opened: list[str] = field(default_factory=list)
    cases_updated: list[str] = field(default_factory=list)
    case_events: list[dict[str, Any]] = field(default_factory=list)  # payloads for ``case`` hooks


def matching_template(templates: list[CaseTemplate], alert: Alert) -> CaseTemplate | None:
    """The first template whose tags, techniques (prefix) or rule ids match the alert; a template with
    no condition matches every alert."""
    tags = {t.lower() for t in alert.tags}
    for tpl in templates:
        if not (tpl.tags or tpl.techniques or tpl.rule_ids):
            return tpl
        if any(t.lower() in tags for t in tpl.tags):
            return tpl
        if any(tech.upper().startswith(p.upper()) for p in tpl.techniques for tech in alert.techniques):
            return tpl
        if alert.rule_id is not None and alert.rule_id in tpl.rule_ids:
            return tpl
    return None


class _Batch:
    """The in-memory state of one batch, and the rows it will write."""

    def __init__(self, scope: TenantScope, policy: TriagePolicy, tenant_name: str | None, now: int) -> None:
        self.scope = scope
        self.repo = TriageRepository(scope.conn, scope.tenant_id)
        self.policy = policy
        self.tenant_name = tenant_name
        self.now = now
        self.result = TriageResult()
        self.cases: dict[str, CaseView] = {}
        self.entity_cases: dict[Entity, set[str]] = {}
        self.history: Counter[Entity] = Counter()
        self.new_alerts: list[Alert] = []
        self.new_ids: set[str] = set()
        self.dedupe_updates: dict[str, tuple[Alert, list[Observable]]] = {}
        self.case_alert_rows: list[dict[str, Any]] = []
        self.timeline_rows: list[dict[str, Any]] = []
        self.task_rows: list[dict[str, Any]] = []
        self.case_rows: list[dict[str, Any]] = []
        self.case_observables: dict[str, set[tuple[str, str]]] = {}
        self.next_number: int | None = None

    # -- reads, once per batch

    def load(self, alerts: list[Alert]) -> dict[int, list[Entity]]:
        """Fetch open cases, entity rows and history for the entities of ``alerts``; returns each
        alert's candidate entities by position."""
        types = self.policy.correlation.entity_types
        ents = {i: candidate_entities(a, types) for i, a in enumerate(alerts)}
        every: set[Entity] = set().union(*ents.values())
        if not every:
            return ents
        rows = self.repo.open_case_entities(every)
        ids = {r.case_id for r in rows}
        hosts = self.repo.case_hosts(ids)
        for case_row in self.repo.cases(ids):
            self.cases[case_row.id] = CaseView.from_row(case_row)
            self.cases[case_row.id].hosts = hosts.get(case_row.id, set())
        for r in rows:
            case = self.cases.get(r.case_id)
            if case is None:
                continue
            case.entities[(r.type, r.value)] = EntitySeen(
                first=r.first_seen,
                last=r.last_seen,
                tactics=set(orjson.loads(r.tactics or "[]")),
                stored=True,
            )
            self.entity_cases.setdefault((r.type, r.value), set()).add(r.case_id)
        since = min(a.time for a in alerts) - self.policy.history_days * _DAY_MS
        # History is the hosts' and users' own: a hash or an address would count every alert it is on.
        people = {e for e in every if e[0] in ("host", "user")}
        self.history.update(self.repo.entity_history(people, since, HISTORY_SPAN))
        return ents

    # -- decisions, per alert

    def entities(self, found: list[Entity]) -> list[Entity]:
        """Entities that are not so common that they would link unrelated alerts: in no more than
        ``common_after`` open cases, and for a value other than a host or user (a hash, an address),
        seen with no more than ``common_after`` hosts in them (a system binary's hash is everywhere,
        and would otherwise pull every host into one case)."""
        limit = self.policy.correlation.common_after
        out = []
        for e in found:
            ids = self.entity_cases.get(e, ())
            if len(ids) > limit or (e[0] not in ("host", "user") and self.too_widespread(ids)):
                continue
            out.append(e)
        return out

    def too_widespread(self, case_ids: set[str] | tuple[()]) -> bool:
        """Whether the cases hold more than ``common_after`` hosts together."""
        limit = self.policy.correlation.common_after
        host_sets = [self.cases[cid].hosts for cid in case_ids]
        if sum(map(len, host_sets)) <= limit:  # the usual case: no need to build the union
            return False
        hosts: set[str] = set()
        for case_hosts in host_sets:
            hosts |= case_hosts
            if len(hosts) > limit:
                return True
        return False

    def triage(self, alert: Alert, found: list[Entity]) -> None:
        policy = self.policy
        ents = self.entities(found)
        tactics = tactics_of(alert)
        candidates: dict[str, CaseView] = {}  # the open cases of its entities, each once, in order
        for e in ents:
            for cid in self.entity_cases.get(e, ()):
                candidates[cid] = self.cases[cid]
        choice = choose_case(alert.time, ents, tactics, candidates.values(), policy.correlation)
        case_techniques = choice[0].techniques_with(alert.techniques) if choice else frozenset()
        people = [e for e in found if e[0] in ("host", "user")]  # common or not, they are its own
        history = max((self.history[e] for e in people), default=0)
        alert.score, alert.score_components = score_alert(
            alert, policy=policy, history=history, case_techniques=case_techniques
        )
        reason = autoclose_reason(alert, policy.autoclose, case_techniques, in_case=choice is not None)
        if reason is not None:
            self.close(alert, reason, auto=True)
        alert.queue, tier = choose_queue(policy, alert, tenant_name=self.tenant_name)
        if choice is not None:
            self.link(alert, choice[0], choice[1], ents, tactics)
        elif reason is None and alert.score >= policy.correlation.open_case_score:
            case = self.open_case(alert, tier)
            self.link(
                alert,
                case,
                f"opened the case: score {alert.score} >= {policy.correlation.open_case_score}",
                ents,
                tactics,
            )
        for e in people:
            self.history[e] += 1

    def close(self, alert: Alert, reason: str, *, auto: bool) -> None:
        alert.status = AlertStatus.CLOSED
        alert.close_reason = reason
        alert.closed = self.now
        alert.acknowledged = self.now
        alert.auto_closed = auto
        alert.verdict = None
        assert alert.id is not None
        (self.result.auto_closed if auto else self.result.suppressed).append(alert.id)

    def open_case(self, alert: Alert, tier: int) -> CaseView:
        if self.next_number is None:
            self.next_number = self.repo.next_case_number()
        number, self.next_number = self.next_number, self.next_number + 1
        case = CaseView(
            id=new_id(),
            number=number,
            title=alert.title[:500],
            last_alert=alert.time,
            severity=int(alert.severity),
            new=True,
        )
        self.cases[case.id] = case
        tpl = matching_template(self.policy.templates, alert)
        self.case_rows.append(
            {
                "id": case.id,
                "number": number,
                "title": case.title,
                "description": alert.description,
                "severity_id": int(alert.severity),
                "status": "new",
                "created": self.now,
                "updated": self.now,
                "queue": alert.queue,
                "tier": tier,
                "custom_fields": orjson.dumps(tpl.custom_fields if tpl else {}).decode(),
            }
        )
        summary = f"Case opened by triage: {case.title}" + (f" (template {tpl.name})" if tpl else "")
        self.timeline(case.id, "case.opened", summary, {"alert_id": alert.id, "template": tpl and tpl.name})
        if tpl:
            self.task_rows.extend(
                {
                    "id": new_id(),
                    "case_id": case.id,
                    "title": title,
                    "status": "open",
                    "assignee": None,
                    "created": self.now,
                }
                for title in tpl.tasks
            )
        self.result.cases_opened.append(case.id)
        return case

    def link(self, alert: Alert, case: CaseView, reason: str, ents: list[Entity], tactics: list[str]) -> None:
        assert alert.id is not None
        alert.case_id = case.id
        when = alert.last_seen or alert.time
        case.last_alert = max(case.last_alert, when)
        techniques_before = len(case.techniques)
        case.techniques.update(alert.techniques)
        case.tactics.update(tactics)
        for e in ents:
            if e[0] == "host":
                case.hosts.add(e[1])
            seen = case.entities.get(e)
            if seen is None:
                case.entities[e] = EntitySeen(first=alert.time, last=when, tactics=set(tactics), dirty=True)
                self.entity_cases.setdefault(e, set()).add(case.id)
            else:
                seen.first, seen.last = min(seen.first, alert.time), max(seen.last, when)
                seen.tactics.update(tactics)
                seen.dirty = True
        # the case's score changes only with a new technique or a component stronger than the case's
        best = {c.name: c.points for c in case.components}
        if len(case.techniques) != techniques_before or any(
            c.points > best.get(c.name, -1000.0) for c in alert.score_components
        ):
            case.score, case.components = case_score(
                [case.components, alert.score_components], case.techniques, self.policy
            )
        case.severity = max(case.severity, int(alert.severity))
        case.dirty = case.linked = True
        self.case_alert_rows.append(
            {"case_id": case.id, "alert_id": alert.id, "reason": reason, "added": self.now}
        )
        self.timeline(
            case.id, "alert.added", f"Alert added: {alert.title}", {"alert_id": alert.id, "reason": reason}
        )
        enriched = enrichment_summary(alert)
        if enriched is not None:
            self.timeline(case.id, "enrichment", *enriched)
        self.add_case_observables(case.id, alert.observables)

    def add_case_observables(self, case_id: str, observables: list[Observable]) -> None:
        pairs = ((OBSERVABLE_TYPE_NAMES[o.type], o.value) for o in observables)
        self.case_observables.setdefault(case_id, set()).update(pairs)

    def timeline(self, case_id: str, kind: str, summary: str, data: dict[str, Any]) -> None:
        self.timeline_rows.append(
            {
                "case_id": case_id,
                "time": self.now,
                "kind": kind,
                "summary": summary,
                "actor": ACTOR,
                "data": orjson.dumps(data).decode(),
            }
        )

    # -- writes, once per batch

    def write(self) -> None:
        repo = self.repo
        repo.insert_cases(self.case_rows)
        stored = self.scope.alerts.insert_many(self.new_alerts, checked=True, now=self.now)
        self.result.new = [a for a, fresh in stored if fresh]
        self.scope.alerts.apply_dedupe(list(self.dedupe_updates.values()))
        repo.insert_case_alerts(self.case_alert_rows)
        repo.insert_timeline(self.timeline_rows)
        repo.insert_tasks(self.task_rows)
        self.write_case_observables()
        self.write_cases()

    def write_case_observables(self) -> None:
        """Every observable the batch brought to each case; those a case already holds are skipped by
        the store."""
        rows = [
            {"case_id": cid, "type": t, "value": v, "added": self.now}
            for cid, pairs in self.case_observables.items()
            for t, v in sorted(pairs)
        ]
        self.repo.insert_case_observables(rows)

    def write_cases(self) -> None:
        new_rows: list[dict[str, Any]] = []
        changed_rows: list[dict[str, Any]] = []
        case_updates: list[dict[str, Any]] = []
        for case in self.cases.values():
            if not case.dirty:
                continue
            for (t, v), seen in case.entities.items():
                if not seen.dirty:
                    continue
                row = {
                    "case_id": case.id,
                    "type": t,
                    "value": v,
                    "first_seen": seen.first,
                    "last_seen": seen.last,
                    "tactics": orjson.dumps(order(seen.tactics)).decode(),
                }
                (changed_rows if seen.stored else new_rows).append(row)
            case_updates.append(
                {
                    "id": case.id,
                    "score": case.score,
                    "score_components": _encode(case.components).decode(),
                    "techniques": orjson.dumps(sorted(case.techniques)).decode(),
                    "tactics": orjson.dumps(order(case.tactics)).decode(),
                    "last_alert": case.last_alert,
                    "updated": self.now,
                }
            )
            if not case.linked:
                continue  # only a repeat of one of its alerts: saved, but no news for hooks
            if not case.new:
                self.result.cases_updated.append(case.id)
            self.result.case_events.append(
                {
                    "case_id": case.id,
                    "number": case.number,
                    "title": case.title,
                    "severity": Severity(case.severity).name.lower(),
                    "score": case.score,
                    "status": case.status,
                    "event": "opened" if case.new else "updated",
                    "techniques": sorted(case.techniques),
                }
            )
        self.repo.upsert_case_entities(new_rows, changed_rows)
        self.repo.update_cases(case_updates)
        # a more severe alert raises its case's severity (never lowers it)
        self.repo.raise_severity({c.id: c.severity for c in self.cases.values() if c.linked and not c.new})


def triage_alerts(
    scope: TenantScope,
    alerts: list[Alert],
    *,
    policy: TriagePolicy,
    tenant_name: str | None = None,
    now: int,
) -> TriageResult:
    """Suppress, dedupe, score, correlate, auto-close, route and store ``alerts`` in the caller's
    transaction. Audits each case opened (actor ``triage``); the caller audits the new alerts."""
    batch = _Batch(scope, policy, tenant_name, now)
    batch.repo.lock()
    result = batch.result
    known = scope.alerts.existing_external(alerts)
    result.ids = [""] * len(alerts)
    pending: list[tuple[int, Alert]] = []
    first_of: dict[tuple[str, str], int] = {}  # external key -> position of its first alert here
    resent: list[tuple[int, int]] = []  # (position, position of the alert it re-sends)
    for i, original in enumerate(alerts):
        key = (original.source, original.external_id) if original.external_id is not None else None
        if key is not None and key in known:
            result.ids[i] = known[key].id or ""
            result.duplicates += 1
            continue
        if key is not None and key in first_of:
            resent.append((i, first_of[key]))
            result.duplicates += 1
            continue
        # a copy, with its own observable list: repeats merge into it, never into the caller's alert;
        # an id only once it is stored as a new alert
        alert = msgspec.structs.replace(
            original, time=original.time or now, observables=list(original.observables)
        )
        if key is not None:
            first_of[key] = i
        pending.append((i, alert))
    if not pending:
        return result
    sups = suppress.active_suppressions(scope.conn, scope.tenant_id, now)
    hits: Counter[str] = Counter()
    fps: dict[int, tuple[str, int]] = {}
    for i, alert in pending:
        fps[i] = fingerprint(policy.dedupe, alert)
    # no alert last seen before this is within the dedupe window of any alert of the batch
    since = min(alert.time - fps[i][1] * 1000 for i, alert in pending)
    open_by_fp = scope.alerts.open_by_fingerprints((fp for fp, _ in fps.values()), since=since)
    # A repeat of an open stored alert, no older than it and within its window, is folded into it
    # whatever else happens in the batch: its entities are never needed, so they are not looked up.
    needed = [(i, a) for i, a in pending if not _certain_repeat(open_by_fp.get(fps[i][0]), a, fps[i][1])]
    found = batch.load([a for _, a in needed])
    ents = {i: found[pos] for pos, (i, _) in enumerate(needed)}
    for i, alert in sorted(pending, key=lambda p: p[1].time):
        fp, window_s = fps[i]
        alert.fingerprint, alert.last_seen, alert.count = fp, alert.time, 1
        sup = suppress.match(sups, alert) if sups else None
        if sup is not None:
            alert.id = alert.id or new_id()
            hits[sup.id] += 1
            alert.score, alert.score_components = score_alert(alert, policy=policy)
            alert.queue, _ = choose_queue(policy, alert, tenant_name=tenant_name)
            batch.close(
                alert, f"suppressed by {sup.id} ({sup.owner}): {sup.reason or 'no reason given'}", auto=False
            )
            batch.new_alerts.append(alert)
            result.ids[i] = alert.id or ""
            continue
        target = open_by_fp.get(fp)
        if (
            target is not None
            and target.status != AlertStatus.CLOSED
            and abs(alert.time - (target.last_seen or target.time)) <= window_s * 1000
        ):
            _fold(batch, target, alert)
            result.ids[i] = target.id or ""
            result.deduplicated += 1
            continue
        alert.id = alert.id or new_id()
        mine = ents.get(i)
        if mine is None:  # not expected (a certain repeat is folded above); never drop its entities
            mine = candidate_entities(alert, policy.correlation.entity_types)
        batch.triage(alert, mine)
        batch.new_alerts.append(alert)
        batch.new_ids.add(alert.id or "")
        open_by_fp[fp] = alert
        result.ids[i] = alert.id or ""
    for i, j in resent:
        result.ids[i] = result.ids[j]
    batch.write()
    if hits:
        suppress.record_hits(scope.conn, scope.tenant_id, dict(hits), now)
    entries: list[tuple[str, str, str, str, dict[str, Any]]] = [
        (
            ACTOR,
            "case.create",
            "case",
            row["id"],
            {"title": row["title"], "severity": row["severity_id"], "number": row["number"]},
        )
        for row in batch.case_rows
    ]
    # A stored alert that repeats folded into it changed (count, last seen, observables): one entry per
    # alert and batch, however many repeats, so that a storm cannot flood the chain.
    entries += [
        (
            ACTOR,
            "alert.dedupe",
            "alert",
            alert.id or "",
            {"count": alert.count, "last_seen": alert.last_seen, "new_observables": len(fresh)},
        )
        for alert, fresh in batch.dedupe_updates.values()
    ]
    entries += [
        (ACTOR, "suppression.hit", "suppression", sid, {"hits": n}) for sid, n in sorted(hits.items())
    ]
    scope.audit.append_many(entries)
    return result


def _certain_repeat(target: Alert | None, alert: Alert, window_s: int) -> bool:
    if target is None:
        return False
    return 0 <= alert.time - (target.last_seen or target.time) <= window_s * 1000


def _fold(batch: _Batch, target: Alert, repeat: Alert) -> None:
    """Count ``repeat`` on ``target``: last seen, the observables it brings that target lacks, and its
    events (the first :data:`MAX_EVENT_IDS`: evidence, without letting a storm bloat the document)."""
    target.count += 1
    target.last_seen = max(target.last_seen or target.time, repeat.time)
    room = MAX_EVENT_IDS - len(target.event_ids)
    if room > 0 and repeat.event_ids:
        target.event_ids = [
            *target.event_ids,
            *(e for e in repeat.event_ids[:room] if e not in target.event_ids),
        ]
    have = set(target.observables)
    fresh = [o for o in repeat.observables if o not in have]
    target.observables.extend(fresh)
    assert target.id is not None
    if target.id not in batch.new_ids:  # one stored by an earlier batch: save it again
        prev = batch.dedupe_updates.get(target.id)
        batch.dedupe_updates[target.id] = (target, [*(prev[1] if prev else []), *fresh])
    if target.case_id is not None:
        if fresh:
            batch.add_case_observables(target.case_id, fresh)
        case = batch.cases.get(target.case_id)
        if case is not None:
            case.last_alert = max(case.last_alert, repeat.time)
            case.dirty = True
