"""``bastion agent troubleshoot --run ID | --connection NAME | --feed NAME --tenant NAME [--fix]``: the
troubleshooting agent. It classifies the cause of a failed run, or of an unhealthy connection or feed,
runs the health checks and proposes a fix; with ``--fix`` it applies a safe one (a retry with backoff, a
feed poll), never a high-impact action."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from bastion.cli._common import JsonOpt, TenantOpt, UserError, emit, open_db, out
from bastion.cli.agents import agent_app
from bastion.cli.agents.intel import tenant_and_case

__all__ = ["agent_troubleshoot"]


@agent_app.command("troubleshoot")
def agent_troubleshoot(
    tenant: TenantOpt,
    run: Annotated[str | None, typer.Option("--run", help="a failed workflow run id")] = None,
    connection: Annotated[str | None, typer.Option("--connection", help="a connection name")] = None,
    feed: Annotated[str | None, typer.Option("--feed", help="an intel feed name")] = None,
    fix: Annotated[
        bool, typer.Option("--fix", help="apply a safe fix (retry with backoff, re-poll)")
    ] = False,
    json: JsonOpt = False,
) -> None:
    """Find why a run, connection or feed fails; propose a fix, or apply a safe one with --fix."""
    from bastion.agents.spec import Task
    from bastion.cli.agents._drive import run_specialist

    given = {k: v for k, v in (("run", run), ("connection", connection), ("feed", feed)) if v}
    if len(given) != 1:
        raise UserError("give exactly one of --run ID, --connection NAME or --feed NAME")
    ((kind, ref),) = given.items()
    db = open_db()
    if fix:  # a re-polled feed may bring intel about the tenant: its bound workflows start, as on a load
        from bastion.pipeline import connect_response

        connect_response(db)
    tid, _ = tenant_and_case(db, tenant, None)
    _check_subject(db, tid, kind, ref)
    task = Task(
        agent="troubleshoot",
        objective=f"troubleshoot {kind} {ref}",
        input={kind: ref, "fix": fix},
        tenant_id=tid,
    )
    view = run_specialist(db, tid, "troubleshoot", task, actor="cli")
    if json:
        emit(view)
    else:
        show_report(view)
    if view["status"] != "succeeded":
        raise typer.Exit(1)


def _check_subject(db: Any, tenant_id: str, kind: str, ref: str) -> None:
    """A run or feed that does not exist, or a connection that is neither configured nor a connector's,
    is a typo: say so instead of diagnosing it."""
    from bastion.connectors.registry import all_actions
    from bastion.store.intel import IntelRepository
    from bastion.store.workflows import WorkflowRepository
    from bastion.tenancy.connections import get_connection

    with db.read() as conn:
        if kind == "run" and WorkflowRepository(conn, tenant_id).get_run(ref) is None:
            raise UserError(f"no run {ref} in this tenant (`bastion runs list`)")
        if kind == "feed" and IntelRepository(conn, tenant_id).feed(ref) is None:
            raise UserError(f"no feed named {ref!r} in this tenant (`bastion intel feeds list`)")
        if (
            kind == "connection"
            and get_connection(conn, tenant_id, ref) is None
            and not any(a.connection == ref for a in all_actions())
        ):
            raise UserError(f"no connection {ref!r} in this tenant and no connector of that name")


def show_report(view: dict[str, Any]) -> None:
    o = view.get("output")
    if not o:
        out.print(f"run {view['run_id']}: {view['status']}: {view.get('error')}", highlight=False)
        return
    out.print(
        f"[bold]{o['subject_kind']} {o['subject']}[/bold]: cause [bold]{o['cause']}[/bold] "
        f"(confidence {o['confidence']})",
        highlight=False,
    )
    for e in o["evidence"]:
        out.print(f"  - {e}", highlight=False, markup=False)
    for s in o["failed_steps"]:
        out.print(
            f"  step {s['step_id']} ({s['action']}): {s['cause']}: {s['error']}",
            highlight=False,
            markup=False,
        )
    f = o["fix"]
    state = "applied" if f["applied"] else ("proposed" if f["tool"] else "advice")
    out.print(f"fix ({state}): {f['summary']}", highlight=False, markup=False)
    if f.get("result"):
        out.print(f"  result: {f['result']}", highlight=False, markup=False)
