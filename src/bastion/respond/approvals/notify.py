"""Delivering a request to its channels: ``web`` (listed by the API and CLI; nothing to send),
``slack`` (one interactive message) and ``email`` (one message per approver with personal links).

A channel that is not configured or fails does not fail the request: the approval stays decidable from
the web and CLI, and the failure is kept in the request's delivery record and the audit log.
"""

from __future__ import annotations

import logging
import secrets
import time
from typing import Any

from bastion.config import Settings
from bastion.respond.approvals import email, slack
from bastion.respond.approvals.model import Approval, ApprovalError
from bastion.respond.approvals.tokens import link_key, sign_claims
from bastion.store import Database, TenantScope
from bastion.store.approvals import ApprovalRepository

__all__ = ["approvers", "issue_link", "notify"]

log = logging.getLogger(__name__)


def approvers(repo: ApprovalRepository, approval: Approval) -> list[dict[str, Any]]:
    """Users who may decide: their role is named (admins only when named), minus the requester under
    four-eyes."""
    found = repo.users_with_roles(list(approval.roles))
    requester = approval.requested_by
    if requester and requester.startswith("user:"):
        requester = requester[5:]
    if not approval.allow_requester:
        found = [u for u in found if u["name"] != requester]
    return found


def issue_link(
    repo: ApprovalRepository, approval: Approval, *, user: str, decision: str, settings: Settings
) -> str:
    """A signed single-use URL for ``user`` to record ``decision``; stored so it can be spent once."""
    now = int(time.time() * 1000)
    expires = now + settings.approval_link_ttl_s * 1000
    if approval.deadline_ms is not None:
        expires = min(expires, approval.deadline_ms)
    nonce = secrets.token_hex(16)
    repo.add_token(nonce=nonce, approval_id=approval.id, user=user, decision=decision, expires=expires)
    claims = {
        "t": approval.tenant_id,
        "a": approval.id,
        "r": approval.run_id,
        "s": approval.step_id,
        "u": user,
        "d": decision,
        "e": expires,
        "n": nonce,
    }
    token = sign_claims(link_key(settings), claims)
    return f"{settings.public_url.rstrip('/')}/api/v1/approvals/links/{token}"


def notify(db: Database, approval: Approval, settings: Settings) -> Approval:
    """Send the request to its channels and record where it went; returns the updated approval."""
    delivery: dict[str, Any] = dict(approval.delivery)
    errors: list[str] = list(delivery.get("errors", []))
    if "slack" in approval.channels:
        with db.read() as conn:
            channel = ApprovalRepository(conn, approval.tenant_id).slack_channel()
        try:
            delivery["slack"] = slack.post_request(approval, settings, channel=channel)
        except ApprovalError as exc:
            errors.append(f"slack: {exc}")
    if "email" in approval.channels:
        try:
            delivery["email"] = _send_email(db, approval, settings)
        except ApprovalError as exc:
            errors.append(f"email: {exc}")
    if errors:
        delivery["errors"] = errors
    if delivery == approval.delivery:
        return approval
    with db.write() as conn:
        ApprovalRepository(conn, approval.tenant_id).set_delivery(approval.id, delivery)
        TenantScope(conn, approval.tenant_id).audit.append(
            f"run:{approval.run_id}",
            "approval.notify",
            "approval",
            approval.id,
            {
                "slack": delivery.get("slack"),
                "email": delivery.get("email"),
                "errors": errors[len(approval.delivery.get("errors", [])) :],
            },
        )
    for problem in errors:
        log.warning("approval %s not delivered: %s", approval.id, problem)
    approval.delivery = delivery
    return approval


def _send_email(db: Database, approval: Approval, settings: Settings) -> list[str]:
    if not settings.smtp_host:
        raise email.EmailError("e-mail is not configured: set BASTION_SMTP_HOST")
    messages = []
    with db.write() as conn:
        repo = ApprovalRepository(conn, approval.tenant_id)
        for user in approvers(repo, approval):
            if not user["email"]:
                continue
            approve = issue_link(repo, approval, user=user["name"], decision="approve", settings=settings)
            deny = issue_link(repo, approval, user=user["name"], decision="deny", settings=settings)
            messages.append(
                email.compose(
                    approval,
                    to=user["email"],
                    user=user["name"],
                    approve_url=approve,
                    deny_url=deny,
                    settings=settings,
                )
            )
    if not messages:
        roles = ", ".join(approval.roles)
        raise email.EmailError(f"no user with role {roles} has an e-mail address")
    email.send(messages, settings)
    return [str(m["To"]) for m in messages]
