"""``email.send``: the contract's name for sending an e-mail. It is ``notify.email`` under another id and
calls it, so SMTP is spoken in one place only (:mod:`bastion.connectors.notify`, which reuses the approval
mailer)."""

from __future__ import annotations

from typing import Any

from bastion.connectors.notify import send_email
from bastion.connectors.registry import ActionContext, action

__all__ = ["send"]


@action("email.send", impact="low", idempotent=True)
async def send(
    to: list[str] | str, subject: str, body: str, html: str | None = None, *, ctx: ActionContext
) -> dict[str, Any]:
    """Send an e-mail through the configured SMTP server (the same as notify.email).

    Args:
        to: one address or a list of addresses
        subject: the subject line
        body: the plain-text body
        html: an optional HTML alternative of the body
    """
    return await send_email(to, subject, body, html, ctx=ctx)
