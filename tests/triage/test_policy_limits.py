"""Numbers a triage policy or a suppression may hold: out-of-range ones are refused with the field and
its range (HTTP and CLI), a policy stored before the ranges were checked is clamped so ingest goes on,
and an expiry no 64-bit column holds is a 400, never a 500. Real server on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from bastion.store import Database
from bastion.store.triage import triage_policies
from bastion.tenancy.service import create_tenant
from bastion.triage.policy import load_policy
from tests.conftest import RunningServer, run_cli, serving

ALERT = {
    "title": "Suspicious PowerShell",
    "severity": "high",
    "source": "edr",
    "observables": [{"type": "host", "value": "ws-1"}, {"type": "user", "value": "alice"}],
}


@pytest.fixture
def api(db: Database) -> Iterator[tuple[RunningServer, str, str]]:
    with serving(db) as running:
        tenant, key = create_tenant(db, "acme")
        yield running, tenant.id, key


@pytest.mark.parametrize(
    ("document", "field", "allowed"),
    [
        ({"dedupe": {"window_s": 4611686018427387904}}, "dedupe.window_s", "0-31536000"),
        ({"dedupe": {"window_s": -1}}, "dedupe.window_s", "0-31536000"),
        (
            {"dedupe": {"rules": [{"fields": ["rule_id"], "window_s": 10**15}]}},
            "dedupe.rules[0].window_s",
            "0-31536000",
        ),
        ({"history_days": 1000000000000000}, "history_days", "0-365"),
        ({"weights": {"intel": -5}}, "weights.intel", "0-100"),
        ({"correlation": {"window_s": 10**12}}, "correlation.window_s", "0-31536000"),
        (
            {"sla": {"targets": {"high": {"acknowledge_s": -1, "contain_s": 60, "resolve_s": 600}}}},
            "sla.targets.high.acknowledge_s",
            "1-31536000",
        ),
        ({"routing": {"rules": [{"queue": "vip", "tier": 7}]}}, "routing.rules[0].tier", "1-3"),
        ({"manual_minutes": {"action.default": -3}}, "manual_minutes.action.default", "0-10080"),
        ({"assistant": {"min_confidence": 101}}, "assistant.min_confidence", "0-100"),
    ],
)
def test_policy_put_refuses_numbers_out_of_range_and_ingest_goes_on(
    api: tuple[RunningServer, str, str], document: dict[str, Any], field: str, allowed: str
) -> None:
    server, tenant, key = api
    with server.client(key) as c:
        r = c.put("/api/v1/triage/policy", json=document)
        assert r.status_code == 400, r.text
        error = r.json()["error"]
        assert field in error and allowed in error, error
        for _ in range(2):  # a new alert, then a repeat that dedupe folds into it
            r = c.post("/api/v1/alerts", json=ALERT)
            assert r.status_code == 200, r.text
        assert r.json()["deduplicated"] == 1
    with server.db.read() as conn:
        assert load_policy(conn, tenant).dedupe.window_s == 3600  # nothing was stored


def test_policy_put_takes_the_bounds_themselves(api: tuple[RunningServer, str, str]) -> None:
    server, _, key = api
    edge = {
        "dedupe": {"window_s": 365 * 86400},
        "history_days": 365,
        "weights": {"intel": 0, "severity": 100},
        "correlation": {"open_case_score": 101},  # opens no case by score
        "routing": {"rules": [{"queue": "vip", "tier": 3}]},
    }
    with server.client(key) as c:
        r = c.put("/api/v1/triage/policy", json=edge)
        assert r.status_code == 200, r.text
        assert r.json()["policy"]["dedupe"]["window_s"] == 31536000
        assert c.post("/api/v1/alerts", json=ALERT).status_code == 200


def test_a_stored_out_of_range_policy_is_clamped_and_does_not_stop_ingest(
    api: tuple[RunningServer, str, str],
) -> None:
    server, tenant, key = api
    stored = {  # as a store written before the ranges were checked may hold
        "dedupe": {"window_s": 4611686018427387904},
        "history_days": 1000000000000000,
        "weights": {"intel": -5},
        "autoclose": {"enabled": False},
    }
    with server.db.write() as conn:
        conn.execute(
            triage_policies.insert().values(
                tenant_id=tenant, document=orjson.dumps(stored).decode(), updated=1, updated_by="old"
            )
        )
    with server.client(key) as c:
        for _ in range(2):
            r = c.post("/api/v1/alerts", json=ALERT)
            assert r.status_code == 200, r.text
        assert r.json()["deduplicated"] == 1
        r = c.post("/api/v1/webhooks/generic", json=ALERT)
        assert r.status_code == 200, r.text
        policy = c.get("/api/v1/triage/policy").json()["policy"]
    assert policy["dedupe"]["window_s"] == 31536000 and policy["history_days"] == 365
    assert policy["weights"]["intel"] == 0 and policy["autoclose"]["enabled"] is False


def test_policy_set_command_refuses_out_of_range_numbers(sqlite_db: Database, tmp_path: Path) -> None:
    tenant = create_tenant(sqlite_db, "acme")[0].id
    for text, field in (
        ("dedupe:\n  window_s: 4611686018427387904\n", "dedupe.window_s"),
        ("weights:\n  intel: .nan\n", "weights.intel"),
    ):
        bad = tmp_path / "bad.yaml"
        bad.write_text(text)
        proc = run_cli("triage", "policy", "set", "-t", "acme", str(bad), db_url=sqlite_db.url)
        assert proc.returncode == 2 and proc.stderr.startswith("error:") and field in proc.stderr, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    with sqlite_db.read() as conn:
        assert load_policy(conn, tenant).dedupe.window_s == 3600


@pytest.mark.parametrize(
    ("body", "word"),
    [
        ({"source": "x", "expires": "9999999999999999w"}, "too far"),
        ({"source": "x", "expires": 10**30}, "expir"),
        ({"source": "x", "expires": True}, "expires"),
        ({"entity": "ipv4:999.1.1.1", "expires": "7d"}, "not a valid ipv4"),
        ({"entity": {"type": "sha256", "value": "zz"}, "expires": "7d"}, "sha256"),
    ],
)
def test_suppression_expiry_and_entity_are_validated(
    api: tuple[RunningServer, str, str], body: dict[str, Any], word: str
) -> None:
    server, _, key = api
    with server.client(key) as c:
        r = c.post("/api/v1/triage/suppressions", json=body)
        assert r.status_code == 400 and word in r.json()["error"], r.text
        assert c.get("/api/v1/triage/suppressions").json()["suppressions"] == []


def test_suppression_entity_is_stored_canonical_and_wildcards_still_work(
    api: tuple[RunningServer, str, str],
) -> None:
    server, _, key = api
    with server.client(key) as c:
        r = c.post("/api/v1/triage/suppressions", json={"entity": "domain:Evil.Example.", "expires": "7d"})
        assert r.status_code == 201 and r.json()["entity"]["value"] == "evil.example", r.text
        r = c.post("/api/v1/triage/suppressions", json={"entity": "ipv4:10.0.0.*", "expires": "7d"})
        assert r.status_code == 201 and r.json()["entity"]["value"] == "10.0.0.*", r.text
        doc = {**ALERT, "observables": [{"type": "ipv4", "value": "10.0.0.7"}]}
        assert c.post("/api/v1/alerts", json=doc).json()["suppressed"] == 1


def test_close_with_an_endless_suppression_is_a_400_and_the_alert_stays_open(
    api: tuple[RunningServer, str, str],
) -> None:
    server, _, key = api
    with server.client(key) as c:
        r = c.put("/api/v1/triage/policy", json={"autoclose": {"enabled": False}})
        assert r.status_code == 200, r.text
        (alert_id,) = c.post("/api/v1/alerts", json=ALERT).json()["ids"]
        for suppress_for in ("9999999999999999w", 10**30):
            r = c.post(
                f"/api/v1/alerts/{alert_id}/close",
                json={"verdict": "false_positive", "suppress_similar": True, "suppress_for": suppress_for},
            )
            assert r.status_code == 400 and "expir" in r.json()["error"], r.text
        r = c.post(  # a boolean was read as 1 (epoch ms): "in the past"
            f"/api/v1/alerts/{alert_id}/close",
            json={"verdict": "false_positive", "suppress_similar": True, "suppress_for": True},
        )
        assert r.status_code in (400, 422) and "suppress_for" in r.text, r.text
        assert c.get(f"/api/v1/alerts/{alert_id}").json()["status"] != "closed"
        assert c.get("/api/v1/triage/suppressions").json()["suppressions"] == []
