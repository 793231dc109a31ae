"""One store and one launched engine (DBOS) for the runtime tests, a tenant with an approver, a blocklist
and a case, and a tiny test-only agent whose tools are an agent tool defined here and real actions:
``core.log`` (read), ``cases.comment`` (low) and ``edl.add`` (high: needs an approval by policy)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import pytest
from pydantic import BaseModel

from bastion.agents.spec import AgentDeps, AgentSpec, Call, Finish, Seen, Task, agent_tool, register_agent
from bastion.model import Role, Severity
from bastion.store import Database, TenantScope
from bastion.tenancy.connections import set_connection
from bastion.tenancy.service import add_user, create_tenant

AGENT = "rt_test"
HOSTS = {"web-01": {"owner": "alice", "criticality": "high"}, "db-02": {"owner": "bob", "criticality": "low"}}


def lookup_host(deps: AgentDeps, host: str) -> dict[str, Any]:
    """Look a host up in the (test) inventory.

    Args:
        host: the host name
    """
    if host not in HOSTS:
        raise ValueError(f"no host {host!r} in the inventory")
    return {"host": host, **HOSTS[host], "tenant": deps.tenant_id}


class Verdict(BaseModel):
    verdict: Literal["malicious", "suspicious", "benign"]
    summary: str


def reason(task: Task, seen: list[Seen]) -> list[Call] | Finish:
    """Look the host up; a high-criticality host gets its IP blocked (high impact) and a case comment."""
    host = str(task.input.get("host", ""))
    done = {s.tool for s in seen}
    if "rt_lookup_host" not in done:
        return [Call("rt_lookup_host", {"host": host}, why="who owns the host and how critical is it")]
    found = next(s for s in seen if s.tool == "rt_lookup_host")
    if found.error:
        return Finish({"verdict": "benign", "summary": f"unknown host: {found.error}"})
    if found.result["criticality"] == "high" and "edl.add" not in done:
        return [
            Call("edl.add", {"list": "blocked", "value": task.input["ip"], "reason": "agent"}, why="contain"),
        ]
    if task.case_id and "cases.comment" not in done:
        return [Call("cases.comment", {"case_id": task.case_id, "body": f"owner {found.result['owner']}"})]
    blocked = next((s for s in seen if s.tool == "edl.add"), None)
    outcome = (
        "not needed"
        if blocked is None
        else ("done" if blocked.error is None else f"not done ({blocked.error})")
    )
    return Finish(
        {"verdict": "suspicious", "summary": f"{host} owned by {found.result['owner']}; block {outcome}"}
    )


SPEC = AgentSpec(
    name=AGENT,
    title="Runtime test agent",
    instructions="You check a host and contain it when it is critical.",
    tools=("rt_lookup_host", "core.log", "cases.comment", "edl.add"),
    output=Verdict,
    reasoner=reason,
    max_steps=6,
    max_tokens=5_000,
    max_seconds=120.0,
)


def _budget(name: str, **budget: Any) -> AgentSpec:
    return AgentSpec(
        name=name,
        title="t",
        instructions="log",
        tools=("core.log",),
        output=Verdict,
        reasoner=reason,
        **budget,
    )


BUDGET_STEPS = _budget("rt_budget_steps", max_steps=3)
BUDGET_TOKENS = _budget("rt_budget_tokens", max_tokens=1_000)
BUDGET_CLOCK = _budget("rt_budget_clock", max_seconds=0.001)


@pytest.fixture(scope="package", autouse=True)
def test_agents() -> Iterator[None]:
    """Register the test-only agents and tool while these tests run, and only then, so that tests that
    list every agent or tool never see them."""
    from bastion.agents import spec as registry

    agent_tool("rt_lookup_host")(lookup_host)
    specs = [register_agent(s) for s in (SPEC, BUDGET_STEPS, BUDGET_TOKENS, BUDGET_CLOCK)]
    yield
    for s in specs:
        registry._AGENTS.pop(s.name, None)
    registry._TOOLS.pop("rt_lookup_host", None)


@pytest.fixture(scope="package")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    from bastion.cases.service import open_case
    from bastion.connectors import edl
    from bastion.respond.runtime import Executor

    tmp: Path = tmp_path_factory.mktemp("agents-runtime")
    db = Database(f"sqlite:///{tmp / 'bastion.db'}")
    db.migrate()
    tenant, _ = create_tenant(db, "acme")
    add_user(db, "acme", "alice", Role.APPROVER)
    edl.create_list(db, tenant.id, "blocked", actor="test")
    with db.write() as conn:
        case = open_case(TenantScope(conn, tenant.id), "user:bob", "Odd traffic from web-01", Severity.HIGH)
    executor = Executor(db)
    executor.launch()
    world = {"db": db, "tenant": tenant.id, "case": case.id, "executor": executor}
    try:
        yield world
    finally:
        world["executor"].shutdown()  # a test may have replaced it (restarting the engine)
        db.dispose()


def use_llm(world: dict[str, Any], url: str | None, api_key: str | None = None) -> None:
    """Point the tenant's ``llm`` connection at ``url`` (None: offline)."""
    from bastion.tenancy.secrets import set_secret

    settings = {"provider": "openai", "model": "scripted-1"} if url else {"provider": "none"}
    set_connection(
        world["db"],
        world["tenant"],
        "llm",
        {"base_url": url or "http://127.0.0.1:9/v1", "settings": settings, "allow_private": True},
        actor="test",
    )
    if api_key:
        set_secret(world["db"], world["tenant"], "llm_api_key", api_key, actor="test")
