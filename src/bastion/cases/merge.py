"""Merge cases, split a case, move an alert between cases: each audited with both case ids and the alerts
moved, written to the timeline of every case involved, and followed by a re-index of those cases'
correlation entities and scores (``bastion.triage.correlate.reindex_case``)."""

from __future__ import annotations

from collections.abc import Sequence

from bastion.cases.errors import CaseError, CaseNotFound, TransitionError
from bastion.cases.service import get_case, open_case, record
from bastion.model import Case, CaseStatus
from bastion.store import TenantScope
from bastion.store._util import now_ms

__all__ = ["merge_cases", "move_alert", "split_case"]


def _reindex(scope: TenantScope, case_ids: Sequence[str]) -> None:
    from bastion.triage.correlate import reindex_case

    for case_id in dict.fromkeys(case_ids):
        reindex_case(scope, case_id)


def _open(scope: TenantScope, ref: str, doing: str) -> Case:
    case = get_case(scope, ref)
    if case.status == CaseStatus.CLOSED:
        raise TransitionError(f"case #{case.number} is closed: reopen it before you {doing}")
    return case


def _relink(scope: TenantScope, alert_id: str, from_id: str | None, to_id: str, reason: str) -> None:
    if from_id is not None:
        scope.cases.remove_alert(from_id, alert_id)
    scope.cases.add_alert(to_id, alert_id, reason)
    alert = scope.alerts.get(alert_id)
    assert alert is not None
    scope.cases.add_observables(to_id, alert.observables)
    scope.alerts.set_case(alert_id, to_id)


def merge_cases(
    scope: TenantScope, actor: str, target_id: str, source_ids: Sequence[str], reason: str | None = None
) -> Case:
    """Merge ``source_ids`` into ``target_id``; returns the target.

    Alerts, observables, comments, tasks and attachments of each source move to the target; the
    source's timeline is copied there with a "merged from #N" note. A source is then *closed without a
    verdict*: the verdict is for the incident, which lives on in the target, so instead of inventing
    one the source gets status ``closed``, the custom field ``merged_into`` (the target's id and
    number) and a "merged into #M" timeline entry. Reopening a merged source is allowed (it starts
    empty). Closed cases take part in a merge on neither side: reopen them first.
    """
    target = _open(scope, target_id, "merge into it")
    assert target.id is not None
    if not source_ids:
        raise CaseError("name at least one case to merge into this one")
    sources: list[Case] = []
    for ref in source_ids:
        src = _open(scope, ref, "merge it")
        if src.id == target.id:
            raise CaseError(f"case #{target.number} cannot be merged into itself")
        if any(s.id == src.id for s in sources):
            raise CaseError(f"case #{src.number} is named twice")
        sources.append(src)
    now = now_ms()
    moved_all: dict[str, list[str]] = {}
    for src in sources:
        assert src.id is not None
        note = f"merged from #{src.number}"
        moved = list(src.alert_ids)
        reasons = {link["alert_id"]: link["reason"] for link in scope.cases.alert_links(src.id)}
        for alert_id in moved:
            old = reasons.get(alert_id)
            _relink(scope, alert_id, src.id, target.id, note + (f"; {old}" if old else ""))
        counts = scope.cases.move_contents(src.id, target.id, note)
        moved_all[src.id] = moved
        scope.cases.update_fields(
            src.id,
            status=CaseStatus.CLOSED,
            custom_fields={**src.custom_fields, "merged_into": {"id": target.id, "number": target.number}},
        )
        scope.cases.set_first(src.id, "closed", now)
        data = {
            "target": target.id,
            "target_number": target.number,
            "source": src.id,
            "source_number": src.number,
            "alerts": moved,
            "moved": counts,
            "reason": reason,
        }
        record(
            scope,
            actor,
            src.id,
            "merged.into",
            f"Merged into #{target.number}" + (f": {reason}" if reason else ""),
            data,
            audit="case.merge",
        )
        scope.cases.add_timeline(
            target.id,
            "merged.from",
            f"Case #{src.number} merged into this case ({len(moved)} alert(s))"
            + (f": {reason}" if reason else ""),
            actor=actor,
            data=data,
        )
    scope.audit.append(
        actor,
        "case.merged",
        "case",
        target.id,
        {"target": target.id, "sources": [s.id for s in sources], "alerts": moved_all, "reason": reason},
    )
    _reindex(scope, [target.id, *[s.id or "" for s in sources]])
    return get_case(scope, target.id)


