"""Slack: ``slack.post_message`` (``chat.postMessage`` with a bot token).

It uses ``slack-sdk``'s ``WebClient`` as the approvals do (:mod:`bastion.respond.approvals.slack`), with
the same API base URL setting (``slack_api_url``) unless the connection names its own ``base_url``, so a
test talks to a local Slack over a real socket. The bot token is the tenant's secret ``slack_bot_token``
(a tenant may use its own Slack workspace, not the installation's). The URL passes the SSRF guard first.
Slack answers most errors with HTTP 200 and ``{"ok": false, "error": ...}``; ``slack-sdk`` turns those
into ``SlackApiError`` and we into :class:`ActionError`. A 429 is retried after its Retry-After, twice
at most.
"""

from __future__ import annotations

import asyncio
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.http_retry import RateLimitErrorRetryHandler

from bastion.connectors.core import check_url
from bastion.connectors.registry import ActionContext, ActionError, action
from bastion.connectors.vendor_http import secret

__all__ = ["post_message"]

RATE_LIMIT_RETRIES = 2


def _client(ctx: ActionContext) -> WebClient:
    from bastion.connectors.settings import current_settings

    token = secret(ctx, "slack", "slack_bot_token")
    base = str(ctx.connection.get("base_url") or current_settings().slack_api_url)
    base = base if base.endswith("/") else base + "/"
    client = WebClient(token=token, base_url=base, timeout=15)
    client.retry_handlers.append(RateLimitErrorRetryHandler(max_retry_count=RATE_LIMIT_RETRIES))
    return client


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
    client = _client(ctx)
    await check_url(client.base_url, allow_private=bool(ctx.connection.get("allow_private", False)))
    kwargs: dict[str, Any] = {"channel": channel, "text": text}
    if blocks:
        kwargs["blocks"] = blocks
    if thread_ts:
        kwargs["thread_ts"] = thread_ts
    try:
        resp = await asyncio.to_thread(client.chat_postMessage, **kwargs)
    except SlackApiError as exc:
        status = exc.response.status_code
        raise ActionError(f"slack: {status} {exc.response.get('error')}") from None
    except (SlackClientError, OSError) as exc:
        raise ActionError(f"slack: chat.postMessage failed: {exc}") from None
    ctx.log(f"posted to Slack channel {resp.get('channel')}")
    return {"ok": True, "channel": resp.get("channel"), "ts": resp.get("ts")}
