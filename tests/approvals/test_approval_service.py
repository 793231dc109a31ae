"""The approval rules, on SQLite and PostgreSQL: quorum, four-eyes, roles, one vote per user, deny,
timeouts (deny, approve, escalate, expire), idempotent requests, tenant isolation, audit, and the
resolution listener called exactly once per resolution."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from tests.approvals.conftest import Org, make_org

from bastion.respond.approvals import (
    AlreadyDecided,
    Approval,
    ApprovalClosed,
    ApprovalError,
    ApprovalExpired,
    ApprovalNotFound,
    ApprovalSpec,
    NotAllowed,
    decide,
    get_approval,
    list_approvals,
    request_approval,
    resolve_on_timeout,
)
from bastion.store import Database, TenantScope


@pytest.fixture
def org(db: Database) -> Org:
    return make_org(db, "acme")


def ask(org: Org, approval_id: str = "run1:suspend", **spec: Any) -> Approval:
    requested_by = spec.pop("requested_by", "alice")
    return request_approval(
        org.db,
        org.id,
        approval_id=approval_id,
        run_id=approval_id.split(":")[0],
        step_id="suspend",
        action="directory.suspend_user",
        summary="Suspend jdoe after a credential leak",
        target={"user": "jdoe"},
        reason="password found in a paste",
        requested_by=requested_by,
        spec=ApprovalSpec(**{"roles": ["approver"], **spec}),
    )


def audit_actions(org: Org) -> list[str]:
    with org.db.read() as conn:
        return [e.action for e in TenantScope(conn, org.id).audit.entries() if e.target_type == "approval"]


def test_quorum_of_two(org: Org, resolved: list[Approval]) -> None:
    a = ask(org, quorum=2)
    assert a.status == "pending" and a.topic == "approval:run1:suspend" and a.decisions == []
    a = decide(org.db, org.id, a.id, user="bob", decision="approve", comment="looks right", channel="web")
    assert a.status == "pending" and a.approvals == 1 and resolved == []
    a = decide(org.db, org.id, a.id, user="carol", decision="approve", comment=None, channel="cli")
    assert a.status == "approved" and a.resolved_at_ms is not None
    assert [(d.user, d.decision, d.channel, d.comment) for d in a.decisions] == [
        ("bob", "approve", "web", "looks right"),
        ("carol", "approve", "cli", None),
    ]
    assert [r.id for r in resolved] == [a.id] and resolved[0].status == "approved"
    with pytest.raises(ApprovalClosed, match="already approved"):
        decide(org.db, org.id, a.id, user="root", decision="deny", comment=None, channel="web")
    assert len(resolved) == 1
    assert audit_actions(org) == [
        "approval.request",
        "approval.decide",
        "approval.decide",
        "approval.resolve",
    ]
    with org.db.read() as conn:
        assert TenantScope(conn, org.id).audit.verify().ok


def test_one_vote_per_user(org: Org) -> None:
    a = ask(org, quorum=2)
    decide(org.db, org.id, a.id, user="bob", decision="approve", comment=None, channel="web")
    with pytest.raises(AlreadyDecided, match="bob"):
        decide(org.db, org.id, a.id, user="bob", decision="approve", comment=None, channel="slack")
    assert get_approval(org.db, org.id, a.id).approvals == 1


def test_a_deny_resolves_at_once(org: Org, resolved: list[Approval]) -> None:
    a = ask(org, quorum=3)
    decide(org.db, org.id, a.id, user="bob", decision="approve", comment=None, channel="web")
    a = decide(org.db, org.id, a.id, user="carol", decision="deny", comment="wrong user", channel="web")
    assert a.status == "denied" and [r.status for r in resolved] == ["denied"]


def test_four_eyes(org: Org, resolved: list[Approval]) -> None:
    a = ask(org, requested_by="user:alice")
    with pytest.raises(NotAllowed, match="four-eyes"):
        decide(org.db, org.id, a.id, user="alice", decision="approve", comment=None, channel="web")
    assert get_approval(org.db, org.id, a.id).decisions == []
    # The requester may still withdraw by denying.
    assert (
        decide(org.db, org.id, a.id, user="alice", decision="deny", comment=None, channel="web").status
        == "denied"
    )
    b = ask(org, "run2:suspend", allow_requester=True)
    assert (
        decide(org.db, org.id, b.id, user="alice", decision="approve", comment=None, channel="web").status
        == "approved"
    )
    assert len(resolved) == 2


@pytest.mark.parametrize("user", ["vic", "ann", "erin"])
def test_roles_outside_the_spec_are_refused(org: Org, user: str) -> None:
    a = ask(org)
    with pytest.raises(NotAllowed, match="needs one of: approver"):
        decide(org.db, org.id, a.id, user=user, decision="approve", comment=None, channel="web")
    assert get_approval(org.db, org.id, a.id).status == "pending"


def test_admin_and_named_roles_may_decide(org: Org) -> None:
    a = ask(org, roles=["analyst"])
    with pytest.raises(NotAllowed):
        decide(org.db, org.id, a.id, user="bob", decision="approve", comment=None, channel="web")
    assert (
        decide(org.db, org.id, a.id, user="ann", decision="approve", comment=None, channel="web").status
        == "approved"
    )
    b = ask(org, "run2:suspend")
    assert (
        decide(org.db, org.id, b.id, user="root", decision="approve", comment=None, channel="web").status
        == "approved"
    )
    with pytest.raises(NotAllowed, match="no active user 'nobody'"):
        decide(
            org.db,
            org.id,
            ask(org, "run3:x").id,
            user="nobody",
            decision="approve",
            comment=None,
            channel="web",
        )


def test_request_is_idempotent(org: Org) -> None:
    a = ask(org)
    again = ask(org, quorum=5)
    assert again.id == a.id and again.quorum == 1 and again.requested_at_ms == a.requested_at_ms
    assert audit_actions(org) == ["approval.request"]
    assert [x.id for x in list_approvals(org.db, org.id)] == [a.id]


@pytest.mark.parametrize(("on_timeout", "status"), [("deny", "denied"), ("approve", "approved")])
def test_timeout_resolves(org: Org, resolved: list[Approval], on_timeout: str, status: str) -> None:
    a = ask(org, timeout_s=3600, on_timeout=on_timeout)
    assert a.deadline_ms is not None and a.deadline_ms - a.requested_at_ms == 3_600_000
    a = resolve_on_timeout(org.db, org.id, a.id)
    assert a.status == status and a.decisions == []
    assert [r.status for r in resolved] == [status]
    # A second timeout (or one racing a decision) changes nothing and announces nothing.
    assert resolve_on_timeout(org.db, org.id, a.id).status == status
    assert len(resolved) == 1
    assert audit_actions(org)[-1] == "approval.resolve"


def test_timeout_escalates_once_then_expires(org: Org, resolved: list[Approval]) -> None:
    a = ask(org, timeout_s=600, on_timeout="escalate", escalate_to=["engineer"])
    first_deadline = a.deadline_ms
    a = resolve_on_timeout(org.db, org.id, a.id)
    assert a.status == "pending" and a.roles == ["engineer"] and a.escalated
    assert a.deadline_ms is not None and first_deadline is not None and a.deadline_ms >= first_deadline
    assert resolved == []
    with pytest.raises(NotAllowed):  # the approvers had their chance
        decide(org.db, org.id, a.id, user="bob", decision="approve", comment=None, channel="web")
    b = ask(org, "run2:suspend", timeout_s=600, on_timeout="escalate", escalate_to=["engineer"])
    resolve_on_timeout(org.db, org.id, b.id)
    assert (
        decide(org.db, org.id, b.id, user="erin", decision="approve", comment=None, channel="web").status
        == "approved"
    )
    a = resolve_on_timeout(org.db, org.id, a.id)
    assert a.status == "expired"
    assert sorted(r.status for r in resolved) == ["approved", "expired"]
    assert "approval.escalate" in audit_actions(org)


def test_past_the_deadline_no_decision_is_taken(org: Org) -> None:
    a = ask(org, timeout_s=0.001)
    while int(time.time() * 1000) <= (a.deadline_ms or 0):
        time.sleep(0.005)
    with pytest.raises(ApprovalExpired, match="expired"):
        decide(org.db, org.id, a.id, user="bob", decision="approve", comment=None, channel="web")
    assert resolve_on_timeout(org.db, org.id, a.id).status == "denied"


def test_tenants_cannot_see_or_decide_each_other(org: Org) -> None:
    other = make_org(org.db, "globex")
    a = ask(org)
    assert list_approvals(org.db, other.id) == []
    with pytest.raises(ApprovalNotFound):
        get_approval(org.db, other.id, a.id)
    with pytest.raises(ApprovalNotFound):
        decide(org.db, other.id, a.id, user="bob", decision="approve", comment=None, channel="web")
    with pytest.raises(ApprovalNotFound):
        resolve_on_timeout(org.db, other.id, a.id)
    # The same approval id in another tenant is another approval.
    b = ask(other)
    assert b.tenant_id == other.id and get_approval(org.db, org.id, a.id).status == "pending"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"roles": []}, "at least one role"),
        ({"roles": ["wizard"]}, "unknown role 'wizard'"),
        ({"roles": ["approver"], "quorum": 0}, "quorum"),
        ({"roles": ["approver"], "on_timeout": "escalate"}, "escalate_to"),
        ({"roles": ["approver"], "channels": ["pager"]}, "unknown channel 'pager'"),
        ({"roles": ["approver"], "timeout_s": -1}, "timeout must be positive"),
    ],
)
def test_invalid_specs_say_what_is_wrong(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(ApprovalError, match=message):
        ApprovalSpec(**spec)


def test_unknown_decision_and_missing_approval(org: Org) -> None:
    a = ask(org)
    with pytest.raises(ApprovalError, match="'approve' or 'deny'"):
        decide(org.db, org.id, a.id, user="bob", decision="maybe", comment=None, channel="web")  # type: ignore[arg-type]
    with pytest.raises(ApprovalNotFound):
        decide(org.db, org.id, "nope", user="bob", decision="approve", comment=None, channel="web")
    with pytest.raises(ApprovalError, match="channel must be"):
        decide(org.db, org.id, a.id, user="bob", decision="approve", comment=None, channel="x" * 21)
    with pytest.raises(ApprovalError, match="step_id must be"):
        ask_step(org, "")
    with pytest.raises(ApprovalError, match="no tenant with id 'nope'"):
        request_approval(
            org.db,
            "nope",
            approval_id="r:s",
            run_id="r",
            step_id="s",
            action="a",
            summary="s",
            target={},
            reason="",
            requested_by=None,
            spec=ApprovalSpec(roles=["approver"]),
        )


def ask_step(org: Org, step_id: str) -> Approval:
    return request_approval(
        org.db,
        org.id,
        approval_id="r:s",
        run_id="r",
        step_id=step_id,
        action="a",
        summary="s",
        target={},
        reason="",
        requested_by=None,
        spec=ApprovalSpec(roles=["approver"]),
    )


def test_simultaneous_votes_resolve_once(org: Org, resolved: list[Approval]) -> None:
    """Three approvers click at the same moment on a quorum-1 request: one resolves it, the others are
    told it is closed, and the listener hears of it once."""
    a = ask(org)
    barrier = threading.Barrier(3)
    outcomes: list[str] = []

    def vote(user: str) -> None:
        barrier.wait()
        try:
            decide(org.db, org.id, a.id, user=user, decision="approve", comment=None, channel="web")
            outcomes.append("ok")
        except ApprovalClosed:
            outcomes.append("closed")

    threads = [threading.Thread(target=vote, args=(u,)) for u in ("bob", "carol", "root")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["closed", "closed", "ok"]
    assert [r.status for r in resolved] == ["approved"]
    assert len(get_approval(org.db, org.id, a.id).decisions) == 1


def test_requests_and_decisions_read_many_at_once_within_the_tenant(org: Org, db: Database) -> None:
    """A run's page reads all its steps' approvals in a few queries (500 ids each), never another
    tenant's, whatever the number of ids."""
    from bastion.store.approvals import ApprovalRepository

    mine = [ask(org, f"run{i}:suspend").id for i in range(3)]
    other = make_org(db, "other")
    theirs = ask(other, "runx:suspend").id
    decide(org.db, org.id, mine[2], user="bob", decision="approve", comment="ok", channel="cli")
    ids = [*mine, theirs, *(f"nope{i}:x" for i in range(600)), mine[0]]
    with db.read() as conn:
        repo = ApprovalRepository(conn, org.id)
        found = repo.get_many(ids)
        decisions = repo.decisions(ids)
    assert sorted(found) == sorted(mine)
    assert found[mine[2]]["status"] == "approved" and found[mine[0]]["status"] == "pending"
    assert [d["user"] for d in decisions[mine[2]]] == ["bob"] and decisions[theirs] == []
