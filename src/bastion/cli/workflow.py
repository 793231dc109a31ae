"""Response commands: ``workflow schema|validate|add|list|install|run``, ``actions list``,
``runs list|show|cancel|retry``, ``secret``, ``connection`` and ``worker``.

``workflow run --wait`` hands the run to a live ``bastion worker`` when there is one; otherwise it
runs it in this process until it leaves ``running``. A run still parked for an approval when the
command returns is continued by the next worker that starts (its executor left, so the run is swept).
With ``--wait`` the command exits 1 when the run ended ``failed`` or ``cancelled``.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.table import Table

from bastion.cli._common import (
    JsonOpt,
    TenantOpt,
    UserError,
    app,
    emit,
    err,
    finite,
    open_db,
    out,
)
from bastion.store import Database, TenantRepository
from bastion.tenancy.service import require_tenant

__all__ = ["actions_app", "runs_app", "workflow_app"]


def _install_delivery() -> None:
    # Approval decisions made from this command line (``bastion approve``) reach the waiting run.
    from bastion.cli._common import cli_settings
    from bastion.respond.runtime import install_delivery

    install_delivery(factory=lambda: Database(cli_settings().database_url))


_install_delivery()

workflow_app = typer.Typer(help="Response workflows.", no_args_is_help=True)
actions_app = typer.Typer(help="The action registry.", no_args_is_help=True)
runs_app = typer.Typer(help="Workflow runs.", no_args_is_help=True)
secret_app = typer.Typer(help="The tenant's encrypted secrets vault.", no_args_is_help=True)
connection_app = typer.Typer(help="The tenant's connections (where integrations live).", no_args_is_help=True)
app.add_typer(workflow_app, name="workflow")
app.add_typer(actions_app, name="actions")
app.add_typer(runs_app, name="runs")
app.add_typer(secret_app, name="secret")
app.add_typer(connection_app, name="connection")

AsOpt = Annotated[str | None, typer.Option("--as", help="the user acting (recorded as requester)")]
WaitTimeoutOpt = Annotated[
    float | None, typer.Option(min=0, callback=finite, help="seconds to wait at most (with --wait)")
]


def _tenant_id(db: Database, name: str) -> str:
    with db.read() as conn:
        return require_tenant(TenantRepository(conn), name).id


def _actor(user: str | None) -> str:
    return f"user:{user}" if user else "cli"


# ---------------------------------------------------------------- workflow


@workflow_app.command("schema")
def workflow_schema_cmd() -> None:
    """Print the JSON Schema of the workflow language."""
    from bastion.respond.schema import workflow_schema

    sys.stdout.write(orjson.dumps(workflow_schema(), option=orjson.OPT_INDENT_2).decode() + "\n")


@workflow_app.command("validate")
def workflow_validate(
    file: Path,
    tenant: Annotated[str | None, typer.Option("--tenant", "-t", help="resolve 'uses:' against it")] = None,
    json: JsonOpt = False,
) -> None:
    """Check a workflow file; every problem with its line and column. Exit 0 only when valid."""
    from bastion.respond.service import resolver_for
    from bastion.respond.validate import validate_text

    if not file.is_file():
        raise UserError(f"no such file: {file}")
    resolver = None
    if tenant:
        db = open_db()
        resolver = resolver_for(db, _tenant_id(db, tenant))
    _, problems = validate_text(file.read_text(), resolver=resolver)
    if json:
        emit({"ok": not problems, "errors": [p.as_dict() for p in problems]})
    elif problems:
        for p in problems:
            err.print(f"{file}:{p.line}:{p.column}: {p.message}", highlight=False, soft_wrap=True)
    else:
        out.print(f"{file}: ok")
    raise typer.Exit(0 if not problems else 1)


@workflow_app.command("add")
def workflow_add(file: Path, tenant: TenantOpt, as_user: AsOpt = None, json: JsonOpt = False) -> None:
    """Store a new version of a workflow (a webhook trigger gets its token, shown once)."""
    from bastion.respond.service import add_workflow

    if not file.is_file():
        raise UserError(f"no such file: {file}")
    db = open_db()
    result = add_workflow(db, _tenant_id(db, tenant), file.read_text(), actor=_actor(as_user))
    if json:
        emit(result)
        return
    word = "stored" if result["created"] else "unchanged:"
    out.print(f"{result['workflow_id']} {word} version {result['version']}")
    if "webhook_token" in result:
        out.print(f"webhook token (shown once): [bold]{result['webhook_token']}[/bold]", soft_wrap=True)


@workflow_app.command("list")
def workflow_list(
    tenant: Annotated[
        str | None, typer.Option("--tenant", "-t", help="list this tenant's stored workflows instead")
    ] = None,
    json: JsonOpt = False,
) -> None:
    """List the shipped workflow library, or with --tenant the tenant's stored workflows (latest
    versions, each marked shipped when its id is one of the library's)."""
    from bastion.content.library import shipped_workflows
    from bastion.store.workflows import WorkflowRepository

    shipped = shipped_workflows()
    if tenant is None:
        if json:
            emit({"workflows": shipped})
            return
        lib = Table("id", "version", "title", "triggers", "file")
        for s in shipped:
            lib.add_row(s["id"], str(s["version"]), s["title"], ", ".join(s["triggers"]), s["file"])
        out.print(lib)
        return
    ids = {s["id"] for s in shipped}
    db = open_db()
    tid = _tenant_id(db, tenant)
    with db.read() as conn:
        found = WorkflowRepository(conn, tid).list_definitions()
    for w in found:
        w["shipped"] = w["workflow_id"] in ids
    if json:
        emit({"workflows": found})
        return
    table = Table("id", "version", "title", "triggers", "shipped")
    for w in found:
        table.add_row(
            w["workflow_id"],
            str(w["version"]),
            w["title"],
            ", ".join(w["triggers"]),
            "yes" if w["shipped"] else "",
        )
    out.print(table)


