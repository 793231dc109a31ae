"""The approval service: requesting a decision, deciding (from any channel), timing out, and announcing
each resolution exactly once.

The engine calls :func:`request_approval` when a step needs a human, waits durably on the approval's
``topic``, and learns of the outcome through the listener set with :func:`set_resolution_listener`
(or by calling :func:`resolve_on_timeout` when its wait times out). Every channel (web/API, CLI, signed
links, Slack) ends in the same rule check in :func:`_decide_in`, inside one write transaction, so the
rules (roles, four-eyes, one vote per user, quorum, closed and expired requests) cannot differ between
channels. Every state change appends to the tenant's audit log in the same transaction.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, Literal

import msgspec
from sqlalchemy import Connection

from bastion.config import Settings, load_settings
from bastion.model import Role
from bastion.respond.approvals import slack
from bastion.respond.approvals.model import (
    AlreadyDecided,
    Approval,
    ApprovalClosed,
    ApprovalError,
    ApprovalExpired,
    ApprovalNotFound,
    ApprovalSpec,
    Decision,
    LinkError,
    NotAllowed,
)
from bastion.respond.approvals.notify import notify
from bastion.respond.approvals.tokens import link_key, verify_token
from bastion.store import Database, TenantScope
from bastion.store.approvals import ApprovalRepository

__all__ = [
    "close_for_run",
    "configure",
    "decide",
    "decide_from_slack",
    "get_approval",
    "handle_resolutions",
    "list_approvals",
    "map_slack_user",
    "open_link",
    "redeem_link",
    "request_approval",
    "resolve_on_timeout",
    "set_resolution_listener",
    "set_slack_channel",
]

log = logging.getLogger(__name__)

_listener: Callable[[Approval], None] | None = None
_handlers: dict[str, Callable[[Database, Approval], None]] = {}
_settings: Settings | None = None


def set_resolution_listener(fn: Callable[[Approval], None] | None) -> None:
    """Call ``fn(approval)`` once each time an approval resolves (approved, denied or expired)."""
    global _listener
    _listener = fn


def handle_resolutions(prefix: str, fn: Callable[[Database, Approval], None]) -> None:
    """Approvals whose id starts with ``prefix`` guard something other than a waiting run (``draft:``:
    publishing a workflow draft): when one resolves, ``fn(db, approval)`` is called instead of the
    resolution listener."""
    _handlers[prefix] = fn


def configure(settings: Settings | None) -> None:
    """Settings for the notification channels when a caller passes none (default: the environment)."""
    global _settings
    _settings = settings


def _current(settings: Settings | None) -> Settings:
    global _settings
    if settings is not None:
        return settings
    if _settings is None:
        _settings = load_settings()
    return _settings


def _now() -> int:
    return int(time.time() * 1000)


def _bare(user: str | None) -> str | None:
    return user[5:] if user and user.startswith("user:") else user


def _approval(row: dict[str, Any], decisions: list[dict[str, Any]]) -> Approval:
    return Approval(
        id=row["id"],
        tenant_id=row["tenant_id"],
        run_id=row["run_id"],
        step_id=row["step_id"],
        action=row["action"],
        summary=row["summary"],
        target=row["target"],
        reason=row["reason"],
        requested_by=row["requested_by"],
        status=row["status"],
        roles=row["roles"],
        quorum=row["quorum"],
        allow_requester=bool(row["allow_requester"]),
        timeout_s=row["timeout_s"],
        on_timeout=row["on_timeout"],
        escalate_to=row["escalate_to"],
        channels=row["channels"],
        escalated=bool(row["escalated"]),
        requested_at_ms=row["requested_at"],
        deadline_ms=row["deadline"],
        resolved_at_ms=row["resolved_at"],
        decisions=[msgspec.convert(d, Decision) for d in decisions],
        delivery=row["delivery"],
        waiter=row.get("waiter"),
    )


def _load(repo: ApprovalRepository, approval_id: str, *, for_update: bool = False) -> Approval:
    row = repo.get(approval_id, for_update=for_update)
    if row is None:
        raise ApprovalNotFound(f"no approval {approval_id!r} in this tenant")
    return _approval(row, repo.decisions([approval_id])[approval_id])


def get_approval(db: Database, tenant_id: str, approval_id: str) -> Approval:
    with db.read() as conn:
        return _load(ApprovalRepository(conn, tenant_id), approval_id)


def list_approvals(
    db: Database, tenant_id: str, *, status: str | None = "pending", limit: int = 100
) -> list[Approval]:
    if status is not None and status not in ("pending", "approved", "denied", "expired"):
        raise ApprovalError(f"unknown status {status!r}: use pending, approved, denied or expired")
    with db.read() as conn:
        repo = ApprovalRepository(conn, tenant_id)
        rows = repo.list(status=status, limit=limit)
        votes = repo.decisions([r["id"] for r in rows])
    return [_approval(r, votes[r["id"]]) for r in rows]


# ---------------------------------------------------------------- requesting


def request_approval(
    db: Database,
    tenant_id: str,
    *,
    approval_id: str,
    run_id: str,
    step_id: str,
    action: str,
    summary: str,
    target: dict[str, Any],
    reason: str,
    requested_by: str | None,
    spec: ApprovalSpec,
    settings: Settings | None = None,
    waiter: str | None = None,
) -> Approval:
    """Store and announce a request. Idempotent on ``approval_id``: a repeat returns the stored request
    and notifies nobody again. ``waiter`` is the durable workflow that waits in place for the decision
    when it is not the run itself (a ``for_each`` item or ``parallel`` branch)."""
    for name, value in (
        ("approval_id", approval_id),
        ("run_id", run_id),
        ("step_id", step_id),
        ("action", action),
    ):
        if not value or len(value) > 200:
            raise ApprovalError(f"{name} must be 1-200 characters")
    if requested_by is not None and len(requested_by) > 200:
        raise ApprovalError("requested_by must be at most 200 characters")
    problems = spec.problems()
    if problems:
        raise ApprovalError("invalid approval: " + "; ".join(problems))
    now = _now()
    deadline = now + int(spec.timeout_s * 1000) if spec.timeout_s is not None else None
    with db.write() as conn:
        repo = ApprovalRepository(conn, tenant_id)
        created = repo.insert(
            {
                "id": approval_id,
                "run_id": run_id,
                "step_id": step_id,
                "action": action,
                "summary": summary,
                "target": target,
                "reason": reason,
                "requested_by": requested_by,
                "status": "pending",
                "roles": list(spec.roles),
                "quorum": spec.quorum,
                "allow_requester": spec.allow_requester,
                "timeout_s": spec.timeout_s,
                "on_timeout": spec.on_timeout,
                "escalate_to": list(spec.escalate_to),
                "channels": list(spec.channels),
                "escalated": False,
                "waiter": waiter if waiter != run_id else None,
                "requested_at": now,
                "deadline": deadline,
                "resolved_at": None,
                "delivery": {},
            }
        )
        if created:
            TenantScope(conn, tenant_id).audit.append(
                f"run:{run_id}",
                "approval.request",
                "approval",
                approval_id,
                {
                    "run_id": run_id,
                    "step_id": step_id,
                    "action": action,
                    "summary": summary,
                    "requested_by": requested_by,
                    "roles": spec.roles,
                    "quorum": spec.quorum,
                    "deadline": deadline,
                    "channels": spec.channels,
                },
            )
        if not created and repo.get(approval_id) is None:  # the insert failed on the tenant reference
            raise ApprovalError(f"no tenant with id {tenant_id!r}")
        approval = _load(repo, approval_id)
    if created:
        approval = notify(db, approval, _current(settings))
    return approval


# ---------------------------------------------------------------- deciding


def _decide_in(
    conn: Connection,
    tenant_id: str,
    approval_id: str,
    *,
    user: str,
    decision: str,
    comment: str | None,
    channel: str,
) -> tuple[Approval, bool]:
    """Apply one vote inside the caller's transaction; returns (approval, whether this vote resolved it)."""
    if decision not in ("approve", "deny"):
        raise ApprovalError(f"decision must be 'approve' or 'deny', not {decision!r}")
    if not channel or len(channel) > 20:
        raise ApprovalError("channel must be 1-20 characters (web, cli, link, slack, ...)")
    repo = ApprovalRepository(conn, tenant_id)
    approval = _load(repo, approval_id, for_update=True)
    if approval.status != "pending":
        raise ApprovalClosed(
            f"approval {approval_id} is already {approval.status}; it takes no more decisions"
        )
    now = _now()
    if approval.deadline_ms is not None and now >= approval.deadline_ms:
        raise ApprovalExpired(f"approval {approval_id} expired; it is being resolved by its timeout rule")
    found = repo.user(user)
    if found is None:
        raise NotAllowed(f"no active user {user!r} in this tenant")
    role = found["role"]
    if role != Role.ADMIN.value and role not in approval.roles:
        raise NotAllowed(
            f"user {user!r} has role {role!r}; this approval needs one of: {', '.join(approval.roles)}"
        )
    if decision == "approve" and not approval.allow_requester and _bare(approval.requested_by) == user:
        raise NotAllowed(f"four-eyes rule: {user!r} requested this action and may not approve it")
    if not repo.add_decision(
        approval_id, user=user, decision=decision, channel=channel, comment=comment, at=now
    ):
        raise AlreadyDecided(f"user {user!r} already decided on approval {approval_id}")
    audit = TenantScope(conn, tenant_id).audit
    audit.append(
        f"user:{user}",
        "approval.decide",
        "approval",
        approval_id,
        {"decision": decision, "channel": channel, "comment": comment, "run_id": approval.run_id},
    )
    approvals = approval.approvals + (1 if decision == "approve" else 0)
    outcome = "denied" if decision == "deny" else "approved" if approvals >= approval.quorum else None
    resolved = outcome is not None and repo.transition(approval_id, to=outcome, at=now)
    if resolved:
        audit.append(
            f"user:{user}",
            "approval.resolve",
            "approval",
            approval_id,
            {"status": outcome, "run_id": approval.run_id, "step_id": approval.step_id},
        )
    return _load(repo, approval_id), resolved


