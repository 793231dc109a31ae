"""Core commands: tenants, API keys, users, ingest, event search, audit verification, and running Bastion."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from bastion.cli._common import (
    JsonOpt,
    TenantOpt,
    UserError,
    app,
    cli_settings,
    emit,
    err,
    open_db,
    out,
)
from bastion.model import Role
from bastion.store import TenantRepository, TenantScope
from bastion.tenancy.service import (
    TenancyError,
    add_user,
    check_password,
    create_api_key,
    create_tenant,
    list_api_keys,
    require_tenant,
    revoke_api_key,
)

tenant_app = typer.Typer(help="Tenants.", no_args_is_help=True)
apikey_app = typer.Typer(help="API keys.", no_args_is_help=True)
user_app = typer.Typer(help="Users of a tenant.", no_args_is_help=True)
events_app = typer.Typer(help="Stored events.", no_args_is_help=True)
audit_app = typer.Typer(help="The hash-chained audit log.", no_args_is_help=True)
app.add_typer(tenant_app, name="tenant")
app.add_typer(apikey_app, name="apikey")
app.add_typer(user_app, name="user")
app.add_typer(events_app, name="events")
app.add_typer(audit_app, name="audit")


# ---------------------------------------------------------------- tenants, keys, users


@tenant_app.command("create")
def tenant_create(
    name: str,
    parent: Annotated[str | None, typer.Option(help="parent (MSSP) tenant")] = None,
    json: JsonOpt = False,
) -> None:
    """Create a tenant and print its first API key (shown once; only its hash is stored)."""
    tenant, key = create_tenant(open_db(), name, parent=parent)
    if json:
        emit({"tenant": tenant.name, "api_key": key})
    else:
        out.print(f"tenant [bold]{tenant.name}[/bold] created")
        out.print(f"API key (shown once): [bold]{key}[/bold]", soft_wrap=True)


@tenant_app.command("list")
def tenant_list(json: JsonOpt = False) -> None:
    """List tenants."""
    db = open_db()
    with db.read() as conn:
        repo = TenantRepository(conn)
        tenants = repo.list()
        names = {t.id: t.name for t in tenants}
    rows = [
        {"name": t.name, "id": t.id, "parent": names.get(t.parent_id or ""), "created": t.created}
        for t in tenants
    ]
    if json:
        emit({"tenants": rows})
        return
    table = Table("name", "id", "parent")
    for t in tenants:
        table.add_row(t.name, t.id, names.get(t.parent_id or "", ""))
    out.print(table)


def _role(value: str) -> Role:
    try:
        return Role(value)
    except ValueError:
        raise UserError(f"unknown role {value!r}; use one of {', '.join(r.value for r in Role)}") from None


@apikey_app.command("create")
def apikey_create(
    tenant: TenantOpt,
    role: Annotated[str, typer.Option(help="admin, engineer, analyst, approver or viewer")] = "admin",
    user: Annotated[str | None, typer.Option(help="the key acts as this user (and takes its role)")] = None,
    name: Annotated[str, typer.Option(help="a label for the key")] = "cli",
    json: JsonOpt = False,
) -> None:
    """Create another API key for a tenant."""
    key = create_api_key(open_db(), tenant, role=_role(role), name=name, user=user)
    if json:
        emit({"tenant": tenant, "api_key": key})
    else:
        out.print(f"API key (shown once): [bold]{key}[/bold]", soft_wrap=True)


@apikey_app.command("list")
def apikey_list(tenant: TenantOpt, json: JsonOpt = False) -> None:
    """List a tenant's API keys: label, role, user, printed prefix, and whether revoked."""
    keys = list_api_keys(open_db(), tenant)
    if json:
        emit({"tenant": tenant, "api_keys": keys})
        return
    table = Table("id", "prefix", "name", "role", "user", "revoked")
    for k in keys:
        table.add_row(
            k["id"], k["prefix"], k["name"], k["role"], k["user"] or "", "yes" if k["revoked"] else ""
        )
    out.print(table)


@apikey_app.command("revoke")
def apikey_revoke(
    key: Annotated[str, typer.Argument(help="the key's id, or the prefix `apikey list` shows")],
    tenant: TenantOpt,
    json: JsonOpt = False,
) -> None:
    """Revoke an API key: it stops authenticating immediately. Audited."""
    key_id = revoke_api_key(open_db(), tenant, key)
    if json:
        emit({"tenant": tenant, "revoked": key_id})
    else:
        out.print(f"revoked API key {key_id}")


