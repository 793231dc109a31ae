"""The approval commands through the real ``bastion`` command: the JSON contract of ``approvals list``,
``approve``/``deny`` with ``--as``, one-line errors, and tenant isolation."""

from __future__ import annotations

import pytest
from tests.approvals.conftest import Org, make_org
from tests.conftest import cli_json, run_cli

from bastion.respond.approvals import ApprovalSpec, get_approval, request_approval
from bastion.store import Database


@pytest.fixture
def org(sqlite_db: Database) -> Org:
    org = make_org(sqlite_db, "acme")
    for n in (1, 2):
        request_approval(
            sqlite_db,
            org.id,
            approval_id=f"run{n}:suspend",
            run_id=f"run{n}",
            step_id="suspend",
            action="directory.suspend_user",
            summary=f"Suspend user {n}",
            target={"n": n},
            reason="leak",
            requested_by="alice",
            spec=ApprovalSpec(roles=["approver"], quorum=2 if n == 1 else 1),
        )
    return org


def test_list_contract(sqlite_db: Database, org: Org) -> None:
    rows = cli_json("approvals", "list", "--tenant", "acme", db_url=sqlite_db.url)
    assert isinstance(rows, list) and {r["id"] for r in rows} == {"run1:suspend", "run2:suspend"}
    for r in rows:
        assert {"id", "run_id", "step", "action", "requested_at"} <= set(r)
        assert r["step"] == "suspend" and r["action"] == "directory.suspend_user"
        assert isinstance(r["requested_at"], int) and r["run_id"] == r["id"].split(":")[0]


def test_approve_and_deny(sqlite_db: Database, org: Org) -> None:
    url = sqlite_db.url
    a = cli_json("approve", "run1:suspend", "--tenant", "acme", "--as", "bob", "--comment", "ok", db_url=url)
    assert a["status"] == "pending" and a["decisions"][0]["channel"] == "cli"
    a = cli_json("approve", "run1:suspend", "--tenant", "acme", "--as", "carol", db_url=url)
    assert a["status"] == "approved"
    d = cli_json("deny", "run2:suspend", "--tenant", "acme", "--as", "bob", "-m", "not now", db_url=url)
    assert d["status"] == "denied" and d["decisions"][0]["comment"] == "not now"
    assert cli_json("approvals", "list", "--tenant", "acme", db_url=url) == []
    done = cli_json("approvals", "list", "--tenant", "acme", "--status", "all", db_url=url)
    assert sorted(r["status"] for r in done) == ["approved", "denied"]
    shown = cli_json("approvals", "show", "run1:suspend", "--tenant", "acme", db_url=url)
    assert [x["user"] for x in shown["decisions"]] == ["bob", "carol"]
    text = run_cli("approvals", "list", "--tenant", "acme", "--status", "all", db_url=url, check=True)
    assert "run1:suspend" in text.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["approve", "run1:suspend", "--tenant", "acme", "--as", "vic"], "role 'viewer'"),
        (["approve", "run1:suspend", "--tenant", "acme", "--as", "alice"], "four-eyes"),
        (["approve", "run1:suspend", "--tenant", "acme", "--as", "ghost"], "no active user 'ghost'"),
        (["deny", "run7:none", "--tenant", "acme", "--as", "bob"], "no approval 'run7:none'"),
        (["approve", "run1:suspend", "--tenant", "nope", "--as", "bob"], "no tenant named 'nope'"),
        (["approvals", "list", "--tenant", "acme", "--status", "maybe"], "unknown status 'maybe'"),
    ],
)
def test_errors_are_one_line(sqlite_db: Database, org: Org, args: list[str], message: str) -> None:
    proc = run_cli(*args, db_url=sqlite_db.url)
    assert proc.returncode != 0 and proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], proc.stderr
    assert get_approval(sqlite_db, org.id, "run1:suspend").decisions == []


def test_tenant_isolation(sqlite_db: Database, org: Org) -> None:
    make_org(sqlite_db, "globex")
    url = sqlite_db.url
    assert cli_json("approvals", "list", "--tenant", "globex", "--status", "all", db_url=url) == []
    proc = run_cli("approve", "run1:suspend", "--tenant", "globex", "--as", "bob", db_url=url)
    assert proc.returncode != 0 and "no approval 'run1:suspend'" in proc.stderr
    proc = run_cli("approvals", "show", "run1:suspend", "--tenant", "globex", "--json", db_url=url)
    assert proc.returncode != 0
    assert get_approval(sqlite_db, org.id, "run1:suspend").decisions == []


def test_slack_link_command(sqlite_db: Database, org: Org) -> None:
    out = cli_json(
        "approvals",
        "slack-link",
        "--tenant",
        "acme",
        "--slack-user",
        "U01",
        "--user",
        "bob",
        db_url=sqlite_db.url,
    )
    assert out == {"tenant": "acme", "slack_user": "U01", "user": "bob"}
    proc = run_cli(
        "approvals",
        "slack-link",
        "--tenant",
        "acme",
        "--slack-user",
        "U02",
        "--user",
        "ghost",
        db_url=sqlite_db.url,
    )
    assert proc.returncode != 0 and "no active user 'ghost'" in proc.stderr
    out = cli_json(
        "approvals", "slack-channel", "--tenant", "acme", "--channel", "#acme-soc", db_url=sqlite_db.url
    )
    assert out == {"tenant": "acme", "slack_channel": "#acme-soc"}
