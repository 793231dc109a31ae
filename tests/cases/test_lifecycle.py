"""The case service on the real store (SQLite and PostgreSQL): lifecycle, verdicts, acknowledgement,
assignment, comments, tasks, observables, attachments, custom fields, templates and case references."""

from __future__ import annotations

import hashlib

import pytest

from bastion.cases import attachments, lifecycle, service
from bastion.cases.errors import CaseError, CaseNotFound, TransitionError
from bastion.model import AlertStatus, CaseStatus, Observable, ObservableType, Severity, TaskStatus
from bastion.model.alert import Verdict
from bastion.store import Database, TenantScope
from bastion.triage.policy import CaseTemplate, save_policy
from tests.cases.helpers import alert, tenant


def test_lifecycle_moves_forward_skipping_and_back_and_keeps_first_timestamps(db: Database) -> None:
    tid = tenant(db)
    with db.write() as conn:
        scope = TenantScope(conn, tid)
        case = service.open_case(scope, "triage", "Beacon", Severity.HIGH)
        assert case.status == CaseStatus.NEW and case.acknowledged is None and case.number == 1
        moved = lifecycle.change_status(scope, "user:ana", "#1", "contained", reason="host isolated")
        assert moved.status == CaseStatus.CONTAINED
        assert moved.acknowledged is not None and moved.contained is not None and moved.resolved is None
        first_ack, first_contained = moved.acknowledged, moved.contained
        back = lifecycle.change_status(scope, "user:ana", "1", CaseStatus.TRIAGED)
        assert back.status == CaseStatus.TRIAGED
        assert (back.acknowledged, back.contained) == (first_ack, first_contained)
        again = lifecycle.change_status(scope, "user:ana", case.id or "", "in progress")
        assert again.status == CaseStatus.IN_PROGRESS and again.contained == first_contained
        resolved = lifecycle.change_status(scope, "user:ana", "#1", "resolved")
        assert resolved.resolved is not None and resolved.closed is None
        with pytest.raises(CaseError, match="unknown case status"):
            lifecycle.change_status(scope, "user:ana", "#1", "done")
    with db.read() as conn:
        scope = TenantScope(conn, tid)
        got = scope.cases.get(case.id or "")
        assert got is not None
        statuses = [(e.data or {}).get("to") for e in got.timeline if e.kind == "status"]
        assert statuses == ["contained", "triaged", "in_progress", "resolved"]
        assert [e.actor for e in got.timeline if e.kind == "status"] == ["user:ana"] * 4
        audited = [e for e in scope.audit.entries() if e.action == "case.status"]
        assert [e.data["to"] for e in audited] == ["contained", "triaged", "in_progress", "resolved"]
        assert {e.actor for e in audited} == {"user:ana"} and scope.audit.verify().ok


def test_closing_needs_a_verdict_and_closes_the_open_alerts_with_it(db: Database) -> None:
    tid = tenant(db)
    with db.write() as conn:
        scope = TenantScope(conn, tid)
        a1, a2 = alert(scope, "Mimikatz"), alert(scope, "Encoded PowerShell")
        case = service.open_case(scope, "triage", "Credential theft", Severity.HIGH, alert_ids=[a1, a2])
        from bastion.triage.alerts import close_alert

        close_alert(scope, "user:ana", a2, Verdict.BENIGN_TRUE_POSITIVE, reason="admin test")
        with pytest.raises(CaseError, match="needs a verdict: true_positive"):
            lifecycle.close_case(scope, "user:ana", "#1", None)
        with pytest.raises(CaseError, match="needs a verdict"):
            lifecycle.change_status(scope, "user:ana", "#1", "closed")
        with pytest.raises(CaseError, match="unknown verdict 'guilty'"):
            lifecycle.close_case(scope, "user:ana", "#1", "guilty")
        closed = lifecycle.close_case(scope, "user:ana", "#1", "true_positive", reason="confirmed")
        assert closed.status == CaseStatus.CLOSED and closed.verdict == Verdict.TRUE_POSITIVE
        assert closed.closed is not None and closed.resolved == closed.closed and closed.acknowledged
        with pytest.raises(TransitionError, match="already closed"):
            lifecycle.close_case(scope, "user:ana", "#1", "false_positive")
        with pytest.raises(TransitionError, match="reopen it"):
            lifecycle.change_status(scope, "user:ana", "#1", "in_progress")
        with pytest.raises(TransitionError, match="reopen it"):
            service.assign(scope, "user:ana", "#1", "carol")
    with db.read() as conn:
        scope = TenantScope(conn, tid)
        first, second = scope.alerts.get(a1), scope.alerts.get(a2)
        assert first is not None and second is not None
        assert (first.status, first.verdict) == (AlertStatus.CLOSED, Verdict.TRUE_POSITIVE)
        assert first.close_reason == "case #1 closed: confirmed" and first.closed == closed.closed
        # the alert closed before keeps its own verdict
        assert second.verdict == Verdict.BENIGN_TRUE_POSITIVE
        from bastion.store.tables import alerts

        rows = dict(conn.execute(alerts.select().with_only_columns(alerts.c.id, alerts.c.verdict)).all())
        assert rows[a1] == "true_positive" and rows[a2] == "benign_true_positive"
        close_entry = next(e for e in scope.cases.timeline(case.id or "") if e.kind == "closed")
        assert close_entry.data == {
            "from": "new",
            "verdict": "true_positive",
            "reason": "confirmed",
            "alerts_closed": [a1],
        }


