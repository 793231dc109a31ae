"""The real `bastion` command given bad input: one `error:` line and a non-zero exit, never a traceback,
and nothing stored; a run it waited for that failed exits 1."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import orjson
import pytest
from cryptography.fernet import Fernet

from bastion.store import Database
from bastion.tenancy.service import create_api_key
from tests.conftest import cli_json, run_cli, serving


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'cli.db'}"


def _one_line_error(proc, says: str, code: int = 2) -> str:  # type: ignore[no-untyped-def]
    assert proc.returncode == code, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), proc.stderr
    assert says in lines[0], lines[0]
    assert proc.stdout == ""
    return lines[0]


def _usage_error(proc, option: str) -> None:  # type: ignore[no-untyped-def]
    """Click's own answer to a bad option value: exit 2, the option named, no traceback."""
    assert proc.returncode == 2, proc.stderr
    assert f"Invalid value for '{option}'" in proc.stderr and "Traceback" not in proc.stderr
    assert proc.stdout == ""


@pytest.mark.parametrize("memory", ["sqlite://", "sqlite:///", "sqlite:///:memory:"])
def test_a_sqlite_url_without_a_file_is_refused(memory: str, url: str) -> None:
    # It used to print a new tenant's API key, exit 0 and keep nothing.
    proc = run_cli("--database-url", memory, "tenant", "create", "ghost", "--json", db_url=url)
    _one_line_error(proc, f"the store URL {memory!r} names no file")
    _one_line_error(run_cli("tenant", "list", db_url=memory), "names no file")


def test_a_file_that_is_not_a_sqlite_database_is_named(tmp_path: Path) -> None:
    text = tmp_path / "text.db"
    text.write_text("these are my notes\n")
    proc = run_cli("tenant", "list", db_url=f"sqlite:///{text}")
    _one_line_error(proc, f"{text} is not a SQLite database")
    assert text.read_text() == "these are my notes\n"


def test_a_store_migrated_by_a_newer_bastion_is_named(url: str) -> None:
    cli_json("tenant", "create", "acme", db_url=url)
    path = url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as db:
        db.execute("UPDATE alembic_version SET version_num = '9999_future'")
    proc = run_cli("tenant", "list", db_url=url)
    _one_line_error(proc, "migrated by a newer Bastion (revision 9999_future); upgrade Bastion")
    with sqlite3.connect(path) as db:  # left as it was
        assert db.execute("SELECT version_num FROM alembic_version").fetchall() == [("9999_future",)]


def test_a_rules_zip_that_is_not_a_zip(url: str, tmp_path: Path) -> None:
    garbage = tmp_path / "rules.zip"
    garbage.write_text("not a zip\n")
    events = tmp_path / "events.jsonl"
    events.write_text("{}\n")
    cli_json("tenant", "create", "acme", db_url=url)
    for args in [
        ("rules", "check", str(garbage)),
        ("detect", "--rules", str(garbage), "--events", str(events)),
        ("hunt", "--rule", str(garbage), "--tenant", "acme"),
    ]:
        _one_line_error(run_cli(*args, db_url=url), f"{garbage} is not a readable zip archive")


WORKFLOWS = {
    "ok.yml": "id: t-ok\nsteps:\n  - id: a\n    action: core.log\n    with: {message: hi}\n",
    "fail.yml": "id: t-fail\nsteps:\n  - id: a\n    action: core.fail\n    with: {message: boom}\n",
}


def _workflows(url: str, tmp_path: Path) -> None:
    cli_json("tenant", "create", "acme", db_url=url)
    for name, text in WORKFLOWS.items():
        (tmp_path / name).write_text(text)
        cli_json("workflow", "add", str(tmp_path / name), "--tenant", "acme", db_url=url)