@workflow_app.command("install")
def workflow_install(
    tenant: TenantOpt,
    names: Annotated[
        list[str] | None, typer.Argument(help="shipped workflow names (see `workflow list`)")
    ] = None,
    all_: Annotated[bool, typer.Option("--all", help="install every shipped workflow")] = False,
    as_user: AsOpt = None,
    json: JsonOpt = False,
) -> None:
    """Store shipped workflows in a tenant (a new version only where the shipped text differs)."""
    from bastion.content.library import LibraryError, install, shipped_names

    if all_ == bool(names):
        raise UserError("name the shipped workflows to install, or pass --all (not both)")
    db = open_db()
    tid = _tenant_id(db, tenant)
    try:
        results = install(db, tid, shipped_names() if all_ else list(names or []), actor=_actor(as_user))
    except LibraryError as exc:
        raise UserError(str(exc)) from None
    if json:
        emit({"installed": results})
        return
    for r in results:
        word = "stored" if r["created"] else "unchanged:"
        out.print(f"{r['workflow_id']} {word} version {r['version']}")
        if "webhook_token" in r:
            out.print(
                f"  webhook token for {r['workflow_id']} (shown once): [bold]{r['webhook_token']}[/bold]",
                soft_wrap=True,
            )


def _parse_inputs(pairs: list[str]) -> dict[str, Any]:
    inputs: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UserError(f"--input must be key=value, got {pair!r}")
        inputs[key] = value
    return inputs


def _wait_inline(db: Database, tenant_id: str, start: Any, timeout: float | None) -> dict[str, Any]:
    """Run in this process (no worker alive) until the run leaves 'running'."""
    from bastion.respond.runtime import Executor
    from bastion.respond.service import run_inline, wait_run

    executor = Executor(db, kind="cli", listen=False)
    executor.launch()
    try:
        run_id, prior = start()
        run_inline(tenant_id, run_id, prior)
        return wait_run(db, tenant_id, run_id, timeout_s=timeout)
    finally:
        executor.shutdown()


def _run_and_report(
    db: Database,
    tenant_id: str,
    start_kw: dict[str, Any],
    *,
    wait: bool,
    timeout: float | None,
    json: bool,
    retry_of: str | None = None,
) -> None:
    from bastion.respond.runtime import live_workers
    from bastion.respond.service import retry_run, start_run, wait_run

    workers = live_workers(db)
    inline = wait and not workers
    if inline:

        def start() -> tuple[str, dict[str, Any]]:
            if retry_of:
                rid = retry_run(db, tenant_id, retry_of, actor=start_kw["actor"], enqueue=False)
                return rid, _prior_of(db, tenant_id, retry_of)
            return start_run(db, tenant_id, enqueue=False, **start_kw), {}

        run = _wait_inline(db, tenant_id, start, timeout)
    else:
        if retry_of:
            rid = retry_run(db, tenant_id, retry_of, actor=start_kw["actor"])
        else:
            rid = start_run(db, tenant_id, **start_kw)
        if not workers:
            err.print(
                "note: no worker is running; the run starts when `bastion worker` does", highlight=False
            )
        run = (
            wait_run(db, tenant_id, rid, timeout_s=timeout) if wait else {"run_id": rid, "status": "running"}
        )
    result = {"run_id": run["run_id"], "status": run["status"]}
    if run.get("outputs") is not None:
        result["outputs"] = run["outputs"]
    if run.get("error"):
        result["error"] = run["error"]
    if json:
        emit(result)
    else:
        out.print(
            f"run {result['run_id']}: {result['status']}" + (f" ({run['error']})" if run.get("error") else "")
        )
    # Waited for and ended badly: exit 1, so that a script sees it (the object above says how).
    code = 1 if wait and result["status"] in ("failed", "cancelled") else 0
    if inline:
        # A run parked for approval still holds a DBOS thread blocked in recv; it is durable (the next
        # worker continues it), so leave without waiting for that thread.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    if code:
        raise typer.Exit(code)


