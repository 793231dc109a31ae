"""compute_metrics on a history with known timestamps, on SQLite and PostgreSQL: every figure exact."""

from __future__ import annotations

from typing import Any

import pytest

from bastion.model import Severity
from bastion.report.metrics import compute_metrics
from bastion.report.period import parse_period, resolve_window
from bastion.store import Database
from tests.report.history import EXPECTED, build_history


def _metrics(db: Database, tenant_id: str, start: int, end: int, **kw: Any) -> dict[str, Any]:
    with db.read() as conn:
        return compute_metrics(conn, tenant_id, start=start, end=end, **kw)


def test_metrics_from_recorded_timestamps(db: Database) -> None:
    h = build_history(db)
    m = _metrics(db, h.tenant_id, h.start, h.end)
    for key, value in EXPECTED.items():
        assert m[key] == value, key
    assert m["savings"]["minutes"] == 68.5
    assert m["savings"]["by_kind"]["edr.isolate_host"] == {"count": 1, "minutes_each": 30.0, "minutes": 30.0}
    assert m["savings"]["by_kind"]["core.http_request"]["minutes_each"] == 12.0  # action.default
    assert "slack.post_message" not in m["savings"]["by_kind"]  # the failed step saved nothing
    t = m["timings"]
    assert t["mtta"] == {"n": 2, "mean_s": 180.0, "p50_s": 60.0, "p90_s": 300.0}
    assert t["mttd"] == {"n": 3, "mean_s": 120.0, "p50_s": 120.0, "p90_s": 120.0}
    assert t["mttc"] == {"n": 2, "mean_s": 750.0, "p50_s": 500.0, "p90_s": 1000.0}
    assert t["mttr_alerts"]["mean_s"] == 3600.0 and t["mttr_cases"]["mean_s"] == 7200.0
    assert t["mttr"]["n"] == 2
    assert m["by_severity"] == {"high": 1, "medium": 1, "low": 1}
    assert m["by_source"] == {"sigma": 2, "edr": 1}
    assert m["by_queue"] == {"tier1": 1, "tier2": 1, "unrouted": 1}
    # Tactics by name (with Sigma's hyphenated form) and by TA id, once per alert; other tags are not tactics.
    assert list(m["coverage"]["by_tactic"].items()) == [
        ("execution", 2),
        ("defense_evasion", 1),
        ("persistence", 1),
    ]
    assert m["coverage"]["nist_csf_detail"] == {
        "identify": {"preemptive_runs": 2, "asset_matches": 1},
        "protect": {"preventive_runs_completed": 1},
        "detect": {"alerts": 3},
        "respond": {"workflow_runs": 3, "containment_actions": 2},
        "recover": {"resolved_cases": 1},
    }
    assert m["coverage"]["by_nist_csf"] == {
        "identify": 3,
        "protect": 1,
        "detect": 3,
        "respond": 5,
        "recover": 1,
    }
    assert m["top_rules"][0] == {
        "rule": "r1",
        "title": "Suspicious PowerShell",
        "alerts": 2,
        "seen": 5,
        "auto_closed": 1,
    }
    assert m["top_rules"][1]["rule"] == "r2"
    assert m["top_entities"][0] == {"type": "host", "value": "ws1", "alerts": 2}
    assert {"type": "user", "value": "alice", "alerts": 1} in m["top_entities"]
    assert len(m["series"]) == 7
    day0 = m["series"][0]
    assert day0["alerts"] == 3 and day0["auto_closed"] == 1 and day0["escalated"] == 1
    assert day0["mttd_s"] == 120.0 and day0["mttr_s"] == 5400.0
    assert all(d["alerts"] == 0 and d["mttd_s"] is None for d in m["series"][1:])
    assert set(m["definitions"]) >= {"mttd_s", "mtta_s", "mttc_s", "mttr_s", "analyst_hours_saved"}


