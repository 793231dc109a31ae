"""``bastion agent docs case ID | post-incident ID | runbook WORKFLOW_ID --tenant NAME``: the documentation
agent. Writes a case report, a post-incident report or a runbook from a workflow, in Markdown or HTML,
to ``--output FILE`` or standard output."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bastion.cli._common import TenantOpt, UserError, emit, err, open_db, write_output
from bastion.cli.agents import agent_app
from bastion.cli.agents.intel import tenant_and_case

__all__ = ["agent_docs"]

_KINDS = {
    "case": "case",
    "post-incident": "post_incident",
    "post_incident": "post_incident",
    "runbook": "runbook",
}


@agent_app.command("docs")
def agent_docs(
    kind: Annotated[str, typer.Argument(help="case, post-incident or runbook")],
    ref: Annotated[str, typer.Argument(help="the case id/number, or the workflow id for a runbook")],
    tenant: TenantOpt,
    format: Annotated[str, typer.Option("--format", help="md or html")] = "md",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="write the document to this file")
    ] = None,
    json: Annotated[bool, typer.Option("--json", help="print the run and the document as JSON")] = False,
) -> None:
    """Write a case report, a post-incident report or a runbook (Markdown or HTML)."""
    from bastion.agents.spec import Task
    from bastion.cli.agents._drive import run_specialist

    doc_kind = _KINDS.get(kind.lower())
    if doc_kind is None:
        raise UserError(f"unknown document {kind!r}: use case, post-incident or runbook")
    fmt = format.lower()
    if fmt == "markdown":
        fmt = "md"
    if fmt not in ("md", "html"):
        raise UserError(f"unknown format {format!r}: use md or html")
    if output is not None and output.is_dir():
        raise UserError(f"--output {output} is a directory; give a file name")
    db = open_db()
    if doc_kind == "runbook":
        tid, _ = tenant_and_case(db, tenant, None)
        from bastion.store.workflows import WorkflowRepository

        with db.read() as conn:
            if WorkflowRepository(conn, tid).definition(ref) is None:
                raise UserError(f"no workflow {ref!r} in tenant {tenant} (`bastion workflow list`)")
        case_id = None
    else:
        tid, case_id = tenant_and_case(db, tenant, ref)
    task = Task(
        agent="docs",
        objective=f"write the {kind} document for {ref}",
        input={"kind": doc_kind, "ref": ref, "format": fmt},
        tenant_id=tid,
        case_id=case_id,
    )
    view = run_specialist(db, tid, "docs", task, actor="cli")
    o = view.get("output")
    if view["status"] != "succeeded" or not o:
        if json:
            emit(view)
        raise UserError(f"the documentation agent did not finish ({view['status']}): {view.get('error')}")
    if output is not None:
        write_output(output, o["content"].encode())
        err.print(f"wrote {o['title']} to {output}", highlight=False)
    if json:
        emit(view)
    elif output is None:
        typer.echo(o["content"], nl=False)