def _stdin_password() -> str:
    """The password on stdin's first line, held to the one rule of `user add` and `user passwd`."""
    password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise UserError("--password-stdin given but no password on stdin")
    try:
        check_password(password)
    except TenancyError as exc:
        raise UserError(str(exc)) from None
    return password


@user_app.command("add")
def user_add(
    name: str,
    tenant: TenantOpt,
    role: Annotated[str, typer.Option(help="admin, engineer, analyst, approver or viewer")],
    email: Annotated[str | None, typer.Option()] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="read a password from stdin")
    ] = False,
    json: JsonOpt = False,
) -> None:
    """Add a user to a tenant (password hashed with argon2; at least 8 characters)."""
    password = _stdin_password() if password_stdin else None
    user = add_user(open_db(), tenant, name, _role(role), email=email, password=password)
    doc = {"tenant": tenant, "user": user.name, "id": user.id, "role": user.role.value, "email": user.email}
    if json:
        emit(doc)
    else:
        out.print(f"user [bold]{user.name}[/bold] ({user.role.value}) added to {tenant}")


def _tenant_id_of(name: str) -> str:
    with open_db().read() as conn:
        return require_tenant(TenantRepository(conn), name).id


@user_app.command("passwd")
def user_passwd(
    name: str,
    tenant: TenantOpt,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="read the new password from stdin")
    ] = False,
    json: JsonOpt = False,
) -> None:
    """Set a user's console password (argon2-hashed; at least 8 characters)."""
    from bastion.tenancy.service import set_user_password

    if not password_stdin:
        raise UserError("give the new password on stdin with --password-stdin (never on the command line)")
    set_user_password(open_db(), _tenant_id_of(tenant), name, _stdin_password(), actor="cli")
    if json:
        emit({"user": name, "tenant": tenant, "password_changed": True})
        return
    out.print(f"password of [bold]{name}[/bold] in {tenant} changed")


@user_app.command("role")
def user_role(
    name: str,
    tenant: TenantOpt,
    role: Annotated[str, typer.Option(help="admin, engineer, analyst, approver or viewer")],
    json: JsonOpt = False,
) -> None:
    """Give a user another role (their API keys take it at once)."""
    from bastion.tenancy.service import set_user_role

    set_user_role(open_db(), _tenant_id_of(tenant), name, _role(role), actor="cli")
    if json:
        emit({"user": name, "tenant": tenant, "role": role})
        return
    out.print(f"[bold]{name}[/bold] in {tenant} is now {role}")


@user_app.command("disable")
def user_disable(
    name: str,
    tenant: TenantOpt,
    enable: Annotated[bool, typer.Option("--enable", help="enable the user again")] = False,
    json: JsonOpt = False,
) -> None:
    """Disable a user (no sign-in; their API keys stop working), or --enable them again."""
    from bastion.tenancy.service import set_user_disabled

    set_user_disabled(open_db(), _tenant_id_of(tenant), name, not enable, actor="cli")
    if json:
        emit({"user": name, "tenant": tenant, "disabled": not enable})
        return
    out.print(f"[bold]{name}[/bold] in {tenant} is {'enabled' if enable else 'disabled'}")


@user_app.command("list")
def user_list(tenant: TenantOpt, json: JsonOpt = False) -> None:
    """List a tenant's users."""
    db = open_db()
    with db.read() as conn:
        t = require_tenant(TenantRepository(conn), tenant)
        users = TenantScope(conn, t.id).users.list()
    rows = [{"name": u.name, "role": u.role.value, "email": u.email, "id": u.id} for u in users]
    if json:
        emit({"tenant": tenant, "users": rows})
        return
    table = Table("name", "role", "email")
    for r in rows:
        table.add_row(r["name"], r["role"], r["email"] or "")
    out.print(table)


# ---------------------------------------------------------------- ingest and search


def _mapping_file(path: Path) -> str:
    """Register the ``--mapping`` file (JSON or TOML) as ``generic:<file name without suffix>``."""
    import tomllib

    import orjson

    from bastion.ingest.normalize.generic import mapping_from_document

    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise UserError(f"--mapping {path}: {exc.strerror or exc}") from None
    try:
        doc = tomllib.loads(raw.decode()) if path.suffix == ".toml" else orjson.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise UserError(
            f"--mapping {path}: not valid {'TOML' if path.suffix == '.toml' else 'JSON'}: {exc}"
        ) from None
    return mapping_from_document(path.stem.lower().replace(".", "-"), doc)


