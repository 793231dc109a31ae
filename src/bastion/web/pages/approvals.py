"""The approvals inbox: what waits for a human decision, and one click to approve or deny.

Each request says what will happen (the action and its summary), to what (the target), why (the
reason) and who asked. The approve and deny buttons appear only to users who may decide (the request's
roles, or admin); the decision itself goes through ``respond.approvals.service.decide`` (channel
``web``), which applies the same rules as every other channel (roles, four-eyes, one vote per user,
quorum, closed or expired requests), so a forged POST by a viewer is refused there too (403). Decisions
made elsewhere (Slack, e-mail links, the CLI, the API) arrive live through the ``approvals`` topic.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from bastion.model import Role
from bastion.respond.approvals import (
    Approval,
    ApprovalError,
    decide,
    list_approvals,
)
from bastion.web.render import NavItem, flash_redirect, has_route, render
from bastion.web.session import CurrentUser, SignedIn

__all__ = ["may_decide", "nav", "router"]

router = APIRouter()
nav = [NavItem("Approvals", "/approvals", order=30)]


def may_decide(user: SignedIn, approval: Approval) -> bool:
    """Whether to offer the buttons: the service's role rule (the request's roles, or admin), the
    four-eyes rule, and one vote per user. The service checks again when the vote arrives."""
    if approval.status != "pending":
        return False
    if user.role != Role.ADMIN and user.role.value not in approval.roles:
        return False
    if any(d.user == user.user_name for d in approval.decisions):
        return False
    requester = approval.requested_by or ""
    requester = requester[5:] if requester.startswith("user:") else requester
    return approval.allow_requester or requester != user.user_name


@router.get("/approvals")
def approvals_page(request: Request, user: CurrentUser) -> Response:
    db = request.app.state.db
    pending = list_approvals(db, user.tenant_id, status="pending", limit=500)
    recent = [a for a in list_approvals(db, user.tenant_id, status=None, limit=60) if a.status != "pending"]
    mine = [a for a in pending if may_decide(user, a)]
    others = [a for a in pending if not may_decide(user, a)]
    has_runs_page = has_route(request, "/runs/{run_id}")
    return render(
        request,
        "approvals.html",
        title="Approvals",
        mine=mine,
        others=others,
        recent=recent[:30],
        run_links=has_runs_page,
    )


@router.post("/approvals/{approval_id}/decide")
async def post_decision(
    request: Request,
    user: CurrentUser,
    approval_id: str,
    decision: Annotated[Literal["approve", "deny"], Form()],
    comment: Annotated[str, Form(max_length=4000)] = "",
) -> Response:
    try:
        approval = await run_in_threadpool(
            lambda: decide(
                request.app.state.db,
                user.tenant_id,
                approval_id,
                user=user.user_name,
                decision=decision,
                comment=comment.strip() or None,
                channel="web",
                settings=request.app.state.settings,
            )
        )
    except ApprovalError as exc:
        status = exc.status
        if status == 403:
            return render(
                request,
                "error.html",
                status_code=403,
                title="Not allowed",
                message=str(exc),
                back="/approvals",
            )
        return flash_redirect(request, "/approvals", str(exc), error=True)
    verb = "Approved" if decision == "approve" else "Denied"
    state = "" if approval.status == "pending" else f"; the request is now {approval.status}"
    return flash_redirect(request, "/approvals", f"{verb}: {approval.summary}{state}.")