def test_metrics_filters(db: Database) -> None:
    h = build_history(db)
    high = _metrics(db, h.tenant_id, h.start, h.end, severity=Severity.HIGH)
    assert high["alerts"] == 1 and high["cases"] == 1 and high["mttd_s"] == 120.0
    assert high["mtta_s"] == 300.0  # a1 only
    assert high["filters"] == {"severity": "high", "source": None}
    edr = _metrics(db, h.tenant_id, h.start, h.end, source="edr")
    assert edr["alerts"] == 1 and edr["suppressed"] == 1 and edr["cases"] == 0
    assert edr["mttr_s"] is None and edr["mtta_s"] is None
    # No run is linked to an edr alert: only the tenant-wide preemptive work is left.
    assert edr["workflow_runs"] == 0 and edr["incidents_prevented"] == 1
    sigma = _metrics(db, h.tenant_id, h.start, h.end, source="sigma")
    assert sigma["alerts"] == 2 and sigma["deduplicated"] == 3 and sigma["cases"] == 1


def test_metrics_empty_period_are_null(db: Database) -> None:
    h = build_history(db)
    m = _metrics(db, h.tenant_id, h.end + 1, h.end + 2 * 86_400_000)
    assert m["alerts"] == 0 and m["cases"] == 0 and m["deduplicated"] == 0
    for key in ("mttd_s", "mtta_s", "mttc_s", "mttr_s", "deduplicated_pct", "escalation_rate"):
        assert m[key] is None, key
    assert m["analyst_hours_saved"] == 0.0 and m["incidents_prevented"] == 0
    assert m["coverage"]["by_tactic"] == {} and m["top_rules"] == [] and len(m["series"]) == 2


def test_the_period_outside_is_not_counted(db: Database) -> None:
    h = build_history(db)
    earlier = _metrics(db, h.tenant_id, h.start - 60 * 86_400_000, h.start)
    assert earlier["alerts"] == 1 and earlier["deduplicated"] == 6  # the old alert, seen 7 times
    assert earlier["coverage"]["by_tactic"] == {"impact": 1}
    assert earlier["preemptive_runs"] == 1 and earlier["incidents_prevented"] == 1


def test_period_parsing() -> None:
    assert parse_period("30d") == 30 * 86_400_000 and parse_period("12h") == 12 * 3_600_000
    assert resolve_window("2d", end="2026-03-10T00:00:00Z") == (1772928000000, 1773100800000)
    assert resolve_window(None, "2026-03-01T00:00:00Z", "2026-03-02T00:00:00Z") == (
        1772323200000,
        1772409600000,
    )
    assert resolve_window(now=40 * 86_400_000) == (10 * 86_400_000, 40 * 86_400_000)  # 30 days by default
    for bad, message in (
        (("30x",), "not a duration"),
        (("0d",), "longer than zero"),
        (("1d", "2026-03-01"), "either a period or a start"),
        ((None, "2026-03-02T00:00:00Z", "2026-03-01T00:00:00Z"), "before its end"),
        ((None, "yesterday"), "start:"),
    ):
        with pytest.raises(ValueError, match=message):
            resolve_window(*bad)


def test_a_preemptive_case_counts_its_measured_detection_to_containment(db: Database) -> None:
    """Such a case is opened after the containment it reports: MTTC takes the figure it recorded."""
    from bastion.cases.service import open_case, set_custom_field
    from bastion.store import TenantScope
    from bastion.store._util import now_ms
    from bastion.tenancy.service import create_tenant

    tenant, _ = create_tenant(db, "pre", actor="test")
    with db.write() as conn:
        scope = TenantScope(conn, tenant.id)
        case = open_case(scope, "workflow:r1", "Leaked credential", Severity.HIGH)
        assert case.id is not None
        set_custom_field(scope, "workflow:r1", case.id, "detection_to_containment_s", 2.5)
    with db.read() as conn:
        m = compute_metrics(conn, tenant.id, start=now_ms() - 60_000, end=now_ms() + 60_000)
    assert m["cases"] == 1 and m["mttc_s"] == 2.5
