"""Merge, split and move on the real store: contents move, every case involved records it, the audit log
names both cases and the alerts moved, and the correlation index follows the alerts."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from bastion.cases import attachments, lifecycle, merge, service
from bastion.cases.errors import CaseError, TransitionError
from bastion.model import CaseStatus, Severity
from bastion.store import Database, TenantScope
from bastion.store.tables import case_entities
from tests.cases.helpers import alert, tenant


def _entities(scope: TenantScope, case_id: str) -> set[tuple[str, str]]:
    rows = scope.conn.execute(
        select(case_entities.c.type, case_entities.c.value).where(
            case_entities.c.tenant_id == scope.tenant_id, case_entities.c.case_id == case_id
        )
    )
    return {(r.type, r.value) for r in rows}


def test_merge_moves_everything_and_closes_the_sources_without_a_verdict(db: Database) -> None:
    tid = tenant(db)
    with db.write() as conn:
        scope = TenantScope(conn, tid)
        a1 = alert(scope, "Phish click", host="ws-1", user="bob", techniques=["T1566"])
        a2 = alert(scope, "Mimikatz", host="ws-2", user="carol", techniques=["T1003.001"])
        a3 = alert(scope, "RDP", host="ws-3", user="dave", techniques=["T1021.001"])
        target = service.open_case(
            scope, "triage", "Phish", Severity.MEDIUM, alert_ids=[a1], reason="host ws-1"
        )
        src = service.open_case(scope, "triage", "Creds", Severity.HIGH, alert_ids=[a2], reason="user carol")
        src2 = service.open_case(scope, "triage", "Lateral", Severity.HIGH, alert_ids=[a3])
        service.add_comment(scope, "user:ana", "#2", "carol's laptop")
        task = service.add_task(scope, "user:ana", "#2", "Reset carol")
        att = attachments.add_attachment(scope, "user:ana", "#2", "dump.txt", b"lsass")
        with pytest.raises(CaseError, match="into itself"):
            merge.merge_cases(scope, "user:ana", "#1", ["#1"])
        with pytest.raises(CaseError, match="named twice"):
            merge.merge_cases(scope, "user:ana", "#1", ["#2", "2"])
        merged = merge.merge_cases(scope, "user:ana", "#1", ["#2", src2.id or ""], reason="same intrusion")
    with db.read() as conn:
        scope = TenantScope(conn, tid)
        assert merged.id == target.id and sorted(merged.alert_ids) == sorted([a1, a2, a3])
        assert [c.body for c in merged.comments] == ["carol's laptop"]
        assert [t.id for t in merged.tasks] == [task.id]
        assert [a.id for a in merged.attachments] == [att.id]
        assert {o.value for o in merged.observables} >= {"ws-1", "ws-2", "ws-3", "carol"}
        assert {getattr(scope.alerts.get(a), "case_id", None) for a in (a1, a2, a3)} == {target.id}
        links = {x["alert_id"]: x["reason"] for x in scope.cases.alert_links(target.id or "")}
        assert links[a2] == "merged from #2; user carol" and links[a3] == "merged from #3"
        copied = [e for e in merged.timeline if (e.data or {}).get("note") == "merged from #2"]
        assert [e.kind for e in copied] == [
            "case.opened",
            "alert.added",
            "comment",
            "task.created",
            "attachment.added",
        ]
        assert copied[2].summary == "carol's laptop (merged from #2)"
        assert [e.summary for e in merged.timeline if e.kind == "merged.from"] == [
            "Case #2 merged into this case (1 alert(s)): same intrusion",
            "Case #3 merged into this case (1 alert(s)): same intrusion",
        ]
        for source in (src, src2):
            gone = scope.cases.get(source.id or "")
            assert gone is not None
            assert gone.status == CaseStatus.CLOSED and gone.verdict is None and gone.closed is not None
            assert gone.custom_fields["merged_into"] == {"id": target.id, "number": 1}
            assert gone.alert_ids == [] and gone.comments == [] and gone.observables == []
            assert gone.timeline[-1].kind == "merged.into"
            assert gone.timeline[-1].summary == "Merged into #1: same intrusion"
            assert _entities(scope, source.id or "") == set()
        audited = [e for e in scope.audit.entries() if e.action in ("case.merge", "case.merged")]
        per_source = [e for e in audited if e.action == "case.merge"]
        assert [(e.target_id, e.data["target"], e.data["alerts"]) for e in per_source] == [
            (src.id, target.id, [a2]),
            (src2.id, target.id, [a3]),
        ]
        summary = next(e for e in audited if e.action == "case.merged")
        assert summary.actor == "user:ana" and summary.data["sources"] == [src.id, src2.id]
        assert summary.data["alerts"] == {src.id: [a2], src2.id: [a3]}
        # the correlation index now points at the target for every alert's host
        assert {("host", "ws-1"), ("host", "ws-2"), ("host", "ws-3")} <= _entities(scope, target.id or "")
        whole = scope.cases.get(target.id or "")
        assert whole is not None and set(whole.techniques) == {"T1566", "T1003.001", "T1021.001"}
        assert scope.audit.verify().ok


def test_closed_cases_take_no_part_in_a_merge(db: Database) -> None:
    tid = tenant(db)
    with db.write() as conn:
        scope = TenantScope(conn, tid)
        service.open_case(scope, "cli", "Open", Severity.LOW)
        service.open_case(scope, "cli", "Closed", Severity.LOW)
        lifecycle.close_case(scope, "cli", "#2", "false_positive")
        with pytest.raises(TransitionError, match="#2 is closed"):
            merge.merge_cases(scope, "cli", "#1", ["#2"])
        with pytest.raises(TransitionError, match="#2 is closed"):
            merge.merge_cases(scope, "cli", "#2", ["#1"])
        with pytest.raises(CaseError, match="at least one"):
            merge.merge_cases(scope, "cli", "#1", [])


def test_split_moves_the_chosen_alerts_into_a_new_case(db: Database) -> None:
    tid = tenant(db)
    with db.write() as conn:
        scope = TenantScope(conn, tid)
        a1 = alert(scope, "Beacon", host="ws-1", techniques=["T1071"])
        a2 = alert(scope, "Unrelated scan", host="srv-9", user="svc", techniques=["T1046"])
        a3 = alert(scope, "Other", host="ws-1")
        original = service.open_case(scope, "triage", "Mixed", Severity.HIGH, alert_ids=[a1, a2, a3])
        lifecycle.change_status(scope, "cli", "#1", "triaged")
        with pytest.raises(CaseError, match="not in case #1"):
            merge.split_case(scope, "cli", "#1", [a2, "0" * 32], "Scan")
        with pytest.raises(CaseError, match="needs a title"):
            merge.split_case(scope, "cli", "#1", [a2], " ")
        new = merge.split_case(scope, "user:ana", "#1", [a2], "Scan from srv-9", reason="different host")
    with db.read() as conn:
        scope = TenantScope(conn, tid)
        assert new.number == 2 and new.alert_ids == [a2] and new.severity == Severity.HIGH
        assert new.status == CaseStatus.NEW
        kept = scope.cases.get(original.id or "")
        assert kept is not None and kept.alert_ids == [a1, a3]
        assert getattr(scope.alerts.get(a2), "case_id", None) == new.id
        assert kept.timeline[-1].kind == "split.out" and new.timeline[-1].kind == "split.from"
        assert kept.timeline[-1].summary == "1 alert(s) split into #2: different host"
        audit = next(e for e in scope.audit.entries() if e.action == "case.split")
        assert (audit.target_id, audit.data["target"], audit.data["alerts"]) == (original.id, new.id, [a2])
        assert ("host", "srv-9") in _entities(scope, new.id or "")
        assert ("host", "srv-9") not in _entities(scope, original.id or "")
        assert kept.techniques == ["T1071"] and new.techniques == ["T1046"]


def test_move_alert_between_cases_and_into_its_first_case(db: Database) -> None:
    tid = tenant(db)
    with db.write() as conn:
        scope = TenantScope(conn, tid)
        a1, a2 = alert(scope, "One", host="ws-1"), alert(scope, "Two", host="ws-2")
        loose = alert(scope, "Loose", host="ws-3")
        service.open_case(scope, "triage", "A", Severity.LOW, alert_ids=[a1, a2])
        service.open_case(scope, "triage", "B", Severity.LOW)
        with pytest.raises(TransitionError, match="already in case #1"):
            service.attach_alert(scope, "cli", "#1", a2)
        target = merge.move_alert(scope, "user:ana", a2, "#2", reason="belongs with B")
        assert target.alert_ids == [a2]
        with pytest.raises(TransitionError, match="already in case #2"):
            merge.move_alert(scope, "user:ana", a2, "#2")
        into = merge.move_alert(scope, "user:ana", loose, "2")
        assert into.alert_ids == [a2, loose]
        lifecycle.close_case(scope, "cli", "#1", "true_positive")
        with pytest.raises(TransitionError, match="#1 is closed"):
            merge.move_alert(scope, "cli", a2, "#1")
    with db.read() as conn:
        scope = TenantScope(conn, tid)
        first = service.get_case(scope, "#1")
        assert first.alert_ids == [a1]
        out = next(e for e in first.timeline if e.kind == "alert.moved_out")
        assert out.summary == "Alert moved to #2: Two: belongs with B"
        moved = [e for e in scope.audit.entries() if e.action == "case.alert_moved"]
        assert [(e.data["alert_id"], e.data["source_number"], e.data["target_number"]) for e in moved] == [
            (a2, 1, 2),
            (loose, None, 2),
        ]
        assert ("host", "ws-2") in _entities(scope, target.id or "")
        assert ("host", "ws-2") not in _entities(scope, first.id or "")


def test_opening_a_case_with_alerts_of_another_case_moves_them(db: Database) -> None:
    tid = tenant(db)
    with db.write() as conn:
        scope = TenantScope(conn, tid)
        a1, a2 = alert(scope, "One", host="ws-1"), alert(scope, "Two", host="ws-2")
        service.open_case(scope, "triage", "Grouped by triage", Severity.LOW, alert_ids=[a1, a2])
        mine = service.open_case(
            scope, "user:ana", "Analyst's case", Severity.HIGH, alert_ids=[a2], reason="mine"
        )
        assert mine.alert_ids == [a2]
        assert service.get_case(scope, "#1").alert_ids == [a1]
        moved = next(e for e in scope.audit.entries() if e.action == "case.alert_moved")
        assert (moved.actor, moved.data["source_number"], moved.data["target_number"]) == ("user:ana", 1, 2)
        assert ("host", "ws-2") in _entities(scope, mine.id or "")
