"""Workflow drafts written by the design and construction agents, and their publication.

An agent never installs a workflow itself: it saves a *draft* (the YAML, its plan, the validator's
problems and the dry-run) in ``agent_drafts``. Publishing asks for an approval through the same
approvals service as workflow steps (id ``draft:<draft id>``, role ``approver``, four-eyes: the
requester cannot approve); only when an approver approves is the YAML stored as the next version of the
tenant's workflow, through :func:`bastion.respond.service.add_workflow` (the same validation and audit as
``bastion workflow add``). A denial or an expiry marks the draft ``rejected``.

A decision reaches the draft in two ways: importing this module registers :func:`on_approval_resolved`
with the approvals service for ``draft:`` approvals, so a decision made in a process that loaded it (the
API, the console, the command line, a worker) settles the draft at once; and every read of drafts
(:func:`list_drafts`, :func:`get_draft`) settles pending drafts whose approval was decided elsewhere.
Settling is idempotent (a conditional update claims the draft). Every change is audited.

Statuses: ``draft`` -> ``pending`` (publishing asked) -> ``published`` | ``rejected``.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from sqlalchemy import Connection, insert, select, update

from bastion.respond.approvals import handle_resolutions
from bastion.store import Database, TenantScope
from bastion.store._util import new_id, now_ms
from bastion.store.agents import agent_drafts

__all__ = [
    "APPROVAL_PREFIX",
    "DraftError",
    "DraftRepository",
    "get_draft",
    "list_drafts",
    "on_approval_resolved",
    "request_publish",
    "save_draft",
    "settle",
]

log = logging.getLogger(__name__)
APPROVAL_PREFIX = "draft:"
_JSON = ("plan", "validation", "dry_run")


class DraftError(ValueError):
    """A user's mistake about a draft (unknown id, wrong status, invalid YAML); the message says what."""


