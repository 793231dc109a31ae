"""Validation: every error kind reported with its line and column, through the real CLI too."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from bastion.respond.validate import validate_text
from tests.conftest import run_cli

GOOD = """\
id: contain-host
title: Contain a host
version: 1
trigger: {manual: true, webhook: true}
inputs:
  host: {type: string}
  ips: {type: array, default: []}
steps:
  - id: lookup
    action: core.set
    with: {values: {host: "${{ inputs.host | lower }}"}}
  - id: each
    action: core.log
    for_each: "${{ inputs.ips }}"
    concurrency: 2
    with: {message: "block ${{ item | defang }}"}
  - id: note
    action: core.log
    if: "${{ steps.lookup.output.host != '' }}"
    retry: {max_attempts: 3, interval: 1s, backoff: 2}
    timeout: 30s
    on_error: {handler: cleanup}
    with: {message: "host ${{ steps.lookup.output.host }}"}
handlers:
  - id: cleanup
    action: core.log
    with: {message: cleaning up}
outputs:
  host: "${{ steps.lookup.output.host }}"
"""


def problems(text: str) -> list[tuple[int, int, str]]:
    _, found = validate_text(text)
    return [(p.line, p.column, p.message) for p in found]


def test_good_workflow_has_no_problems() -> None:
    workflow, found = validate_text(GOOD)
    assert found == []
    assert workflow is not None
    assert [s.id for s in workflow.steps] == ["lookup", "each", "note"]
    assert workflow.steps[1].concurrency == 2
    assert workflow.steps[2].retry.max_attempts == 3
    assert workflow.steps[2].on_error == "cleanup"
    assert {t.kind for t in workflow.triggers} == {"manual", "webhook"}


@pytest.mark.parametrize(
    ("text", "line", "column", "fragment"),
    [
        (
            "id: x\ncolour: red\nsteps:\n  - {id: a, action: core.log, with: {message: m}}\n",
            2,
            1,
            "unknown key 'colour'",
        ),
        (
            "id: x\nsteps:\n  - id: a\n    action: core.log\n    wiht: {message: m}\n",
            5,
            5,
            "unknown key 'wiht'",
        ),
        ("id: x\nsteps:\n  - id: a\n    action: edr.nothing\n", 4, 13, "unknown action 'edr.nothing'"),
        (
            "id: x\nsteps:\n  - id: a\n    action: core.log\n    with: {level: info}\n",
            5,
            11,
            "needs input 'message'",
        ),
        (
            "id: x\nsteps:\n  - id: a\n    action: core.log\n    with: {message: m, colour: 1}\n",
            5,
            24,
            "has no input 'colour'",
        ),
        (
            "id: x\nsteps:\n  - id: a\n    action: core.sleep\n    with: {seconds: soon}\n",
            5,
            12,
            "must be number",
        ),
        (
            'id: x\nsteps:\n  - id: a\n    action: core.log\n    with: {message: "${{ steps.b.output }}"}\n'
            "  - id: b\n    action: core.log\n    with: {message: m}\n",
            5,
            21,
            "later step 'b'",
        ),
        (
            "id: x\nsteps:\n  - id: a\n    action: core.log\n"
            '    with: {message: "${{ steps.nope.output }}"}\n',
            5,
            21,
            "unknown step 'nope'",
        ),
        (  # the column of the expression itself, inside the quotes
            'id: x\nsteps:\n  - id: a\n    action: core.log\n    with: {message: "${{ inputs.x + }}"}\n',
            5,
            22,
            "expression syntax error",
        ),
        (  # further along a quoted string
            'id: x\nsteps:\n  - id: a\n    action: core.log\n    with: {message: "host ${{ inputs.x + }}"}\n',
            5,
            27,
            "expression syntax error",
        ),
        (  # in a plain scalar
            "id: x\nsteps:\n  - id: a\n    action: core.log\n    with:\n"
            "      message: ok ${{ inputs.x + }}\n",
            6,
            19,
            "expression syntax error",
        ),
        (  # on the third line of a literal block
            "id: x\nsteps:\n  - id: a\n    action: core.log\n    with:\n      message: |\n"
            "        first line\n        second\n        then ${{ inputs.x + }}\n",
            9,
            14,
            "expression syntax error",
        ),
        (
            "id: x\nsteps:\n  - id: a\n    action: core.log\n    with: {message: m}\n"
            "    on_error: {handler: h}\n"
            "handlers:\n  - id: h\n    action: core.log\n    with: {message: m}\n"
            "    on_error: {handler: h}\n",
            11,
            15,
            "cycle",
        ),
        ("id: x\nsteps:\n  - id: a\n    uses: x\n", 4, 11, "cycle: workflow 'x' uses itself"),
        (
            'id: x\nsteps:\n  - id: a\n    action: core.log\n    with: {message: "${{ input.x }}"}\n',
            5,
            21,
            "unknown name 'input'",
        ),
        ("id: x\nsteps: [\n", 3, 1, "YAML syntax error"),
        # Keys the engine would ignore on a kind of step are refused, not dropped.
        ("id: x\nsteps:\n  - id: a\n    uses: y\n    retry: {max_attempts: 2}\n", 5, 5, "'retry' applies"),
        ("id: x\nsteps:\n  - id: a\n    uses: y\n    timeout: 5s\n", 5, 5, "'timeout' applies"),
        (
            "id: x\nsteps:\n  - id: a\n    approval: {roles: [approver]}\n    parallel:\n"
            "      - - {id: b, action: core.log, with: {message: m}}\n",
            4,
            5,
            "not a 'parallel' block",
        ),
        (
            "id: x\nsteps:\n  - id: a\n    action: core.sleep\n    approval: {roles: [approver]}\n"
            "    with: {seconds: 1}\n",
            5,
            5,
            "core.sleep takes no approval",
        ),
        (
            "id: x\nsteps:\n  - id: a\n    action: core.log\n    approval: {roles: [wizard]}\n"
            "    with: {message: m}\n",
            5,
            23,
            "unknown role 'wizard'",
        ),
    ],
)
def test_each_error_kind_has_its_position(text: str, line: int, column: int, fragment: str) -> None:
    found = problems(text)
    assert any(fragment in m for _, _, m in found), found
    hit = next((ln, col) for ln, col, m in found if fragment in m)
    assert hit == (line, column), found


def test_all_problems_are_reported_at_once() -> None:
    text = "id: x\nbogus: 1\nsteps:\n  - id: a\n    action: nope.nope\n  - id: a\n    action: core.log\n"
    found = problems(text)
    messages = " | ".join(m for _, _, m in found)
    assert "unknown key 'bogus'" in messages
    assert "unknown action 'nope.nope'" in messages
    assert "duplicate step id 'a'" in messages
    assert "needs input 'message'" in messages


def test_secrets_are_refused_outside_with() -> None:
    text = (
        "id: x\nsteps:\n  - id: a\n    action: core.log\n"
        "    if: \"${{ secrets.k == 'x' }}\"\n    with: {message: m}\n"
    )
    assert any("secrets may only be used in 'with'" in m for _, _, m in problems(text))


def test_cli_validate_contract(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("id: x\nsteps:\n  - id: a\n    action: core.nope\n")
    good = tmp_path / "good.yaml"
    good.write_text(GOOD)
    db_url = f"sqlite:///{tmp_path / 'b.db'}"
    proc = run_cli("workflow", "validate", str(bad), "--json", db_url=db_url)
    assert proc.returncode == 1
    doc = orjson.loads(proc.stdout)
    assert doc == {"ok": False, "errors": [{"line": 4, "column": 13, "message": doc["errors"][0]["message"]}]}
    assert "core.nope" in doc["errors"][0]["message"]
    proc = run_cli("workflow", "validate", str(good), "--json", db_url=db_url)
    assert proc.returncode == 0, proc.stderr
    assert orjson.loads(proc.stdout) == {"ok": True, "errors": []}


def test_cli_schema_is_json_schema(tmp_path: Path) -> None:
    proc = run_cli("workflow", "schema", db_url=f"sqlite:///{tmp_path / 'b.db'}")
    assert proc.returncode == 0, proc.stderr
    schema = orjson.loads(proc.stdout)
    assert schema["required"] == ["id", "steps"]
    assert "approval" in schema["$defs"]["step"]["properties"]


def test_a_uses_step_is_checked_against_the_sub_workflows_inputs() -> None:
    child, found = validate_text(
        "id: child\ninputs:\n  host: {type: string}\n  days: {type: integer, default: 7}\n"
        "steps:\n  - {id: a, action: core.log, with: {message: m}}\n"
    )
    assert child is not None and not found

    def resolver(ref: str, version: int | None) -> Any:
        return child if ref == "child" else None

    def problems_with(with_: str) -> list[tuple[int, int, str]]:
        text = f"id: parent\nsteps:\n  - id: sub\n    uses: child\n    with: {with_}\n"
        return [(p.line, p.column, p.message) for p in validate_text(text, resolver=resolver)[1]]

    assert problems_with("{host: \"${{ 'ws' ~ '1' }}\"}") == []  # an expression: checked when it runs
    assert problems_with("{host: ws1, days: 3}") == []
    assert problems_with('{host: ws1, days: "3"}') == []  # the run reads "3" as an integer too
    assert problems_with("{host: ws1, colour: red}") == [
        (5, 23, "sub-workflow 'child' has no input 'colour' (inputs: host, days)")
    ]
    assert problems_with("{days: 3}") == [(5, 11, "sub-workflow 'child' needs input 'host' (string)")]
    assert problems_with("{host: ws1, days: soon}") == [
        (5, 29, "input 'days' of sub-workflow 'child' must be of type integer")
    ]