@app.command("ingest")
def ingest(
    path: Annotated[Path, typer.Argument(help="JSON Lines (.gz too), JSON array, EVTX, or CEF/syslog lines")],
    tenant: TenantOpt,
    format: Annotated[
        str | None,
        typer.Option(
            "--format",
            "-f",
            help="file format (jsonl, json, evtx, cef, syslog) or a normalizer id "
            "(windows, ecs, ocsf, cef, syslog, generic, generic:NAME); detected when absent",
        ),
    ] = None,
    mapping: Annotated[
        Path | None,
        typer.Option(
            "--mapping", help="a field mapping for generic JSON (.json or .toml: fields, time_format, ...)"
        ),
    ] = None,
    json: JsonOpt = False,
) -> None:
    """Ingest a file into a tenant. Exits 1 when any record was rejected (good ones are stored anyway)."""
    from bastion.detect.tenant import DETECTORS
    from bastion.enrich.enricher import Enricher
    from bastion.ingest.normalize import NORMALIZERS
    from bastion.ingest.normalize.generic import register_configured
    from bastion.ingest.readers import READER_FORMATS, read_path
    from bastion.pipeline import IngestResult, batched, connect_response, prepare_events, store_events

    if not path.exists():
        raise UserError(f"no such file: {path}")
    if path.is_dir():
        raise UserError(f"{path} is a directory; give a file")
    register_configured(cli_settings().ingest_mappings)
    if mapping is not None:
        if format is not None and format not in READER_FORMATS:
            raise UserError(
                "--mapping is the normalizer: give --format only for the file format (jsonl, json)"
            )
        normalizer_id = _mapping_file(mapping)
        format = None
    else:
        normalizer_id = None
    reader_fmt = format if format in READER_FORMATS else None
    normalizer = normalizer_id or (format if format in NORMALIZERS and reader_fmt is None else None)
    if format is not None and reader_fmt is None and normalizer is None:
        raise UserError(
            f"unknown format {format!r}; use one of "
            f"{', '.join(sorted(set(READER_FORMATS) | set(NORMALIZERS)))}"
        )
    settings = cli_settings()
    db = open_db()
    with db.read() as conn:
        t = require_tenant(TenantRepository(conn), tenant)
    result = IngestResult()
    connect_response(db)  # detection alerts start the workflows bound to them
    detection = DETECTORS.for_tenant(db, t.id)
    enricher = Enricher.from_settings(settings)  # the same context as alerts ingested over the API
    records = read_path(path, reader_fmt)
    show = not json and sys.stderr.isatty()
    with Progress(
        SpinnerColumn(),
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:,} records"),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=not show,
    ) as progress:
        task = progress.add_task(f"ingesting {path.name}", total=None)
        for chunk in batched(records, settings.ingest_batch_size):
            rows, errors = prepare_events(chunk, normalizer, detection=detection)
            result.add(
                store_events(db, t.id, "cli", rows, errors, source=f"file:{path.name}", enricher=enricher)
            )
            progress.advance(task, len(chunk))
    doc = {
        "accepted": result.accepted,
        "duplicates": result.duplicates,
        "rejected": result.rejected,
        "errors": result.errors,
    }
    if json:
        emit(doc)
    else:
        out.print(
            f"accepted {result.accepted:,}, duplicates {result.duplicates:,}, rejected {result.rejected:,}"
        )
        for e in result.errors[:20]:
            out.print(f"  line {e['line']}: {e['reason']}", highlight=False)
        if len(result.errors) > 20:
            out.print(f"  ... and {len(result.errors) - 20} more (use --json for all)")
    if result.rejected:
        raise typer.Exit(1)


