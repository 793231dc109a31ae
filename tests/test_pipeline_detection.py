"""Detection inside the ingest pipeline: a tenant's enabled packs raise alerts on ingest, through the CLI
and the HTTP API; re-ingesting raises nothing new; suppressions and disabled rules hold; other tenants are
untouched; everything is audited."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from bastion.detect.tenant import DETECTORS, add_pack, add_suppression, set_rule_enabled
from bastion.model import Alert
from bastion.store import Database, TenantRepository, TenantScope
from bastion.tenancy.service import create_tenant
from tests.conftest import RunningServer, cli_json
from tests.detect.test_tenant import RULE_A, RULE_B, sysmon


@pytest.fixture
def packdir(tmp_path: Path) -> Path:
    d = tmp_path / "pack"
    d.mkdir()
    (d / "a.yml").write_text(RULE_A)
    (d / "b.yml").write_text(RULE_B)
    return d


def _alerts(db: Database, tenant: str) -> list[Alert]:
    with db.read() as conn:
        t = TenantRepository(conn).by_name(tenant)
        assert t is not None
        return TenantScope(conn, t.id).alerts.list(limit=1000)[0]


def test_cli_ingest_detects_once_per_event(tmp_path: Path, packdir: Path) -> None:
    url = f"sqlite:///{tmp_path / 'b.db'}"
    cli_json("tenant", "create", "acme", db_url=url)
    cli_json("tenant", "create", "other", db_url=url)
    cli_json("rules", "pack", "add", "local", str(packdir), "--tenant", "acme", "--json", db_url=url)
    events = tmp_path / "events.jsonl"
    lines = [sysmon("C:\\Windows\\System32\\whoami.exe", when=1_780_000_000 + i) for i in range(3)]
    lines.append(sysmon("C:\\Windows\\System32\\whoami.exe", user="NT AUTHORITY\\SYSTEM", when=1_780_000_010))
    lines.append(sysmon("C:\\Windows\\System32\\notepad.exe", when=1_780_000_011))
    events.write_bytes(b"\n".join(orjson.dumps(e) for e in lines) + b"\n")

    first = cli_json("ingest", str(events), "--tenant", "acme", "--json", db_url=url)
    assert first["accepted"] == 5
    db = Database(url)
    try:
        found = _alerts(db, "acme")
        # The three whoami runs (SYSTEM is filtered by the rule, notepad matches none) are one alert to
        # triage: same rule, host and user within the dedupe window, so it counts three sightings.
        assert len(found) == 1
        (alert,) = found
        assert (alert.source, alert.title, alert.count) == ("sigma", "Whoami Execution", 3)
        assert len(alert.event_ids) == 3 and alert.techniques == ["T1033", "T1059.001"]
        second = cli_json("ingest", str(events), "--tenant", "acme", "--json", db_url=url)
        assert (second["accepted"], second["duplicates"]) == (0, 5)
        assert [a.count for a in _alerts(db, "acme")] == [3]
        cli_json("ingest", str(events), "--tenant", "other", "--json", db_url=url)
        assert _alerts(db, "other") == []  # no packs there
        verify = cli_json("audit", "verify", "--tenant", "acme", "--json", db_url=url)
        assert verify["ok"] is True
        with db.read() as conn:
            t = TenantRepository(conn).by_name("acme")
            assert t is not None
            actions = [e.action for e in TenantScope(conn, t.id).audit.entries()]
        assert actions.count("alert.create") == 1
    finally:
        db.dispose()


def test_api_ingest_detects_and_honours_suppressions_and_disabled_rules(
    server: RunningServer, packdir: Path
) -> None:
    DETECTORS.clear()
    db = server.db
    _, key = create_tenant(db, "acme")
    add_pack(db, "acme", "local", str(packdir))
    add_suppression(db, "acme", {"Computer": "ws-quiet"}, reason="lab host")
    set_rule_enabled(db, "acme", "00000000-0000-0000-0000-00000000000b", False)
    quiet = sysmon("C:\\Windows\\System32\\whoami.exe", when=1_780_000_100)
    quiet["Event"]["System"]["Computer"] = "ws-quiet"
    body = [
        sysmon("C:\\Windows\\System32\\whoami.exe", when=1_780_000_101),
        quiet,
        sysmon("C:\\Windows\\System32\\net.exe", when=1_780_000_102),  # rule B is disabled
    ]
    with server.client(key) as c:
        r = c.post("/api/v1/events", json=body)
        assert r.status_code == 200 and r.json()["accepted"] == 3
        listed = c.get("/api/v1/alerts", params={"source": "sigma"}).json()["alerts"]
    assert [a["title"] for a in listed] == ["Whoami Execution"]
    assert listed[0]["severity"] in ("high", 4)


def test_a_new_alert_starts_the_workflows_bound_to_it(server: RunningServer) -> None:
    from bastion.respond import service as respond
    from bastion.store.workflows import WorkflowRepository

    db = server.db
    tenant, key = create_tenant(db, "acme")
    respond.add_workflow(
        db,
        tenant.id,
        "id: triage-edr\ntrigger:\n  alert:\n    source: edr\n"
        "    condition: \"${{ trigger.severity == 'high' }}\"\n"
        "inputs:\n  title: {type: string}\n  alert_id: {type: string}\n"
        'steps:\n  - {id: a, action: core.log, with: {message: "${{ inputs.title }}"}}\n',
        actor="t",
    )
    with server.client(key) as c:
        high = {"title": "Beacon", "severity": "high", "source": "edr", "external_id": "e-1"}
        alert_id = c.post("/api/v1/alerts", json=high).json()["ids"][0]
        c.post("/api/v1/alerts", json={**high, "severity": "low", "external_id": "e-2"})  # condition false
        c.post("/api/v1/alerts", json={**high, "source": "ids", "external_id": "e-3"})  # source differs
        c.post("/api/v1/alerts", json=high)  # the same alert again: not new, no second run
    with db.read() as conn:
        runs = WorkflowRepository(conn, tenant.id).list_runs()
    assert [r["workflow_id"] for r in runs] == ["triage-edr"]
    assert runs[0]["inputs"] == {"title": "Beacon", "alert_id": alert_id}
    assert runs[0]["trigger"]["type"] == "alert"


CORRELATION = """
title: Discovery Burst
id: 00000000-0000-0000-0000-0000000000c1
status: test
description: whoami then net on one host within five minutes
correlation:
  type: temporal_ordered
  rules:
    - 00000000-0000-0000-0000-00000000000a
    - 00000000-0000-0000-0000-00000000000b
  group-by: [Computer]
  timespan: 5m
  generate: {generate}
