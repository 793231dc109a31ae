"""The triage policy and suppression surfaces: HTTP API (real server, SQLite and PostgreSQL) and CLI."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bastion.model import Role
from bastion.store import Database, TenantScope
from bastion.tenancy.service import create_api_key, create_tenant
from bastion.triage.policy import load_policy
from tests.conftest import RunningServer, cli_json, run_cli, start_server


@pytest.fixture
def api(db: Database) -> Iterator[tuple[RunningServer, str, str]]:
    running, srv, thread = start_server(db)
    tenant, key = create_tenant(db, "acme")
    yield running, tenant.id, key
    srv.should_exit = True
    thread.join(10)
    running.queue.close()


def _audit(db: Database, tenant: str, prefix: str) -> list:
    with db.read() as conn:
        return [e for e in TenantScope(conn, tenant).audit.entries() if e.action.startswith(prefix)]


def test_policy_get_put_validates_and_audits(api: tuple[RunningServer, str, str]) -> None:
    server, tenant, key = api
    with server.client(key) as c:
        policy = c.get("/api/v1/triage/policy").json()["policy"]
        assert policy["autoclose"]["max_score"] == 20 and policy["routing"]["default_queue"] == "tier1"
        r = c.put("/api/v1/triage/policy", json={"autoclose": {"max_score": 10}, "weights": {"intel": 30}})
        assert r.status_code == 200, r.text
        assert r.json()["policy"]["autoclose"]["max_score"] == 10
        got = c.get("/api/v1/triage/policy").json()["policy"]
        assert got["autoclose"]["max_score"] == 10 and got["weights"]["intel"] == 30
        assert got["autoclose"]["intel_confidence"] == 50  # defaults merged in
        typo = c.put("/api/v1/triage/policy", json={"autoclose": {"max_scor": 5}})
        assert (
            typo.status_code == 400
            and "max_scor" in typo.json()["error"]
            and "autoclose" in typo.json()["error"]
        )
        wrong = c.put("/api/v1/triage/policy", json={"autoclose": {"max_score": "low"}})
        assert wrong.status_code == 400 and "autoclose.max_score" in wrong.json()["error"]
        assert c.put("/api/v1/triage/policy", content=b"[1, 2]").status_code == 400
        assert c.put("/api/v1/triage/policy", content=b"{nope").status_code == 400
        assert c.get("/api/v1/triage/policy").json()["policy"]["autoclose"]["max_score"] == 10
    with server.db.read() as conn:
        assert load_policy(conn, tenant).weights.intel == 30
    (entry,) = _audit(server.db, tenant, "triage.policy")
    assert entry.action == "triage.policy.set" and entry.data["document"]["autoclose"] == {"max_score": 10}
    viewer = create_api_key(server.db, "acme", role=Role.VIEWER, name="ro")
    with server.client(viewer) as c:
        assert c.get("/api/v1/triage/policy").status_code == 200
        assert c.put("/api/v1/triage/policy", json={}).status_code == 403
        assert c.post("/api/v1/triage/suppressions", json={"expires": "1d", "source": "x"}).status_code == 403


def test_suppressions_over_http(api: tuple[RunningServer, str, str]) -> None:
    server, tenant, key = api
    other = create_tenant(server.db, "beta")[1]
    with server.client(key) as c:
        body = {
            "rule_id": "r-1",
            "fields": {"title": "Test*"},
            "entity": {"type": "host", "value": "lab-01"},
            "owner": "ann",
            "expires": "12h",
            "reason": "lab",
        }
        r = c.post("/api/v1/triage/suppressions", json=body)
        assert r.status_code == 201, r.text
        s = r.json()
        assert s["expires"] - s["created"] == 12 * 3_600_000 and s["entity"]["value"] == "lab-01"
        r = c.post("/api/v1/triage/suppressions", json={"entity": "user:svc", "expires": "2099-01-01"})
        assert r.status_code == 201 and r.json()["owner"].startswith("apikey:")  # defaults to the caller
        for bad, word in (
            ({"expires": "7d"}, "condition"),
            ({"source": "x"}, "expires"),
            ({"source": "x", "expires": "yesterday"}, "expiry"),
            ({"source": "x", "expires": "7d", "fields": {"colour": "red"}}, "colour"),
            ({"entity": "mars", "expires": "7d"}, "TYPE:VALUE"),
        ):
            r = c.post("/api/v1/triage/suppressions", json=bad)
            assert r.status_code == 400 and word in r.json()["error"], (bad, r.text)
        listed = c.get("/api/v1/triage/suppressions").json()["suppressions"]
        assert len(listed) == 2 and s["id"] in {x["id"] for x in listed}
    with server.client(other) as c:
        assert c.get("/api/v1/triage/suppressions").json()["suppressions"] == []
        assert c.delete(f"/api/v1/triage/suppressions/{s['id']}").status_code == 404
    with server.client(key) as c:
        r = c.delete(f"/api/v1/triage/suppressions/{s['id']}")
        assert r.status_code == 200 and r.json()["deleted"]["id"] == s["id"]
        assert c.delete(f"/api/v1/triage/suppressions/{s['id']}").status_code == 404
        assert len(c.get("/api/v1/triage/suppressions").json()["suppressions"]) == 1
    actions = [e.action for e in _audit(server.db, tenant, "triage.suppression")]
    assert actions == ["triage.suppression.add", "triage.suppression.add", "triage.suppression.remove"]


def test_policy_and_suppress_commands(sqlite_db: Database, tmp_path: Path) -> None:
    tenant = create_tenant(sqlite_db, "acme")[0].id
    url = sqlite_db.url
    shown = cli_json("triage", "policy", "show", "--tenant", "acme", db_url=url)
    assert shown["dedupe"]["window_s"] == 3600
    text = run_cli("triage", "policy", "show", "-t", "acme", db_url=url, check=True).stdout
    assert "max_score: 20" in text  # YAML for people
    good = tmp_path / "policy.yaml"
    good.write_text("autoclose:\n  max_score: 15\nrouting:\n  default_queue: soc\n")
    proc = run_cli("triage", "policy", "set", "-t", "acme", str(good), db_url=url)
    assert proc.returncode == 0, proc.stderr
    assert cli_json("triage", "policy", "show", "-t", "acme", db_url=url)["routing"]["default_queue"] == "soc"
    as_json = tmp_path / "policy.json"
    as_json.write_text('{"autoclose": {"enabled": false}}')
    assert (
        cli_json("triage", "policy", "set", "-t", "acme", str(as_json), db_url=url)["autoclose"]["enabled"]
        is False
    )
    bad = tmp_path / "bad.yaml"
    bad.write_text("autoclose:\n  max_score: many\n")
    proc = run_cli("triage", "policy", "set", "-t", "acme", str(bad), db_url=url)
    assert proc.returncode == 2 and proc.stderr.startswith("error:") and "autoclose.max_score" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert len(_audit(sqlite_db, tenant, "triage.policy.set")) == 2

    s = cli_json(
        "triage", "suppress", "add", "-t", "acme", "--rule", "r-1", "--field", "severity=low",
        "--field", "title=Test *", "--entity", "host:lab-01", "--owner", "ann", "--for", "7d",
        "--reason", "lab noise", db_url=url,
    )  # fmt: skip
    assert s["fields"] == {"severity": "low", "title": "Test *"} and s["owner"] == "ann"
    assert [x["id"] for x in cli_json("triage", "suppress", "list", "-t", "acme", db_url=url)] == [s["id"]]
    proc = run_cli("triage", "suppress", "add", "-t", "acme", "--owner", "ann", "--for", "7d", db_url=url)
    assert proc.returncode == 2 and "at least one condition" in proc.stderr
    proc = run_cli("triage", "suppress", "add", "-t", "acme", "--source", "x", "--owner", "ann", db_url=url)
    assert proc.returncode == 2 and "Missing option '--for'" in proc.stderr  # the expiry is required
    proc = run_cli(
        "triage",
        "suppress",
        "add",
        "-t",
        "acme",
        "--field",
        "title",
        "--owner",
        "a",
        "--for",
        "1d",
        db_url=url,
    )
    assert proc.returncode == 2 and "NAME=VALUE" in proc.stderr
    table = run_cli(
        "triage", "suppress", "list", "-t", "acme", db_url=url, env={"COLUMNS": "200"}, check=True
    )
    assert "rule r-1" in table.stdout and "host:lab-01" in table.stdout
    assert (
        cli_json("triage", "suppress", "remove", s["id"], "-t", "acme", db_url=url)["deleted"]["id"]
        == s["id"]
    )
    proc = run_cli("triage", "suppress", "remove", s["id"], "-t", "acme", db_url=url)
    assert proc.returncode == 2 and f"no suppression {s['id']}" in proc.stderr
    assert cli_json("triage", "suppress", "list", "-t", "acme", "--all", db_url=url) == []
