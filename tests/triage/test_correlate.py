"""Correlation into cases: shared hosts and users with recorded reasons, known-benign and very common
values that must not link, ATT&CK progressions (preferred, with a longer reach), case templates, and
re-deriving a case after an alert leaves it."""

from __future__ import annotations

from sqlalchemy import select

from bastion.model import Severity
from bastion.store import TenantScope
from bastion.store.tables import audit_log, case_observables, case_tasks, case_timeline
from bastion.triage.correlate import reindex_case
from tests.triage.conftest import MIN, T0, Tenant, make_alert, obs

HOUR = 60 * MIN


def test_alerts_sharing_host_or_user_join_one_case_with_reasons(any_tenant: Tenant) -> None:
    t = any_tenant
    a = t.ingest(make_alert("Phishing link clicked", host="WS01", user="alice", at=T0, techniques=["T1566"]))
    b = t.ingest(
        make_alert(
            "Encoded PowerShell",
            host="ws01",
            user="svc",
            at=T0 + 5 * MIN,
            rule_id="r-2",
            techniques=["T1059.001"],
        )
    )
    c = t.ingest(make_alert("Odd logon", host="WS77", user="ALICE", at=T0 + 9 * MIN, rule_id="r-3"))
    d = t.ingest(make_alert("Unrelated", host="WS99", user="zed", at=T0 + 9 * MIN, rule_id="r-4"))
    assert (a.cases, b.cases, c.cases, d.cases) == (1, 0, 0, 1)
    first, second = t.cases()
    links = t.links()
    assert links[a.ids[0]] == (first.id, "opened the case: score 31 >= 30")
    # tactics from ATT&CK: T1566 is initial access, T1059.001 execution
    assert links[b.ids[0]] == (
        first.id,
        "shares host ws01 with case #1; "
        "continues ATT&CK progression initial-access -> execution on host ws01",
    )
    assert links[c.ids[0]] == (first.id, "shares user alice with case #1")
    assert links[d.ids[0]][0] == second.id
    assert first.last_alert == T0 + 9 * MIN and first.techniques == '["T1059.001","T1566"]'
    assert set(t.entities(first.id)) == {
        ("host", "ws01"),
        ("user", "alice"),
        ("user", "svc"),
        ("host", "ws77"),
    }
    with t.db.read() as conn:
        timeline = list(conn.execute(select(case_timeline).where(case_timeline.c.case_id == first.id)))
        created = list(
            conn.execute(
                select(audit_log).where(audit_log.c.tenant_id == t.id, audit_log.c.action == "case.create")
            )
        )
    assert [r.kind for r in timeline] == ["case.opened", "alert.added", "alert.added", "alert.added"]
    assert "shares user alice with case #1" in timeline[-1].data
    assert [r.actor for r in created] == ["triage", "triage"]
    # a case's score: the strongest component of its alerts plus its technique span
    assert first.score >= 33 and '"techniques"' in first.score_components
    # a more severe alert raises the case's severity
    t.ingest(make_alert("Ransom note", user="alice", host=None, severity=Severity.CRITICAL, at=T0 + 10 * MIN))
    assert [c.severity_id for c in t.cases()] == [5, 4]


def test_outside_the_window_a_new_case_opens(tenant: Tenant) -> None:
    t = tenant
    t.ingest(make_alert(at=T0))
    late = t.ingest(make_alert("Again later", rule_id="r-2", at=T0 + 25 * HOUR))
    assert late.cases == 1 and len(t.cases()) == 2


def test_known_benign_and_common_values_do_not_link(tenant: Tenant) -> None:
    t = tenant
    t.policy({"correlation": {"common_after": 1, "open_case_score": 10}, "autoclose": {"enabled": False}})
    benign = {"known_benign": [{"type": "ipv4", "value": "8.8.8.8", "warninglists": ["public-dns"]}]}
    one = t.ingest(make_alert("A", host="WS01", user="a", extra=[obs("ipv4", "8.8.8.8")], enrichment=benign))
    two = t.ingest(
        make_alert(
            "B", host="WS02", user="b", rule_id="r-2", extra=[obs("ipv4", "8.8.8.8")], enrichment=benign
        )
    )
    assert (one.cases, two.cases) == (1, 1)  # the shared resolver is on a warning list: no link
    three = t.ingest(make_alert("C", host="WS01", user="b", rule_id="r-3", at=T0 + MIN))
    # it joins one of them through one value and brings the other: that one is now in two open cases
    assert three.cases == 0
    joined = t.links()[three.ids[0]][1]
    host, user = ("WS08", "b") if "host ws01" in joined else ("WS01", "c")
    four = t.ingest(make_alert("D", rule_id="r-4", at=T0 + 2 * MIN, host=host, user=user))
    assert four.cases == 1  # its only shared value is common (in 2 open cases > 1): no link


