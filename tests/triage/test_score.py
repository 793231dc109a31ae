"""The explained risk score (components, explanation lines, per-tenant weights), the auto-close safety
limits, and queue routing."""

from __future__ import annotations

from typing import Any

from bastion.model import AlertStatus, Severity
from bastion.triage.policy import parse_policy
from bastion.triage.routing import choose_queue
from bastion.triage.score import explain, score_alert
from tests.triage.conftest import MIN, T0, Tenant, make_alert

ENRICHED: dict[str, Any] = {
    "intel": [
        {"observable": {"type": "ipv4", "value": "1.2.3.4"}, "source": "feodo", "confidence": 80},
        {
            "observable": {"type": "ipv4", "value": "8.8.8.8"},
            "source": "x",
            "confidence": 99,
            "known_benign": True,
        },
    ],
    "assets": [{"hostname": "DC01", "criticality": 4, "owner": "it-infra"}],
    "identities": [{"username": "alice", "groups": ["Domain Admins"]}],
    "known_benign": [],
}


def test_components_and_explanation_lines() -> None:
    policy = parse_policy(None)
    alert = make_alert(
        source="sigma",
        severity=Severity.HIGH,
        raw={"level": "high", "status": "stable"},
        techniques=["T1003.001"],
        enrichment=ENRICHED,
    )
    total, comps = score_alert(alert, policy=policy, history=5, case_techniques=["T1566", "T1059.001"])
    assert explain(comps) == [
        "+26.2 severity: high (4/5)",
        "+10.0 fidelity: Sigma rule status stable, level high",
        "+16.0 intel: intel match 1.2.3.4 from feodo, confidence 80",
        "+10.0 asset: asset DC01 criticality critical (4/4)",
        "+10.0 identity: identity alice is in Domain Admins",
        "+5.0 techniques: 3 distinct techniques (T1003.001, T1059.001, T1566)",
        "+2.5 history: 5 alerts on the same hosts and users in the last 30 days",
        "+0.0 warninglist: not on a warning list",
    ]
    assert total == 80
    low_fidelity = make_alert(source="sigma", raw={"level": "high", "status": "experimental"})
    assert score_alert(low_fidelity, policy=policy)[1][1].points == 5.0
    benign = make_alert(
        severity=Severity.LOW,
        enrichment={
            "known_benign": [{"type": "domain", "value": "update.microsoft.com", "warninglists": ["ms"]}]
        },
    )
    total, comps = score_alert(benign, policy=policy)
    assert total == 0 and explain(comps)[-1] == "-15.0 warninglist: update.microsoft.com on warning list ms"


def test_tenant_weights_change_the_stored_score(tenant: Tenant) -> None:
    t = tenant
    first = t.ingest(make_alert(enrichment=ENRICHED, at=T0))
    t.policy({"weights": {"severity": 10, "intel": 60}})
    second = t.ingest(make_alert(enrichment=ENRICHED, host="WS02", at=T0 + MIN))
    a, b = t.alert(first.ids[0]), t.alert(second.ids[0])
    assert a.score == 67 and b.score == 81  # 26.2+5+16+10+10 ; 7.5+5+48+10+10+0.5 (alice seen once)
    assert [c.name for c in a.score_components][:3] == ["severity", "fidelity", "intel"]
    assert b.score_components[2].points == 48.0  # 60 * 0.8


def test_low_alert_is_auto_closed_with_its_reason(any_tenant: Tenant) -> None:
    t = any_tenant
    res = t.ingest(make_alert("Port scan", severity=Severity.LOW, host="LAB1", user=None))
    assert res.auto_closed == 1 and res.cases == 0
    alert = t.alert(res.ids[0])
    assert alert.status == AlertStatus.CLOSED and alert.auto_closed and alert.verdict is None
    assert alert.close_reason is not None and alert.close_reason.startswith("auto-closed: score 14 <= 20")
    assert alert.acknowledged is not None and alert.closed is not None
    assert t.cases() == []


