"""The README's examples, run as written: the CLI block against a fresh store, the API block against a
real server."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from bastion.store import Database
from bastion.tenancy.service import create_tenant
from tests.conftest import ROOT, start_server

README = (ROOT / "README.md").read_text()


def _block(name: str) -> str:
    m = re.search(rf"<!-- readme-test: {name} -->\s*```sh\n(.*?)```", README, re.S)
    assert m, f"README has no block marked readme-test: {name}"
    return m.group(1)


def _run(script: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    bindir = str(Path(sys.executable).parent)
    full = {**os.environ, **env, "PATH": bindir + os.pathsep + os.environ.get("PATH", "")}
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=ROOT,
        env=full,
        capture_output=True,
        text=True,
        timeout=600,
    )


def _json_documents(text: str) -> list[object]:
    """curl prints bodies back to back, without newlines: split them."""
    decoder, docs, pos = json.JSONDecoder(), [], 0
    while pos < len(text.rstrip()):
        doc, end = decoder.raw_decode(text, pos)
        docs.append(doc)
        pos = end + (len(text[end:]) - len(text[end:].lstrip()))
    return docs


def test_readme_opens_with_the_two_commands() -> None:
    first_block = re.search(r"```sh\n(.*?)```", README, re.S)
    assert first_block is not None
    assert "make run" in first_block.group(1) and "make test" in first_block.group(1)


def test_readme_cli_block(tmp_path: Path, shared_data: Path) -> None:
    proc = _run(_block("cli"), {"BASTION_DATABASE_URL": f"sqlite:///{tmp_path / 'readme.db'}"})
    assert proc.returncode == 0, proc.stderr
    json_lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    assert orjson.loads(json_lines[0]) == {"accepted": 0, "duplicates": 8255, "rejected": 0, "errors": []}
    assert "accepted 8,255" in proc.stdout
    assert "10.0.2.17" not in proc.stderr and "chain intact" in proc.stdout


def test_readme_triage_block(tmp_path: Path, shared_data: Path) -> None:
    proc = _run(_block("triage"), {"BASTION_DATABASE_URL": f"sqlite:///{tmp_path / 'triage.db'}"})
    assert proc.returncode == 0, proc.stderr
    assert "Case #1" in proc.stdout and "severity:" in proc.stdout  # the score, explained
    metrics = next(orjson.loads(line) for line in proc.stdout.splitlines() if line.startswith('{"'))
    assert metrics["alerts"] > 0 and metrics["cases"] > 0 and metrics["deduplicated"] > 0
    report = (ROOT / "var" / "soc-report.html").read_text()
    assert "<svg" in report and "soc" in report


def test_readme_api_block(sqlite_db: Database) -> None:
    running, srv, thread = start_server(sqlite_db)
    try:
        key = create_tenant(sqlite_db, "acme")[1]
        proc = _run(_block("api"), {"BASTION_URL": running.url, "BASTION_KEY": key})
        assert proc.returncode == 0, proc.stderr
        outputs = _json_documents(proc.stdout)
        ingest, search, alert, alerts = outputs
        assert ingest["accepted"] == 1
        assert search["events"][0]["raw"]["destination"]["ip"] == "203.0.113.50"
        assert alert["accepted"] == 1
        assert [a["title"] for a in alerts["alerts"]] == ["Beacon to known C2"]
    finally:
        srv.should_exit = True
        thread.join(10)
        running.queue.close()


@pytest.mark.parametrize("target", ["install", "run", "test"])
def test_make_targets_exist(target: str) -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(rf"^{target}:", makefile, re.M)
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_readme_agents_block(tmp_path: Path) -> None:
    proc = _run(_block("agents"), {"BASTION_DATABASE_URL": f"sqlite:///{tmp_path / 'agents.db'}"})
    assert proc.returncode == 0, proc.stderr
    malware, design, run = [orjson.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert malware["verdict"] == "malicious" and "SUSP_Just_EICAR" in malware["yara"]
    actions = [s["action"] for s in design["steps"]]
    assert {"ldap.disable_user", "cases.create", "ldap.reset_password"} <= set(actions)
    assert design["valid"] is True and design["workflow_yaml"].startswith("id: ")
    assert run["status"] == "waiting_approval"
    assert [a["tool"] for a in run["approvals"]] == ["edl.add"] and run["approvals"][0]["status"] == "pending"
    assert run["run_id"] in proc.stdout.split("}")[-1]  # the runs list shows it
