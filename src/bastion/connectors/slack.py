"""Slack: ``slack.post_message`` (``chat.postMessage`` with a bot token).

The call goes through the vendor client every connector uses (:mod:`bastion.connectors.vendor_http`), so
it connects only to an address the SSRF guard checked: the tenant names the API base URL
(``base_url``, default the installation's ``slack_api_url``), and ``slack-sdk``'s ``WebClient``, which
the approvals use with the installation's own URL, resolves names itself on ``urllib``. The request is
Slack's documented one: ``POST chat.postMessage`` with ``Authorization: Bearer`` and a JSON body. The
bot token is the tenant's secret ``slack_bot_token`` (a tenant may use its own Slack workspace, not the
installation's). Slack answers most errors with HTTP 200 and ``{"ok": false, "error": ...}``; those, and
any other refusal, become :class:`~bastion.connectors.vendor_http.VendorError` (``slack: 200
channel_not_found``). A 429 is retried after its Retry-After.
"""

from __future__ import annotations

from typing import Any

from bastion.connectors.registry import ActionContext, action
from bastion.connectors.vendor_http import VendorError, request, secret

__all__ = ["post_message"]


def _describe(status: int, body: Any, text: str) -> tuple[str, str]:
    return (str(body.get("error") or ""), "") if isinstance(body, dict) else ("", "")


def _api(ctx: ActionContext) -> str:
    from bastion.connectors.settings import current_settings

    base = str(ctx.connection.get("base_url") or current_settings().slack_api_url)
    return base if base.endswith("/") else base + "/"


@action(
    "slack.post_message", impact="low", secrets=("slack_bot_token",), idempotent=False, connection="slack"
)
async def post_message(
    channel: str,
    text: str,
    blocks: list[dict[str, Any]] | None = None,
    thread_ts: str | None = None,
    *,
    ctx: ActionContext,
) -> dict[str, Any]:
    """Post a message to a Slack channel as the Bastion bot (the bot must be in the channel).

    Args:
        channel: a channel id (C0123...) or name (#soc)
        text: the message text (also the notification fallback when blocks are given)
        blocks: Block Kit blocks for a richer message
        thread_ts: the ts of a message to reply to in its thread
    """
    token = secret(ctx, "slack", "slack_bot_token")
    args: dict[str, Any] = {"channel": channel, "text": text}
    if blocks:
        args["blocks"] = blocks
    if thread_ts:
        args["thread_ts"] = thread_ts
    answer = await request(
        ctx,
        "slack",
        "POST",
        _api(ctx) + "chat.postMessage",
        describe=_describe,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json; charset=utf-8"},
        json=args,
        timeout=15.0,
    )
    body = answer.json if isinstance(answer.json, dict) else {}
    if not body.get("ok"):
        raise VendorError("slack", answer.status, str(body.get("error") or "not ok"), "", body)
    ctx.log(f"posted to Slack channel {body.get('channel')}")
    return {"ok": True, "channel": body.get("channel"), "ts": body.get("ts")}
