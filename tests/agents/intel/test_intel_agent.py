"""The threat intelligence agent on a store seeded with the demo intrusion and real intel: the offline
reasoner picks its tools by the subject's kind, pivots on what comes back, and writes an assessment whose
confidence is derived from the intel sources and the sightings; the command runs it through the durable
runtime (recorded and audited)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from sqlalchemy import select

from bastion.agents.offline import play
from bastion.agents.spec import Finish, Seen, Task, get_agent
from bastion.agents.specialists.intel import IntelAssessment, reason, subject_of
from bastion.demo import INDICATORS
from bastion.store.tables import audit_log
from tests.agents.tools.seed import Seeded, seed
from tests.conftest import run_cli

C2 = INDICATORS["c2_ip"]


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> Iterator[Seeded]:
    seeded = seed(tmp_path_factory.mktemp("intel"), shared_data)
    yield seeded
    seeded.db.dispose()


def assess(env: Seeded, value: str, **extra: str) -> tuple[IntelAssessment, list[dict[str, object]]]:
    task = Task(agent="intel", objective="assess", input={"value": value, **extra}, tenant_id=env.tenant_id)
    played = play("intel", task, env.deps())
    assert played.status == "succeeded", played
    return IntelAssessment.model_validate(played.output), played.plan


def test_the_subject_kind_decides_the_first_tools() -> None:
    def first(value: str) -> set[str]:
        decision = reason(Task(agent="intel", objective="", input={"value": value}), [])
        assert isinstance(decision, list)
        return {c.tool for c in decision}

    assert first("203.0.113.77") == {"intel_lookup", "search_events", "search_alerts", "related_cases"}
    assert first("T1059.001") == {"attack_lookup", "intel_search", "search_alerts", "related_cases"}
    assert first("G0006") == {"attack_lookup"}
    assert first("case:12") == {"get_case", "related_cases"}
    assert first("Operation Omega") == {"intel_search", "attack_lookup"}
    assert subject_of(Task(agent="intel", objective="", input={"value": "T1059.001"}))[0] == "technique"
    assert subject_of(Task(agent="intel", objective="", input={"value": "APT1"}))[0] == "actor"
    assert subject_of(Task(agent="intel", objective="", input={"value": "evil.example"}))[2] == "domain"
    # With every result in, the reasoner stops asking and assesses.
    seen = [Seen("intel_lookup", {"value": "10.9.9.9"}, result={"matches": [], "warninglists": []})]
    for tool, args in (("search_events", {"value": "10.9.9.9", "limit": 50}),
                       ("search_alerts", {"entity": "10.9.9.9", "limit": 50}),
                       ("related_cases", {"value": "10.9.9.9"})):  # fmt: skip
        seen.append(Seen(tool, args, result={"events": [], "alerts": [], "cases": []}))
    done = reason(Task(agent="intel", objective="", input={"value": "10.9.9.9"}), seen)
    assert isinstance(done, Finish) and done.output["verdict"] == "unknown" and done.output["confidence"] == 5


def test_a_sighted_c2_address_is_malicious_with_explained_confidence(env: Seeded) -> None:
    out, plan = assess(env, C2)
    assert out.subject_kind == "indicator" and out.indicator_type == "ipv4"
    assert out.verdict == "malicious" and out.risk in ("high", "critical")
    assert out.intel_matches[0]["indicator"] == C2
    assert out.sightings.events >= 3 and out.sightings.alerts >= 1
    assert "WS-0142" in out.sightings.hosts or "nw-fw-01" in out.sightings.hosts
    assert [c.id for c in out.related_cases] == [env.case_id]
    # the confidence starts at the (decayed) intel confidence and each adjustment is written down
    assert out.confidence_basis[0].startswith(str(out.intel_matches[0]["confidence"]))
    assert any("stored event" in b for b in out.confidence_basis)
    assert out.confidence_basis[-1] == f"= {out.confidence}"
    kinds = {s.kind for s in out.sources}
    assert {"intel", "event", "alert", "case"} <= kinds
    assert C2 in out.summary and "demo-feed" in out.summary
    assert {p["tool"] for p in plan} >= {"intel_lookup", "search_events", "search_alerts", "related_cases"}


def test_a_known_benign_address_is_benign(env: Seeded) -> None:
    out, _ = assess(env, "8.8.8.8")
    assert out.verdict == "benign" and out.risk == "none"
    assert "public-dns-v4" in out.known_benign
    assert out.sightings.events == 0 and not out.intel_matches


def test_an_actor_is_assessed_from_its_indicators_and_their_sightings(env: Seeded) -> None:
    out, plan = assess(env, "admin@338")
    assert out.subject_kind == "actor"
    assert "admin@338" in out.actors and len(out.intel_matches) >= 10
    assert any(m.startswith("PIVY") for m in out.malware)
    # the reasoner pivoted: it looked for the actor's indicators in the stored events
    pivots = [p for p in plan if p["tool"] == "search_events"]
    assert pivots and all(p["args"]["value"] in {m["value"] for m in out.intel_matches} for p in pivots)
    assert out.sightings.events == 0 and out.verdict == "unknown" and out.risk == "low"
    assert "not seen" in out.summary


def test_a_technique_and_a_case(env: Seeded) -> None:
    tech, _ = assess(env, "T1059.001")
    assert tech.techniques[0].id == "T1059.001" and tech.techniques[0].name == "PowerShell"
    assert tech.sightings.alerts >= 1 and env.case_id in [c.id for c in tech.related_cases]
    assert tech.verdict == "suspicious"

    case, plan = assess(env, "case:1")
    assert case.subject_kind == "case" and case.sightings.alerts >= 5
    assert {m["indicator"] for m in case.intel_matches} >= {C2}
    looked_up = {p["args"]["value"] for p in plan if p["tool"] == "intel_lookup"}
    assert C2 in looked_up  # every IOC observable of the case was looked up
    assert {"tool": "search_events", "args": {"value": C2, "limit": 20}} in [
        {k: p[k] for k in ("tool", "args")} for p in plan
    ]  # and the ones intel knows were looked for in the events
    assert case.sightings.events >= 3
    assert case.verdict == "malicious" and case.risk == "critical"


def test_the_agent_allows_only_read_tools() -> None:
    spec = get_agent("intel")
    assert set(spec.tools) == {
        "intel_lookup", "intel_search", "attack_lookup", "search_events", "search_alerts", "get_alert",
        "get_case", "related_cases",
    }  # fmt: skip
    assert spec.output is IntelAssessment


def test_command_runs_through_the_runtime_and_is_audited(env: Seeded, tmp_path: Path) -> None:
    url = f"sqlite:///{env.path}"
    quick = {"BASTION_WARNINGLISTS_PATH": str(tmp_path)}  # no lists: the verdict here rests on intel
    proc = run_cli("agent", "intel", C2, "--tenant", "demo", "--case", "1", "--json", db_url=url, env=quick)
    assert proc.returncode == 0, proc.stderr
    view = orjson.loads(proc.stdout)
    assert view["status"] == "succeeded" and view["model"] == "offline"
    assert view["output"]["verdict"] == "malicious" and view["output"]["subject"] == C2
    assert any(p["tool"] == "intel_lookup" for p in view["plan"])
    with env.db.read() as conn:
        actions = {
            r.action
            for r in conn.execute(select(audit_log.c.action).where(audit_log.c.target_id == view["run_id"]))
        }
    assert "agent.run.start" in actions
    shown = run_cli("agent", "runs", "show", view["run_id"], "--tenant", "demo", "--json", db_url=url)
    assert shown.returncode == 0 and view["run_id"] in shown.stdout

    bad = run_cli("agent", "intel", C2, "--tenant", "demo", "--case", "999", db_url=url)
    assert bad.returncode == 2 and "no case 999" in bad.stderr