def test_a_workflow_version_must_be_a_whole_number_from_1(url: str, tmp_path: Path) -> None:
    _workflows(url, tmp_path)
    for version in ("abc", "-1", "", "0", "1.5", "99999999999999999999"):
        proc = run_cli("workflow", "run", f"t-ok@{version}", "--tenant", "acme", "--json", db_url=url)
        _one_line_error(proc, f"workflow version {version!r}")
    assert cli_json("runs", "list", "--tenant", "acme", db_url=url)["runs"] == []  # none ran the latest


def test_wait_exits_1_when_the_run_failed(url: str, tmp_path: Path) -> None:
    _workflows(url, tmp_path)
    ok = run_cli("workflow", "run", "t-ok@1", "--tenant", "acme", "--wait", "--json", db_url=url)
    assert ok.returncode == 0, ok.stderr
    assert orjson.loads(ok.stdout)["status"] == "succeeded"
    failed = run_cli("workflow", "run", "t-fail", "--tenant", "acme", "--wait", "--json", db_url=url)
    assert failed.returncode == 1, failed.stderr
    run = orjson.loads(failed.stdout)  # still the one JSON object
    assert run["status"] == "failed" and "boom" in run["error"]
    retried = run_cli("runs", "retry", run["run_id"], "--tenant", "acme", "--wait", "--json", db_url=url)
    assert retried.returncode == 1, retried.stderr
    assert orjson.loads(retried.stdout)["status"] == "failed"
    queued = run_cli("workflow", "run", "t-fail", "--tenant", "acme", "--json", db_url=url)
    assert queued.returncode == 0 and orjson.loads(queued.stdout)["status"] == "running"  # not waited for


def test_numeric_options_are_bounded_before_the_store(url: str, tmp_path: Path) -> None:
    cli_json("demo", db_url=url)
    feed = ("intel", "feeds", "add", "f", "-t", "demo", "--url", "https://feed.example/x", "--format", "csv")
    for args, option in [
        (("cases", "list", "-t", "demo", "--offset", "100000000000000000000"), "--offset"),
        ((*feed, "--interval", "99999999999999999999"), "--interval"),
        ((*feed, "--half-life-days", "nan"), "--half-life-days"),
        ((*feed, "--half-life-days", "inf"), "--half-life-days"),
        ((*feed, "--half-life-days", "1e308"), "--half-life-days"),
        (("intel", "profile", "-t", "demo", "--retro-days", "99999999999999999999"), "--retro-days"),
        (("worker", "--concurrency", "99999999999999999999"), "--concurrency"),
        (("workflow", "run", "x", "-t", "demo", "--wait", "--timeout", "-1"), "--timeout"),
        (("workflow", "run", "x", "-t", "demo", "--wait", "--timeout", "inf"), "--timeout"),
        (("up", "--port", "99999999999999999999"), "--port"),
    ]:
        _usage_error(run_cli(*args, db_url=url), option)
    assert cli_json("intel", "feeds", "list", "-t", "demo", db_url=url)["feeds"] == []
    assert cli_json("cases", "list", "-t", "demo", "--offset", str(2**63 - 1), db_url=url) == []
    suppress = ("rules", "suppress", "-t", "demo", "--field", "User=bob", "--expires")
    _one_line_error(run_cli(*suppress, "99999999999999999999d", db_url=url), "out of range")
    _one_line_error(run_cli(*suppress, "2000-01-01", db_url=url), "is in the past")
    assert cli_json("rules", "suppressions", "-t", "demo", db_url=url)["suppressions"] == []


def test_user_add_holds_a_password_to_the_passwd_rule(url: str) -> None:
    cli_json("tenant", "create", "acme", db_url=url)
    add = ("user", "add", "z", "-t", "acme", "--role", "admin", "--password-stdin")
    _one_line_error(run_cli(*add, db_url=url, input="short\n"), "at least 10 characters")
    assert cli_json("user", "list", "-t", "acme", db_url=url)["users"] == []  # nobody half-made
    assert run_cli(*add, db_url=url, input="long enough\n").returncode == 0


