"""The response commands end to end through the real ``bastion`` command (no worker: runs inline)."""

from __future__ import annotations

from pathlib import Path

import orjson

from tests.conftest import cli_json, run_cli

WORKFLOW = """\
id: enrich-ip
title: Enrich an IP
inputs:
  ip: {type: string}
  fail: {type: boolean, default: false}
steps:
  - id: clean
    action: core.set
    with: {values: {ip: "${{ inputs.ip | refang }}", token: "${{ secrets.vt_key }}"}}
  - id: maybe_fail
    action: core.fail
    if: "${{ inputs.fail }}"
    with: {message: asked to fail}
outputs: {ip: "${{ steps.clean.output.ip }}"}
"""


def test_add_list_run_show_retry(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'bastion.db'}"
    env = {"BASTION_SECRET_KEY_FILE": str(tmp_path / "secret.key")}
    assert run_cli("tenant", "create", "acme", db_url=url).returncode == 0
    assert (
        run_cli(
            "secret", "set", "vt_key", "--tenant", "acme", db_url=url, input="vt-SECRET-9\n", env=env
        ).returncode
        == 0
    )
    wf = tmp_path / "wf.yaml"
    wf.write_text(WORKFLOW)
    added = cli_json("workflow", "add", str(wf), "--tenant", "acme", db_url=url)
    assert added == {"workflow_id": "enrich-ip", "version": 1, "created": True}
    assert cli_json("workflow", "add", str(wf), "--tenant", "acme", db_url=url)["created"] is False
    listed = cli_json("workflow", "list", "--tenant", "acme", db_url=url)
    assert [w["workflow_id"] for w in listed["workflows"]] == ["enrich-ip"]

    proc = run_cli(
        "workflow",
        "run",
        "enrich-ip",
        "--tenant",
        "acme",
        "--input",
        "ip=203.0.113[.]5",
        "--wait",
        "--json",
        db_url=url,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    result = orjson.loads(proc.stdout)
    assert result["status"] == "succeeded" and result["outputs"] == {"ip": "203.0.113.5"}
    shown = orjson.loads(
        run_cli("runs", "show", result["run_id"], "--tenant", "acme", "--json", db_url=url, env=env).stdout
    )
    clean = next(s for s in shown["steps"] if s["key"] == "clean")
    assert clean["output"]["token"] == "***" and "vt-SECRET-9" not in str(shown)

    proc = run_cli(
        "workflow",
        "run",
        str(wf),
        "--tenant",
        "acme",
        "--input",
        "ip=1.2.3.4",
        "--input",
        "fail=true",
        "--wait",
        "--json",
        db_url=url,
        env=env,
    )
    failed = orjson.loads(proc.stdout)
    assert failed["status"] == "failed" and "asked to fail" in failed["error"]
    retried = orjson.loads(
        run_cli(
            "runs", "retry", failed["run_id"], "--tenant", "acme", "--wait", "--json", db_url=url, env=env
        ).stdout
    )
    assert retried["status"] == "failed"  # the same inputs fail the same way, from the failed step
    runs = cli_json("runs", "list", "--tenant", "acme", db_url=url)["runs"]
    assert {r["status"] for r in runs} == {"succeeded", "failed"} and len(runs) == 3
    assert next(r for r in runs if r["run_id"] == retried["run_id"])["retry_of"] == failed["run_id"]


def test_user_mistakes_are_one_line(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'bastion.db'}"
    run_cli("tenant", "create", "acme", db_url=url, check=True)
    wf = tmp_path / "wf.yaml"
    wf.write_text(WORKFLOW)
    cases = [
        ("workflow", "run", "nope", "--tenant", "acme"),
        ("workflow", "run", str(wf), "--tenant", "acme", "--input", "ip"),
        ("workflow", "run", str(wf), "--tenant", "acme", "--input", "colour=red"),
        ("runs", "show", "0000", "--tenant", "acme"),
        ("runs", "list", "--tenant", "acme", "--status", "weird"),
        ("workflow", "add", str(tmp_path / "missing.yaml"), "--tenant", "acme"),
    ]
    for args in cases:
        proc = run_cli(*args, db_url=url)
        assert proc.returncode == 2, (args, proc.stderr)
        assert proc.stderr.startswith("error:") and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("id: x\nsteps:\n  - {id: a, action: core.nope}\n")
    proc = run_cli("workflow", "add", str(bad), "--tenant", "acme", db_url=url)
    assert proc.returncode == 2 and "line 3" in proc.stderr


def test_run_wait_returns_when_the_run_parks_for_approval(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'bastion.db'}"
    run_cli("tenant", "create", "acme", db_url=url, check=True)
    wf = tmp_path / "gated.yaml"
    wf.write_text(
        "id: gated\nsteps:\n  - id: act\n    action: core.log\n    approval: {roles: [approver]}\n"
        "    with: {message: go}\n"
    )
    result = cli_json("workflow", "run", str(wf), "--tenant", "acme", "--wait", db_url=url)
    assert result["status"] == "waiting_approval"
    shown = cli_json("runs", "show", result["run_id"], "--tenant", "acme", db_url=url)
    assert shown["waiting_step"] == "act"
    assert shown["steps"][0]["approval_id"] == f"{result['run_id']}:act"
    cancelled = cli_json("runs", "cancel", result["run_id"], "--tenant", "acme", db_url=url)
    assert cancelled == {"run_id": result["run_id"], "status": "cancelled"}
