"""Hostile or careless workflow files (alias bombs, loops, deep nesting, unreadable characters, values
out of range) come back as problems with a line and column, through the validator, the real CLI and the
real API, instead of eating memory or escaping as exceptions."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from bastion.respond.loader import MAX_ALIAS_NODES, MAX_DEPTH
from bastion.respond.model import MAX_DURATION_S, RetrySpec
from bastion.respond.validate import validate_text
from bastion.store import Database
from bastion.tenancy.service import create_tenant
from tests.conftest import run_cli, serving

HEAD = "id: x\nsteps:\n  - {id: a, action: core.log, with: {message: m}}\n"


def laughs(levels: int = 5, width: int = 10) -> str:
    """The audit's "billion laughs": each anchor aliases the previous one ``width`` times."""
    lines = ["vars:", "  l0: &l0 [" + ", ".join(["lol"] * width) + "]"]
    for i in range(1, levels + 1):
        lines.append(f"  l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * width) + "]")
    return HEAD + "\n".join(lines) + "\n"


def nested(depth: int) -> str:
    return HEAD + "vars:\n  x: " + "[" * depth + "]" * depth + "\n"


def with_expression(expression: str) -> str:
    return f'id: x\nsteps:\n  - {{id: a, action: core.log, with: {{message: "${{{{ {expression} }}}}"}}}}\n'


def deep_expression(depth: int) -> str:
    return with_expression("(" * depth + "1" + ")" * depth)


def step(extra: str) -> str:
    """One for_each step with ``extra`` lines (its keys from line 6)."""
    return (
        "id: x\nsteps:\n  - id: a\n    action: core.log\n    for_each: [1]\n"
        + extra
        + "    with: {message: m}\n"
    )


def problems(text: str) -> list[tuple[int, int, str]]:
    _, found = validate_text(text)
    return [(p.line, p.column, p.message) for p in found]


@pytest.mark.parametrize(
    ("text", "line", "column", "fragment"),
    [
        (laughs(), 8, 47, f"aliases expand the document by more than {MAX_ALIAS_NODES} values"),
        ("null\n", 1, 1, "the document is null, not a workflow"),  # was {"ok": true}
        (HEAD + "vars:\n  a: &a [*a]\n", 5, 10, "alias *a refers to a collection it is in"),
        (HEAD + "vars:\n  a: &a {b: [1, {c: *a}]}\n", 5, 21, "alias *a refers to a collection it is in"),
        (nested(5000), 5, 6 + MAX_DEPTH - 2, f"nesting deeper than {MAX_DEPTH} levels"),
        (  # shallow where written, too deep once the alias is expanded
            HEAD + "vars:\n  a: &a " + "[" * 60 + "]" * 60 + "\n  b: " + "[" * 60 + "*a" + "]" * 60 + "\n",
            6,
            66,
            f"alias *a makes nesting deeper than {MAX_DEPTH} levels",
        ),
        (deep_expression(5000), 3, 48, "expression nested too deeply"),
        (with_expression(" + ".join(["1"] * 2000)), 3, 48, "expression nested too deeply"),
        (HEAD.replace("message: m", 'message: "m\x00"'), 3, 49, "character U+0000 is not allowed"),
        (HEAD + "vars: {v: \x1b}\n", 4, 11, "character U+001B is not allowed"),
        (  # bytes that are not UTF-8, as text read with errors="surrogateescape"
            (HEAD + "vars: {v: caf\xe9}\n").encode("latin-1").decode("utf-8", "surrogateescape"),
            4,
            14,
            "invalid UTF-8: byte 0xe9",
        ),
        (step('    timeout: "99999999999999999999d"\n'), 6, 14, "at most 3650d (ten years)"),
        (step("    timeout: .inf\n"), 6, 14, "at most 3650d (ten years)"),
        (step("    timeout: 1000000000000000000000\n"), 6, 14, "integer out of range"),
        (
            step("    concurrency: 100000000000000\n"),
            6,
            18,
            "'concurrency' must be a whole number from 1 to 100",
        ),
        (step("    concurrency: 1e23\n"), 6, 18, "'concurrency' must be a whole number from 1 to 100"),
        (step("    retry: {max_attempts: 2, interval: 5300w}\n"), 6, 40, "at most 3650d"),
        (
            step("    retry: {max_attempts: 2, backoff: .nan}\n"),
            6,
            39,
            "'backoff' must be a number from 1 to 100",
        ),
        (
            step("    retry: 100000\n"),
            6,
            12,
            "'retry' (the number of attempts) must be a whole number from 1 to 100",
        ),
        (
            step("    approval: {roles: [approver], quorum: 1000000, timeout: 99999d}\n"),
            6,
            43,
            "'quorum' must be a whole number from 1 to 100",
        ),
        (
            step("    approval: {roles: [approver], quorum: 1000000, timeout: 99999d}\n"),
            6,
            61,
            "at most 3650d",
        ),
        (HEAD + "vars: {v: 0x" + "f" * 5000 + "}\n", 4, 11, "integer out of range"),
        (HEAD + "vars: {v: 9223372036854775808}\n", 4, 11, "integer out of range"),
        (HEAD + "vars: {v: 2024-13-01}\n", 4, 11, "invalid value: month must be in 1..12"),
        (HEAD + "vars: {v: !!int x}\n", 4, 11, "invalid value"),
        (HEAD + "vars: {v: !!binary AAAA}\n", 4, 11, "binary values (!!binary) are not supported"),
    ],
    ids=[
        "billion-laughs",
        "null-document",
        "alias-loop",
        "alias-loop-nested",
        "deep-nesting",
        "deep-through-alias",
        "deep-expression",
        "long-operator-chain",
        "nul",
        "control-character",
        "invalid-utf8",
        "timeout-huge",
        "timeout-inf",
        "timeout-huge-int",
        "concurrency-huge",
        "concurrency-float-text",
        "retry-interval-huge",
        "backoff-nan",
        "retry-attempts-huge",
        "quorum-huge",
        "approval-timeout-huge",
        "int-5000-digits",
        "int-over-64-bit",
        "bad-date",
        "bad-int-tag",
        "binary",
    ],
)
def test_refused_with_its_position(text: str, line: int, column: int, fragment: str) -> None:
    found = problems(text)
    hit = [(ln, col) for ln, col, m in found if fragment in m]
    assert hit == [(line, column)], found


