"""Case commands: ``bastion cases list|show|open|assign|comment|status|close|reopen|merge|split|move|task|
attach|observable|field|report``.

A case is named by its id or number (``12`` or ``#12``). ``--as USER`` names the person acting (the audit
log and timeline record ``user:USER``); without it the actor is ``cli``. ``cases list --json`` prints a
JSON *list* of ``{"id", "number", "title", "status", "severity", "score", "alerts", "queue", "assignee"}``:
other tools rely on that shape.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import msgspec
import orjson
import typer
from rich.table import Table

from bastion.cli._common import (
    INT64_MAX,
    JsonOpt,
    TenantOpt,
    UserError,
    app,
    check_output,
    emit,
    open_db,
    out,
    write_output,
)
from bastion.model import Case, Observable, ObservableType, Severity
from bastion.store import Database, TenantRepository, TenantScope
from bastion.tenancy.service import require_tenant

__all__ = ["cases_app"]

cases_app = typer.Typer(help="Cases: list, show, change, merge, split, report.", no_args_is_help=True)
app.add_typer(cases_app, name="cases")
task_app = typer.Typer(help="A case's tasks.", no_args_is_help=True)
cases_app.add_typer(task_app, name="task")

AsOpt = Annotated[str | None, typer.Option("--as", help="the person acting (default: cli)")]
ReasonOpt = Annotated[str | None, typer.Option("--reason", "-r", help="why")]
T = TypeVar("T")


def _actor(user: str | None) -> str:
    return f"user:{user.strip()}" if user and user.strip() else "cli"


def _tenant_id(db: Database, name: str) -> str:
    with db.read() as conn:
        return require_tenant(TenantRepository(conn), name).id


def _write(tenant: str, fn: Callable[[TenantScope], T]) -> T:
    db = open_db()
    tid = _tenant_id(db, tenant)
    with db.write() as conn:
        return fn(TenantScope(conn, tid))


def _when(ms: int | None) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S") if ms else "-"


def _done(case: Case, what: str, json: bool) -> None:
    if json:
        emit(_brief(case))
    else:
        out.print(f"case #{case.number} {what} ({case.status.value})", highlight=False)


def _brief(case: Case) -> dict[str, Any]:
    return {
        "id": case.id,
        "number": case.number,
        "title": case.title,
        "status": case.status.value,
        "severity": case.severity.name.lower(),
        "score": case.score,
        "alerts": len(case.alert_ids),
        "queue": case.queue,
        "assignee": case.assignee,
        "verdict": case.verdict.value if case.verdict else None,
        "custom_fields": case.custom_fields,
    }


# ------------------------------------------------------------------------------------ reading


@cases_app.command("list")
def cases_list(
    tenant: TenantOpt,
    status: Annotated[str | None, typer.Option(help="a status, or several separated by commas")] = None,
    severity: Annotated[str | None, typer.Option(help="minimum severity")] = None,
    assignee: str | None = None,
    queue: str | None = None,
    search: Annotated[str | None, typer.Option("--search", "-q", help="a substring of the title")] = None,
    min_score: Annotated[int | None, typer.Option(min=0, max=100)] = None,
    limit: Annotated[int, typer.Option(min=1, max=10000)] = 100,
    offset: Annotated[int, typer.Option(min=0, max=INT64_MAX)] = 0,
    json: JsonOpt = False,
) -> None:
    """List cases, most recently updated first."""
    from bastion.cases.lifecycle import parse_status

    statuses = [parse_status(s) for s in status.split(",") if s.strip()] if status is not None else None
    if statuses == []:  # "--status ,,," named none: listing nothing would look like "no cases"
        raise UserError(f"--status {status!r} names no status; give one or several, separated by commas")
    db = open_db()
    tid = _tenant_id(db, tenant)
    with db.read() as conn:
        rows, total = TenantScope(conn, tid).cases.page(
            status=statuses,
            min_severity=Severity.parse(severity) if severity else None,
            assignee=assignee,
            queue=queue,
            q=search,
            min_score=min_score,
            limit=limit,
            offset=offset,
        )
    keys = ("id", "number", "title", "status", "severity", "score", "alerts", "queue", "assignee")
    if json:
        emit([{k: r[k] for k in keys} for r in rows])
        return
    table = Table(caption=f"{len(rows)} of {total} case(s)")
    for name in ("#", "status", "severity", "score", "alerts", "queue", "assignee", "title"):
        table.add_column(name)
    for r in rows:
        table.add_row(
            str(r["number"]),
            r["status"],
            r["severity"],
            str(r["score"]),
            str(r["alerts"]),
            r["queue"] or "-",
            r["assignee"] or "-",
            r["title"],
        )
    out.print(table)


def _explain(case: Case) -> list[str]:
    from bastion.triage.score import explain

    return list(explain(case.score_components))


@cases_app.command("show")
def cases_show(case: str, tenant: TenantOpt, json: JsonOpt = False) -> None:
    """Show a case: its score explained line by line, its alerts, tasks and full timeline."""
    from bastion.cases.service import get_case
    from bastion.cases.view import case_document

    db = open_db()
    tid = _tenant_id(db, tenant)
    with db.read() as conn:
        scope = TenantScope(conn, tid)
        found = get_case(scope, case)
        doc = case_document(scope, found)
    doc["score_explained"] = _explain(found)
    if json:
        emit(doc)
        return
    out.print(
        f"[bold]Case #{doc['number']}[/bold] {doc['title']}\n"
        f"status {doc['status']}  severity {doc['severity']}  score {doc['score']}  "
        f"queue {doc.get('queue') or '-'}  tier {doc['tier']}  assignee {doc.get('assignee') or '-'}"
        + (f"  verdict {doc['verdict']}" if doc.get("verdict") else ""),
        highlight=False,
    )
    out.print(f"\n[bold]Score {doc['score']}[/bold]", highlight=False)
    for line in doc["score_explained"] or ["(no score components yet)"]:
        out.print(f"  {line}", highlight=False)
    if doc["custom_fields"]:
        out.print("\n[bold]Fields[/bold]")
        for k, v in doc["custom_fields"].items():
            out.print(f"  {k}: {orjson.dumps(v).decode()}", highlight=False)
    out.print(f"\n[bold]Alerts ({len(doc['alerts'])})[/bold]")
    for a in doc["alerts"]:
        out.print(
            f"  {a['id']}  {a['severity']:<8} {a['status']:<12} {a['title']}"
            + (f"  [dim]({a['reason']})[/dim]" if a["reason"] else ""),
            highlight=False,
        )
    if doc.get("tasks"):
        out.print("\n[bold]Tasks[/bold]")
        for t in doc["tasks"]:
            mark = {"done": "x", "cancelled": "-"}.get(t.get("status", "open"), " ")
            out.print(f"  [{mark}] {t['title']}  [dim]{t['id']}[/dim]", highlight=False)
    if doc.get("attachments"):
        out.print("\n[bold]Attachments[/bold]")
        for att in doc["attachments"]:
            out.print(f"  {att['name']}  {att['size']} bytes  sha256 {att['sha256']}", highlight=False)
    out.print("\n[bold]Timeline[/bold]")
    for e in doc["timeline"]:
        out.print(
            f"  {_when(e['time'])}  {e['kind']:<18} {e['summary']}"
            + (f"  [dim]{e['actor']}[/dim]" if e.get("actor") else ""),
            highlight=False,
        )


# ------------------------------------------------------------------------------------ changing


@cases_app.command("open")
def cases_open(
    title: str,
    tenant: TenantOpt,
    severity: Annotated[str, typer.Option(help="informational, low, medium, high, critical")] = "medium",
    alert: Annotated[list[str] | None, typer.Option("--alert", "-a", help="an alert id (repeatable)")] = None,
    description: str | None = None,
    template: Annotated[str | None, typer.Option(help="a case template of the triage policy")] = None,
    user: AsOpt = None,
    json: JsonOpt = False,
) -> None:
    """Open a case (optionally with alerts and a template)."""
    from bastion.cases.service import open_case

    sev = Severity.parse(severity)
    case = _write(
        tenant,
        lambda s: open_case(
            s, _actor(user), title, sev, description=description, alert_ids=alert or [], template=template
        ),
    )
    _done(case, "opened", json)


@cases_app.command("assign")
def cases_assign(
    case: str,
    assignee: Annotated[str, typer.Argument(help="who; '-' unassigns")],
    tenant: TenantOpt,
    user: AsOpt = None,
    json: JsonOpt = False,
) -> None:
    """Assign a case (this acknowledges it)."""
    from bastion.cases.service import assign

    who = None if assignee.strip() in ("-", "") else assignee
    _done(
        _write(tenant, lambda s: assign(s, _actor(user), case, who)), f"assigned to {who or 'nobody'}", json
    )


@cases_app.command("comment")
def cases_comment(case: str, text: str, tenant: TenantOpt, user: AsOpt = None, json: JsonOpt = False) -> None:
    """Comment on a case."""
    from bastion.cases.service import add_comment

    comment = _write(tenant, lambda s: add_comment(s, _actor(user), case, text))
    if json:
        emit(msgspec.to_builtins(comment))
    else:
        out.print(f"comment {comment.id} added", highlight=False)


@cases_app.command("status")
def cases_status(
    case: str,
    status: Annotated[str, typer.Argument(help="new, triaged, in_progress, contained, resolved")],
    tenant: TenantOpt,
    reason: ReasonOpt = None,
    user: AsOpt = None,
    json: JsonOpt = False,
) -> None:
    """Move a case through its lifecycle (close with `cases close`)."""
    from bastion.cases.lifecycle import change_status, parse_status

    if parse_status(status).value == "closed":
        raise UserError("close a case with `bastion cases close ID --verdict ...`")
    _done(
        _write(tenant, lambda s: change_status(s, _actor(user), case, status, reason=reason)), "moved", json
    )


@cases_app.command("close")
def cases_close(
    case: str,
    tenant: TenantOpt,
    verdict: Annotated[
        str | None, typer.Option(help="true_positive, benign_true_positive or false_positive")
    ] = None,
    reason: ReasonOpt = None,
    user: AsOpt = None,
    json: JsonOpt = False,
) -> None:
    """Close a case with a verdict; its open alerts are closed with it."""
    from bastion.cases.lifecycle import close_case

    _done(_write(tenant, lambda s: close_case(s, _actor(user), case, verdict, reason=reason)), "closed", json)


@cases_app.command("reopen")
def cases_reopen(
    case: str,
    tenant: TenantOpt,
    reason: Annotated[str, typer.Option("--reason", "-r", help="why (required)")] = "",
    status: Annotated[str, typer.Option(help="the status to reopen into")] = "in_progress",
    user: AsOpt = None,
    json: JsonOpt = False,
) -> None:
    """Reopen a closed case."""
    from bastion.cases.lifecycle import reopen_case

    _done(
        _write(tenant, lambda s: reopen_case(s, _actor(user), case, reason, status=status)), "reopened", json
    )


@cases_app.command("merge")
def cases_merge(
    target: str,
    sources: Annotated[list[str], typer.Argument(help="the cases merged into TARGET")],
    tenant: TenantOpt,
    reason: ReasonOpt = None,
    user: AsOpt = None,
    json: JsonOpt = False,
) -> None:
    """Merge cases into TARGET (their alerts, comments, tasks, attachments and timeline move)."""
    from bastion.cases.merge import merge_cases

    _done(_write(tenant, lambda s: merge_cases(s, _actor(user), target, sources, reason)), "merged", json)


@cases_app.command("split")
def cases_split(
    case: str,
    alerts: Annotated[list[str], typer.Argument(help="alert ids to move into the new case")],
    tenant: TenantOpt,
    title: Annotated[str, typer.Option(help="the new case's title")] = "",
    reason: ReasonOpt = None,
    user: AsOpt = None,
    json: JsonOpt = False,
) -> None:
    """Split alerts off a case into a new case."""
    from bastion.cases.merge import split_case

    new = _write(tenant, lambda s: split_case(s, _actor(user), case, alerts, title, reason))
    _done(new, "split off", json)


@cases_app.command("move")
def cases_move(
    alert: str,
    case: Annotated[str, typer.Argument(help="the case the alert moves to")],
    tenant: TenantOpt,
    reason: ReasonOpt = None,
    user: AsOpt = None,
    json: JsonOpt = False,
) -> None:
    """Move an alert into a case (out of the case it was in)."""
    from bastion.cases.merge import move_alert

    _done(
        _write(tenant, lambda s: move_alert(s, _actor(user), alert, case, reason)), "received the alert", json
    )


@task_app.command("add")
def task_add(
    case: str,
    title: str,
    tenant: TenantOpt,
    assignee: str | None = None,
    user: AsOpt = None,
    json: JsonOpt = False,
) -> None:
    """Add a task to a case."""
    from bastion.cases.service import add_task

    task = _write(tenant, lambda s: add_task(s, _actor(user), case, title, assignee))
    if json:
        emit(msgspec.to_builtins(task))
    else:
        out.print(f"task {task.id} added", highlight=False)


def _task_status(case: str, task_id: str, tenant: str, status: str, user: str | None, json: bool) -> None:
    from bastion.cases.service import set_task_status

    task = _write(tenant, lambda s: set_task_status(s, _actor(user), case, task_id, status))
    if json:
        emit(msgspec.to_builtins(task))
    else:
        out.print(f"task {task.id} {task.status.value}", highlight=False)


@task_app.command("done")
def task_done(case: str, task_id: str, tenant: TenantOpt, user: AsOpt = None, json: JsonOpt = False) -> None:
    """Complete a task."""
    _task_status(case, task_id, tenant, "done", user, json)


@task_app.command("cancel")
def task_cancel(
    case: str, task_id: str, tenant: TenantOpt, user: AsOpt = None, json: JsonOpt = False
) -> None:
    """Cancel a task."""
    _task_status(case, task_id, tenant, "cancelled", user, json)


@task_app.command("reopen")
def task_reopen(
    case: str, task_id: str, tenant: TenantOpt, user: AsOpt = None, json: JsonOpt = False
) -> None:
    """Reopen a task."""
    _task_status(case, task_id, tenant, "open", user, json)


@cases_app.command("attach")
def cases_attach(
    case: str,
    file: Annotated[Path, typer.Argument(help="the file to attach")],
    tenant: TenantOpt,
    name: Annotated[str | None, typer.Option(help="the name to store (default: the file's)")] = None,
    user: AsOpt = None,
    json: JsonOpt = False,
) -> None:
    """Attach a file to a case (stored with its SHA-256; 20 MB at most)."""
    from bastion.cases.attachments import MAX_ATTACHMENT_BYTES, add_attachment

    if not file.is_file():
        raise UserError(f"no file {file}")
    if file.stat().st_size > MAX_ATTACHMENT_BYTES:
        raise UserError(f"{file} is {file.stat().st_size} bytes; the limit is {MAX_ATTACHMENT_BYTES} (20 MB)")
    data = file.read_bytes()
    att = _write(tenant, lambda s: add_attachment(s, _actor(user), case, name or file.name, data))
    if json:
        emit(msgspec.to_builtins(att))
    else:
        out.print(f"attached {att.name} ({att.size} bytes, sha256 {att.sha256}) as {att.id}", highlight=False)


@cases_app.command("observable")
def cases_observable(
    case: str,
    type: Annotated[str, typer.Argument(help="ipv4, domain, host, user, sha256, ...")],
    value: str,
    tenant: TenantOpt,
    user: AsOpt = None,
    json: JsonOpt = False,
) -> None:
    """Add an observable to a case by hand."""
    from bastion.cases.service import add_observables

    try:
        kind = ObservableType(type)
    except ValueError:
        raise UserError(
            f"unknown observable type {type!r}: use {', '.join(t.value for t in ObservableType)}"
        ) from None
    added = _write(
        tenant, lambda s: add_observables(s, _actor(user), case, [Observable(kind, value.strip())])
    )
    if json:
        emit({"added": added})
    else:
        out.print("observable added" if added else "the case already has that observable", highlight=False)


@cases_app.command("field")
def cases_field(
    case: str,
    key: str,
    tenant: TenantOpt,
    value: Annotated[
        str | None, typer.Argument(help="a JSON value (or plain text); omit with --unset")
    ] = None,
    unset: Annotated[bool, typer.Option("--unset", help="remove the field")] = False,
    user: AsOpt = None,
    json: JsonOpt = False,
) -> None:
    """Set (or --unset) a custom field of a case."""
    from bastion.cases.service import set_custom_field, unset_custom_field

    if unset:
        updated = _write(tenant, lambda s: unset_custom_field(s, _actor(user), case, key))
    else:
        if value is None:
            raise UserError("give a value, or --unset")
        try:
            parsed: Any = orjson.loads(value)
        except orjson.JSONDecodeError:
            parsed = value
        updated = _write(tenant, lambda s: set_custom_field(s, _actor(user), case, key, parsed))
    _done(updated, f"field {key} {'removed' if unset else 'set'}", json)


@cases_app.command("report")
def cases_report(
    case: str,
    tenant: TenantOpt,
    format: Annotated[str, typer.Option("--format", "-f", help="html, md or pdf")] = "html",
    output: Annotated[Path | None, typer.Option("--out", "-o", help="the file to write")] = None,
    json: JsonOpt = False,
) -> None:
    """Write one incident's report: timeline, actions, approvals and evidence."""
    from bastion.report.case_report import render_case_report

    if format not in ("html", "md", "pdf"):
        raise UserError(f"unknown format {format!r}: use html, md or pdf")
    output = check_output(output)
    db = open_db()
    tid = _tenant_id(db, tenant)
    with db.read() as conn:
        from bastion.cases.service import require_case

        case_id = require_case(TenantScope(conn, tid), case)
    data = render_case_report(db, tid, case_id, format)
    write_output(output, data)
    if json:
        emit({"case_id": case_id, "format": format, "out": str(output), "bytes": len(data)})
    else:
        out.print(f"wrote {output} ({len(data)} bytes)", highlight=False)