def test_reopen_needs_a_reason_and_clears_the_verdict(db: Database) -> None:
    tid = tenant(db)
    with db.write() as conn:
        scope = TenantScope(conn, tid)
        service.open_case(scope, "cli", "Phish", Severity.MEDIUM)
        with pytest.raises(TransitionError, match="not closed"):
            lifecycle.reopen_case(scope, "cli", "#1", "why not")
        closed = lifecycle.close_case(scope, "cli", "#1", "false_positive")
        with pytest.raises(CaseError, match="reason is required"):
            lifecycle.reopen_case(scope, "cli", "#1", "  ")
        reopened = lifecycle.reopen_case(scope, "user:ana", "#1", "new evidence", status="triaged")
        assert reopened.status == CaseStatus.TRIAGED and reopened.verdict is None
        assert reopened.closed == closed.closed  # the first close is kept for the metrics
        entry = reopened.timeline[-1]
        assert entry.kind == "reopened" and entry.data is not None
        assert entry.data["previous_verdict"] == "false_positive" and entry.actor == "user:ana"


def test_acknowledgement_comes_from_assignment_or_a_persons_comment(db: Database) -> None:
    tid = tenant(db)
    with db.write() as conn:
        scope = TenantScope(conn, tid)
        for n in range(3):
            service.open_case(scope, "triage", f"case {n}", Severity.LOW)
        service.add_comment(scope, "workflow:abc", "#1", "enriched automatically")
        assert service.get_case(scope, "#1").acknowledged is None
        service.add_comment(scope, "user:ana", "#1", "looking")
        assert service.get_case(scope, "#1").acknowledged is not None
        assigned = service.assign(scope, "cli", "#2", "carol")
        assert assigned.assignee == "carol" and assigned.acknowledged is not None
        assert assigned.status == CaseStatus.NEW  # acknowledged, but nobody triaged it yet
        unassigned = service.assign(scope, "cli", "#2", None)
        assert unassigned.assignee is None and unassigned.acknowledged == assigned.acknowledged
        assert service.get_case(scope, "#3").acknowledged is None
        assert [e.kind for e in unassigned.timeline][-2:] == ["assigned", "assigned"]
        assert [e.action for e in scope.audit.entries()].count("case.assign") == 2


def test_tasks_observables_fields_and_details(db: Database) -> None:
    tid = tenant(db)
    with db.write() as conn:
        scope = TenantScope(conn, tid)
        case = service.open_case(scope, "cli", "Ransomware", Severity.CRITICAL)
        t1 = service.add_task(scope, "user:ana", "#1", "Isolate host", assignee="ana")
        t2 = service.add_task(scope, "user:ana", "#1", "Reset password")
        assert service.set_task_status(scope, "user:ana", "#1", t1.id or "", "done").status == TaskStatus.DONE
        assert (
            service.set_task_status(scope, "user:ana", "#1", t2.id or "", TaskStatus.CANCELLED).status
            == TaskStatus.CANCELLED
        )
        with pytest.raises(CaseNotFound, match="no task"):
            service.set_task_status(scope, "user:ana", "#1", "f" * 32, "done")
        with pytest.raises(CaseError, match="open, done or cancelled"):
            service.set_task_status(scope, "user:ana", "#1", t1.id or "", "finished")
        added = service.add_observables(
            scope,
            "user:ana",
            "#1",
            [
                Observable(ObservableType.IPV4, "203.0.113.7"),
                Observable(ObservableType.DOMAIN, "evil.example"),
            ],
        )
        assert added == 2
        assert (
            service.add_observables(scope, "user:ana", "#1", [Observable(ObservableType.IPV4, "203.0.113.7")])
            == 0
        )
        service.set_custom_field(scope, "user:ana", "#1", "ticket", {"system": "jira", "key": "SEC-12"})
        service.set_custom_field(scope, "user:ana", "#1", "impact", 3)
        fields = service.unset_custom_field(scope, "user:ana", "#1", "impact").custom_fields
        assert fields == {"ticket": {"system": "jira", "key": "SEC-12"}}
        with pytest.raises(CaseNotFound, match="no custom field 'impact'"):
            service.unset_custom_field(scope, "user:ana", "#1", "impact")
        updated = service.update_case(
            scope, "user:ana", "#1", title="Ransomware on FS-01", severity=Severity.HIGH
        )
        assert (updated.title, updated.severity) == ("Ransomware on FS-01", Severity.HIGH)
    with db.read() as conn:
        scope = TenantScope(conn, tid)
        got = scope.cases.get(case.id or "")
        assert got is not None
        assert [(t.title, t.status) for t in got.tasks] == [
            ("Isolate host", TaskStatus.DONE),
            ("Reset password", TaskStatus.CANCELLED),
        ]
        assert {o.value for o in got.observables} == {"203.0.113.7", "evil.example"}
        kinds = [e.kind for e in got.timeline]
        assert kinds.count("task.completed") == 1 and kinds.count("task.cancelled") == 1
        assert kinds.count("field.set") == 2 and kinds.count("field.unset") == 1
        actions = [e.action for e in scope.audit.entries()]
        for wanted in ("case.task_status", "case.observable", "case.field", "case.update"):
            assert wanted in actions