level: critical
tags: [attack.discovery, attack.t1087]
"""


@pytest.mark.parametrize("generate", [False, True])
def test_correlation_rules_run_on_ingest_per_tenant(
    server: RunningServer, tmp_path: Path, generate: bool
) -> None:
    """A tenant's Sigma correlation rules run inside the ingest pipeline of a long-running server (the
    state lives in the process, like ``bastion up``): whoami then net on one host raises the
    correlation's alert on the event that completes it, in order only; the referenced rules raise their
    own alerts only with ``generate: true``; another tenant's events do not feed its state."""
    DETECTORS.clear()
    pack = tmp_path / "pack"
    pack.mkdir()
    (pack / "a.yml").write_text(RULE_A)
    (pack / "b.yml").write_text(RULE_B)
    (pack / "c.yml").write_text(CORRELATION.format(generate=str(generate).lower()))
    db = server.db
    keys = {}
    for tenant in ("acme", "other"):
        _, keys[tenant] = create_tenant(db, tenant)
        add_pack(db, tenant, "local", str(pack))

    def ingest(tenant: str, *events: dict[str, object]) -> None:
        with server.client(keys[tenant]) as c:
            r = c.post("/api/v1/events", json=list(events))
            assert r.status_code == 200 and r.json()["accepted"] == len(events), r.text

    t0 = 1_780_000_000
    # net before whoami is the wrong order; "other" sees only whoami; then acme's whoami -> net in 2 min
    ingest("acme", sysmon("C:\\Windows\\System32\\net.exe", when=t0))
    ingest("other", sysmon("C:\\Windows\\System32\\whoami.exe", when=t0 + 10))
    ingest("acme", sysmon("C:\\Windows\\System32\\whoami.exe", when=t0 + 60))
    assert not [a for a in _alerts(db, "acme") if a.title == "Discovery Burst"]
    ingest("acme", sysmon("C:\\Windows\\System32\\net.exe", when=t0 + 180))
    ingest("other", sysmon("C:\\Windows\\System32\\net.exe", when=t0 + 700))  # past the 5 minutes
    acme = _alerts(db, "acme")
    burst = [a for a in acme if a.title == "Discovery Burst"]
    assert len(burst) == 1
    (alert,) = burst
    assert alert.severity.name == "CRITICAL" and alert.techniques == ["T1087"]
    assert alert.raw is not None and alert.raw["correlation"]["group"] == {"Computer": "ws1"}
    assert alert.raw["correlation"]["type"] == "temporal_ordered"
    assert len(alert.event_ids) == 1
    own = sorted({a.title for a in acme if a.title != "Discovery Burst"})
    assert own == (["Net Execution", "Whoami Execution"] if generate else [])
    assert not [a for a in _alerts(db, "other") if a.title == "Discovery Burst"]
