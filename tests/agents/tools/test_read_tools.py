"""The agents' read tools over a real store seeded with the demo intrusion and real intel: each answers
from the same repositories as the API and CLI, bounded, tenant-scoped, and refuses bad arguments with a
message the agent can act on."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bastion.agents.spec import AgentDeps, agent_tools, get_agent_tool
from bastion.agents.tools import documents, read, threat
from bastion.demo import INDICATORS
from bastion.enrich.inventory import parse_assets, parse_identities, store_assets, store_identities
from bastion.tenancy.service import create_tenant
from tests.agents.tools.seed import Seeded, seed

C2 = INDICATORS["c2_ip"]


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> Iterator[Seeded]:
    seeded = seed(tmp_path_factory.mktemp("tools"), shared_data)
    yield seeded
    seeded.db.dispose()


def test_every_tool_is_registered_with_its_impact() -> None:
    names = {t.name: t.impact for t in agent_tools()}
    for name in (
        "search_events", "get_alert", "search_alerts", "get_case", "related_cases", "intel_lookup",
        "intel_search", "attack_lookup", "asset_lookup", "identity_lookup", "run_history",
        "connector_health", "feed_health", "case_report", "workflow_outline",
    ):  # fmt: skip
        assert names.get(name) == "read", name
    assert names["retry_run"] == "low" and names["requeue_feed"] == "low"
    tool = get_agent_tool("search_events")
    assert tool is not None and "observable value" in tool.description


def test_search_events_by_value_field_and_time(env: Seeded) -> None:
    deps = env.deps()
    found = read.search_events(deps, value=C2, limit=50)
    assert found["count"] >= 3
    assert all(C2 in (e["observables"].get("ipv4") or []) for e in found["events"])
    assert found["first_seen"] <= found["last_seen"]
    by_field = read.search_events(deps, value=C2, field="dst_endpoint.ip", limit=50)
    assert 0 < by_field["count"] <= found["count"]
    none_on_src = read.search_events(deps, value=C2, field="src_endpoint.ip", limit=50)
    assert none_on_src["count"] == 0
    assert read.search_events(deps, value=C2, end="2000-01-01T00:00:00Z")["count"] == 0
    capped = read.search_events(deps, limit=2)
    assert capped["count"] == 2 and capped["more"] is True
    with pytest.raises(ValueError, match="obs_type"):
        read.search_events(deps, value=C2, obs_type="ipv5")
    with pytest.raises(ValueError, match="start"):
        read.search_events(deps, start="yesterday-ish")


def test_alerts_case_and_related_cases(env: Seeded) -> None:
    deps = env.deps()
    by_host = read.search_alerts(deps, host="WS-0142", limit=50)
    assert by_host["count"] > 0
    both = read.search_alerts(deps, host="FS-01", user="svc_backup", limit=50)
    assert both["count"] > 0 and all("svc_backup" in a["users"] for a in both["alerts"])
    assert read.search_alerts(deps, host="FS-01", user="nobody-here")["count"] == 0
    lsass = read.search_alerts(deps, technique="T1003", limit=50)
    assert lsass["count"] >= 1 and all(
        any(t.startswith("T1003") for t in a["techniques"]) for a in lsass["alerts"]
    )
    alert = read.get_alert(deps, by_host["alerts"][0]["id"])
    assert alert["observables"] and "score_explained" in alert
    with pytest.raises(ValueError, match="no alert"):
        read.get_alert(deps, "0" * 32)

    case = read.get_case(deps, env.case_id, timeline_limit=5)
    assert case["id"] == env.case_id and case["number"] == 1
    assert case["alerts"] and len(case["timeline"]) <= 5 and case["timeline_total"] >= len(case["timeline"])
    assert case["score_explained"] and all(line[0] in "+-" for line in case["score_explained"])
    assert read.get_case(deps, "#1")["id"] == env.case_id
    with pytest.raises(ValueError, match="no case"):
        read.get_case(deps, "#999")

    related = read.related_cases(deps, value=C2)
    assert [c["id"] for c in related["cases"]] == [env.case_id]
    assert C2 in related["cases"][0]["shared"]
    # a case is never related to itself
    assert env.case_id not in [c["id"] for c in read.related_cases(deps, case_ref=env.case_id)["cases"]]
    with pytest.raises(ValueError, match="case_ref, value or technique"):
        read.related_cases(deps)


def test_intel_lookup_search_and_attack(env: Seeded) -> None:
    deps = env.deps()
    hit = threat.intel_lookup(deps, C2)
    assert hit["type"] == "ipv4" and hit["match_count"] == 1
    assert hit["matches"][0]["source"] == "demo-feed" and hit["matches"][0]["confidence"] <= 85
    benign = threat.intel_lookup(deps, "8.8.8.8")
    assert benign["known_benign"] and not benign["matches"]

    actor = threat.intel_search(deps, "admin@338")
    assert actor["count"] >= 10
    assert actor["actors"][0]["name"] == "admin@338"
    assert actor["actors"][0]["indicators"] >= 10  # linked by name; a few more only mention it
    assert threat.intel_search(deps, "no-such-actor-anywhere")["count"] == 0

    ps = threat.attack_lookup(deps, "T1059.001")
    assert ps["found"][0]["name"] == "PowerShell" and ps["found"][0]["kind"] == "technique"
    assert len(ps["found"][0]["used_by"]) <= 25 and ps["found"][0]["used_by_total"] >= 25
    apt1 = threat.attack_lookup(deps, "Comment Crew")  # an alias
    assert apt1["found"][0]["id"] == "G0006" and apt1["found"][0]["kind"] == "group"
    assert threat.attack_lookup(deps, "T9999")["found"] == []


def test_inventory_lookups(env: Seeded) -> None:
    deps = env.deps()
    assets, _ = parse_assets(
        b"hostname,ips,owner,criticality,os\nWS-0142,10.20.14.142,finance,high,Windows 11\n"
    )
    people, _ = parse_identities(
        b"username,email,display_name,groups,privileged\nj.morales,j.morales@northwind.example,Julia Morales,"
        b"finance;vpn,false\n"
    )
    store_assets(env.db, env.tenant_id, assets, actor="test")
    store_identities(env.db, env.tenant_id, people, actor="test")
    by_ip = read.asset_lookup(deps, ip="10.20.14.142")
    assert by_ip["found"] and by_ip["assets"][0]["hostname"] == "ws-0142"
    assert by_ip["assets"][0]["criticality"] == "high"
    assert (
        read.identity_lookup(deps, username="NORTHWIND\\j.morales")["identity"]["display_name"]
        == "Julia Morales"
    )
    assert read.identity_lookup(deps, email="J.Morales@northwind.example")["found"]
    assert not read.asset_lookup(deps, host="nope")["found"]
    with pytest.raises(ValueError):
        read.identity_lookup(deps)


def test_tools_see_only_their_tenant(env: Seeded) -> None:
    other, _ = create_tenant(env.db, "other-tenant")
    deps = AgentDeps(db=env.db, tenant_id=other.id, actor="test", run_id="r")
    assert read.search_events(deps, value=C2)["count"] == 0
    assert read.search_alerts(deps, host="WS-0142")["count"] == 0
    assert threat.intel_lookup(deps, C2)["match_count"] == 0
    assert threat.intel_search(deps, "admin@338")["count"] == 0
    assert read.related_cases(deps, value=C2)["count"] == 0
    with pytest.raises(ValueError, match="no case"):
        read.get_case(deps, env.case_id)
    assert read.run_history(deps)["count"] == 0


def test_case_report_and_undo_map(env: Seeded) -> None:
    data = documents.case_report(env.deps(), "1")
    assert data["case"]["id"] == env.case_id and data["alerts"]
    assert data["times"][0][0] == "First alert fired"
    undo = documents.undo_map()
    assert undo["okta.suspend_user"] == "okta.unsuspend_user"
    assert undo["crowdstrike.contain_host"] == "crowdstrike.lift_containment"
    assert "okta.get_user" not in undo