def split_case(
    scope: TenantScope,
    actor: str,
    case_id: str,
    alert_ids: Sequence[str],
    title: str,
    reason: str | None = None,
) -> Case:
    """Move ``alert_ids`` (all in this case) out into a new case titled ``title``; returns the new case.
    The new case takes the original's severity and queue."""
    original = _open(scope, case_id, "split it")
    assert original.id is not None
    if not alert_ids:
        raise CaseError("name the alerts to split off into the new case")
    if not title or not title.strip():
        raise CaseError("the new case needs a title")
    chosen = list(dict.fromkeys(alert_ids))
    foreign = [a for a in chosen if a not in original.alert_ids]
    if foreign:
        raise CaseError(f"alert(s) not in case #{original.number}: {', '.join(foreign)}")
    new = open_case(
        scope,
        actor,
        title,
        original.severity,
        description=f"Split from case #{original.number}" + (f": {reason}" if reason else ""),
        queue=original.queue,
    )
    assert new.id is not None
    note = f"split from #{original.number}" + (f": {reason}" if reason else "")
    for alert_id in chosen:
        _relink(scope, alert_id, original.id, new.id, note)
    data = {
        "source": original.id,
        "source_number": original.number,
        "target": new.id,
        "target_number": new.number,
        "alerts": chosen,
        "reason": reason,
    }
    record(
        scope,
        actor,
        original.id,
        "split.out",
        f"{len(chosen)} alert(s) split into #{new.number}" + (f": {reason}" if reason else ""),
        data,
        audit="case.split",
    )
    scope.cases.add_timeline(
        new.id,
        "split.from",
        f"Split from #{original.number} with {len(chosen)} alert(s)" + (f": {reason}" if reason else ""),
        actor=actor,
        data=data,
    )
    _reindex(scope, [original.id, new.id])
    return get_case(scope, new.id)


def move_alert(
    scope: TenantScope, actor: str, alert_id: str, to_case_id: str, reason: str | None = None
) -> Case:
    """Move an alert into ``to_case_id`` (from the case it is in, if any); returns the target case."""
    target = _open(scope, to_case_id, "move alerts into it")
    assert target.id is not None
    alert = scope.alerts.get(alert_id)
    if alert is None:
        raise CaseNotFound(f"no alert {alert_id} in this tenant")
    current = scope.cases.cases_of_alert(alert_id)
    if target.id in current:
        raise TransitionError(f"alert {alert_id} is already in case #{target.number}")
    from_id = current[0] if current else None
    from_number = scope.cases.number(from_id) if from_id else None
    _relink(
        scope, alert_id, from_id, target.id, reason or (f"moved from #{from_number}" if from_id else "moved")
    )
    data = {
        "alert_id": alert_id,
        "source": from_id,
        "source_number": from_number,
        "target": target.id,
        "target_number": target.number,
        "reason": reason,
    }
    suffix = f": {reason}" if reason else ""
    if from_id is not None:
        scope.cases.add_timeline(
            from_id,
            "alert.moved_out",
            f"Alert moved to #{target.number}: {alert.title}{suffix}",
            actor=actor,
            data=data,
        )
    record(
        scope,
        actor,
        target.id,
        "alert.moved_in",
        "Alert moved in" + (f" from #{from_number}" if from_id else "") + f": {alert.title}{suffix}",
        data,
        audit="case.alert_moved",
    )
    _reindex(scope, [target.id, *([from_id] if from_id else [])])
    return get_case(scope, target.id)
