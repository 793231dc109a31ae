"""Slack: the Block Kit request with Approve and Deny buttons, its update after a decision, and the
checks on Slack's interactivity callback (request signature, timestamp window, payload shape).

Messages go through ``slack-sdk``'s ``WebClient`` (``chat.postMessage``, ``chat.update``,
``users.info``) with a configurable base URL, so tests talk to a local server over a real socket.
Signatures are checked with ``slack-sdk``'s ``SignatureVerifier`` (v0 scheme, five-minute window).
"""

from __future__ import annotations

import contextlib
from typing import Any
from urllib.parse import parse_qs

import msgspec
import orjson
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.signature import SignatureVerifier

from bastion.config import Settings
from bastion.respond.approvals.model import Approval, ApprovalError, Decision

__all__ = [
    "SlackAction",
    "SlackError",
    "SlackSignatureError",
    "parse_interaction",
    "post_request",
    "slack_email",
    "tell_user",
    "update_message",
    "verify_signature",
]

APPROVE_ID = "bastion_approve"
DENY_ID = "bastion_deny"
# The optional comment box above the buttons: an input block in the message, whose text Slack sends in
# the click's ``state.values`` (typing in it sends nothing by itself).
COMMENT_BLOCK = "bastion_comment"
COMMENT_ID = "bastion_comment_text"
COMMENT_MAX = 4000  # as the API's decision body


class SlackError(ApprovalError):
    """Slack is not configured, refused a call, or sent a payload we cannot use."""


class SlackSignatureError(SlackError):
    """The callback's signature or timestamp does not check out."""

    status = 401


class SlackAction(msgspec.Struct):
    slack_user_id: str
    decision: str
    tenant_id: str
    approval_id: str
    channel_id: str | None
    message_ts: str | None
    comment: str | None = None


def _client(settings: Settings) -> WebClient:
    if not settings.slack_bot_token:
        raise SlackError("Slack is not configured: set BASTION_SLACK_BOT_TOKEN")
    base = settings.slack_api_url if settings.slack_api_url.endswith("/") else settings.slack_api_url + "/"
    return WebClient(token=settings.slack_bot_token, base_url=base, timeout=15)


def _text(approval: Approval) -> str:
    return f"Approval needed: {approval.summary}"


def _blocks(approval: Approval, *, with_buttons: bool) -> list[dict[str, Any]]:
    fields = [
        f"*Action*\n`{approval.action}`",
        f"*Run / step*\n{approval.run_id} / {approval.step_id}",
        f"*Who may decide*\n{', '.join(approval.roles)} (quorum {approval.quorum})",
        f"*Requested by*\n{approval.requested_by or 'workflow'}",
    ]
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": "Approval needed"[:150]}},
        {"type": "section", "text": {"type": "mrkdwn", "text": approval.summary[:2900]}},
        {"type": "section", "fields": [{"type": "mrkdwn", "text": f} for f in fields]},
    ]
    if approval.reason:
        blocks.append(
            {"type": "context", "elements": [{"type": "mrkdwn", "text": f"Reason: {approval.reason[:2900]}"}]}
        )
    if with_buttons and approval.decisions:
        votes = ", ".join(f"{d.user} ({d.decision})" for d in approval.decisions)
        blocks.append(
            {
                "type": "context",
                "elements": [
                    {
                        "type": "mrkdwn",
                        "text": f"{approval.approvals}/{approval.quorum} approvals so far: {votes}",
                    }
                ],
            }
        )
    if with_buttons:
        value = orjson.dumps({"t": approval.tenant_id, "a": approval.id}).decode()
        blocks.append(
            {
                "type": "input",
                "block_id": COMMENT_BLOCK,
                "optional": True,
                "label": {"type": "plain_text", "text": "Comment (optional)"},
                "element": {
                    "type": "plain_text_input",
                    "action_id": COMMENT_ID,
                    "multiline": True,
                    "max_length": 3000,  # Slack's limit for this element
                },
            }
        )
        blocks.append(
            {
                "type": "actions",
                "block_id": "bastion_approval",
                "elements": [
                    {
                        "type": "button",
                        "action_id": APPROVE_ID,
                        "style": "primary",
                        "text": {"type": "plain_text", "text": "Approve"},
                        "value": value,
                    },
                    {
                        "type": "button",
                        "action_id": DENY_ID,
                        "style": "danger",
                        "text": {"type": "plain_text", "text": "Deny"},
                        "value": value,
                    },
                ],
            }
        )
    else:
        who = ", ".join(_vote(d) for d in approval.decisions) or "nobody"
        blocks.append(
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": f"*{approval.status.upper()}*: decided by {who}"},
            }
        )
    return blocks


def _vote(d: Decision) -> str:
    said = f': "{d.comment[:200]}"' if d.comment else ""
    return f"{d.user} ({d.decision}, {d.channel}{said})"


def post_request(approval: Approval, settings: Settings, *, channel: str | None = None) -> dict[str, Any]:
    """Post the request to ``channel`` (default: the installation's); returns where it went
    (``channel``, ``ts``) for the later update."""
    client = _client(settings)
    channel = channel or settings.slack_channel
    if not channel:
        raise SlackError(
            "Slack is not configured: set BASTION_SLACK_CHANNEL or `bastion approvals slack-channel`"
        )
    try:
        resp = client.chat_postMessage(
            channel=channel, text=_text(approval), blocks=_blocks(approval, with_buttons=True)
        )
    except SlackApiError as exc:
        raise SlackError(f"Slack refused chat.postMessage: {exc.response.get('error')}") from None
    except (SlackClientError, OSError) as exc:
        raise SlackError(f"Slack chat.postMessage failed: {exc}") from None
    return {"channel": resp.get("channel"), "ts": resp.get("ts")}


