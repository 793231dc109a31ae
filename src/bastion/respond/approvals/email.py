"""E-mail: one message per eligible approver, with that approver's own signed Approve and Deny links,
sent over SMTP (``smtplib``; STARTTLS and login when configured)."""

from __future__ import annotations

import smtplib
from email.message import EmailMessage

from bastion.config import Settings
from bastion.respond.approvals.model import Approval, ApprovalError

__all__ = ["EmailError", "compose", "send"]


class EmailError(ApprovalError):
    """SMTP is not configured or refused the message."""


def compose(
    approval: Approval, *, to: str, user: str, approve_url: str, deny_url: str, settings: Settings
) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = settings.smtp_from
    msg["To"] = to
    msg["Subject"] = f"[Bastion] Approval needed: {approval.summary}"[:250]
    lines = [
        f"Hello {user},",
        "",
        f"A workflow asks for your approval: {approval.summary}",
        "",
        f"Action:   {approval.action}",
        f"Run/step: {approval.run_id} / {approval.step_id}",
        f"Reason:   {approval.reason or '-'}",
        f"Quorum:   {approval.quorum}",
        "",
        f"Approve: {approve_url}",
        f"Deny:    {deny_url}",
        "",
        "Each link works once, only for you, and expires. Opening it shows a confirmation page.",
    ]
    msg.set_content("\n".join(lines))
    return msg


def send(messages: list[EmailMessage], settings: Settings) -> None:
    if not settings.smtp_host:
        raise EmailError("e-mail is not configured: set BASTION_SMTP_HOST")
    try:
        with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=15) as smtp:
            if settings.smtp_starttls:
                smtp.starttls()
            if settings.smtp_username:
                smtp.login(settings.smtp_username, settings.smtp_password or "")
            for msg in messages:
                smtp.send_message(msg)
    except (smtplib.SMTPException, OSError) as exc:
        raise EmailError(f"SMTP {settings.smtp_host}:{settings.smtp_port} failed: {exc}") from None
