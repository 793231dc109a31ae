"""The objective runner's and the triage assistant's offline reasoners, driven against a real store with
the real read tools: what they plan from the objective and the tenant's products, how they chain an
action's inputs from earlier results, and what they propose for cases built by the real triage."""

from __future__ import annotations

from bastion.agents.spec import Finish, Seen, Task, get_agent
from bastion.agents.specialists.objective import ACTION_TOOLS, plan_steps, reason_objective
from bastion.agents.specialists.triage import reason_triage
from bastion.connectors.registry import get_action
from bastion.model import Severity
from bastion.store import Database, TenantScope
from bastion.tenancy.service import create_tenant
from tests.agents.objective.world import EVIL_IP, add_intel, alert, drive, ingest, obs


def test_every_allowed_action_is_registered() -> None:
    missing = [a for a in ACTION_TOOLS if get_action(a) is None]
    assert missing == []
    assert set(get_agent("objective").tools) >= {"search_alerts", "get_case", "crowdstrike.contain_host"}


def test_reads_and_actions_are_told_apart() -> None:
    task = Task(
        agent="objective",
        objective="Find related alerts for host web-01, then contain host web-01 and suspend user bob",
        input={"connections": ["crowdstrike", "okta"]},
    )
    intents, ents, steps, notes = plan_steps(task)
    assert ents["host"] == ["web-01"] and ents["user"] == ["bob"]
    assert intents[0] == "find" and "isolate-host" in intents and "suspend-account" in intents
    assert [s.tool for s in steps if s.read] == ["search_alerts", "search_alerts", "crowdstrike.find_device"]
    assert [s.tool for s in steps if not s.read] == ["crowdstrike.contain_host", "okta.suspend_user"]
    assert notes == []


def test_contain_chains_the_device_id_and_finds_alerts(sqlite_db: Database) -> None:
    tenant, _ = create_tenant(sqlite_db, "acme")
    ingest(sqlite_db, tenant.id, alert("Mimikatz on web-01", host="web-01", user="alice"))
    task = Task(
        agent="objective",
        objective="contain host web-01 and find related alerts",
        input={"connections": ["crowdstrike"]},
    )
    first = reason_objective(task, [])
    assert isinstance(first, list)
    assert [(c.tool, c.args) for c in first] == [
        ("search_alerts", {"entity": "web-01"}),
        ("crowdstrike.find_device", {"hostname": "web-01"}),
    ]
    # the device ids found feed contain_host (one call per device); nothing is contained before
    found = {"hostname": "web-01", "device_ids": ["dev-9", "dev-10"], "found": True}
    second = reason_objective(task, [Seen(c.tool, c.args, found) for c in first])
    assert isinstance(second, list) and [(c.tool, c.args) for c in second] == [
        ("crowdstrike.contain_host", {"device_id": "dev-9"}),
        ("crowdstrike.contain_host", {"device_id": "dev-10"}),
    ]
    out = drive(
        sqlite_db,
        tenant.id,
        task,
        actions={
            "crowdstrike.find_device": found,
            "crowdstrike.contain_host": {"status": "containment_pending"},
        },
    )
    assert ("crowdstrike.contain_host", {"device_id": "dev-10"}) in out["_calls"]
    assert any("crowdstrike.contain_host -> status=containment_pending" in d for d in out["done"])
    assert any("Mimikatz on web-01" in f for f in out["found"])  # the real search_alerts result
    assert out["report"].startswith("# Objective: contain host web-01")
    assert "## Done" in out["report"] and "## Found" in out["report"] and out["pending"] == []


def test_no_device_found_leaves_containment_for_a_person() -> None:
    task = Task(agent="objective", objective="isolate host ghost-3", input={"connections": ["crowdstrike"]})
    calls = reason_objective(task, [])
    assert isinstance(calls, list) and [c.tool for c in calls] == ["crowdstrike.find_device"]
    nothing = {"hostname": "ghost-3", "device_ids": [], "found": False}
    done = reason_objective(task, [Seen(c.tool, c.args, nothing) for c in calls])
    assert isinstance(done, Finish)
    assert done.output["done"] == []
    assert any("nothing to do it for" in p for p in done.output["pending"])