def test_attack_progression_is_preferred_and_reaches_further(tenant: Tenant) -> None:
    t = tenant
    t.policy({"correlation": {"window_s": 3600}})
    t.ingest(make_alert("Phish", host="WS01", user="alice", tags=["attack.initial_access"], at=T0))
    t.ingest(make_alert("Other host", host="WS02", user="bob", rule_id="r-9", at=T0 + 80 * MIN))
    run = t.ingest(
        make_alert(
            "Script", host="WS01", user="bob", rule_id="r-2", tags=["attack.execution"], at=T0 + 90 * MIN
        )
    )
    # user bob's case is more recent, but host WS01 continues a progression
    case_id, reason = t.links()[run.ids[0]]
    assert case_id == t.cases()[0].id
    assert reason == (
        "shares host ws01 with case #1; continues ATT&CK progression initial-access -> execution on host ws01"
    )
    dump = t.ingest(
        make_alert(
            "LSASS",
            host="WS01",
            user=None,
            rule_id="r-3",
            tags=["attack.credential_access"],
            at=T0 + 90 * MIN + 100 * MIN,
        )
    )
    assert t.links()[dump.ids[0]][1].endswith(
        "continues ATT&CK progression initial-access -> execution -> credential-access on host ws01"
    )
    assert t.entities(t.cases()[0].id)[("host", "ws01")] == [
        "initial-access",
        "execution",
        "credential-access",
    ]
    no_progress = t.ingest(
        make_alert(
            "Phish again",
            host="WS01",
            user=None,
            rule_id="r-4",
            tags=["attack.initial_access"],
            at=T0 + 90 * MIN + 100 * MIN + 90 * MIN,
        )
    )
    assert no_progress.cases == 1  # no progression: the 1 h window applies, and 90 min is too far


def test_template_gives_tasks_and_custom_fields(tenant: Tenant) -> None:
    t = tenant
    t.policy(
        {
            "templates": [
                {"name": "ransomware", "tags": ["ransomware"], "tasks": ["Isolate host"]},
                {
                    "name": "credential theft",
                    "techniques": ["T1003"],
                    "tasks": ["Reset password", "Check logons"],
                    "custom_fields": {"playbook": "PB-7"},
                },
            ]
        }
    )
    t.ingest(make_alert("LSASS dump", techniques=["T1003.001"], severity=Severity.CRITICAL))
    case = t.cases()[0]
    with t.db.read() as conn:
        tasks = [r.title for r in conn.execute(select(case_tasks).where(case_tasks.c.case_id == case.id))]
    assert tasks == ["Reset password", "Check logons"]
    assert case.custom_fields == '{"playbook":"PB-7"}' and case.severity_id == 5 and case.queue == "tier1"


def test_reindex_after_an_alert_leaves_the_case(tenant: Tenant) -> None:
    t = tenant
    a = t.ingest(make_alert("One", techniques=["T1566"], tags=["attack.initial_access"], at=T0))
    b = t.ingest(
        make_alert(
            "Two", rule_id="r-2", user="bob", techniques=["T1059"], tags=["attack.execution"], at=T0 + MIN
        )
    )
    case = t.cases()[0]
    assert case.techniques == '["T1059","T1566"]'
    with t.db.write() as conn:
        scope = TenantScope(conn, t.id)
        scope.alerts.set_case(b.ids[0], None)
        reindex_case(scope, case.id)
    after = t.cases()[0]
    assert after.techniques == '["T1566"]' and after.tactics == '["initial-access"]'
    assert after.last_alert == T0
    assert set(t.entities(case.id)) == {("host", "ws01"), ("user", "alice")}
    assert a.ids[0] in t.links()


def test_case_observables_are_added_once_and_keep_their_first_time(any_tenant: Tenant) -> None:
    t = any_tenant
    first = t.ingest(
        make_alert("Dropper", at=T0, extra=[obs("sha256", "a" * 64), obs("domain", "evil.example")])
    )
    with t.db.read() as conn:
        before = {
            (r.type, r.value): r.added
            for r in conn.execute(select(case_observables).where(case_observables.c.tenant_id == t.id))
        }
    # a later batch brings the same hash again, and a new domain, to the same case
    later = t.ingest(
        make_alert(
            "Beacon",
            rule_id="r-2",
            at=T0 + 5 * MIN,
            extra=[obs("sha256", "a" * 64), obs("domain", "c2.example")],
        )
    )
    assert t.links()[later.ids[0]][0] == t.links()[first.ids[0]][0]
    with t.db.read() as conn:
        after = {
            (r.type, r.value): r.added
            for r in conn.execute(select(case_observables).where(case_observables.c.tenant_id == t.id))
        }
    assert set(before) == {
        ("host", "WS01"),
        ("user", "alice"),
        ("sha256", "a" * 64),
        ("domain", "evil.example"),
    }
    assert set(after) == set(before) | {("domain", "c2.example")}
    assert all(after[k] == v for k, v in before.items())  # rows already there are left as they were