def test_secret_set_refuses_a_key_that_cannot_read_the_stored_secrets(url: str, tmp_path: Path) -> None:
    cli_json("tenant", "create", "acme", db_url=url)
    cli_json("tenant", "create", "beta", db_url=url)
    real = {"BASTION_SECRET_KEY_FILE": str(tmp_path / "secret.key")}
    assert run_cli("secret", "set", "s1", "-t", "acme", db_url=url, input="v1\n", env=real).returncode == 0

    # A mistyped key file path: a new key would leave every stored secret unreadable.
    missing = tmp_path / "nowhere" / "k"
    proc = run_cli(
        "secret", "set", "s3", "-t", "acme", "--json",
        db_url=url, input="v\n", env={"BASTION_SECRET_KEY_FILE": str(missing)},
    )  # fmt: skip
    _one_line_error(proc, f"secret key file {missing} does not exist, but the store holds secrets")
    assert not missing.parent.exists()

    # Another key altogether, for this tenant and for a tenant with no secrets yet.
    other = tmp_path / "other.key"
    other.write_bytes(Fernet.generate_key())
    for tenant, says in [("acme", "(secret 's1' cannot be decrypted"), ("beta", "of other tenants")]:
        proc = run_cli(
            "secret", "set", "s3", "-t", tenant, "--json",
            db_url=url, input="v\n", env={"BASTION_SECRET_KEY_FILE": str(other)},
        )  # fmt: skip
        line = _one_line_error(proc, f"the secret key file {other} does not match this store's secrets")
        assert says in line
    for tenant, names in [("acme", ["s1"]), ("beta", [])]:
        listed = run_cli("secret", "list", "-t", tenant, "--json", db_url=url, env=real)
        assert [s["name"] for s in orjson.loads(listed.stdout)["secrets"]] == names
    assert run_cli("secret", "set", "s2", "-t", "beta", db_url=url, input="v2\n", env=real).returncode == 0


def test_policy_set_refuses_yaml_nested_thousands_deep(url: str, tmp_path: Path) -> None:
    cli_json("tenant", "create", "acme", db_url=url)
    deep = tmp_path / "deep.yml"
    deep.write_text("routing: " + "[" * 5000 + "]" * 5000 + "\n")
    _one_line_error(run_cli("triage", "policy", "set", "-t", "acme", str(deep), db_url=url), "nesting deeper")
    blocks = tmp_path / "blocks.yml"
    blocks.write_text("".join("  " * i + f"k{i}:\n" for i in range(3000)))
    _one_line_error(
        run_cli("triage", "policy", "set", "-t", "acme", str(blocks), db_url=url), "nesting deeper"
    )


def test_a_suppression_of_only_wildcards_is_refused(url: str) -> None:
    cli_json("tenant", "create", "acme", db_url=url)
    base = ("triage", "suppress", "add", "-t", "acme", "--owner", "me", "--for", "7d")
    for extra in [
        ("--rule", "*"),
        ("--field", "title=*"),
        ("--source", " ** ", "--field", "severity=*?"),
        ("--entity", "host:*"),
    ]:
        _one_line_error(run_cli(*base, *extra, db_url=url), "only wildcards, which match every alert")
    assert cli_json("triage", "suppress", "list", "-t", "acme", db_url=url) == []
    # A wildcard beside a condition that narrows is fine: every rule, on one host.
    done = cli_json(*base, "--rule", "*", "--entity", "host:ws01", db_url=url)
    assert done["rule_id"] == "*" and done["entity"] == {"type": "host", "value": "ws01"}
    # the rule lives in the service: the API (and the console) refuse it too
    with serving(Database(url)) as running:
        key = create_api_key(running.db, "acme")
        with running.client(key) as c:
            r = c.post("/api/v1/triage/suppressions", json={"owner": "me", "expires": "7d", "rule_id": "*"})
            assert r.status_code == 400 and "only wildcards" in r.json()["error"], r.text
