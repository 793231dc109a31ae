"""Objective runs and the triage assistant through the real agent runtime (DBOS launched in this process),
with a local double of the CrowdStrike Falcon API over a real socket: the plan, the approval a
high-impact containment waits for, the containment happening only after the approval, the report; and
a proposal for a case opened by ingested alerts, shown on the case and never applied unless opted in."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bastion.agents.assistant import (
    cases_without_proposal,
    latest_proposal,
    propose,
    run_forever,
    sweep,
)
from bastion.agents.runtime import wait_agent_run
from bastion.agents.specialists.objective import start_run
from bastion.cases.lifecycle import change_status
from bastion.cases.timeline import case_timeline
from bastion.model import Role, Severity
from bastion.respond.approvals import decide
from bastion.store import Database, TenantScope
from bastion.tenancy.connections import set_connection
from bastion.tenancy.secrets import set_secret
from bastion.tenancy.service import add_user, create_tenant
from bastion.triage.policy import save_policy
from tests.agents.objective.world import EVIL_IP, add_intel, alert, ingest, obs
from tests.connectors.edr_servers import CrowdStrikeDouble, serve

DEVICE = "a1b2c3d4e5f60718293a4b5c6d7e8f90"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    from bastion.respond.runtime import Executor

    tmp: Path = tmp_path_factory.mktemp("objective-runs")
    db = Database(f"sqlite:///{tmp / 'bastion.db'}")
    db.migrate()
    tenant, _ = create_tenant(db, "acme")
    add_user(db, "acme", "sam", Role.APPROVER)
    falcon = CrowdStrikeDouble()
    falcon.add(DEVICE, "web-01")
    executor = Executor(db)
    with serve(falcon) as running:
        assert isinstance(running, CrowdStrikeDouble)
        set_connection(
            db, tenant.id, "crowdstrike", {"base_url": running.base, "allow_private": True}, actor="t"
        )
        set_secret(db, tenant.id, "crowdstrike_client_id", CrowdStrikeDouble.client_id, actor="t")
        set_secret(db, tenant.id, "crowdstrike_client_secret", CrowdStrikeDouble.client_secret, actor="t")
        executor.launch()
        try:
            yield {"db": db, "tenant": tenant.id, "falcon": running}
        finally:
            executor.shutdown()
            db.dispose()


def test_contain_waits_for_approval_then_runs_and_reports(world: dict[str, Any]) -> None:
    db, tid, falcon = world["db"], world["tenant"], world["falcon"]
    ingest(db, tid, alert("Credential dumping on web-01", host="web-01", user="alice"))
    view = start_run(db, tid, "contain host web-01 and find related alerts", actor="user:alice", wait_s=120)
    assert view["status"] == "waiting_approval", view
    assert [p["tool"] for p in view["plan"]][:2] == ["search_alerts", "crowdstrike.find_device"]
    (approval,) = view["approvals"]
    assert approval["tool"] == "crowdstrike.contain_host" and approval["status"] == "pending"
    assert falcon.devices[DEVICE]["status"] == "normal"  # nothing contained before the decision

    decide(db, tid, approval["approval_id"], user="sam", decision="approve", comment="go", channel="cli")
    done = wait_agent_run(db, tid, view["run_id"], wait_s=120)
    assert done.status == "succeeded", done.error
    assert falcon.devices[DEVICE]["status"] in ("containment_pending", "contained")
    assert done.output is not None
    report = done.output["report"]
    assert "crowdstrike.contain_host" in report and "Credential dumping on web-01" in report
    with db.read() as conn:
        actions = [e.action for e in TenantScope(conn, tid).audit.entries()]
    assert "agent.run.start" in actions


def test_denied_containment_is_not_done(world: dict[str, Any]) -> None:
    db, tid, falcon = world["db"], world["tenant"], world["falcon"]
    falcon.add("ffff0000ffff0000ffff0000ffff0000", "db-7")
    view = start_run(db, tid, "isolate host db-7", actor="user:alice", wait_s=120)
    assert view["status"] == "waiting_approval"
    decide(
        db, tid, view["approvals"][0]["approval_id"], user="sam", decision="deny", comment="no", channel="cli"
    )
    done = wait_agent_run(db, tid, view["run_id"], wait_s=120)
    assert done.status == "succeeded" and done.output is not None
    assert falcon.devices["ffff0000ffff0000ffff0000ffff0000"]["status"] == "normal"
    assert done.output["done"] == [] and any("db-7" in p or "contain" in p for p in done.output["pending"])


def test_a_waiting_run_is_cancelled_and_its_approval_closes(world: dict[str, Any]) -> None:
    import time

    from bastion.agents.runtime import AgentRunError, cancel_agent_run, get_agent_run
    from bastion.respond.approvals import get_approval

    db, tid, falcon = world["db"], world["tenant"], world["falcon"]
    falcon.add("eeee0000eeee0000eeee0000eeee0000", "app-9")
    view = start_run(db, tid, "isolate host app-9", actor="user:alice", wait_s=120)
    assert view["status"] == "waiting_approval"
    approval_id = view["approvals"][0]["approval_id"]
    assert cancel_agent_run(db, tid, view["run_id"], actor="user:alice") == {
        "run_id": view["run_id"],
        "status": "stopped",
    }
    assert get_approval(db, tid, approval_id).status == "expired"  # nobody is asked any more
    time.sleep(1.5)  # the parked workflow wakes, sees it is cancelled, and changes nothing
    run = get_agent_run(db, tid, view["run_id"])
    assert run is not None and run["status"] == "stopped" and run["error"] == "cancelled by user:alice"
    assert falcon.devices["eeee0000eeee0000eeee0000eeee0000"]["status"] == "normal"
    with pytest.raises(AgentRunError, match="only running or waiting"):
        cancel_agent_run(db, tid, view["run_id"], actor="user:alice")
    with db.read() as conn:
        assert "agent.run.cancel" in [e.action for e in TenantScope(conn, tid).audit.entries()]


def assistant_policy(db: Database, tid: str, settings: dict[str, Any]) -> None:
    """Set the triage policy's ``assistant`` section (what `bastion triage policy set` stores)."""
    with db.write() as conn:
        save_policy(conn, tid, {"assistant": settings}, "test")


