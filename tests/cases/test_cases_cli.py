"""The real ``bastion cases`` command in a subprocess: the ``list --json`` contract, show with the score
explained and the timeline, every change command with ``--as``, the one-line errors, and the case report."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from bastion.model import ScoreComponent
from bastion.store import Database, TenantRepository, TenantScope
from tests.cases.helpers import alert
from tests.conftest import cli_json, run_cli


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'cli.db'}"


def _one_line_error(proc, code: int = 2) -> str:  # type: ignore[no-untyped-def]
    assert proc.returncode == code, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and "Traceback" not in proc.stderr, proc.stderr
    return str(lines[0])


def _alerts(url: str, *titles: str) -> list[str]:
    db = Database(url)
    try:
        with db.write() as conn:
            tenant = TenantRepository(conn).by_name("acme")
            assert tenant is not None
            scope = TenantScope(conn, tenant.id)
            return [alert(scope, t, host=f"ws-{n}") for n, t in enumerate(titles)]
    finally:
        db.dispose()


def _set_score(url: str, case_id: str) -> None:
    """Give the case a score as triage would (through the case repository), to see it explained."""
    db = Database(url)
    try:
        with db.write() as conn:
            tenant = TenantRepository(conn).by_name("acme")
            assert tenant is not None
            TenantScope(conn, tenant.id).cases.update_fields(
                case_id,
                score=64,
                score_components=[
                    ScoreComponent(name="severity", points=40.0, detail="high severity, sigma rule"),
                    ScoreComponent(name="techniques", points=24.0, detail="3 distinct techniques"),
                ],
            )
    finally:
        db.dispose()


def test_list_json_contract_and_show_explains_the_score(url: str) -> None:
    cli_json("tenant", "create", "acme", db_url=url)
    a1, a2 = _alerts(url, "Mimikatz", "Encoded PowerShell")
    opened = cli_json(
        "cases",
        "open",
        "Credential theft",
        "--tenant",
        "acme",
        "--severity",
        "high",
        "-a",
        a1,
        "-a",
        a2,
        db_url=url,
    )
    cli_json("cases", "open", "Phish", "--tenant", "acme", db_url=url)
    listed = cli_json("cases", "list", "--tenant", "acme", db_url=url)
    assert isinstance(listed, list) and len(listed) == 2
    for row in listed:
        assert {"id", "title", "status", "severity", "score", "alerts"} <= set(row)
    creds = next(r for r in listed if r["title"] == "Credential theft")
    assert (creds["id"], creds["status"], creds["severity"], creds["alerts"], creds["score"]) == (
        opened["id"],
        "new",
        "high",
        2,
        0,
    )
    assert [r["title"] for r in cli_json("cases", "list", "--tenant", "acme", "-q", "phish", db_url=url)] == [
        "Phish"
    ]
    assert cli_json("cases", "list", "--tenant", "acme", "--severity", "critical", db_url=url) == []
    _set_score(url, opened["id"])
    shown = cli_json("cases", "show", "#1", "--tenant", "acme", db_url=url)
    assert shown["score"] == 64 and len(shown["score_explained"]) >= 2
    assert any("high severity, sigma rule" in line for line in shown["score_explained"])
    assert [a["id"] for a in shown["alerts"]] == [a1, a2]
    assert [e["kind"] for e in shown["timeline"]][:3] == ["case.opened", "alert.added", "alert.added"]
    text = run_cli("cases", "show", "1", "--tenant", "acme", db_url=url, check=True).stdout
    assert (
        "Score 64" in text and "3 distinct techniques" in text and "Timeline" in text and "Mimikatz" in text
    )
    line = _one_line_error(run_cli("cases", "show", "#7", "--tenant", "acme", db_url=url))
    assert "no case #7" in line
    line = _one_line_error(run_cli("cases", "list", "--tenant", "nobody", db_url=url))
    assert "nobody" in line
    line = _one_line_error(run_cli("cases", "list", "--tenant", "acme", "--status", ",,,", db_url=url))
    assert "names no status" in line  # it listed nothing, as if there were no cases


def test_change_commands_record_the_person_acting(url: str, tmp_path: Path) -> None:
    cli_json("tenant", "create", "acme", db_url=url)
    (a1,) = _alerts(url, "Beacon")
    cli_json("cases", "open", "Beacon", "--tenant", "acme", "-a", a1, db_url=url)
    assigned = cli_json("cases", "assign", "#1", "ana", "--tenant", "acme", "--as", "lead", db_url=url)
    assert assigned["assignee"] == "ana"
    cli_json("cases", "comment", "#1", "looking at it", "--tenant", "acme", "--as", "ana", db_url=url)
    assert (
        cli_json("cases", "status", "#1", "contained", "--tenant", "acme", db_url=url)["status"]
        == "contained"
    )
    task = cli_json("cases", "task", "add", "#1", "Reimage ws-0", "--tenant", "acme", db_url=url)
    assert (
        cli_json("cases", "task", "done", "#1", task["id"], "--tenant", "acme", db_url=url)["status"]
        == "done"
    )
    assert cli_json("cases", "observable", "#1", "ipv4", "203.0.113.9", "--tenant", "acme", db_url=url) == {
        "added": 1
    }
    field = cli_json("cases", "field", "#1", "ticket", '{"key": "SEC-4"}', "--tenant", "acme", db_url=url)
    assert field["custom_fields"] == {"ticket": {"key": "SEC-4"}}
    evidence = tmp_path / "proc.txt"
    evidence.write_bytes(b"powershell -enc ...")
    att = cli_json("cases", "attach", "#1", str(evidence), "--tenant", "acme", "--as", "ana", db_url=url)
    assert att["sha256"] == hashlib.sha256(b"powershell -enc ...").hexdigest() and att["author"] == "user:ana"

    line = _one_line_error(run_cli("cases", "close", "#1", "--tenant", "acme", db_url=url))
    assert "needs a verdict" in line
    line = _one_line_error(run_cli("cases", "status", "#1", "finished", "--tenant", "acme", db_url=url))
    assert "unknown case status" in line
    closed = cli_json(
        "cases",
        "close",
        "#1",
        "--verdict",
        "true_positive",
        "-r",
        "confirmed",
        "--tenant",
        "acme",
        db_url=url,
    )
    assert (closed["status"], closed["verdict"]) == ("closed", "true_positive")
    line = _one_line_error(run_cli("cases", "comment", "#1", " ", "--tenant", "acme", db_url=url))
    assert "needs text" in line
    line = _one_line_error(run_cli("cases", "status", "#1", "triaged", "--tenant", "acme", db_url=url))
    assert "reopen" in line
    line = _one_line_error(run_cli("cases", "reopen", "#1", "--tenant", "acme", db_url=url))
    assert "reason is required" in line
    reopened = cli_json("cases", "reopen", "#1", "-r", "more activity", "--tenant", "acme", db_url=url)
    assert reopened["status"] == "in_progress" and reopened["verdict"] is None

    shown = cli_json("cases", "show", "#1", "--tenant", "acme", db_url=url)
    actors = {e["kind"]: e.get("actor") for e in shown["timeline"]}
    assert actors["assigned"] == "user:lead" and actors["comment"] == "user:ana" and actors["status"] == "cli"
    assert shown["alerts"][0]["status"] == "closed"  # closed with the case; reopening the case keeps it
    audit = cli_json("audit", "verify", "--tenant", "acme", db_url=url)
    assert audit["ok"] is True


def test_merge_split_move_and_report(url: str, tmp_path: Path) -> None:
    cli_json("tenant", "create", "acme", db_url=url)
    a1, a2, a3 = _alerts(url, "One", "Two", "Three")
    cli_json("cases", "open", "Target", "--tenant", "acme", "-a", a1, db_url=url)
    cli_json("cases", "open", "Source", "--tenant", "acme", "-a", a2, "-a", a3, db_url=url)
    merged = cli_json("cases", "merge", "#1", "#2", "--tenant", "acme", "-r", "same host", db_url=url)
    assert merged["alerts"] == 3 and merged["number"] == 1
    source = cli_json("cases", "show", "#2", "--tenant", "acme", db_url=url)
    assert source["status"] == "closed" and source["custom_fields"]["merged_into"]["number"] == 1
    split = cli_json("cases", "split", "#1", a3, "--title", "Three alone", "--tenant", "acme", db_url=url)
    assert (split["number"], split["alerts"], split["title"]) == (3, 1, "Three alone")
    moved = cli_json("cases", "move", a2, "#3", "--tenant", "acme", "-r", "with three", db_url=url)
    assert moved["number"] == 3 and moved["alerts"] == 2
    line = _one_line_error(run_cli("cases", "move", a2, "#3", "--tenant", "acme", db_url=url))
    assert "already in case #3" in line
    line = _one_line_error(run_cli("cases", "merge", "#1", "#2", "--tenant", "acme", db_url=url))
    assert "#2 is closed" in line
    rows = {r["number"]: r["alerts"] for r in cli_json("cases", "list", "--tenant", "acme", db_url=url)}
    assert rows == {1: 1, 2: 0, 3: 2}
    audit = cli_json("audit", "verify", "--tenant", "acme", db_url=url)
    assert audit["ok"] is True

    out = tmp_path / "case.md"
    done = cli_json(
        "cases", "report", "#3", "--tenant", "acme", "--format", "md", "--out", str(out), db_url=url
    )
    assert done["bytes"] == out.stat().st_size > 0
    report = out.read_text()
    assert "Three alone" in report
    line = _one_line_error(
        run_cli("cases", "report", "#3", "--tenant", "acme", "--format", "doc", "--out", str(out), db_url=url)
    )
    assert "unknown format" in line
