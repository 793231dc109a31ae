"""The triage stage in the real pipeline path: dedupe by fingerprint within a window (and not outside
it), per-rule fingerprint overrides, re-sends, suppressions, and the ``case`` hooks it fires."""

from __future__ import annotations

from pathlib import Path

from bastion.detect.tenant import DETECTORS, add_pack
from bastion.ingest.records import RawRecord
from bastion.model import AlertStatus, Severity
from bastion.pipeline import connect_response, prepare_events, store_events
from bastion.respond import service as respond
from bastion.store import TenantScope
from bastion.store.workflows import WorkflowRepository
from bastion.triage.suppress import add_suppression
from tests.triage.conftest import MIN, T0, Tenant, make_alert, obs


def test_repeat_within_the_window_updates_the_open_alert(any_tenant: Tenant) -> None:
    t = any_tenant
    first = t.ingest(make_alert(at=T0))
    again = t.ingest(
        make_alert(at=T0 + 10 * MIN, extra=[obs("ipv4", "10.1.2.3")]),
        make_alert(at=T0 + 20 * MIN, extra=[obs("ipv4", "10.1.2.3"), obs("domain", "evil.example")]),
    )
    assert (first.accepted, again.accepted, again.deduplicated) == (1, 0, 2)
    assert again.ids == first.ids * 2
    stored = t.alert(first.ids[0])
    assert stored.count == 3 and stored.last_seen == T0 + 20 * MIN
    assert {(o.type.value, o.value) for o in stored.observables} == {
        ("host", "WS01"),
        ("user", "alice"),
        ("ipv4", "10.1.2.3"),
        ("domain", "evil.example"),
    }
    with t.db.read() as conn:
        by_value = TenantScope(conn, t.id).alerts.list(value="evil.example")[0]
    assert [a.id for a in by_value] == first.ids  # the merged observable is searchable
    # the alert's case sees the new observables too
    case = t.cases()[0]
    with t.db.read() as conn:
        full = TenantScope(conn, t.id).cases.get(case.id)
    assert full is not None and ("domain", "evil.example") in {
        (o.type.value, o.value) for o in full.observables
    }


def test_repeats_in_one_batch_and_outside_the_window(tenant: Tenant) -> None:
    t = tenant
    res = t.ingest(make_alert(at=T0), make_alert(at=T0 + 30 * MIN), make_alert(at=T0 + 2 * 60 * MIN))
    assert (res.accepted, res.deduplicated) == (2, 1)  # the third is 90 min after the last: a new alert
    assert res.ids[0] == res.ids[1] != res.ids[2]
    assert t.alert(res.ids[0]).count == 2
    other_host = t.ingest(make_alert(at=T0 + 2 * 60 * MIN, host="WS02"))
    assert other_host.accepted == 1  # a different entity is a different fingerprint


def test_later_batches_fold_into_an_alert_by_when_it_was_last_seen(tenant: Tenant) -> None:
    """Each batch reads only the open alerts last seen within its dedupe windows: an alert first seen
    100 minutes before a repeat but last seen 50 minutes before it still absorbs it (1 h window), and a
    repeat more than an hour after the last sighting starts a new alert."""
    t = tenant
    first = t.ingest(make_alert(at=T0))
    assert t.ingest(make_alert(at=T0 + 50 * MIN)).ids == first.ids
    later = t.ingest(make_alert(at=T0 + 100 * MIN), make_alert(at=T0 + 100 * MIN, host="WS07"))
    assert later.ids[0] == first.ids[0] and later.deduplicated == 1
    assert t.alert(first.ids[0]).count == 3 and t.alert(first.ids[0]).last_seen == T0 + 100 * MIN
    too_late = t.ingest(make_alert(at=T0 + 161 * MIN))
    assert too_late.accepted == 1 and too_late.ids != first.ids


def test_per_rule_fingerprint_override_and_closed_alerts_absorb_nothing(tenant: Tenant) -> None:
    t = tenant
    t.policy({"dedupe": {"rules": [{"rule_id": "noisy", "fields": ["rule_id"], "window_s": 86400}]}})
    res = t.ingest(
        make_alert("Noisy scan", rule_id="noisy", host="WS01", at=T0),
        make_alert("Noisy scan", rule_id="noisy", host="WS02", user="bob", at=T0 + 5 * 60 * MIN),
        make_alert("Other", rule_id="other", host="WS01", at=T0),
        make_alert("Other", rule_id="other", host="WS03", at=T0),
    )
    assert (res.accepted, res.deduplicated) == (3, 1)
    assert res.ids[0] == res.ids[1]
    low = t.ingest(make_alert("Low", severity=Severity.LOW, rule_id="low", host="LAB1", user=None, at=T0))
    assert low.auto_closed == 1
    again = t.ingest(
        make_alert("Low", severity=Severity.LOW, rule_id="low", host="LAB1", user=None, at=T0 + MIN)
    )
    assert again.accepted == 1 and again.ids != low.ids  # a closed alert is not reopened by a repeat


def test_resent_alerts_stay_duplicates(tenant: Tenant) -> None:
    t = tenant
    one = t.ingest(make_alert(external_id="x-1"))
    two = t.ingest(make_alert(external_id="x-1"), make_alert(external_id="x-2", host="WS09"))
    assert (two.duplicates, two.accepted, two.ids[0]) == (1, 1, one.ids[0])
    assert t.alert(one.ids[0]).count == 1  # a re-send is not a repeat