def test_what_stays_within_the_limits_is_accepted() -> None:
    assert problems(nested(MAX_DEPTH - 2)) == []  # the root mapping and 'x' are two levels
    assert problems(laughs(levels=2)) == []  # 110 values copied by aliases
    assert problems(HEAD + "vars: {v: -9223372036854775808, w: 9223372036854775807}\n") == []
    assert problems(deep_expression(20)) == []
    assert problems(step('    concurrency: 100\n    timeout: "3650d"\n')) == []
    assert problems(step("    approval: {roles: [approver], quorum: 100, timeout: 520w}\n")) == []


def test_retry_delays_stop_at_the_longest_duration() -> None:
    assert RetrySpec(max_attempts=3, interval_s=2, backoff=2).delay(3) == 8
    assert RetrySpec(max_attempts=100, interval_s=MAX_DURATION_S, backoff=100).delay(100) == MAX_DURATION_S


def test_cli_validate_json_reports_each_refusal(tmp_path: Path) -> None:
    db_url = f"sqlite:///{tmp_path / 'b.db'}"
    cases: dict[str, tuple[bytes, int, int]] = {
        "laughs": (laughs().encode(), 8, 47),
        "loop": ((HEAD + "vars:\n  a: &a [*a]\n").encode(), 5, 10),
        "deep": (nested(5000).encode(), 5, 6 + MAX_DEPTH - 2),
        "expression": (deep_expression(5000).encode(), 3, 48),
        "nul": (HEAD.replace("message: m", 'message: "m\x00"').encode(), 3, 49),
        "bounds": (
            step('    concurrency: 100000000000000\n    timeout: "99999999999999999999d"\n').encode(),
            6,
            18,
        ),
    }
    for name, (content, line, column) in cases.items():
        path = tmp_path / f"{name}.yaml"
        path.write_bytes(content)
        proc = run_cli("workflow", "validate", str(path), "--json", db_url=db_url)
        assert proc.returncode == 1, (name, proc.stderr)
        doc = orjson.loads(proc.stdout)
        assert doc["ok"] is False and doc["errors"], name
        assert all(set(e) == {"line", "column", "message"} for e in doc["errors"]), doc
        assert (doc["errors"][0]["line"], doc["errors"][0]["column"]) == (line, column), (name, doc)


@pytest.fixture
def api(sqlite_db: Database) -> Iterator[tuple[Any, str]]:
    _, key = create_tenant(sqlite_db, "acme")
    with serving(sqlite_db) as running:
        yield running, key


def test_api_answers_422_with_positions_and_keeps_what_was_stored(api: tuple[Any, str]) -> None:
    server, key = api
    with server.client(key) as c:
        assert c.post("/api/v1/workflows", content=HEAD).status_code == 201
        for text, line, column in [
            (laughs().replace("id: x", "id: y"), 8, 47),
            (HEAD.replace("id: x", "id: y") + "vars:\n  a: &a [*a]\n", 5, 10),
            (nested(5000).replace("id: x", "id: y"), 5, 6 + MAX_DEPTH - 2),
            (deep_expression(5000).replace("id: x", "id: y"), 3, 48),
            (HEAD.replace("id: x", "id: y").replace("message: m", 'message: "m\x00"'), 3, 49),
            (step("    concurrency: 100000000000000\n").replace("id: x", "id: y"), 6, 18),
        ]:
            r = c.post("/api/v1/workflows", content=text.encode())
            assert r.status_code == 422, r.text
            assert (r.json()["errors"][0]["line"], r.json()["errors"][0]["column"]) == (line, column), r.text
        listed = c.get("/api/v1/workflows").json()["workflows"]
        assert [(w["workflow_id"], w["version"]) for w in listed] == [("x", 1)]
