"""``bastion agent intel VALUE --tenant NAME``: the threat intelligence agent on an indicator, an actor or
campaign name, an ATT&CK id, or a case (``case:12`` / ``#12``). Prints the assessment (verdict, risk,
confidence and how it was derived, sightings, related cases, techniques, sources); ``--case`` links the
run to a case, so it shows on the case's timeline."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from bastion.cli._common import JsonOpt, TenantOpt, UserError, emit, open_db, out
from bastion.cli.agents import agent_app

__all__ = ["agent_intel"]


def tenant_and_case(db: Any, tenant: str, case: str | None) -> tuple[str, str | None]:
    """The tenant's id and the case ``case`` names (its id), or a UserError saying what is wrong."""
    from bastion.store import TenantRepository, TenantScope
    from bastion.tenancy.service import require_tenant

    with db.read() as conn:
        tid = require_tenant(TenantRepository(conn), tenant).id
        if case is None:
            return tid, None
        found = TenantScope(conn, tid).cases.resolve(case)
    if found is None:
        raise UserError(f"no case {case} in tenant {tenant} (use its id or number, e.g. 12)")
    return tid, found


@agent_app.command("intel")
def agent_intel(
    value: Annotated[str, typer.Argument(help="an indicator, actor/campaign name, ATT&CK id, or case:ID")],
    tenant: TenantOpt,
    case: Annotated[
        str | None, typer.Option("--case", help="link the run to this case (id or number)")
    ] = None,
    json: JsonOpt = False,
) -> None:
    """Assess an indicator, actor, campaign, technique or case with the threat intelligence agent."""
    from bastion.agents.spec import Task
    from bastion.cli.agents._drive import run_specialist

    if not value.strip():
        raise UserError("give a value to assess: an indicator, a name, an ATT&CK id or case:ID")
    db = open_db()
    tid, case_id = tenant_and_case(db, tenant, case)
    task = Task(
        agent="intel",
        objective=f"threat intel assessment of {value}",
        input={"value": value},
        tenant_id=tid,
        case_id=case_id,
    )
    view = run_specialist(db, tid, "intel", task, actor="cli")
    if json:
        emit(view)
    else:
        show_intel(view)
    if view["status"] != "succeeded":
        raise typer.Exit(1)


def show_intel(view: dict[str, Any]) -> None:
    o = view.get("output")
    if not o:
        out.print(f"run {view['run_id']}: {view['status']}: {view.get('error')}", highlight=False)
        return
    out.print(
        f"[bold]{o['subject']}[/bold] ({o['subject_kind']}): {o['verdict']}, risk {o['risk']}, "
        f"confidence {o['confidence']}/100",
        highlight=False,
    )
    out.print(o["summary"], highlight=False, markup=False)
    out.print("confidence: " + "; ".join(o["confidence_basis"]), highlight=False, markup=False)
    for src in o["sources"][:15]:
        out.print(f"  {src['kind']}: {src['ref']} {src.get('detail') or ''}", highlight=False, markup=False)
    out.print(f"run {view['run_id']} ({view['model']})", highlight=False)
