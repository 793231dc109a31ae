"""Approval commands: ``bastion approvals list|show|slack-link|slack-channel``, ``bastion approve ID`` and
``bastion deny ID``.

The CLI has the store's full access, so ``--as USER`` names the deciding user; that user's role, the
four-eyes rule and the quorum are enforced exactly as for every other channel.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer
from rich.table import Table

from bastion.cli._common import JsonOpt, TenantOpt, UserError, app, emit, open_db, out
from bastion.store import Database, TenantRepository
from bastion.tenancy.service import require_tenant

if TYPE_CHECKING:
    from bastion.respond.approvals import Approval

__all__ = ["approvals_app"]

approvals_app = typer.Typer(help="Human approvals of workflow steps.", no_args_is_help=True)
app.add_typer(approvals_app, name="approvals")

AsOpt = Annotated[str, typer.Option("--as", help="the user deciding (their role is checked)")]
CommentOpt = Annotated[str | None, typer.Option("--comment", "-m", help="why")]
_STATUSES = ("pending", "approved", "denied", "expired", "all")


def _tenant_id(db: Database, name: str) -> str:
    with db.read() as conn:
        return require_tenant(TenantRepository(conn), name).id


def _when(ms: int | None) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S") if ms else "-"


def _row(a: Approval) -> dict[str, Any]:
    return {
        "id": a.id,
        "run_id": a.run_id,
        "step": a.step_id,
        "action": a.action,
        "requested_at": a.requested_at_ms,
        "status": a.status,
        "summary": a.summary,
        "roles": a.roles,
        "quorum": a.quorum,
        "approvals": a.approvals,
        "deadline": a.deadline_ms,
        "requested_by": a.requested_by,
    }


@approvals_app.command("list")
def approvals_list(
    tenant: TenantOpt,
    status: Annotated[str, typer.Option(help="pending, approved, denied, expired or all")] = "pending",
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 100,
    json: JsonOpt = False,
) -> None:
    """List a tenant's approvals, newest first (pending ones by default)."""
    if status not in _STATUSES:
        raise UserError(f"unknown status {status!r}; use one of {', '.join(_STATUSES)}")
    db = open_db()
    from bastion.respond.approvals import list_approvals

    found = list_approvals(
        db, _tenant_id(db, tenant), status=None if status == "all" else status, limit=limit
    )
    if json:
        emit([_row(a) for a in found])
        return
    table = Table()
    table.add_column("id", no_wrap=True)
    for name in ("requested", "action", "step", "status", "votes", "summary"):
        table.add_column(name)
    for a in found:
        table.add_row(
            a.id,
            _when(a.requested_at_ms),
            a.action,
            a.step_id,
            a.status,
            f"{a.approvals}/{a.quorum}",
            a.summary,
        )
    out.print(table)


@approvals_app.command("show")
def approvals_show(approval_id: str, tenant: TenantOpt, json: JsonOpt = False) -> None:
    """Show one approval with its decisions."""
    db = open_db()
    from bastion.respond.approvals import get_approval

    a = get_approval(db, _tenant_id(db, tenant), approval_id)
    if json:
        emit(a.to_dict())
        return
    out.print(f"[bold]{a.summary}[/bold]  ({a.status})", highlight=False)
    out.print(f"action {a.action}, run {a.run_id}, step {a.step_id}", highlight=False)
    out.print(
        f"roles {', '.join(a.roles)}, quorum {a.quorum}, deadline {_when(a.deadline_ms)}", highlight=False
    )
    for d in a.decisions:
        note = f": {d.comment}" if d.comment else ""
        out.print(f"  {_when(d.time)} {d.user} {d.decision} via {d.channel}{note}", highlight=False)


@approvals_app.command("slack-link")
def approvals_slack_link(
    tenant: TenantOpt,
    slack_user: Annotated[str, typer.Option("--slack-user", help="Slack user id, like U012AB3CD")],
    user: Annotated[str, typer.Option("--user", help="the Bastion user they act as")],
    json: JsonOpt = False,
) -> None:
    """Let a Slack user decide approvals from Slack as a Bastion user of this tenant."""
    db = open_db()
    from bastion.respond.approvals import map_slack_user

    map_slack_user(db, _tenant_id(db, tenant), slack_user, user, actor="cli")
    if json:
        emit({"tenant": tenant, "slack_user": slack_user, "user": user})
    else:
        out.print(f"Slack user {slack_user} now decides as {user}", highlight=False)


@approvals_app.command("slack-channel")
def approvals_slack_channel(
    tenant: TenantOpt,
    channel: Annotated[
        str | None, typer.Option("--channel", help="channel name or id; omit to use BASTION_SLACK_CHANNEL")
    ] = None,
    json: JsonOpt = False,
) -> None:
    """Post this tenant's approval requests to its own Slack channel."""
    db = open_db()
    from bastion.respond.approvals import set_slack_channel

    set_slack_channel(db, _tenant_id(db, tenant), channel, actor="cli")
    if json:
        emit({"tenant": tenant, "slack_channel": channel})
    else:
        out.print(
            f"approval requests of {tenant} go to {channel or 'BASTION_SLACK_CHANNEL'}", highlight=False
        )


def _decide(
    approval_id: str,
    tenant: str,
    user: str,
    decision: Literal["approve", "deny"],
    comment: str | None,
    json: bool,
) -> None:
    db = open_db()
    from bastion.respond.approvals import decide

    a = decide(
        db, _tenant_id(db, tenant), approval_id, user=user, decision=decision, comment=comment, channel="cli"
    )
    if json:
        emit(a.to_dict())
    else:
        out.print(
            f"{decision} recorded for {a.id}: now {a.status} ({a.approvals}/{a.quorum} approvals)",
            highlight=False,
        )


@app.command("approve")
def approve(
    approval_id: str, tenant: TenantOpt, as_: AsOpt, comment: CommentOpt = None, json: JsonOpt = False
) -> None:
    """Approve a pending approval as ``--as USER``."""
    _decide(approval_id, tenant, as_, "approve", comment, json)


@app.command("deny")
def deny(
    approval_id: str, tenant: TenantOpt, as_: AsOpt, comment: CommentOpt = None, json: JsonOpt = False
) -> None:
    """Deny a pending approval as ``--as USER`` (one deny resolves it)."""
    _decide(approval_id, tenant, as_, "deny", comment, json)