def test_triage_assistant_proposes_and_does_not_apply(world: dict[str, Any]) -> None:
    db, tid = world["db"], world["tenant"]
    add_intel(db, tid)
    (case_id,) = ingest(
        db,
        tid,
        alert(
            "Beacon to known C2",
            host="ws-12",
            user="carol",
            severity=Severity.HIGH,
            extra=[obs("ipv4", EVIL_IP)],
            techniques=["T1071.001"],
        ),
    )
    assert case_id in cases_without_proposal(db, tid)
    done = sweep(db)  # every tenant, as `bastion up` does
    mine = next(p for p in done if p["case_id"] == case_id)
    assert mine["status"] == "succeeded" and mine["proposal"]["verdict"] == "malicious"
    assert mine["applied"] is None
    assert case_id not in cases_without_proposal(db, tid)
    with db.read() as conn:
        case = TenantScope(conn, tid).cases.get(case_id)
        kinds = [e.kind for e in case_timeline(conn, tid, case_id)]
    assert case is not None and case.status.value == "new"  # auto-apply is off by default
    assert "agent.proposal" in kinds
    assert latest_proposal(db, tid, case_id)["proposal"]["verdict"] == "malicious"  # type: ignore[index]


def test_triage_assistant_applies_only_when_opted_in(world: dict[str, Any]) -> None:
    db, tid = world["db"], world["tenant"]
    assistant_policy(db, tid, {"auto_apply": True, "min_confidence": 60})
    try:
        (case_id,) = ingest(
            db,
            tid,
            alert(
                "Second beacon",
                host="ws-13",
                severity=Severity.CRITICAL,
                extra=[obs("ipv4", EVIL_IP)],
                techniques=["T1071.001", "T1105", "T1059.001"],
            ),
        )
        view = propose(db, tid, case_id)
        assert view["proposal"]["verdict"] == "malicious" and view["proposal"]["confidence"] >= 60
        assert view["applied"] == {"status": "in_progress", "verdict": "malicious"}
        with db.read() as conn:
            case = TenantScope(conn, tid).cases.get(case_id)
        assert case is not None and case.status.value == "in_progress"
        # a case an analyst already took keeps their status
        add_intel(db, tid, "203.0.113.77")
        (taken,) = ingest(db, tid, alert("Third beacon", host="ws-15", extra=[obs("ipv4", "203.0.113.77")]))
        assert taken != case_id
        with db.write() as conn:
            change_status(TenantScope(conn, tid), "user:alice", taken, "triaged")
        again = propose(db, tid, taken)
        assert (
            again["proposal"]["confidence"] >= 60 and again["applied"] is None
        )  # confident, yet not applied
        with db.read() as conn:
            still = TenantScope(conn, tid).cases.get(taken)
        assert still is not None and still.status.value == "triaged"
    finally:
        assistant_policy(db, tid, {"auto_apply": False})


def test_a_disabled_assistant_proposes_nothing(world: dict[str, Any]) -> None:
    db, tid = world["db"], world["tenant"]
    assistant_policy(db, tid, {"enabled": False})
    try:
        (case_id,) = ingest(db, tid, alert("Odd logon", host="ws-14", severity=Severity.HIGH))
        assert sweep(db, tid) == []
        assert case_id in cases_without_proposal(db, tid) and latest_proposal(db, tid, case_id) is None
    finally:
        assistant_policy(db, tid, {"enabled": True})


def test_the_background_loop_proposes_for_new_cases(world: dict[str, Any]) -> None:
    """What `bastion up` runs: the sweep on a timer, outside any ingest transaction."""
    db, tid = world["db"], world["tenant"]
    (case_id,) = ingest(
        db, tid, alert("Beacon again", host="ws-20", severity=Severity.HIGH, extra=[obs("ipv4", EVIL_IP)])
    )

    def proposed() -> bool:
        with db.read() as conn:
            return "agent.proposal" in [e.kind for e in case_timeline(conn, tid, case_id)]

    async def until_proposed() -> None:
        loop = asyncio.create_task(run_forever(db, every_s=0.1))
        try:
            while not proposed():
                await asyncio.sleep(0.1)
        finally:
            loop.cancel()

    asyncio.run(asyncio.wait_for(until_proposed(), 120))
    assert latest_proposal(db, tid, case_id)["proposal"]["verdict"] == "malicious"  # type: ignore[index]
