"""The real `bastion` command in a subprocess: contracts, exit codes, one-line errors."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import orjson
import pytest

from bastion.store import Database
from bastion.tenancy.keys import verify_password
from bastion.tenancy.service import authenticate
from tests.conftest import cli_json, run_cli


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'cli.db'}"


def _one_line_error(proc, code: int = 2) -> str:  # type: ignore[no-untyped-def]
    assert proc.returncode == code, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr and lines[0].startswith("error:")
    return lines[0]


def test_tenant_create_prints_key_once_and_list(url: str) -> None:
    doc = cli_json("tenant", "create", "acme", db_url=url)
    assert doc["tenant"] == "acme" and doc["api_key"].startswith("bst_")
    listed = cli_json("tenant", "list", db_url=url)
    assert [t["name"] for t in listed["tenants"]] == ["acme"]
    assert doc["api_key"] not in (Path(url.removeprefix("sqlite:///")).read_bytes().decode("latin-1"))
    line = _one_line_error(run_cli("tenant", "create", "acme", db_url=url))
    assert "already exists" in line
    line = _one_line_error(run_cli("tenant", "create", "no spaces allowed", db_url=url))
    assert "invalid tenant name" in line


def test_a_bad_setting_names_the_setting_and_the_value(url: str) -> None:
    line = _one_line_error(run_cli("tenant", "list", db_url=url, env={"BASTION_PORT": "abc"}))
    assert "bad setting port (BASTION_PORT or bastion.toml)" in line and "'abc'" in line
    huge = {"BASTION_INGEST_BATCH_SIZE": "10000000"}  # would hold a whole file's events in memory
    line = _one_line_error(run_cli("tenant", "list", db_url=url, env=huge))
    assert "bad setting ingest_batch_size (BASTION_INGEST_BATCH_SIZE or bastion.toml)" in line


def test_keys_and_users(url: str) -> None:
    cli_json("tenant", "create", "acme", db_url=url)
    key = cli_json("apikey", "create", "--tenant", "acme", "--role", "viewer", db_url=url)
    assert key["api_key"].startswith("bst_")
    user = cli_json(
        "user",
        "add",
        "ana",
        "--tenant",
        "acme",
        "--role",
        "analyst",
        "--email",
        "ana@acme.example",
        db_url=url,
    )
    assert user["role"] == "analyst"
    proc = run_cli(
        "user",
        "add",
        "bob",
        "--tenant",
        "acme",
        "--role",
        "approver",
        "--password-stdin",
        db_url=url,
        input="correct horse battery staple\n",
    )
    assert proc.returncode == 0, proc.stderr
    users = cli_json("user", "list", "--tenant", "acme", db_url=url)
    assert [(u["name"], u["role"]) for u in users["users"]] == [("ana", "analyst"), ("bob", "approver")]
    db = sqlite3.connect(url.removeprefix("sqlite:///"))
    stored = db.execute("select password_hash from users where name='bob'").fetchone()[0]
    assert stored.startswith("$argon2id$") and "horse" not in stored
    as_user = cli_json("apikey", "create", "--tenant", "acme", "--user", "ana", db_url=url)
    assert as_user["api_key"].startswith("bst_")
    assert "unknown role" in _one_line_error(
        run_cli("user", "add", "eve", "--tenant", "acme", "--role", "god", db_url=url)
    )
    assert "no tenant named" in _one_line_error(run_cli("user", "list", "--tenant", "nope", db_url=url))
    assert "invalid e-mail" in _one_line_error(
        run_cli("user", "add", "eve", "--tenant", "acme", "--role", "viewer", "--email", "x", db_url=url)
    )

    # a new password, a new role (ana's API key follows it), disable (the key stops working) and enable
    new_pw = run_cli(
        "user", "passwd", "bob", "--tenant", "acme", "--password-stdin", db_url=url, input="s3cret-enough\n"
    )
    assert new_pw.returncode == 0, new_pw.stderr
    changed = db.execute("select password_hash from users where name='bob'").fetchone()[0]
    assert changed != stored and verify_password(changed, "s3cret-enough")
    assert "at least 10" in _one_line_error(
        run_cli("user", "passwd", "bob", "--tenant", "acme", "--password-stdin", db_url=url, input="short\n")
    )
    assert "no user 'zed'" in _one_line_error(
        run_cli("user", "role", "zed", "--tenant", "acme", "--role", "viewer", db_url=url)
    )
    role = cli_json("user", "role", "ana", "--tenant", "acme", "--role", "viewer", db_url=url)
    assert role == {"user": "ana", "tenant": "acme", "role": "viewer"}
    store = Database(url)
    try:
        principal = authenticate(store, as_user["api_key"])
        assert principal is not None and principal.role.value == "viewer"
        off = cli_json("user", "disable", "ana", "--tenant", "acme", db_url=url)
        assert off == {"user": "ana", "tenant": "acme", "disabled": True}
        assert authenticate(store, as_user["api_key"]) is None
        assert run_cli("user", "disable", "ana", "--tenant", "acme", "--enable", db_url=url).returncode == 0
        assert authenticate(store, as_user["api_key"]) is not None
    finally:
        store.dispose()
    audited = [r[0] for r in db.execute("select action from audit_log where action like 'user.%'")]
    assert {"user.password", "user.role", "user.disable", "user.enable"} <= set(audited)


def test_api_keys_list_and_revoke(url: str) -> None:
    first = cli_json("tenant", "create", "acme", db_url=url)["api_key"]
    second = cli_json("apikey", "create", "--tenant", "acme", "--role", "viewer", "--name", "ro", db_url=url)
    keys = cli_json("apikey", "list", "--tenant", "acme", db_url=url)["api_keys"]
    assert sorted(k["name"] for k in keys) == ["initial", "ro"]
    assert not any(k["revoked"] for k in keys)
    assert all(first not in str(k) and second["api_key"] not in str(k) for k in keys)  # never the key
    ro = next(k for k in keys if k["name"] == "ro")
    assert second["api_key"].startswith(ro["prefix"])
    db = Database(url)
    try:
        assert authenticate(db, second["api_key"]) is not None
        done = cli_json("apikey", "revoke", ro["prefix"], "--tenant", "acme", db_url=url)
        assert done == {"tenant": "acme", "revoked": ro["id"]}
        assert authenticate(db, second["api_key"]) is None
        assert authenticate(db, first) is not None
    finally:
        db.dispose()
    keys = cli_json("apikey", "list", "--tenant", "acme", db_url=url)["api_keys"]
    assert {k["name"]: k["revoked"] for k in keys} == {"initial": False, "ro": True}
    assert "no API key" in _one_line_error(
        run_cli("apikey", "revoke", "bst_nope", "--tenant", "acme", db_url=url)
    )
    assert cli_json("audit", "verify", "--tenant", "acme", "--json", db_url=url)["ok"] is True


def test_demo_twice_adds_nothing_and_retires_the_earlier_key(url: str) -> None:
    first = cli_json("demo", "--json", db_url=url)
    assert first["events"]["accepted"] > 0 and first["alerts"]["accepted"] > 0
    second = cli_json("demo", "--json", db_url=url)
    assert second["events"]["accepted"] == 0 and second["alerts"]["accepted"] == 0
    assert second["case_id"] == first["case_id"]
    searched = cli_json("events", "search", "--tenant", "demo", "--limit", "1000", "--json", db_url=url)
    assert len(searched["events"]) == first["events"]["accepted"]
    db = Database(url)
    try:
        assert authenticate(db, first["api_key"]) is not None  # the tenant's initial key stays
        third = cli_json("demo", "--json", db_url=url)
        assert authenticate(db, second["api_key"]) is None  # the previous run's key is retired
        assert authenticate(db, third["api_key"]) is not None
    finally:
        db.dispose()
    assert cli_json("audit", "verify", "--tenant", "demo", "--json", db_url=url)["ok"] is True


def test_ingest_attack_samples_twice(url: str, shared_data: Path) -> None:
    samples = shared_data / "evtx-attack-samples" / "events.jsonl.gz"
    cli_json("tenant", "create", "acme", db_url=url)
    first = cli_json("ingest", str(samples), "--tenant", "acme", db_url=url)
    assert first == {"accepted": 8255, "duplicates": 0, "rejected": 0, "errors": []}
    second = cli_json("ingest", str(samples), "--tenant", "acme", db_url=url)
    assert second == {"accepted": 0, "duplicates": 8255, "rejected": 0, "errors": []}
    db = sqlite3.connect(url.removeprefix("sqlite:///"))
    assert db.execute("select count(*) from events").fetchone()[0] == 8255
    with_obs = db.execute(
        "select count(distinct e.value) from event_postings as p, json_each(p.pks) as e"
    ).fetchone()[0]
    assert with_obs == 8255  # every event carries observables (at least its host)
    kinds = {
        o["type"]
        for (doc,) in db.execute("select normalized from events")
        for o in orjson.loads(doc)["observables"]
    }
    assert {"ipv4", "host", "user", "file_path", "process_name", "sha256", "domain"} <= kinds
    found = cli_json(
        "events", "search", "--tenant", "acme", "--value", "10.0.2.17", "--limit", "100", db_url=url
    )
    assert found["events"] and all("10.0.2.17" in orjson.dumps(e["event"]).decode() for e in found["events"])


def test_ingest_evtx_from_sigma_regression_data(url: str, shared_data: Path) -> None:
    evtx = sorted((shared_data / "sigma" / "regression_data").rglob("*.evtx"))[0]
    cli_json("tenant", "create", "acme", db_url=url)
    doc = cli_json("ingest", str(evtx), "--tenant", "acme", db_url=url)
    assert doc["accepted"] >= 1 and doc["rejected"] == 0
    found = cli_json("events", "search", "--tenant", "acme", db_url=url)
    assert found["events"][0]["format"] == "windows"


def test_mixed_file_keeps_good_lines_and_names_bad_ones(url: str, tmp_path: Path) -> None:
    good = {"@timestamp": "2026-11-30T10:00:00Z", "event": {"kind": "event"}, "source": {"ip": "10.9.9.9"}}
    lines = [
        orjson.dumps(good).decode(),
        "{broken",
        orjson.dumps({**good, "@timestamp": "2026-11-30T10:00:01Z"}).decode(),
        "",
        "[1, 2]",
        orjson.dumps({**good, "@timestamp": "2026-11-30T10:00:02Z"}).decode(),
    ]
    path = tmp_path / "mixed.jsonl"
    path.write_text("\n".join(lines) + "\n")
    cli_json("tenant", "create", "acme", db_url=url)
    doc = cli_json("ingest", str(path), "--tenant", "acme", db_url=url, expect_code=1)
    assert doc["accepted"] == 3 and doc["rejected"] == 2
    assert [e["line"] for e in doc["errors"]] == [2, 5]
    assert all(e["reason"] for e in doc["errors"])
    assert len(cli_json("events", "search", "--tenant", "acme", db_url=url)["events"]) == 3


def test_an_unpaired_surrogate_in_a_json_array_rejects_that_item_only(url: str, tmp_path: Path) -> None:
    # Python's JSON parser (JSON arrays) lets "\\ud800" through as a lone surrogate, which is not Unicode:
    # it used to stop the whole ingest with a traceback.
    path = tmp_path / "array.json"
    path.write_text('[{"message": "ok", "host": {"name": "a"}}, {"message": "bad \\ud800", "n": 2}]')
    cli_json("tenant", "create", "acme", db_url=url)
    doc = cli_json("ingest", str(path), "--tenant", "acme", db_url=url, expect_code=1)
    assert (doc["accepted"], doc["rejected"]) == (1, 1)
    assert doc["errors"][0]["line"] == 2 and "surrogate" in doc["errors"][0]["reason"]


def test_ingest_user_mistakes(url: str, tmp_path: Path) -> None:
    cli_json("tenant", "create", "acme", db_url=url)
    assert "no such file" in _one_line_error(
        run_cli("ingest", str(tmp_path / "nope.jsonl"), "--tenant", "acme", db_url=url)
    )
    (tmp_path / "a.jsonl").write_text("{}\n")
    assert "no tenant named" in _one_line_error(
        run_cli("ingest", str(tmp_path / "a.jsonl"), "--tenant", "zz", db_url=url)
    )
    assert "unknown format" in _one_line_error(
        run_cli("ingest", str(tmp_path / "a.jsonl"), "--tenant", "acme", "--format", "xml", db_url=url)
    )
    assert "database" in _one_line_error(run_cli("tenant", "list", db_url="mysql://x/y")).lower()


def test_usage_mistakes_exit_2_without_a_traceback(url: str) -> None:
    for args, says in [
        (("approvals", "list"), "Missing option '--tenant'"),
        (("no-such-command",), "No such command"),
    ]:
        proc = run_cli(*args, db_url=url)
        assert proc.returncode == 2, proc.stderr
        assert says in proc.stderr
        assert "Traceback" not in proc.stderr


def test_database_url_option_selects_the_store(tmp_path: Path) -> None:
    other = f"sqlite:///{tmp_path / 'other.db'}"
    proc = run_cli(
        "--database-url",
        other,
        "tenant",
        "create",
        "zeta",
        "--json",
        db_url=f"sqlite:///{tmp_path / 'env.db'}",
    )
    assert proc.returncode == 0, proc.stderr
    assert [t["name"] for t in cli_json("tenant", "list", db_url=other)["tenants"]] == ["zeta"]
    assert cli_json("tenant", "list", db_url=f"sqlite:///{tmp_path / 'env.db'}")["tenants"] == []


@pytest.mark.parametrize("tamper", ["edit", "delete", "reorder"])
def test_audit_verify_detects_tampering(url: str, tamper: str) -> None:
    cli_json("tenant", "create", "acme", db_url=url)
    for name in ("a", "b", "c"):
        cli_json("user", "add", name, "--tenant", "acme", "--role", "viewer", db_url=url)
    ok = cli_json("audit", "verify", "--tenant", "acme", db_url=url)
    assert ok == {"ok": True, "entries": 5, "first_bad": None, "reason": None}
    db = sqlite3.connect(url.removeprefix("sqlite:///"))
    ids = [r[0] for r in db.execute("select id from audit_log order by seq")]
    if tamper == "edit":
        db.execute("update audit_log set data = replace(data, 'viewer', 'admin') where id = ?", (ids[3],))
        expected = ids[3]
    elif tamper == "delete":
        db.execute("delete from audit_log where id = ?", (ids[2],))
        expected = ids[3]
    else:
        db.execute("update audit_log set seq = -seq where id in (?, ?)", (ids[1], ids[2]))
        db.execute("update audit_log set seq = 3 where id = ?", (ids[1],))
        db.execute("update audit_log set seq = 2 where id = ?", (ids[2],))
        expected = ids[1]
    db.commit()
    bad = cli_json("audit", "verify", "--tenant", "acme", db_url=url, expect_code=1)
    assert bad["ok"] is False and bad["first_bad"] == expected
    text = run_cli("audit", "verify", db_url=url)
    assert text.returncode == 1 and "BAD" in text.stdout and str(expected) in text.stdout


def test_generic_json_with_a_field_mapping_from_a_file_or_bastion_toml(url: str, tmp_path: Path) -> None:
    """A home-grown JSON log whose field names no built-in mapping knows: a --mapping file (JSON or TOML)
    or a named mapping in bastion.toml maps them; a wrong mapping is one clear line."""
    cli_json("tenant", "create", "acme", db_url=url)
    log = tmp_path / "fw.jsonl"
    log.write_text(
        '{"when": "2026-11-30T10:00:00Z", "srcaddr": "203.0.113.5", "verdict": "deny"}\n'
        '{"when": "2026-11-30T10:00:01Z", "srcaddr": "203.0.113.6", "verdict": "deny"}\n'
    )
    mapping = tmp_path / "fw.json"
    mapping.write_text('{"fields": {"time": "when", "src_endpoint.ip": "srcaddr", "message": "verdict"}}')
    done = cli_json("ingest", str(log), "--tenant", "acme", "--mapping", str(mapping), db_url=url)
    assert (done["accepted"], done["rejected"]) == (2, 0)
    found = cli_json("events", "search", "--tenant", "acme", "--value", "203.0.113.5", db_url=url)["events"]
    assert len(found) == 1 and found[0]["format"] == "generic:fw"
    assert found[0]["event"]["message"] == "deny" and found[0]["time"] == 1_796_032_800_000

    toml = tmp_path / "bastion.toml"
    toml.write_text('[ingest_mappings.fw2]\nfields = {time = "when", "src_endpoint.ip" = "srcaddr"}\n')
    other = tmp_path / "fw2.jsonl"
    other.write_text('{"when": "2026-11-30T11:00:00Z", "srcaddr": "198.51.100.7"}\n')
    proc = run_cli(
        "ingest", str(other), "--tenant", "acme", "--format", "generic:fw2", "--json",
        db_url=url, env={"BASTION_CONFIG": str(toml)},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert orjson.loads(proc.stdout)["accepted"] == 1

    bad = tmp_path / "bad.json"
    bad.write_text('{"fields": {"src.ip": "srcaddr"}}')
    line = _one_line_error(run_cli("ingest", str(log), "--tenant", "acme", "--mapping", str(bad), db_url=url))
    assert "mapping 'bad'" in line and "src.ip" in line
    bad.write_text('{"fields": "srcaddr"}')
    line = _one_line_error(run_cli("ingest", str(log), "--tenant", "acme", "--mapping", str(bad), db_url=url))
    assert "mapping 'bad'" in line and "fields" in line