def test_safety_limits_keep_low_alerts_open(tenant: Tenant) -> None:
    t = tenant
    t.policy({"weights": {"intel": 0, "asset": 0}})  # the signals no longer score: only the limits protect
    intel = {
        "intel": [{"observable": {"type": "ipv4", "value": "1.2.3.4"}, "source": "feodo", "confidence": 60}]
    }
    weak_intel = {
        "intel": [{"observable": {"type": "ipv4", "value": "1.2.3.4"}, "source": "x", "confidence": 40}]
    }
    crit = {"assets": [{"hostname": "DC01", "criticality": 4}]}
    res = t.ingest(
        make_alert("a", severity=Severity.LOW, host="H1", user=None, enrichment=intel),
        make_alert("b", severity=Severity.LOW, host="H2", user=None, enrichment=weak_intel),
        make_alert("c", severity=Severity.LOW, host="DC01", user=None, enrichment=crit),
    )
    assert [t.alert(i).status for i in res.ids] == [AlertStatus.NEW, AlertStatus.CLOSED, AlertStatus.NEW]
    # a case spanning two techniques keeps its low alerts open too
    t.ingest(make_alert("Beacon", host="H9", user=None, techniques=["T1071"], at=T0))
    low = t.ingest(
        make_alert(
            "Noise",
            severity=Severity.LOW,
            host="H9",
            user=None,
            rule_id="r-9",
            techniques=["T1082"],
            at=T0 + MIN,
        )
    )
    alert = t.alert(low.ids[0])
    assert alert.status == AlertStatus.NEW and alert.case_id == t.cases()[0].id
    alone = t.ingest(
        make_alert(
            "Noise",
            severity=Severity.LOW,
            host="H8",
            user=None,
            rule_id="r-9",
            techniques=["T1082"],
            at=T0 + MIN,
        )
    )
    assert alone.auto_closed == 1


def test_routing_picks_the_first_matching_queue(tenant: Tenant) -> None:
    policy = parse_policy(
        {
            "routing": {
                "rules": [
                    {"queue": "dc-team", "tier": 2, "asset_owner": "it-infra", "min_score": 50},
                    {"queue": "edr-queue", "sources": ["edr"], "tags": ["malware"]},
                    {"queue": "msp-vip", "tier": 3, "tenants": ["acme"]},
                ]
            }
        }
    )
    alert = make_alert(enrichment=ENRICHED, tags=["Malware"])
    alert.score = 60
    assert choose_queue(policy, alert, tenant_name="acme") == ("dc-team", 2)
    alert.score = 40
    assert choose_queue(policy, alert, tenant_name="acme") == ("edr-queue", 1)
    alert.tags = []
    assert choose_queue(policy, alert, tenant_name="acme") == ("msp-vip", 3)
    assert choose_queue(policy, alert, tenant_name="other") == ("tier1", 1)
    t = tenant
    t.policy({"routing": {"rules": [{"queue": "vip", "tier": 2, "tenants": ["acme"], "min_score": 30}]}})
    res = t.ingest(make_alert())
    assert t.alert(res.ids[0]).queue == "vip"
    case = t.cases()[0]
    assert (case.queue, case.tier) == ("vip", 2)


def test_history_counts_earlier_alerts_on_the_hosts_and_users(any_tenant: Tenant) -> None:
    t = any_tenant
    # three alerts on WS01 in earlier batches (one of them repeated twice), one on another host
    t.ingest(make_alert("A", host="WS01", user="bob", rule_id="r-1", at=T0))
    t.ingest(make_alert("A", host="WS01", user="bob", rule_id="r-1", at=T0 + MIN))  # folded: count 2
    t.ingest(make_alert("B", host="WS01", user="carol", rule_id="r-2", at=T0 + 2 * MIN))
    t.ingest(make_alert("C", host="WS02", user="dave", rule_id="r-3", at=T0 + 3 * MIN))
    fresh = t.ingest(make_alert("D", host="ws01", user="erin", rule_id="r-4", at=T0 + 4 * MIN))
    history = {c.name: c for c in t.alert(fresh.ids[0]).score_components}["history"]
    assert history.detail == "3 alerts on the same hosts and users in the last 30 days"
    # ten or more saturate the component
    for i in range(8):
        t.ingest(make_alert(f"E{i}", host="WS01", user="erin", rule_id=f"r-e{i}", at=T0 + (5 + i) * MIN))
    last = t.ingest(make_alert("F", host="WS01", user="frank", rule_id="r-5", at=T0 + 20 * MIN))
    history = {c.name: c for c in t.alert(last.ids[0]).score_components}["history"]
    assert history.detail == "10 or more alerts on the same hosts and users in the last 30 days"
    assert history.points == history.weight
