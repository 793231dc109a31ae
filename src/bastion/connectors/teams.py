"""Microsoft Teams: ``teams.post_card`` posts an Adaptive Card to a channel's incoming webhook.

The webhook URL is itself the credential (anyone holding it can post), so it is a secret, never an
input. The message is the documented envelope: ``{"type": "message", "attachments": [{"contentType":
"application/vnd.microsoft.card.adaptive", "content": <AdaptiveCard 1.4>}]}``. Classic connector
webhooks answer 200 ``1``; Power Automate "Workflows" webhooks answer 202: both count as delivered.
"""

from __future__ import annotations

from typing import Any

from bastion.connectors.registry import ActionContext, action
from bastion.connectors.vendor_http import request, secret

__all__ = ["adaptive_card", "post_card"]

CARD_TYPE = "application/vnd.microsoft.card.adaptive"


def adaptive_card(
    title: str, text: str, facts: dict[str, Any] | None = None, link: str | None = None
) -> dict[str, Any]:
    """The Adaptive Card (schema 1.4) for a title, a text, an optional fact list and an optional link."""
    body: list[dict[str, Any]] = [
        {"type": "TextBlock", "text": title, "weight": "Bolder", "size": "Medium", "wrap": True},
        {"type": "TextBlock", "text": text, "wrap": True},
    ]
    if facts:
        body.append(
            {"type": "FactSet", "facts": [{"title": str(k), "value": str(v)} for k, v in facts.items()]}
        )
    card: dict[str, Any] = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": body,
    }
    if link:
        card["actions"] = [{"type": "Action.OpenUrl", "title": "Open", "url": link}]
    return card


@action("teams.post_card", impact="low", secrets=("teams_webhook_url",), connection="teams")
async def post_card(
    title: str,
    text: str,
    facts: dict[str, Any] | None = None,
    link: str | None = None,
    *,
    ctx: ActionContext,
) -> dict[str, Any]:
    """Post an Adaptive Card to a Teams channel through its incoming webhook.

    Args:
        title: the card's heading
        text: the card's text (Teams renders a subset of Markdown)
        facts: name/value pairs shown as a fact list (host, user, severity, ...)
        link: a URL for the card's Open button (the case or run in Bastion)
    """
    url = secret(ctx, "teams", "teams_webhook_url")
    message = {
        "type": "message",
        "attachments": [
            {"contentType": CARD_TYPE, "contentUrl": None, "content": adaptive_card(title, text, facts, link)}
        ],
    }
    answer = await request(ctx, "teams", "POST", url, json=message)
    return {"delivered": True, "status": answer.status}