def test_the_tenants_product_is_chosen() -> None:
    for connections, expected in (
        (["okta"], ("okta.suspend_user", {"user": "mallory"})),
        (["entra"], ("entra.disable_user", {"user": "mallory"})),
    ):
        task = Task(agent="objective", objective="suspend user mallory", input={"connections": connections})
        calls = reason_objective(task, [])
        assert isinstance(calls, list) and [(c.tool, c.args) for c in calls] == [expected]


def test_a_denied_action_is_reported_as_pending() -> None:
    task = Task(agent="objective", objective="disable user mallory", input={"connections": ["okta"]})
    calls = reason_objective(task, [])
    assert isinstance(calls, list) and len(calls) == 1
    done = reason_objective(task, [Seen(calls[0].tool, calls[0].args, error="denied by sam")])
    assert isinstance(done, Finish)
    assert any("denied by sam" in p for p in done.output["pending"]) and done.output["done"] == []


def test_an_objective_naming_nothing_doable_says_so() -> None:
    done = reason_objective(Task(agent="objective", objective="make it better"), [])
    assert isinstance(done, Finish) and done.output["done"] == [] and done.output["pending"]


def test_triage_proposes_malicious_from_intel_and_history(sqlite_db: Database) -> None:
    tenant, _ = create_tenant(sqlite_db, "acme")
    add_intel(sqlite_db, tenant.id)
    (case_id,) = ingest(
        sqlite_db,
        tenant.id,
        alert(
            "Beacon to known C2",
            host="ws-12",
            user="carol",
            severity=Severity.HIGH,
            extra=[obs("ipv4", EVIL_IP)],
            techniques=["T1071.001"],
        ),
    )
    out = drive(sqlite_db, tenant.id, Task(agent="triage", objective="triage", case_id=case_id))
    tools = [t for t, _ in out["_calls"]]
    assert tools[0] == "get_case" and "intel_lookup" in tools and "search_alerts" in tools
    assert out["verdict"] == "malicious" and out["confidence"] >= 70
    assert any(EVIL_IP in r and "confidence" in r for r in out["reasons"])
    assert any("contain host ws-12" in s["why"] for s in out["next_steps"])
    with sqlite_db.read() as conn:  # proposing changes nothing
        case = TenantScope(conn, tenant.id).cases.get(case_id)
    assert case is not None and case.status.value == "new"


def test_triage_proposes_benign_for_a_known_false_positive_pattern(sqlite_db: Database) -> None:
    from bastion.cases.lifecycle import close_case
    from bastion.triage.policy import save_policy

    tenant, _ = create_tenant(sqlite_db, "acme")
    with sqlite_db.write() as conn:  # low-score alerts open cases here (and are not auto-closed)
        doc = {"correlation": {"open_case_score": 0}, "autoclose": {"enabled": False}}
        save_policy(conn, tenant.id, doc, "test")
    (old,) = ingest(
        sqlite_db, tenant.id, alert("Backup agent spawned cmd", host="bk-1", severity=Severity.LOW)
    )
    with sqlite_db.write() as conn:
        close_case(TenantScope(conn, tenant.id), "user:sam", old, "false_positive", reason="backup job")
    new = ingest(
        sqlite_db,
        tenant.id,
        alert("Backup agent spawned cmd", host="bk-1", severity=Severity.LOW, rule="r-2"),
    )
    out = drive(sqlite_db, tenant.id, Task(agent="triage", objective="triage", case_id=new[0]))
    assert out["verdict"] == "benign", out["reasons"]
    assert any("closed as false positive" in r for r in out["reasons"])
    assert out["next_steps"][0]["action"] == "cases.close"


def test_triage_without_a_case_says_so() -> None:
    done = reason_triage(Task(agent="triage", objective="triage"), [])
    assert isinstance(done, Finish) and done.output["confidence"] == 0