def update_message(approval: Approval, where: dict[str, Any], settings: Settings) -> None:
    """Show the votes so far; once the approval is resolved, replace the buttons with the outcome."""
    pending = approval.status == "pending"
    try:
        _client(settings).chat_update(
            channel=where["channel"],
            ts=where["ts"],
            text=_text(approval) if pending else f"{approval.status}: {approval.summary}",
            blocks=_blocks(approval, with_buttons=pending),
        )
    except SlackApiError as exc:
        raise SlackError(f"Slack refused chat.update: {exc.response.get('error')}") from None
    except (SlackClientError, OSError) as exc:
        raise SlackError(f"Slack chat.update failed: {exc}") from None


def tell_user(settings: Settings, channel: str, slack_user_id: str, text: str) -> None:
    """Say privately to the user who clicked why their click did nothing (best effort)."""
    with contextlib.suppress(SlackClientError, OSError, SlackError):
        _client(settings).chat_postEphemeral(channel=channel, user=slack_user_id, text=text)


def slack_email(settings: Settings, slack_user_id: str) -> str | None:
    """The e-mail address on a Slack user's profile (``users.info``), if Slack shares it."""
    try:
        resp = _client(settings).users_info(user=slack_user_id)
    except (SlackClientError, OSError):
        return None
    user = resp.get("user") or {}
    email = (user.get("profile") or {}).get("email")
    return email if isinstance(email, str) and email else None


def verify_signature(settings: Settings, body: bytes, timestamp: str | None, signature: str | None) -> None:
    if not settings.slack_signing_secret:
        raise SlackError("Slack is not configured: set BASTION_SLACK_SIGNING_SECRET")
    if not timestamp or not signature:
        raise SlackSignatureError("missing X-Slack-Request-Timestamp or X-Slack-Signature header")
    try:
        int(timestamp)
    except ValueError:
        raise SlackSignatureError("X-Slack-Request-Timestamp is not a number") from None
    if not SignatureVerifier(settings.slack_signing_secret).is_valid(body, timestamp, signature):
        raise SlackSignatureError("Slack signature does not match or the request is older than five minutes")


def parse_interaction(body: bytes) -> SlackAction:
    """The button click in a ``block_actions`` payload (form field ``payload``)."""
    try:
        form = parse_qs(body.decode("utf-8"), strict_parsing=False)
        payload = orjson.loads(form["payload"][0])
    except (UnicodeDecodeError, KeyError, IndexError, orjson.JSONDecodeError):
        raise SlackError("expected a form field 'payload' holding Slack's interaction JSON") from None
    if not isinstance(payload, dict) or payload.get("type") != "block_actions":
        raise SlackError("only block_actions interactions are handled")
    actions = payload.get("actions")
    user = payload.get("user")
    if not isinstance(actions, list) or not actions or not isinstance(actions[0], dict):
        raise SlackError("interaction payload has no action: 'actions' must be a list of objects")
    if not isinstance(user, dict) or not isinstance(user.get("id"), str) or not user["id"]:
        raise SlackError("interaction payload has no user: 'user' must be an object with an 'id'")
    action = actions[0]
    decision = {APPROVE_ID: "approve", DENY_ID: "deny"}.get(str(action.get("action_id")))
    if decision is None:
        raise SlackError(f"unknown action {action.get('action_id')!r}")
    try:
        value = orjson.loads(str(action.get("value")))
        tenant_id, approval_id = str(value["t"]), str(value["a"])
    except (orjson.JSONDecodeError, KeyError, TypeError):
        raise SlackError("button value does not name an approval") from None
    return SlackAction(
        slack_user_id=user["id"],
        decision=decision,
        tenant_id=tenant_id,
        approval_id=approval_id,
        channel_id=_text_field(payload, "channel", "id"),
        message_ts=_text_field(payload, "container", "message_ts") or _text_field(payload, "message", "ts"),
        comment=_comment(payload),
    )


def _comment(payload: dict[str, Any]) -> str | None:
    """The text in the message's comment box when the button was clicked (``state.values``), if any."""
    node: Any = payload.get("state")
    path: tuple[str, ...] = ("state",)
    for key in ("values", COMMENT_BLOCK, COMMENT_ID):
        if node is None:
            return None
        if not isinstance(node, dict):
            raise SlackError(f"interaction payload field {'.'.join(path)!r} must be an object")
        node, path = node.get(key), (*path, key)
    if node is None:
        return None
    if not isinstance(node, dict):
        raise SlackError(f"interaction payload field {'.'.join(path)!r} must be an object")
    text = node.get("value")
    if text is None:
        return None
    if not isinstance(text, str):
        raise SlackError("the comment (state.values...value) must be a string")
    if len(text) > COMMENT_MAX:
        raise SlackError(f"the comment is longer than {COMMENT_MAX} characters")
    return text.strip() or None


def _text_field(payload: dict[str, Any], outer: str, name: str) -> str | None:
    """``payload[outer][name]``: optional, but when given, an object holding a string (as Slack sends)."""
    inner = payload.get(outer)
    if inner is None:
        return None
    if not isinstance(inner, dict):
        raise SlackError(f"interaction payload field {outer!r} must be an object")
    value = inner.get(name)
    if value is not None and not isinstance(value, str):
        raise SlackError(f"interaction payload field {outer}.{name} must be a string")
    return value or None