def _refresh_slack(approval: Approval, settings: Settings | None) -> None:
    where = approval.delivery.get("slack")
    if isinstance(where, dict) and where.get("channel") and where.get("ts"):
        try:
            slack.update_message(approval, where, _current(settings))
        except ApprovalError as exc:
            log.warning("approval %s: %s", approval.id, exc)


def _announce(db: Database, approval: Approval, settings: Settings | None) -> None:
    """After commit: update the Slack message and wake the engine, or the approval's own handler (once
    per resolution)."""
    _refresh_slack(approval, settings)
    handler = next((fn for prefix, fn in _handlers.items() if approval.id.startswith(prefix)), None)
    try:
        if handler is not None:
            handler(db, approval)
        elif _listener is not None:
            _listener(approval)
    except Exception:  # the decision is committed; a listener failure must not undo or hide it
        log.exception("approval resolution listener failed for %s", approval.id)


def decide(
    db: Database,
    tenant_id: str,
    approval_id: str,
    *,
    user: str,
    decision: Literal["approve", "deny"],
    comment: str | None,
    channel: str,
    settings: Settings | None = None,
) -> Approval:
    """Record ``user``'s vote. Raises a subclass of :class:`ApprovalError` when it cannot be taken."""
    with db.write() as conn:
        approval, resolved = _decide_in(
            conn, tenant_id, approval_id, user=user, decision=decision, comment=comment, channel=channel
        )
    if resolved:
        _announce(db, approval, settings)
    else:
        _refresh_slack(approval, settings)
    return approval