def _prior_of(db: Database, tenant_id: str, run_id: str) -> dict[str, Any]:
    from bastion.store.workflows import WorkflowRepository

    with db.read() as conn:
        return {
            s["key"]: s["output"]
            for s in WorkflowRepository(conn, tenant_id).steps(run_id)
            if s["status"] == "succeeded"
        }


@workflow_app.command("run")
def workflow_run(
    ref: Annotated[str, typer.Argument(help="a stored workflow id (id or id@version) or a YAML file")],
    tenant: TenantOpt,
    input: Annotated[list[str] | None, typer.Option("--input", "-i", help="key=value (repeatable)")] = None,
    wait: Annotated[
        bool,
        typer.Option("--wait", help="return when the run leaves 'running' (exit 1: failed or cancelled)"),
    ] = False,
    timeout: WaitTimeoutOpt = None,
    as_user: AsOpt = None,
    json: JsonOpt = False,
) -> None:
    """Start a run. Prints the run id and status ({"run_id", "status"} with --json)."""
    from bastion.respond.service import load_workflow_ref

    db = open_db()
    tid = _tenant_id(db, tenant)
    actor = _actor(as_user)
    wid, version = load_workflow_ref(db, tid, ref, actor=actor)
    kw = {
        "workflow_id": wid,
        "version": version,
        "inputs": _parse_inputs(input or []),
        "trigger": {"type": "manual"},
        "actor": actor,
    }
    _run_and_report(db, tid, kw, wait=wait, timeout=timeout, json=json)


# ---------------------------------------------------------------- actions


@actions_app.command("list")
def actions_list(json: JsonOpt = False) -> None:
    """Every registered action with its impact and input schema."""
    from bastion.connectors import all_actions

    found = [a.describe() for a in all_actions()]
    if json:
        emit({"actions": found})
        return
    table = Table("id", "impact", "inputs", "description")
    for a in found:
        table.add_row(
            a["id"], a["impact"], ", ".join(a["input_schema"]["properties"]), a["description"].split("\n")[0]
        )
    out.print(table)


# ---------------------------------------------------------------- runs


