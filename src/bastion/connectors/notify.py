"""The notification actions: ``notify.email`` (through the operator's SMTP settings) and ``notify.webhook``
(a JSON POST, e.g. to a chat incoming webhook, through ``core.http_request`` and its SSRF guard).

They are what SLA escalation and workflows use to tell people something happened. E-mail reuses the
approval mailer's SMTP code (:func:`bastion.respond.approvals.email.send`), so there is one place that
speaks SMTP; the SMTP server is the operator's (:mod:`bastion.connectors.settings`).
"""

from __future__ import annotations

import asyncio
import hashlib
from email.message import EmailMessage
from typing import Any

from bastion.connectors.core import http_request
from bastion.connectors.registry import ActionContext, ActionError, action
from bastion.connectors.settings import current_settings

__all__ = ["post_webhook", "send_email"]


def _recipients(to: list[str] | str) -> list[str]:
    found = [to] if isinstance(to, str) else list(to)
    out: list[str] = []
    for address in found:
        address = str(address).strip()
        if not address or "@" not in address or any(c in address for c in "\r\n,;<>"):
            raise ActionError(f"invalid e-mail address {address!r}: give one plain address per item")
        if address not in out:
            out.append(address)
    if not out:
        raise ActionError("no recipient: give at least one address in 'to'")
    return out


@action("notify.email", impact="low", idempotent=True)
async def send_email(
    to: list[str] | str, subject: str, body: str, html: str | None = None, *, ctx: ActionContext
) -> dict[str, Any]:
    """Send an e-mail through the configured SMTP server (BASTION_SMTP_HOST and related settings).

    Args:
        to: one address or a list of addresses
        subject: the subject line
        body: the plain-text body
        html: an optional HTML alternative of the body
    """
    from bastion.respond.approvals.email import EmailError, send

    addresses = _recipients(to)
    settings = current_settings()
    msg = EmailMessage()
    msg["From"] = settings.smtp_from
    msg["To"] = ", ".join(addresses)
    msg["Subject"] = " ".join(subject.split())[:250]
    if ctx.idempotency_key:
        # The same logical send always carries the same Message-ID, so a repeat is recognisable.
        digest = hashlib.sha256(f"{ctx.tenant_id}:{ctx.idempotency_key}".encode()).hexdigest()[:32]
        msg["Message-ID"] = f"<{digest}@bastion>"
    msg.set_content(body)
    if html:
        msg.add_alternative(html, subtype="html")
    try:
        await asyncio.to_thread(send, [msg], settings)
    except EmailError as exc:
        raise ActionError(str(exc)) from None
    ctx.log(f"mailed {len(addresses)} recipient(s) through {settings.smtp_host}:{settings.smtp_port}")
    return {"sent": True, "to": addresses, "subject": msg["Subject"], "message_id": msg["Message-ID"]}


@action("notify.webhook", impact="low", idempotent=True)
async def post_webhook(
    url: str,
    payload: Any = None,
    text: str | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 30.0,
    *,
    ctx: ActionContext,
) -> dict[str, Any]:
    """POST a JSON document to a URL (chat incoming webhooks, ticketing, on-call tools). The URL passes
    the same SSRF guard as core.http_request: internal addresses need a connection with allow_private.

    Args:
        url: absolute http(s) URL, or a path joined to the connection's base_url
        payload: the JSON document to send
        text: when no payload is given, send {"text": text} (what Slack and Teams webhooks expect)
        headers: extra request headers
        timeout: seconds before giving up
    """
    if payload is None:
        if text is None:
            raise ActionError("give a payload or a text to send")
        payload = {"text": text}
    answer = await http_request(url, method="POST", headers=headers, json=payload, timeout=timeout, ctx=ctx)
    return {"status": answer["status"], "json": answer["json"], "text": answer["text"]}