@events_app.command("search")
def events_search(
    tenant: TenantOpt,
    value: Annotated[str | None, typer.Option(help="observable value (IP, domain, hash, user, ...)")] = None,
    type: Annotated[str | None, typer.Option("--type", help="observable type of --value")] = None,
    start: Annotated[str | None, typer.Option(help="ISO-8601, epoch, or -15m/-2h/-7d")] = None,
    end: Annotated[str | None, typer.Option(help="exclusive end")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10000)] = 20,
    json: JsonOpt = False,
) -> None:
    """Search a tenant's events by time range and observable value, newest first."""
    from bastion.model import ObservableType
    from bastion.model.timefmt import parse_time_ms

    if type is not None:
        try:
            ObservableType(type)
        except ValueError:
            raise UserError(
                f"unknown observable type {type!r}; use one of {', '.join(t.value for t in ObservableType)}"
            ) from None
    t0 = parse_time_ms(start) if start else None
    t1 = parse_time_ms(end) if end else None
    db = open_db()
    with db.read() as conn:
        t = require_tenant(TenantRepository(conn), tenant)
        found, _ = TenantScope(conn, t.id).events.search(
            start=t0, end=t1, value=value, obs_type=type, limit=limit
        )
    if json:
        emit(
            {
                "events": [
                    {
                        "id": e.id,
                        "time": e.time,
                        "class_uid": e.class_uid,
                        "format": e.format,
                        "event": e.event,
                    }
                    for e in found
                ]
            }
        )
        return
    from datetime import UTC, datetime

    table = Table("time", "id", "format", "class", "summary")
    for e in found:
        ev = e.event
        summary = (
            ev.get("message")
            or (ev.get("process") or {}).get("cmd_line")
            or (ev.get("metadata") or {}).get("event_code")
            or ""
        )
        table.add_row(
            datetime.fromtimestamp(e.time / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S"),
            e.id[:12],
            e.format,
            str(e.class_uid),
            str(summary)[:80],
        )
    out.print(table)


# ---------------------------------------------------------------- audit


@audit_app.command("verify")
def audit_verify(
    tenant: Annotated[str | None, typer.Option("--tenant", "-t", help="one tenant (default: all)")] = None,
    json: JsonOpt = False,
) -> None:
    """Check the audit hash chain. Exits 1 and names the first bad entry when it was tampered with."""
    db = open_db()
    results = {}
    with db.read() as conn:
        repo = TenantRepository(conn)
        targets = [require_tenant(repo, tenant)] if tenant else repo.list()
        for t in targets:
            results[t.name] = TenantScope(conn, t.id).audit.verify()
    ok = all(r.ok for r in results.values())
    first_bad = next((r.first_bad for r in results.values() if not r.ok), None)
    if json:
        doc: dict[str, Any] = {
            "ok": ok,
            "entries": sum(r.entries for r in results.values()),
            "first_bad": first_bad,
        }
        if tenant is None:
            doc["tenants"] = {
                name: {"ok": r.ok, "entries": r.entries, "first_bad": r.first_bad, "reason": r.reason}
                for name, r in results.items()
            }
        else:
            doc["reason"] = results[tenant].reason
        emit(doc)
    else:
        for name, r in results.items():
            if r.ok:
                out.print(f"[green]ok[/green]   {name}: {r.entries} entries, chain intact")
            else:
                where = f"entry {r.first_bad}" if r.first_bad is not None else "chain end"
                out.print(f"[red]BAD[/red]  {name}: {where}: {r.reason}")
    if not ok:
        raise typer.Exit(1)


# ---------------------------------------------------------------- running


@app.command("up")
def up(
    demo: Annotated[
        bool, typer.Option("--demo", help="create the demo tenant and feed it demo data")
    ] = False,
    host: Annotated[str | None, typer.Option(help="listen address (default 127.0.0.1)")] = None,
    port: Annotated[int | None, typer.Option(min=0, max=65535, help="HTTP port (default 8000)")] = None,
) -> None:
    """Start the HTTP API, the ingest worker and the syslog listener."""
    from bastion.serve import serve

    serve(cli_settings(host=host, port=port), demo=demo)


@app.command("demo")
def demo_cmd(
    scenario: Annotated[
        str | None,
        typer.Argument(help="a scenario to play instead: credential-leak (needs slapd installed)"),
    ] = None,
    tenant: Annotated[str, typer.Option("--tenant", "-t", help="tenant to load into")] = "demo",
    json: JsonOpt = False,
) -> None:
    """Load the demo data set (events, alerts, a case) into a tenant, creating it if needed; with
    ``credential-leak``, play the compromised-credential response end to end against a local directory
    and chat server that the demo starts and stops."""
    if scenario is not None:
        if scenario != "credential-leak":
            raise UserError(f"unknown demo scenario {scenario!r}: the one scenario is credential-leak")
        from bastion.demo.credential_leak import run_demo

        result = run_demo(open_db(), tenant)
        if json:
            emit(result)
        else:
            out.print(
                f"credential leak: account suspended (case {result['case_id']}), revocation approved in "
                f"Slack (approval {result['approval_id']}); detection to containment "
                f"{result['detection_to_containment_s']} s"
            )
        return
    from bastion.demo.seed import seed_demo

    report = seed_demo(open_db(), tenant)
    if json:
        emit(report)
    else:
        out.print(
            f"demo tenant [bold]{report['tenant']}[/bold]: {report['events']['accepted']} events, "
            f"{report['alerts']['accepted']} alerts, case {report['case_id']}"
        )
        out.print(f"API key (shown once): [bold]{report['api_key']}[/bold]", soft_wrap=True)