def test_attachments_are_stored_with_their_hash_and_limited_to_20_mb(db: Database) -> None:
    tid = tenant(db)
    data = b"\x00pcap\xff" * 1000
    with db.write() as conn:
        scope = TenantScope(conn, tid)
        service.open_case(scope, "cli", "Exfil", Severity.HIGH)
        att = attachments.add_attachment(scope, "user:ana", "#1", "../../capture.pcap", data)
        assert att.name == "capture.pcap" and att.size == len(data)
        assert att.sha256 == hashlib.sha256(data).hexdigest()
        big = b"x" * (attachments.MAX_ATTACHMENT_BYTES + 1)
        with pytest.raises(attachments.AttachmentTooLarge, match="limit is 20971520 bytes"):
            attachments.add_attachment(scope, "user:ana", "#1", "big.bin", big)
        with pytest.raises(CaseError, match="empty"):
            attachments.add_attachment(scope, "user:ana", "#1", "none.txt", b"")
    with db.read() as conn:
        scope = TenantScope(conn, tid)
        meta, got = attachments.get_attachment(scope, "#1", att.id or "")
        assert got == data and meta.sha256 == att.sha256 and meta.author == "user:ana"
        case = service.get_case(scope, "#1")
        assert [a.name for a in case.attachments] == ["capture.pcap"]
        assert [e.kind for e in case.timeline].count("attachment.added") == 1
        with pytest.raises(CaseNotFound):
            attachments.get_attachment(scope, "#1", "0" * 32)


def test_templates_by_name_and_by_matching_alerts(db: Database) -> None:
    tid = tenant(db)
    with db.write() as conn:
        save_policy(
            conn,
            tid,
            {
                "templates": [
                    {
                        "name": "credential-theft",
                        "tasks": ["Reset the password", "Revoke sessions"],
                        "custom_fields": {"playbook": "IR-7"},
                        "techniques": ["T1003"],
                    },
                    {"name": "phishing", "tasks": ["Pull the mail"], "tags": ["phish"]},
                ]
            },
            "test",
        )
    with db.write() as conn:
        scope = TenantScope(conn, tid)
        lsass = alert(scope, "LSASS access", techniques=["T1003.001"])
        matched = service.open_case(scope, "triage", "Creds", Severity.HIGH, alert_ids=[lsass])
        assert [t.title for t in matched.tasks] == ["Reset the password", "Revoke sessions"]
        assert matched.custom_fields == {"playbook": "IR-7"}
        named = service.open_case(scope, "cli", "Mail", Severity.LOW, template="phishing")
        assert [t.title for t in named.tasks] == ["Pull the mail"]
        assert named.timeline[-1].kind == "template.applied"
        plain = service.open_case(scope, "cli", "Nothing", Severity.LOW, alert_ids=[alert(scope, "x")])
        assert plain.tasks == []
        with pytest.raises(CaseError, match=r"no case template 'nope'.*credential-theft, phishing"):
            service.open_case(scope, "cli", "Bad", Severity.LOW, template="nope")
        # applying again adds no duplicate tasks and keeps fields already set
        service.set_custom_field(scope, "cli", "#1", "playbook", "custom")
        again = service.apply_template(
            scope, "cli", "#1", CaseTemplate(name="extra", tasks=["Revoke sessions", "Notify DPO"])
        )
        assert [t.title for t in again.tasks] == ["Reset the password", "Revoke sessions", "Notify DPO"]
        assert again.custom_fields == {"playbook": "custom"}


def test_cases_are_named_by_id_or_number_within_the_tenant(db: Database) -> None:
    tid, other = tenant(db, "acme"), tenant(db, "beta")
    with db.write() as conn:
        scope = TenantScope(conn, tid)
        first = service.open_case(scope, "cli", "First", Severity.LOW)
        second = service.open_case(scope, "cli", "Second", Severity.LOW)
        theirs = service.open_case(TenantScope(conn, other), "cli", "Theirs", Severity.LOW)
        assert service.require_case(scope, "#2") == second.id == service.require_case(scope, " 2 ")
        assert service.require_case(scope, (first.id or "").upper()) == first.id
        for bad in ("#9", "abc", theirs.id or "", ""):
            with pytest.raises(CaseNotFound, match="no case"):
                service.require_case(scope, bad)
        with pytest.raises(CaseNotFound, match="no alert"):
            service.open_case(scope, "cli", "x", Severity.LOW, alert_ids=["0" * 32])
        with pytest.raises(CaseError, match="needs a title"):
            service.open_case(scope, "cli", "  ", Severity.LOW)
