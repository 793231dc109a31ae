"""``bastion agent run`` end to end through the real command: the contract JSON with the plan and the
pending approval, approval from the command line, the parked run continued by an engine started
afterwards (as the next ``bastion worker`` would), the containment done on the Falcon double, and the
report shown by ``bastion agent runs show``; plus the errors a user can cause."""

from __future__ import annotations

from pathlib import Path

from bastion.agents.runtime import wait_agent_run
from bastion.model import Role
from bastion.store import Database
from bastion.tenancy.connections import set_connection
from bastion.tenancy.secrets import set_secret
from bastion.tenancy.service import add_user, create_tenant
from tests.conftest import cli_json, run_cli
from tests.connectors.edr_servers import CrowdStrikeDouble, serve

DEVICE = "0123456789abcdef0123456789abcdef"


def test_agent_run_contract_approval_and_report(tmp_path: Path) -> None:
    from bastion.respond.runtime import Executor

    db = Database(f"sqlite:///{tmp_path / 'bastion.db'}")
    db.migrate()
    url = db.url
    tenant, _ = create_tenant(db, "acme")
    add_user(db, "acme", "sam", Role.APPROVER)
    falcon = CrowdStrikeDouble()
    falcon.add(DEVICE, "web-01")
    with serve(falcon) as running:
        assert isinstance(running, CrowdStrikeDouble)
        set_connection(
            db, tenant.id, "crowdstrike", {"base_url": running.base, "allow_private": True}, actor="t"
        )
        set_secret(db, tenant.id, "crowdstrike_client_id", CrowdStrikeDouble.client_id, actor="t")
        set_secret(db, tenant.id, "crowdstrike_client_secret", CrowdStrikeDouble.client_secret, actor="t")

        out = cli_json(
            "agent",
            "run",
            "contain host web-01 and find related alerts",
            "--tenant",
            "acme",
            "--wait",
            "120",
            db_url=url,
        )
        assert set(out) >= {"run_id", "status", "plan", "approvals"}
        assert out["status"] == "waiting_approval"
        assert [p["tool"] for p in out["plan"]][:2] == ["search_alerts", "crowdstrike.find_device"]
        (approval,) = out["approvals"]
        assert approval["tool"] == "crowdstrike.contain_host" and approval["args"] == {"device_id": DEVICE}
        assert running.devices[DEVICE]["status"] == "normal"

        decided = cli_json("approve", approval["approval_id"], "--tenant", "acme", "--as", "sam", db_url=url)
        assert decided["status"] == "approved"
        executor = Executor(db)  # the next worker: it takes over the run the command left parked
        executor.launch()
        try:
            done = wait_agent_run(db, tenant.id, out["run_id"], wait_s=120)
        finally:
            executor.shutdown()
        assert done.status == "succeeded", done.error
        assert running.devices[DEVICE]["status"] in ("containment_pending", "contained")

        # A second objective parks at its approval too; cancelled from the command line, it reports so.
        again = cli_json(
            "agent", "run", "contain host web-01", "--tenant", "acme", "--wait", "120", db_url=url
        )
        assert again["status"] == "waiting_approval"
        stopped = cli_json("agent", "runs", "cancel", again["run_id"], "--tenant", "acme", db_url=url)
        assert stopped == {"run_id": again["run_id"], "status": "stopped"}

    shown = cli_json("agent", "runs", "show", out["run_id"], "--tenant", "acme", db_url=url)
    assert shown["status"] == "succeeded" and shown["report"].startswith("# Objective: contain host web-01")
    assert "crowdstrike.contain_host" in "\n".join(shown["output"]["done"])
    listed = cli_json("agent", "runs", "list", "--tenant", "acme", db_url=url)
    assert {(r["run_id"], r["status"]) for r in listed} == {
        (out["run_id"], "succeeded"),
        (again["run_id"], "stopped"),
    }
    empty = run_cli("agent", "run", "  ", "--tenant", "acme", db_url=url)
    assert empty.returncode == 2 and "error: the objective is empty" in empty.stderr
    db.dispose()