def close_for_run(
    db: Database, tenant_id: str, run_id: str, *, actor: str, settings: Settings | None = None
) -> list[Approval]:
    """End the run's pending requests as ``expired`` (the run was cancelled), audited, and wake the
    run's waiting step so that it stops waiting. Returns the requests it closed."""
    now = _now()
    closed: list[str] = []
    with db.write() as conn:
        repo = ApprovalRepository(conn, tenant_id)
        audit = TenantScope(conn, tenant_id).audit
        for row in repo.list(status="pending", limit=10_000):
            if row["run_id"] == run_id and repo.transition(row["id"], to="expired", at=now):
                audit.append(actor, "approval.cancel", "approval", row["id"], {"run_id": run_id})
                closed.append(row["id"])
        approvals = [_load(repo, approval_id) for approval_id in closed]
    for approval in approvals:
        _announce(db, approval, settings)
    return approvals


def resolve_on_timeout(
    db: Database, tenant_id: str, approval_id: str, *, settings: Settings | None = None
) -> Approval:
    """Apply the request's ``on_timeout`` rule. A resolved request is returned unchanged. Escalation
    happens once: the request goes to the ``escalate_to`` roles with a new deadline, and if that also
    passes it ends ``expired``."""
    now = _now()
    escalated = resolved = False
    with db.write() as conn:
        repo = ApprovalRepository(conn, tenant_id)
        approval = _load(repo, approval_id, for_update=True)
        if approval.status != "pending":
            return approval
        audit = TenantScope(conn, tenant_id).audit
        if approval.on_timeout == "escalate" and not approval.escalated:
            deadline = now + int(approval.timeout_s * 1000) if approval.timeout_s is not None else None
            escalated = repo.escalate(approval_id, roles=approval.escalate_to, deadline=deadline)
            if escalated:
                audit.append(
                    "system:timeout",
                    "approval.escalate",
                    "approval",
                    approval_id,
                    {"from": approval.roles, "to": approval.escalate_to, "deadline": deadline},
                )
        else:
            outcome = {"deny": "denied", "approve": "approved"}.get(approval.on_timeout, "expired")
            resolved = repo.transition(approval_id, to=outcome, at=now)
            if resolved:
                audit.append(
                    "system:timeout",
                    "approval.resolve",
                    "approval",
                    approval_id,
                    {
                        "status": outcome,
                        "run_id": approval.run_id,
                        "step_id": approval.step_id,
                        "reason": "timeout",
                    },
                )
        approval = _load(repo, approval_id)
    if resolved:
        _announce(db, approval, settings)
    if escalated:
        approval = notify(db, approval, _current(settings))
    return approval