def _dump(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


class DraftRepository:
    """``agent_drafts`` rows of one tenant; every query filters on the tenant."""

    def __init__(self, conn: Connection, tenant_id: str) -> None:
        self.conn = conn
        self.tenant_id = tenant_id

    def _row(self, row: Any) -> dict[str, Any]:
        out = {str(k): v for k, v in row._mapping.items()}
        for key in _JSON:
            out[key] = orjson.loads(out[key]) if out[key] else None
        return out

    def insert(self, values: dict[str, Any]) -> None:
        self.conn.execute(insert(agent_drafts).values(tenant_id=self.tenant_id, **values))

    def get(self, draft_id: str) -> dict[str, Any] | None:
        row = self.conn.execute(
            select(agent_drafts).where(
                agent_drafts.c.tenant_id == self.tenant_id, agent_drafts.c.id == draft_id
            )
        ).first()
        return self._row(row) if row else None

    def list(self, *, status: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        q = select(agent_drafts).where(agent_drafts.c.tenant_id == self.tenant_id)
        if status is not None:
            q = q.where(agent_drafts.c.status == status)
        rows = self.conn.execute(q.order_by(agent_drafts.c.created.desc()).limit(limit))
        return [self._row(r) for r in rows]

    def transition(self, draft_id: str, *, from_: str, to: str, **values: Any) -> bool:
        """Move the draft from status ``from_`` to ``to`` (with ``values``); False when it was not in
        ``from_`` (someone else moved it)."""
        result = self.conn.execute(
            update(agent_drafts)
            .where(
                agent_drafts.c.tenant_id == self.tenant_id,
                agent_drafts.c.id == draft_id,
                agent_drafts.c.status == from_,
            )
            .values(status=to, updated=now_ms(), **values)
        )
        return bool(result.rowcount)

    def set(self, draft_id: str, **values: Any) -> None:
        self.conn.execute(
            update(agent_drafts)
            .where(agent_drafts.c.tenant_id == self.tenant_id, agent_drafts.c.id == draft_id)
            .values(updated=now_ms(), **values)
        )


def _public(draft: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in draft.items() if k != "tenant_id"}


def save_draft(
    db: Database,
    tenant_id: str,
    *,
    workflow_id: str,
    objective: str,
    source: str,
    plan: Any,
    validation: list[dict[str, Any]],
    dry_run: Any,
    actor: str,
    agent_run_id: str | None = None,
) -> dict[str, Any]:
    """Store a draft (status ``draft``), audited; returns it."""
    draft_id = new_id()
    now = now_ms()
    with db.write() as conn:
        DraftRepository(conn, tenant_id).insert(
            {
                "id": draft_id,
                "workflow_id": workflow_id,
                "objective": objective,
                "source": source,
                "plan": _dump(plan),
                "validation": _dump(validation),
                "dry_run": _dump(dry_run),
                "status": "draft",
                "approval_id": None,
                "published_version": None,
                "agent_run_id": agent_run_id,
                "created_by": actor,
                "created": now,
                "updated": now,
            }
        )
        TenantScope(conn, tenant_id).audit.append(
            actor,
            "agent.draft.save",
            "agent_draft",
            draft_id,
            {"workflow_id": workflow_id, "valid": not validation, "agent_run_id": agent_run_id},
        )
        draft = DraftRepository(conn, tenant_id).get(draft_id)
    assert draft is not None
    return _public(draft)


def get_draft(db: Database, tenant_id: str, draft_id: str) -> dict[str, Any]:
    """The draft (after settling a decided approval); :class:`DraftError` when there is none."""
    settle(db, tenant_id, draft_id)
    with db.read() as conn:
        draft = DraftRepository(conn, tenant_id).get(draft_id)
    if draft is None:
        raise DraftError(f"no draft {draft_id!r} in this tenant (`bastion agent drafts list`)")
    return _public(draft)


def list_drafts(
    db: Database, tenant_id: str, *, status: str | None = None, limit: int = 50
) -> list[dict[str, Any]]:
    if status is not None and status not in ("draft", "pending", "published", "rejected"):
        raise DraftError(f"unknown status {status!r}: use draft, pending, published or rejected")
    settle(db, tenant_id)
    with db.read() as conn:
        return [_public(d) for d in DraftRepository(conn, tenant_id).list(status=status, limit=limit)]


def request_publish(db: Database, tenant_id: str, draft_id: str, *, actor: str) -> dict[str, Any]:
    """Ask an approver to publish the draft: an approval ``draft:<id>`` is requested and the draft becomes
    ``pending``. Only a valid draft in status ``draft`` can be submitted."""
    from bastion.respond.approvals import ApprovalSpec, request_approval

    draft = get_draft(db, tenant_id, draft_id)
    if draft["status"] != "draft":
        raise DraftError(
            f"draft {draft_id} is {draft['status']}; only a draft in status 'draft' can be published"
        )
    if draft["validation"]:
        first = draft["validation"][0]
        raise DraftError(
            f"draft {draft_id} does not validate (line {first['line']}: {first['message']}); "
            "fix it and save it again"
        )
    approval_id = APPROVAL_PREFIX + draft_id
    with db.write() as conn:
        if not DraftRepository(conn, tenant_id).transition(
            draft_id, from_="draft", to="pending", approval_id=approval_id
        ):
            raise DraftError(f"draft {draft_id} changed meanwhile; look at it again")
        TenantScope(conn, tenant_id).audit.append(
            actor,
            "agent.draft.publish_request",
            "agent_draft",
            draft_id,
            {"workflow_id": draft["workflow_id"], "approval_id": approval_id},
        )
    request_approval(
        db,
        tenant_id,
        approval_id=approval_id,
        run_id=approval_id,
        step_id="publish",
        action="workflow.publish",
        summary=f"Publish workflow {draft['workflow_id']} designed by an agent",
        target={"draft_id": draft_id, "workflow_id": draft["workflow_id"]},
        reason=draft["objective"][:2000],
        requested_by=actor,
        spec=ApprovalSpec(roles=["approver"], channels=["web"]),
    )
    return get_draft(db, tenant_id, draft_id)


def settle(db: Database, tenant_id: str, draft_id: str | None = None) -> list[str]:
    """Apply decided approvals to pending drafts (all of the tenant's, or one): approved -> the workflow
    is stored as the tenant's next version and the draft ``published``; denied or expired -> ``rejected``.
    Returns the ids of the drafts it changed."""
    from bastion.respond.approvals import ApprovalNotFound, get_approval

    with db.read() as conn:
        repo = DraftRepository(conn, tenant_id)
        if draft_id is not None:
            one = repo.get(draft_id)
            pending = [one] if one is not None and one["status"] == "pending" else []
        else:
            pending = repo.list(status="pending", limit=1000)
    changed: list[str] = []
    for draft in pending:
        try:
            approval = get_approval(db, tenant_id, draft["approval_id"])
        except ApprovalNotFound:
            continue
        if approval.status == "pending":
            continue
        decider = next((d.user for d in reversed(approval.decisions)), None)
        actor = f"user:{decider}" if decider else f"approval:{approval.id}"
        if approval.status == "approved":
            if _publish(db, tenant_id, draft, actor):
                changed.append(draft["id"])
        else:
            with db.write() as conn:
                if DraftRepository(conn, tenant_id).transition(draft["id"], from_="pending", to="rejected"):
                    TenantScope(conn, tenant_id).audit.append(
                        actor,
                        "agent.draft.reject",
                        "agent_draft",
                        draft["id"],
                        {"workflow_id": draft["workflow_id"], "approval": approval.status},
                    )
                    changed.append(draft["id"])
    return changed


def _publish(db: Database, tenant_id: str, draft: dict[str, Any], actor: str) -> bool:
    from bastion.respond.service import add_workflow
    from bastion.respond.validate import WorkflowInvalid

    with db.write() as conn:  # claim it: only one settler publishes
        if not DraftRepository(conn, tenant_id).transition(draft["id"], from_="pending", to="published"):
            return False
    try:
        added = add_workflow(db, tenant_id, draft["source"], actor=actor)
    except WorkflowInvalid as exc:  # valid when drafted, but e.g. a `uses:` target is gone now
        with db.write() as conn:
            DraftRepository(conn, tenant_id).set(
                draft["id"], status="rejected", validation=_dump([p.as_dict() for p in exc.problems])
            )
            TenantScope(conn, tenant_id).audit.append(
                actor,
                "agent.draft.reject",
                "agent_draft",
                draft["id"],
                {"workflow_id": draft["workflow_id"], "error": str(exc)},
            )
        return True
    with db.write() as conn:
        DraftRepository(conn, tenant_id).set(draft["id"], published_version=added["version"])
        TenantScope(conn, tenant_id).audit.append(
            actor,
            "agent.draft.publish",
            "agent_draft",
            draft["id"],
            {
                "workflow_id": added["workflow_id"],
                "version": added["version"],
                "approval_id": draft["approval_id"],
            },
        )
    return True


def on_approval_resolved(db: Database, approval: Any) -> None:
    """Settle the draft behind a resolved ``draft:`` approval (registered with the approvals service)."""
    try:
        settle(db, approval.tenant_id, str(approval.id)[len(APPROVAL_PREFIX) :])
    except Exception:  # the decision is committed; the next read of drafts settles it
        log.exception("publishing the draft behind approval %s failed", approval.id)


handle_resolutions(APPROVAL_PREFIX, on_approval_resolved)