def test_suppressed_alert_is_stored_closed_with_its_reason(tenant: Tenant) -> None:
    t = tenant
    with t.db.write() as conn:
        sup = add_suppression(
            TenantScope(conn, t.id),
            "user:ana",
            owner="ana",
            expires="7d",
            rule_id="r-lab",
            reason="lab scanner",
        )
    res = t.ingest(
        make_alert(rule_id="r-lab"), make_alert(rule_id="r-lab", host="WS02"), make_alert(host="WS05")
    )
    assert (res.suppressed, res.accepted, res.cases) == (2, 3, 1)
    closed = t.alert(res.ids[0])
    assert closed.status == AlertStatus.CLOSED and not closed.auto_closed
    assert closed.close_reason == f"suppressed by {sup.id} (ana): lab scanner"
    assert closed.acknowledged is not None and closed.closed is not None and closed.case_id is None
    with t.db.read() as conn:
        from bastion.store.triage import SuppressionRepository

        row = SuppressionRepository(conn, t.id).get(sup.id)
    assert row is not None and row["hits"] == 2


def test_opened_case_starts_the_workflow_bound_to_the_case_trigger(tenant: Tenant) -> None:
    t = tenant
    respond.add_workflow(
        t.db,
        t.id,
        "id: case-intake\ntrigger:\n  case:\n    event: opened\n"
        '    condition: "${{ trigger.score >= 30 }}"\n'
        "inputs:\n  case_id: {type: string}\n  title: {type: string}\n"
        'steps:\n  - {id: a, action: core.log, with: {message: "${{ inputs.title }}"}}\n',
        actor="t",
    )
    connect_response(t.db)
    first = t.ingest(make_alert("Beacon to C2", at=T0))
    t.ingest(make_alert("Credential dump", at=T0 + MIN, rule_id="r-2"))  # joins: event "updated"
    t.ingest(make_alert("Quiet", severity=Severity.MEDIUM, host="WS7", user="zed", at=T0))  # no case
    with t.db.read() as conn:
        runs = WorkflowRepository(conn, t.id).list_runs()
    case_id = t.alert(first.ids[0]).case_id
    assert [r["workflow_id"] for r in runs] == ["case-intake"]
    assert runs[0]["inputs"] == {"case_id": case_id, "title": "Beacon to C2"}
    assert runs[0]["trigger"]["type"] == "case" and runs[0]["trigger"]["payload"]["number"] == 1


def test_detection_alerts_are_triaged_on_event_ingest(tenant: Tenant, tmp_path: Path) -> None:
    """Events through the real ingest path: the rule fires three times on one host within a minute,
    which is one alert seen three times, in one case; the audit entry records the triage outcome."""
    from tests.detect.test_tenant import RULE_A, sysmon

    t = tenant
    pack = tmp_path / "pack"
    pack.mkdir()
    (pack / "a.yml").write_text(RULE_A)
    add_pack(t.db, "acme", "local", str(pack))
    DETECTORS.clear()
    lines = [sysmon("C:\\Windows\\System32\\whoami.exe", when=1_780_000_000 + i) for i in range(3)]
    records = [RawRecord(line=i + 1, data=d) for i, d in enumerate(lines)]
    rows, errors = prepare_events(records, detection=DETECTORS.for_tenant(t.db, t.id))
    res = store_events(t.db, t.id, "test", rows, errors)
    assert res.accepted == 3
    [alert] = t.alerts()
    assert alert.count == 3 and alert.source == "sigma" and alert.fingerprint
    assert sorted(alert.event_ids) == sorted(r.id for r in rows)
    assert alert.case_id == t.cases()[0].id and alert.score >= 30
    with t.db.read() as conn:
        created = [e for e in TenantScope(conn, t.id).audit.entries() if e.action == "alert.create"]
    assert len(created) == 1 and created[0].data["case_id"] == alert.case_id
    assert created[0].data["score"] == alert.score and created[0].data["status"] == "new"


def test_resent_within_one_batch_maps_to_the_first(tenant: Tenant) -> None:
    res = tenant.ingest(make_alert(external_id="e-1"), make_alert(external_id="e-1", host="WS02"))
    assert (res.accepted, res.duplicates, res.ids[0] == res.ids[1]) == (1, 1, True)


def test_triage_links_put_the_alert_enrichment_on_the_case_timeline(tenant: Tenant) -> None:
    from bastion.cases.service import case_timeline

    enrichment = {
        "assets": [{"hostname": "ws01", "criticality": 3, "owner": "it"}],
        "identities": [{"username": "alice", "privileged": True, "groups": ["Domain Admins"]}],
        "intel": [{"indicator": "203.0.113.9", "source": "feodo", "confidence": 80}],
    }
    res = tenant.ingest(make_alert(enrichment=enrichment))
    (case,) = tenant.cases()
    with tenant.db.read() as conn:
        entries = [e for e in case_timeline(conn, tenant.id, case.id) if e.kind == "enrichment"]
    assert len(entries) == 1 and entries[0].data is not None
    assert entries[0].data["alert_id"] == res.ids[0]
    assert "intel 203.0.113.9 (feodo, 80)" in entries[0].summary and "identities alice" in entries[0].summary