@runs_app.command("list")
def runs_list(
    tenant: TenantOpt,
    status: Annotated[
        str | None, typer.Option(help="running, waiting_approval, succeeded, failed, cancelled")
    ] = None,
    workflow: Annotated[str | None, typer.Option(help="only runs of this workflow")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
    json: JsonOpt = False,
) -> None:
    """Recent runs, newest first."""
    from bastion.store.workflows import RUN_STATUSES, WorkflowRepository

    if status is not None and status not in RUN_STATUSES:
        raise UserError(f"unknown status {status!r}; use one of {', '.join(RUN_STATUSES)}")
    db = open_db()
    tid = _tenant_id(db, tenant)
    with db.read() as conn:
        found = WorkflowRepository(conn, tid).list_runs(status=status, workflow_id=workflow, limit=limit)
    if json:
        emit({"runs": found})
        return
    table = Table("run", "workflow", "status", "error")
    for r in found:
        table.add_row(r["run_id"], f"{r['workflow_id']}@{r['version']}", r["status"], r["error"] or "")
    out.print(table)


@runs_app.command("show")
def runs_show(run_id: str, tenant: TenantOpt, json: JsonOpt = False) -> None:
    """One run with every step: status, rendered inputs and outputs (secrets masked), attempts, errors."""
    from bastion.respond.service import run_detail

    db = open_db()
    run = run_detail(db, _tenant_id(db, tenant), run_id)
    if json:
        emit(run)
        return
    out.print(f"run {run['run_id']} {run['workflow_id']}@{run['version']}: [bold]{run['status']}[/bold]")
    if run["error"]:
        out.print(f"error: {run['error']}", highlight=False)
    table = Table("step", "action", "status", "attempts", "ms", "error")
    for s in run["steps"]:
        table.add_row(
            s["key"],
            s["action"] or "",
            s["status"],
            str(s["attempts"]),
            str(s["duration_ms"] or ""),
            s["error"] or "",
        )
    out.print(table)


@runs_app.command("cancel")
def runs_cancel(run_id: str, tenant: TenantOpt, as_user: AsOpt = None, json: JsonOpt = False) -> None:
    """Cancel a running or waiting run."""
    from bastion.respond.service import cancel_run

    db = open_db()
    result = cancel_run(db, _tenant_id(db, tenant), run_id, actor=_actor(as_user))
    emit(result) if json else out.print(f"run {run_id} cancelled")


@runs_app.command("retry")
def runs_retry(
    run_id: str,
    tenant: TenantOpt,
    wait: Annotated[
        bool,
        typer.Option("--wait", help="return when the new run leaves 'running' (exit 1: failed or cancelled)"),
    ] = False,
    timeout: WaitTimeoutOpt = None,
    as_user: AsOpt = None,
    json: JsonOpt = False,
) -> None:
    """Re-run a failed run from the failed step (succeeded steps' outputs are reused, not re-run)."""
    db = open_db()
    tid = _tenant_id(db, tenant)
    _run_and_report(
        db, tid, {"actor": _actor(as_user)}, wait=wait, timeout=timeout, json=json, retry_of=run_id
    )


# ---------------------------------------------------------------- secrets and connections


@secret_app.command("set")
def secret_set(name: str, tenant: TenantOpt, json: JsonOpt = False) -> None:
    """Store a secret read from stdin (encrypted at rest)."""
    from bastion.tenancy.secrets import set_secret

    value = sys.stdin.readline().rstrip("\r\n")
    if not value:
        raise UserError("no secret value on stdin")
    db = open_db()
    set_secret(db, _tenant_id(db, tenant), name, value, actor="cli")
    emit({"name": name, "stored": True}) if json else out.print(f"secret {name} stored")


@secret_app.command("list")
def secret_list(tenant: TenantOpt, json: JsonOpt = False) -> None:
    """Secret names (never values)."""
    from bastion.tenancy.secrets import list_secrets

    db = open_db()
    found = list_secrets(db, _tenant_id(db, tenant))
    if json:
        emit({"secrets": found})
        return
    for s in found:
        out.print(str(s["name"]))


@connection_app.command("set")
def connection_set(
    name: str,
    tenant: TenantOpt,
    config: Annotated[str, typer.Option("--config", help='JSON, e.g. {"base_url": "https://..."}')],
    json: JsonOpt = False,
) -> None:
    """Create or replace a connection."""
    from bastion.tenancy.connections import set_connection

    try:
        doc = orjson.loads(config)
    except orjson.JSONDecodeError as exc:
        raise UserError(f"--config is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise UserError("--config must be a JSON object")
    db = open_db()
    set_connection(db, _tenant_id(db, tenant), name, doc, actor="cli")
    emit({"name": name, "stored": True}) if json else out.print(f"connection {name} stored")


@connection_app.command("list")
def connection_list(tenant: TenantOpt, json: JsonOpt = False) -> None:
    """Connections and their settings."""
    from bastion.tenancy.connections import list_connections

    db = open_db()
    found = list_connections(db, _tenant_id(db, tenant))
    if json:
        emit({"connections": found})
        return
    for c in found:
        out.print(f"{c['name']}: {c['config']}", highlight=False)


# ---------------------------------------------------------------- worker


@app.command("worker")
def worker(
    concurrency: Annotated[int, typer.Option(min=1, max=1000, help="runs at once in this worker")] = 32,
) -> None:
    """Run a worker: execute queued runs, recover runs of dead workers, until SIGINT/SIGTERM."""
    from bastion.respond.runtime import Executor

    db = open_db()
    executor = Executor(db, kind="worker", listen=True, concurrency=concurrency)
    executor.launch()
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    err.print(f"worker {executor.executor_id} started", highlight=False)
    sys.stderr.flush()
    try:
        stop.wait()
    finally:
        executor.shutdown()
    # Runs parked in DBOS.recv hold executor threads; they are durable, so do not wait for them.
    sys.stderr.flush()
    os._exit(0)
