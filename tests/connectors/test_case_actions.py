"""``cases.update`` and ``cases.close`` through the registry on a real (SQLite) store: they act through
the case service, so each change shows in the case's timeline and audit, and mistakes become ActionErrors."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import bastion.connectors.cases  # noqa: F401  (registers the cases.* actions in this process)
from bastion.cases.timeline import case_timeline
from bastion.connectors import ActionContext, ActionError, get_action
from bastion.model import CaseStatus, Severity, Verdict
from bastion.respond import engine
from bastion.store import Database, TenantScope
from bastion.tenancy.service import create_tenant
from tests.cases.helpers import alert


@pytest.fixture
def env(tmp_path: Path) -> Iterator[dict[str, Any]]:
    db = Database(f"sqlite:///{tmp_path / 'bastion.db'}")
    db.migrate()
    tenant, _ = create_tenant(db, "acme")
    engine.configure(db)
    yield {"db": db, "tenant": tenant.id}
    db.dispose()


def call(env: dict[str, Any], action_id: str, inputs: dict[str, Any], **kw: Any) -> Any:
    defn = get_action(action_id)
    assert defn is not None, action_id
    ctx = ActionContext(tenant_id=env["tenant"], run_id="run-77", **kw)

    async def go() -> Any:
        return await defn.fn(**inputs, ctx=ctx)

    return asyncio.run(go())


def test_cases_update_changes_fields_through_the_service(env: dict[str, Any]) -> None:
    made = call(
        env, "cases.create", {"title": "Leaked credential", "severity": "medium"}, idempotency_key="k1"
    )
    out = call(
        env,
        "cases.update",
        {
            "case_id": made["number"],
            "title": "Leaked credential for bob",
            "severity": "high",
            "assignee": "alice",
            "custom_fields": {"ticket": "SEC-1", "pagerduty": "bastion-abc"},
        },
    )
    assert out["title"] == "Leaked credential for bob" and out["severity"] == "high"
    assert out["assignee"] == "alice"
    assert out["custom_fields"] == {"ticket": "SEC-1", "pagerduty": "bastion-abc"}
    again = call(
        env, "cases.update", {"case_id": made["id"], "assignee": "", "custom_fields": {"pagerduty": None}}
    )
    assert again["assignee"] is None and again["custom_fields"] == {"ticket": "SEC-1"}
    with env["db"].read() as conn:
        scope = TenantScope(conn, env["tenant"])
        case = scope.cases.get(made["id"])
        assert case is not None and case.severity == Severity.HIGH and case.assignee is None
        kinds = [e.kind for e in case_timeline(conn, env["tenant"], made["id"])]
    assert {"case.updated", "assigned", "field.set", "field.unset"} <= set(kinds)


def test_cases_update_mistakes(env: dict[str, Any]) -> None:
    made = call(env, "cases.create", {"title": "t"})
    with pytest.raises(ActionError, match="severity"):
        call(env, "cases.update", {"case_id": made["id"], "severity": "apocalyptic"})
    with pytest.raises(ActionError, match="title"):
        call(env, "cases.update", {"case_id": made["id"], "title": "  "})
    with pytest.raises(ActionError):
        call(env, "cases.update", {"case_id": 999, "title": "x"})


def test_cases_close_needs_a_verdict_and_closes_the_alerts(env: dict[str, Any]) -> None:
    with env["db"].write() as conn:
        alert_id = alert(TenantScope(conn, env["tenant"]), "Impossible travel for bob")
    made = call(env, "cases.create", {"title": "Travel", "alert_ids": [alert_id]})
    with pytest.raises(ActionError, match="unknown verdict"):
        call(env, "cases.close", {"case_id": made["id"], "verdict": "maybe"})
    with pytest.raises(ActionError, match="needs a verdict"):
        call(env, "cases.close", {"case_id": made["id"], "verdict": " "})
    out = call(env, "cases.close", {"case_id": made["id"], "verdict": "false_positive", "reason": "VPN exit"})
    assert out == {
        "id": made["id"],
        "number": made["number"],
        "status": "closed",
        "verdict": "false_positive",
    }
    with env["db"].read() as conn:
        scope = TenantScope(conn, env["tenant"])
        case = scope.cases.get(made["id"])
        found = scope.alerts.get(alert_id)
        assert (
            case is not None and case.status == CaseStatus.CLOSED and case.verdict == Verdict.FALSE_POSITIVE
        )
        assert found is not None and found.status.value == "closed"
        closed = [e for e in case_timeline(conn, env["tenant"], made["id"]) if e.kind == "closed"]
    assert closed and "VPN exit" in closed[0].summary
    with pytest.raises(ActionError, match="already closed"):
        call(env, "cases.close", {"case_id": made["id"], "verdict": "true_positive"})
