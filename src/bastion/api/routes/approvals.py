"""Approvals over HTTP: list, get and decide (Bearer API key acting as a user), the signed one-click
links from e-mail (no API key: the link is the credential), and Slack's interactivity callback (no API
key: Slack's request signature is the credential).

A link's GET only shows a confirmation page; the POST from that page spends the link. Mail scanners
that fetch every URL in a message therefore cannot approve anything by themselves.
"""

from __future__ import annotations

import html
from typing import Annotated, Literal
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.responses import HTMLResponse

from bastion.api.deps import CurrentPrincipal, read_limited_body, require_role
from bastion.api.errors import ApiError
from bastion.api.responses import JSON
from bastion.model import Role
from bastion.respond.approvals import (
    Approval,
    ApprovalError,
    decide,
    decide_from_slack,
    get_approval,
    list_approvals,
    map_slack_user,
    open_link,
    redeem_link,
)
from bastion.respond.approvals.slack import (
    parse_interaction,
    tell_user,
    verify_signature,
)
from bastion.tenancy.service import Principal

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["approvals"])
Admin = Annotated[Principal, Depends(require_role(Role.ADMIN))]

_FORM_LIMIT = 1024 * 1024  # Slack interaction payloads carry the whole message


class DecisionBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    decision: Literal["approve", "deny"]
    comment: str | None = Field(None, max_length=4000)


def _api_error(exc: ApprovalError) -> ApiError:
    return ApiError(exc.status, str(exc))


@router.get("/approvals", summary="List approvals (pending by default)")
def list_(
    request: Request,
    principal: CurrentPrincipal,
    status: Literal["pending", "approved", "denied", "expired", "all"] = "pending",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> JSON:
    found = list_approvals(
        request.app.state.db, principal.tenant_id, status=None if status == "all" else status, limit=limit
    )
    return JSON({"approvals": [a.to_dict() for a in found]})


# The link and Slack routes come before ``/approvals/{approval_id}`` so they are matched first.


def _esc(text: str) -> str:
    return html.escape(text, quote=False)  # text nodes only; no value is ever put in an attribute


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    doc = (
        "<!doctype html><html><head><meta charset='utf-8'><meta name='robots' content='noindex'>"
        f"<title>{_esc(title)}</title></head><body style='font-family:sans-serif;max-width:40em;"
        f"margin:2em auto'><h1>{_esc(title)}</h1>{body}</body></html>"
    )
    return HTMLResponse(doc, status_code=status, headers={"Cache-Control": "no-store"})


def _refused(exc: ApprovalError) -> HTMLResponse:
    return _page("Link refused", f"<p>{_esc(str(exc))}</p>", exc.status)


@router.get("/approvals/links/{token}", summary="Confirmation page of a signed approval link")
def link_page(request: Request, token: str) -> HTMLResponse:
    try:
        approval, claims = open_link(request.app.state.db, token, settings=request.app.state.settings)
    except ApprovalError as exc:
        return _refused(exc)
    verb = "Approve" if claims["d"] == "approve" else "Deny"
    body = (
        f"<p><b>{_esc(approval.summary)}</b></p>"
        f"<p>Action <code>{_esc(approval.action)}</code>, run {_esc(approval.run_id)}, "
        f"step {_esc(approval.step_id)}.</p><p>Reason: {_esc(approval.reason or '-')}</p>"
        f"<form method='post'><p>Comment (optional):<br><textarea name='comment' rows='3' cols='50'>"
        f"</textarea></p><p><button type='submit'>{verb} as {_esc(claims['u'])}</button></p></form>"
    )
    return _page(f"{verb} this action?", body)


@router.post("/approvals/links/{token}", summary="Spend a signed approval link")
async def link_decide(request: Request, token: str) -> HTMLResponse:
    raw = await read_limited_body(request, _FORM_LIMIT)
    comment = (parse_qs(raw.decode("utf-8", "replace")).get("comment") or [""])[0].strip() or None
    try:
        approval = await run_in_threadpool(
            redeem_link,
            request.app.state.db,
            token,
            comment=comment,
            settings=request.app.state.settings,
        )
    except ApprovalError as exc:
        return _refused(exc)
    return _page(
        "Decision recorded",
        f"<p>Approval {_esc(approval.id)} is now <b>{_esc(approval.status)}</b>.</p>",
    )


@router.post("/approvals/slack/actions", summary="Slack interactivity callback (signed by Slack)")
async def slack_actions(request: Request) -> JSON:
    settings = request.app.state.settings
    body = await read_limited_body(request, _FORM_LIMIT)
    try:
        verify_signature(
            settings,
            body,
            request.headers.get("x-slack-request-timestamp"),
            request.headers.get("x-slack-signature"),
        )
        action = parse_interaction(body)
    except ApprovalError as exc:
        raise _api_error(exc) from None
    try:
        approval: Approval = await run_in_threadpool(
            decide_from_slack, request.app.state.db, action, settings=settings
        )
    except ApprovalError as exc:
        if action.channel_id:  # the click came from Slack: tell the person there, privately
            await run_in_threadpool(tell_user, settings, action.channel_id, action.slack_user_id, str(exc))
        raise _api_error(exc) from None
    return JSON({"ok": True, "approval": approval.id, "status": approval.status})


class SlackUserBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user: str = Field(min_length=1, max_length=200)


@router.put("/approvals/slack-users/{slack_user_id}", summary="Map a Slack user to a Bastion user (admin)")
def put_slack_user(request: Request, principal: Admin, slack_user_id: str, body: SlackUserBody) -> JSON:
    try:
        map_slack_user(
            request.app.state.db, principal.tenant_id, slack_user_id, body.user, actor=principal.actor
        )
    except ApprovalError as exc:
        raise _api_error(exc) from None
    return JSON({"slack_user_id": slack_user_id, "user": body.user})


@router.get("/approvals/{approval_id}", summary="Get one approval with its decisions")
def get_one(request: Request, principal: CurrentPrincipal, approval_id: str) -> JSON:
    try:
        approval = get_approval(request.app.state.db, principal.tenant_id, approval_id)
    except ApprovalError as exc:
        raise _api_error(exc) from None
    return JSON(approval.to_dict())


@router.post("/approvals/{approval_id}", summary="Approve or deny")
def post_decision(
    request: Request, principal: CurrentPrincipal, approval_id: str, body: DecisionBody
) -> JSON:
    if principal.user is None:
        raise ApiError(
            403,
            "deciding needs an API key that acts as a user (who decided is recorded): "
            "create one with `bastion apikey create --tenant T --user NAME`",
        )
    try:
        approval = decide(
            request.app.state.db,
            principal.tenant_id,
            approval_id,
            user=principal.user,
            decision=body.decision,
            comment=body.comment,
            channel="web",
            settings=request.app.state.settings,
        )
    except ApprovalError as exc:
        raise _api_error(exc) from None
    return JSON(approval.to_dict())
