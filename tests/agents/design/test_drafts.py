"""Drafts: saved by the construction agent, published only after an approver approves (then stored as
the tenant's next workflow version), rejected on a denial; every step audited."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from bastion.agents import drafts
from bastion.agents.offline import play
from bastion.agents.spec import Task
from bastion.respond.approvals import NotAllowed, decide, get_approval, service
from bastion.store.audit import audit_log
from bastion.store.workflows import WorkflowRepository

from .conftest import Tenant


def _build(tenant: Tenant, objective: str = "Isolate host web-01 and open a case") -> dict[str, Any]:
    task = Task(agent="construct", objective=objective, input={"workflow_id": "contain-host"})
    return play("construct", task, tenant.deps()).output


def _stored(tenant: Tenant) -> list[dict[str, Any]]:
    with tenant.db.read() as conn:
        return WorkflowRepository(conn, tenant.id).list_definitions()


def _audit(tenant: Tenant) -> list[str]:
    with tenant.db.read() as conn:
        rows = conn.execute(select(audit_log.c.action).where(audit_log.c.tenant_id == tenant.id))
        return [r.action for r in rows]


def test_publish_needs_an_approval_then_installs_the_workflow(tenant: Tenant) -> None:
    built = _build(tenant)
    draft_id = built["draft_id"]
    pending = drafts.request_publish(tenant.db, tenant.id, draft_id, actor="user:alice")
    assert pending["status"] == "pending" and pending["approval_id"] == f"draft:{draft_id}"
    assert _stored(tenant) == []  # nothing installed before the decision
    approval = get_approval(tenant.db, tenant.id, f"draft:{draft_id}")
    assert approval.status == "pending" and approval.roles == ["approver"]
    with pytest.raises(NotAllowed):  # four eyes: the requester cannot approve
        decide(
            tenant.db,
            tenant.id,
            f"draft:{draft_id}",
            user="alice",
            decision="approve",
            comment=None,
            channel="web",
        )
    decide(
        tenant.db, tenant.id, f"draft:{draft_id}", user="bob", decision="approve", comment="ok", channel="web"
    )
    stored = _stored(tenant)
    assert [w["workflow_id"] for w in stored] == [built["workflow_id"]]
    with tenant.db.read() as conn:
        source = WorkflowRepository(conn, tenant.id).definition(built["workflow_id"])
    assert source is not None and source["source"] == built["workflow_yaml"]
    assert source["created_by"] == "user:bob"
    final = drafts.get_draft(tenant.db, tenant.id, draft_id)
    assert final["status"] == "published" and final["published_version"] == 1
    actions = _audit(tenant)
    for expected in (
        "agent.draft.save",
        "agent.draft.publish_request",
        "approval.decide",
        "workflow.add",
        "agent.draft.publish",
    ):
        assert expected in actions
    # a second draft of the same workflow becomes version 2
    again = _build(tenant, "Isolate host web-02 and open a case")
    assert again["workflow_id"] == built["workflow_id"]
    drafts.request_publish(tenant.db, tenant.id, again["draft_id"], actor="user:alice")
    decide(
        tenant.db,
        tenant.id,
        f"draft:{again['draft_id']}",
        user="bob",
        decision="approve",
        comment=None,
        channel="web",
    )
    assert drafts.get_draft(tenant.db, tenant.id, again["draft_id"])["published_version"] == 2


def test_denied_draft_is_rejected_and_not_installed(tenant: Tenant) -> None:
    draft_id = _build(tenant)["draft_id"]
    drafts.request_publish(tenant.db, tenant.id, draft_id, actor="user:alice")
    decide(
        tenant.db, tenant.id, f"draft:{draft_id}", user="bob", decision="deny", comment="no", channel="web"
    )
    assert drafts.get_draft(tenant.db, tenant.id, draft_id)["status"] == "rejected"
    assert _stored(tenant) == []
    assert "agent.draft.reject" in _audit(tenant)
    with pytest.raises(drafts.DraftError, match="rejected"):
        drafts.request_publish(tenant.db, tenant.id, draft_id, actor="user:alice")


def test_a_decision_made_elsewhere_is_settled_when_drafts_are_read(
    tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a process that never loaded the drafts module decides (e.g. a worker timing the approval out)
    monkeypatch.delitem(service._handlers, drafts.APPROVAL_PREFIX)
    draft_id = _build(tenant)["draft_id"]
    drafts.request_publish(tenant.db, tenant.id, draft_id, actor="user:alice")
    decide(
        tenant.db,
        tenant.id,
        f"draft:{draft_id}",
        user="bob",
        decision="approve",
        comment=None,
        channel="web",
    )
    assert _stored(tenant) == []
    listed = drafts.list_drafts(tenant.db, tenant.id)
    assert [d["status"] for d in listed] == ["published"]
    assert len(_stored(tenant)) == 1
    assert drafts.settle(tenant.db, tenant.id) == []  # idempotent


def test_invalid_or_unknown_drafts_cannot_be_published(tenant: Tenant) -> None:
    bad = drafts.save_draft(
        tenant.db,
        tenant.id,
        workflow_id="x",
        objective="x",
        source="id: x\nsteps: []\n",
        plan=None,
        validation=[{"line": 2, "column": 8, "message": "a workflow needs at least one step"}],
        dry_run=None,
        actor="user:alice",
    )
    with pytest.raises(drafts.DraftError, match="does not validate"):
        drafts.request_publish(tenant.db, tenant.id, bad["id"], actor="user:alice")
    with pytest.raises(drafts.DraftError, match="no draft"):
        drafts.get_draft(tenant.db, tenant.id, "nope")
    with pytest.raises(drafts.DraftError, match="unknown status"):
        drafts.list_drafts(tenant.db, tenant.id, status="weird")


def test_drafts_are_scoped_to_their_tenant(tenant: Tenant) -> None:
    other = Tenant(tenant.db, "other")
    draft_id = _build(tenant)["draft_id"]
    assert drafts.list_drafts(tenant.db, other.id) == []
    with pytest.raises(drafts.DraftError):
        drafts.get_draft(tenant.db, other.id, draft_id)