# ---------------------------------------------------------------- signed links


def _link_claims(db: Database, token: str, settings: Settings) -> tuple[dict[str, Any], dict[str, Any]]:
    claims = verify_token(link_key(settings), token, now_ms=_now())
    with db.read() as conn:
        stored = ApprovalRepository(conn, claims["t"]).token(claims["n"])
    if stored is None or (stored["approval_id"], stored["user"], stored["decision"]) != (
        claims["a"],
        claims["u"],
        claims["d"],
    ):
        raise LinkError("approval link is not one we issued")
    if stored["used_at"] is not None:
        raise LinkError("approval link was already used; each link works once")
    return claims, stored


def open_link(
    db: Database, token: str, *, settings: Settings | None = None
) -> tuple[Approval, dict[str, Any]]:
    """Check a link without spending it (for the confirmation page): the approval and the claims."""
    claims, _ = _link_claims(db, token, _current(settings))
    approval = get_approval(db, claims["t"], claims["a"])
    if (approval.run_id, approval.step_id) != (claims["r"], claims["s"]):
        raise LinkError("approval link does not match this approval's run and step")
    if approval.status != "pending":
        raise ApprovalClosed(
            f"approval {approval.id} is already {approval.status}; it takes no more decisions"
        )
    return approval, claims


def redeem_link(
    db: Database, token: str, *, comment: str | None = None, settings: Settings | None = None
) -> Approval:
    """Spend a link and record its decision, as the user it was issued to (channel ``link``)."""
    s = _current(settings)
    claims, _ = _link_claims(db, token, s)
    with db.write() as conn:
        repo = ApprovalRepository(conn, claims["t"])
        row = repo.get(claims["a"])
        if row is None or (row["run_id"], row["step_id"]) != (claims["r"], claims["s"]):
            raise LinkError("approval link does not match this approval's run and step")
        if not repo.use_token(claims["n"], _now()):
            raise LinkError("approval link was already used; each link works once")
        approval, resolved = _decide_in(
            conn,
            claims["t"],
            claims["a"],
            user=claims["u"],
            decision=claims["d"],
            comment=comment,
            channel="link",
        )
    if resolved:
        _announce(db, approval, s)
    else:
        _refresh_slack(approval, s)
    return approval


# ---------------------------------------------------------------- Slack


def map_slack_user(db: Database, tenant_id: str, slack_user_id: str, user: str, *, actor: str) -> None:
    """Let the Slack user ``slack_user_id`` decide as Bastion user ``user`` in this tenant."""
    if not slack_user_id.strip():
        raise ApprovalError("a Slack user id is needed (like U012AB3CD)")
    with db.write() as conn:
        repo = ApprovalRepository(conn, tenant_id)
        if repo.user(user) is None:
            raise ApprovalError(f"no active user {user!r} in this tenant")
        repo.map_slack_user(slack_user_id, user)
        TenantScope(conn, tenant_id).audit.append(
            actor, "approval.slack_user", "user", user, {"slack_user_id": slack_user_id}
        )


def set_slack_channel(db: Database, tenant_id: str, channel: str | None, *, actor: str) -> None:
    """Post this tenant's requests to ``channel`` (None: back to BASTION_SLACK_CHANNEL)."""
    if channel is not None and not (0 < len(channel.strip()) <= 100):
        raise ApprovalError("a Slack channel is 1-100 characters, like #soc-approvals or C012AB3CD")
    with db.write() as conn:
        ApprovalRepository(conn, tenant_id).set_slack_channel(channel.strip() if channel else None, _now())
        TenantScope(conn, tenant_id).audit.append(
            actor, "approval.slack_channel", "tenant", tenant_id, {"channel": channel}
        )


def decide_from_slack(
    db: Database, action: slack.SlackAction, *, settings: Settings | None = None
) -> Approval:
    """Record a verified button click: the Slack user is mapped to a Bastion user of the approval's
    tenant (a stored mapping first, else the e-mail on their Slack profile)."""
    s = _current(settings)
    with db.read() as conn:
        repo = ApprovalRepository(conn, action.tenant_id)
        user = repo.slack_user(action.slack_user_id)
    if user is None:
        email = slack.slack_email(s, action.slack_user_id)
        if email:
            with db.read() as conn:
                user = ApprovalRepository(conn, action.tenant_id).user_by_email(email)
    if user is None:
        raise NotAllowed(
            f"Slack user {action.slack_user_id} is not linked to a Bastion user in this tenant: "
            "run `bastion approvals slack-link`"
        )
    decision: Literal["approve", "deny"] = "approve" if action.decision == "approve" else "deny"
    return decide(
        db,
        action.tenant_id,
        action.approval_id,
        user=user,
        decision=decision,
        comment=action.comment,
        channel="slack",
        settings=s,
    )
