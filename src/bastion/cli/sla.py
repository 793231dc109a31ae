"""SLA commands: ``bastion sla check`` runs the check that ``bastion up`` runs on a schedule, once.

Useful from cron when no server runs, and to see at once what a policy change escalates.
"""

from __future__ import annotations

from typing import Annotated

import typer

from bastion.cli._common import JsonOpt, app, cli_settings, emit, open_db, out

__all__ = ["sla_app"]

sla_app = typer.Typer(help="Case SLAs: check for breaches, escalate and notify.", no_args_is_help=True)
app.add_typer(sla_app, name="sla")


@sla_app.command("check")
def sla_check(
    tenant: Annotated[str | None, typer.Option("--tenant", "-t", help="only this tenant")] = None,
    json: JsonOpt = False,
) -> None:
    """Escalate open cases past their SLA targets, notify, and start case-triggered workflows."""
    from rich.table import Table

    from bastion.pipeline import connect_response
    from bastion.store import TenantRepository
    from bastion.tenancy.service import require_tenant
    from bastion.triage.sla import check_slas

    db = open_db()
    try:
        tenant_id = None
        if tenant is not None:
            with db.read() as conn:
                tenant_id = require_tenant(TenantRepository(conn), tenant).id
        connect_response(db)  # breaches start the workflows whose case trigger matches
        breaches = check_slas(db, cli_settings(), tenant_id=tenant_id)
    finally:
        db.dispose()
    if json:
        emit({"breaches": breaches})
        return
    if not breaches:
        out.print("no new SLA breaches")
        return
    table = Table("tenant", "case", "breach", "overdue", "queue", "notified")
    for b in breaches:
        notified = {True: "yes", False: f"failed: {b.get('notify_error', '')}", None: "-"}[b["notified"]]
        table.add_row(
            b["tenant"],
            f"#{b['number']}",
            b["kind"],
            f"{b['overdue_s']}s",
            f"{b['from_queue'] or '-'} -> {b['to_queue']}",
            notified,
        )
    out.print(table)
