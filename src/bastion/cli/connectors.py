"""Blocklist and change commands: ``bastion blocklist create|add|list|remove|token`` and
``bastion changes list|undo|expire``.

A blocklist is served to firewalls at ``/edl/{tenant}/{list}.txt`` (see :mod:`bastion.connectors.edl`);
``create`` and ``token`` print its token once. ``changes`` shows what response actions changed and
undoes them; ``changes expire`` undoes every change whose expiry has passed (what the server runs on a
schedule; useful from cron when no server runs).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.table import Table

from bastion.cli._common import JsonOpt, TenantOpt, UserError, app, emit, open_db, out
from bastion.connectors.edl import (
    BlocklistError,
    add_entry,
    create_list,
    expires_at,
    list_entries,
    list_lists,
    remove_entry,
    rotate_token,
)
from bastion.connectors.undo import UndoError, expire_changes, list_changes, undo_change
from bastion.store import Database, TenantRepository
from bastion.store.audit import AuditRepository
from bastion.tenancy.service import require_tenant

__all__ = ["blocklist_app", "changes_app"]

blocklist_app = typer.Typer(
    help="Blocklists served to firewalls as External Dynamic Lists.", no_args_is_help=True
)
app.add_typer(blocklist_app, name="blocklist")
changes_app = typer.Typer(help="Changes made by response actions: list, undo, expire.", no_args_is_help=True)
app.add_typer(changes_app, name="changes")

AsOpt = Annotated[str | None, typer.Option("--as", help="the person acting (default: cli)")]


def _actor(user: str | None) -> str:
    return f"user:{user.strip()}" if user and user.strip() else "cli"


def _tenant_id(db: Database, name: str) -> str:
    with db.read() as conn:
        return require_tenant(TenantRepository(conn), name).id


def _when(ms: int | None) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%SZ") if ms else "-"


def _edl_path(tenant: str, name: str) -> str:
    return f"/edl/{tenant}/{name}.txt"


# ---------------------------------------------------------------------------------- blocklists


@blocklist_app.command("create")
def blocklist_create(name: str, tenant: TenantOpt, user: AsOpt = None, json: JsonOpt = False) -> None:
    """Create a blocklist and print its token (shown once; keep it in the firewall's list object)."""
    db = open_db()
    try:
        token = create_list(db, _tenant_id(db, tenant), name, actor=_actor(user))
    except BlocklistError as exc:
        raise UserError(str(exc)) from None
    finally:
        db.dispose()
    if json:
        emit({"name": name, "token": token, "path": _edl_path(tenant, name)})
        return
    out.print(f"created blocklist {name}; firewalls poll {_edl_path(tenant, name)}?token=...")
    out.print(f"token (shown once): {token}", highlight=False, soft_wrap=True)


@blocklist_app.command("token")
def blocklist_token(name: str, tenant: TenantOpt, user: AsOpt = None, json: JsonOpt = False) -> None:
    """Give the list a new token (the old one stops working at once) and print it."""
    db = open_db()
    try:
        token = rotate_token(db, _tenant_id(db, tenant), name, actor=_actor(user))
    except BlocklistError as exc:
        raise UserError(str(exc)) from None
    finally:
        db.dispose()
    if json:
        emit({"name": name, "token": token, "path": _edl_path(tenant, name)})
        return
    out.print(f"new token for {name} (shown once): {token}", highlight=False, soft_wrap=True)


@blocklist_app.command("add")
def blocklist_add(
    name: str,
    value: str,
    tenant: TenantOpt,
    reason: Annotated[str | None, typer.Option("--reason", "-r", help="why it is blocked")] = None,
    expires: Annotated[str | None, typer.Option("--expires", help="how long, e.g. 24h, 7d")] = None,
    user: AsOpt = None,
    json: JsonOpt = False,
) -> None:
    """Add an IP, CIDR, domain or URL to a blocklist (stops being served after --expires)."""
    db = open_db()
    actor = _actor(user)
    try:
        tid = _tenant_id(db, tenant)
        with db.write() as conn:
            entry = add_entry(
                conn, tid, name, value, added_by=actor, reason=reason, expires=expires_at(expires)
            )
            if entry["added"]:
                AuditRepository(conn, tid).append(
                    actor,
                    "blocklist.add",
                    "blocklist",
                    name,
                    {"value": entry["value"], "expires": entry["expires"]},
                )
    except BlocklistError as exc:
        raise UserError(str(exc)) from None
    finally:
        db.dispose()
    if json:
        emit({"list": name, **entry})
        return
    verb = "added" if entry["added"] else "already on the list:"
    out.print(f"{verb} {entry['value']} ({entry['kind']}), expires {_when(entry['expires'])}")


@blocklist_app.command("remove")
def blocklist_remove(
    name: str, value: str, tenant: TenantOpt, user: AsOpt = None, json: JsonOpt = False
) -> None:
    """Remove a value from a blocklist."""
    db = open_db()
    actor = _actor(user)
    try:
        tid = _tenant_id(db, tenant)
        with db.write() as conn:
            removed = remove_entry(conn, tid, name, value)
            if removed:
                AuditRepository(conn, tid).append(
                    actor, "blocklist.remove", "blocklist", name, {"value": value}
                )
    except BlocklistError as exc:
        raise UserError(str(exc)) from None
    finally:
        db.dispose()
    if json:
        emit({"list": name, "value": value, "removed": removed})
        return
    out.print(f"removed {value}" if removed else f"{value} was not on {name}")


@blocklist_app.command("list")
def blocklist_list(
    tenant: TenantOpt,
    name: Annotated[str | None, typer.Argument(help="a list: show its entries")] = None,
    expired: Annotated[bool, typer.Option("--expired", help="also entries past their expiry")] = False,
    json: JsonOpt = False,
) -> None:
    """The tenant's blocklists, or the entries of one."""
    db = open_db()
    try:
        tid = _tenant_id(db, tenant)
        with db.read() as conn:
            if name is None:
                lists = list_lists(conn, tid)
            else:
                if not any(found["name"] == name for found in list_lists(conn, tid)):
                    raise UserError(f"no blocklist {name!r} in tenant {tenant!r}")
                entries = list_entries(conn, tid, name, include_expired=expired)
    finally:
        db.dispose()
    if name is None:
        if json:
            emit({"lists": [{**row, "path": _edl_path(tenant, row["name"])} for row in lists]})
            return
        table = Table("list", "entries", "created", "path")
        for row in lists:
            table.add_row(
                row["name"], str(row["entries"]), _when(row["created"]), _edl_path(tenant, row["name"])
            )
        out.print(table)
        return
    if json:
        emit({"list": name, "entries": entries})
        return
    table = Table("value", "kind", "expires", "added by", "reason")
    for e in entries:
        table.add_row(e["value"], e["kind"], _when(e["expires"]), e["added_by"], e["reason"] or "")
    out.print(table)


# ------------------------------------------------------------------------------------- changes


def _changes_table(rows: list[dict[str, Any]]) -> Table:
    table = Table("id", "action", "target", "created", "expires", "state")
    for c in rows:
        state = (
            f"undone by {c['undone_by']}" if c["undone"] else ("undo failed" if c["undo_error"] else "open")
        )
        table.add_row(c["id"], c["action"], c["target"], _when(c["created"]), _when(c["expires"]), state)
    return table


@changes_app.command("list")
def changes_list(
    tenant: TenantOpt,
    open_only: Annotated[bool, typer.Option("--open", help="only changes not yet undone")] = False,
    json: JsonOpt = False,
) -> None:
    """What response actions changed (newest first), with the undo each offers."""
    db = open_db()
    try:
        with db.read() as conn:
            rows = list_changes(conn, _tenant_id(db, tenant), open_only=open_only)
    finally:
        db.dispose()
    if json:
        emit({"changes": rows})
        return
    out.print(_changes_table(rows))


def _engine(db: Database) -> None:
    from bastion.respond.engine import configure

    configure(db)  # undo actions that write Bastion's own store (edl.remove) use the engine's store


@changes_app.command("undo")
def changes_undo(change_id: str, tenant: TenantOpt, user: AsOpt = None, json: JsonOpt = False) -> None:
    """Undo a change now: run its recorded undo action (e.g. remove the block)."""
    db = open_db()
    try:
        _engine(db)
        result = asyncio.run(undo_change(db, _tenant_id(db, tenant), change_id, actor=_actor(user)))
    except UndoError as exc:
        raise UserError(str(exc)) from None
    finally:
        db.dispose()
    if json:
        emit(result)
    elif result["undone"]:
        out.print(f"undone: {result['action']} on {result['target']} ({result['undo_action']})")
    if not result["undone"]:
        raise UserError(f"undo failed: {result['error']}")


@changes_app.command("expire")
def changes_expire(
    tenant: Annotated[str | None, typer.Option("--tenant", "-t", help="only this tenant")] = None,
    json: JsonOpt = False,
) -> None:
    """Undo every change whose expiry has passed (exit 1 if any undo failed; it is retried next time)."""
    db = open_db()
    try:
        _engine(db)
        tid = _tenant_id(db, tenant) if tenant else None
        results = asyncio.run(expire_changes(db, tenant_id=tid))
    finally:
        db.dispose()
    if json:
        emit({"expired": results})
    else:
        for r in results:
            state = "undone" if r["undone"] else f"failed: {r['error']}"
            out.print(f"{r['id']} {r['action']} {r['target']}: {state}", highlight=False)
        if not results:
            out.print("no changes due")
    if any(not r["undone"] for r in results):
        raise typer.Exit(1)
