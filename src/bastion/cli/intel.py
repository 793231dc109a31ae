"""Intel commands: ``bastion intel load|lookup|profile|feeds``, ``bastion attack show``, and the asset and
identity inventory commands (``bastion assets import``, ``bastion identities import|sync-ldap``)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import msgspec
import typer
from rich.table import Table

from bastion.cli._common import (
    JsonOpt,
    TenantOpt,
    UserError,
    app,
    cli_settings,
    emit,
    err,
    fail,
    finite,
    open_db,
    out,
)
from bastion.store import Database, TenantRepository
from bastion.tenancy.service import require_tenant

intel_app = typer.Typer(help="Threat intelligence: indicators, feeds, lookups.", no_args_is_help=True)
feeds_app = typer.Typer(help="Intel feeds: registry, schedule, health.", no_args_is_help=True)
attack_app = typer.Typer(help="MITRE ATT&CK.", no_args_is_help=True)
assets_app = typer.Typer(help="The asset inventory.", no_args_is_help=True)
identities_app = typer.Typer(help="The identity inventory.", no_args_is_help=True)
app.add_typer(intel_app, name="intel")
intel_app.add_typer(feeds_app, name="feeds")
app.add_typer(attack_app, name="attack")
app.add_typer(assets_app, name="assets")
app.add_typer(identities_app, name="identities")

LOAD_FORMATS = "stix|misp-feed|misp-event|csv|json|urlhaus|threatfox|malwarebazaar|credential-leak|list"


def _tenant(db: Database, name: str) -> str:
    with db.read() as conn:
        return require_tenant(TenantRepository(conn), name).id


def _mapping(items: list[str]) -> dict[str, str]:
    mapping: dict[str, str] = {}
    for item in items:
        key, sep, col = item.partition("=")
        if not sep or not key or not col:
            raise UserError(f"--map takes FIELD=COLUMN (e.g. value=ioc), got {item!r}")
        mapping[key.strip()] = col.strip()
    return mapping


@intel_app.command("load")
def intel_load(
    path: Annotated[str, typer.Argument(help="a file, a MISP feed folder, or an http(s) URL")],
    tenant: TenantOpt,
    fmt: Annotated[str, typer.Option("--format", "-f", help=LOAD_FORMATS)] = "stix",
    source: Annotated[str | None, typer.Option(help="source name recorded on each indicator")] = None,
    map_: Annotated[
        list[str] | None, typer.Option("--map", help="csv/json column mapping FIELD=COLUMN")
    ] = None,
    json: JsonOpt = False,
) -> None:
    """Load indicators from a file, a MISP feed folder or a URL; merge, retro-hunt, preemptive matching."""
    from bastion.intel.feeds import FeedError
    from bastion.intel.service import load_file, load_url
    from bastion.pipeline import connect_response

    db = open_db()
    connect_response(db)  # intel about the tenant itself starts its bound workflows
    tid = _tenant(db, tenant)
    try:
        options = {"mapping": _mapping(map_ or [])}
        if path.startswith(("http://", "https://")):
            summary = load_url(db, tid, path, fmt, actor="cli", source=source, options=options)
        else:
            summary = load_file(db, tid, Path(path), fmt, actor="cli", source=source, options=options)
    except FeedError as exc:
        raise UserError(str(exc)) from None
    result = summary.contract()
    if json:
        # Exactly the contract's three counts on stdout; what was rejected goes to stderr.
        emit({k: result[k] for k in ("loaded", "merged", "rejected")})
        for problem in result["problems"][:20]:
            err.print(f"rejected: {problem}", highlight=False, soft_wrap=True)
    else:
        out.print(f"loaded {result['loaded']}, merged {result['merged']}, rejected {result['rejected']}")
        for problem in result["problems"][:10]:
            out.print(f"  rejected: {problem}", highlight=False)
        if summary.retro_alerts or summary.triggers:
            out.print(f"retro-hunt alerts {summary.retro_alerts}, intel triggers {summary.triggers}")
    _nothing_taken(result["rejected"], result["loaded"] + result["merged"], "loaded")


def _nothing_taken(rejected: int, taken: int, done: str) -> None:
    """Exit 1 when every record was rejected: a script loading a feed or an inventory must not read a
    load that took nothing as a success. A partial load exits 0 (its counts say what was rejected)."""
    if rejected and not taken:
        fail(f"nothing {done}: all {rejected} record(s) were rejected", code=1)


@intel_app.command("lookup")
def intel_lookup(
    value: str,
    tenant: TenantOpt,
    type_: Annotated[str | None, typer.Option("--type", help="indicator type (guessed when absent)")] = None,
    json: JsonOpt = False,
) -> None:
    """Look a value up: matching indicators (with decayed confidence) and warning lists."""
    from bastion.intel.store import lookup
    from bastion.intel.warninglists import shared_warninglists
    from bastion.model.intel import IndicatorType

    kind = None
    if type_:
        try:
            kind = IndicatorType(type_)
        except ValueError:
            raise UserError(
                f"unknown type {type_!r}; use one of {', '.join(t.value for t in IndicatorType)}"
            ) from None
    db = open_db()
    tid = _tenant(db, tenant)
    answer = lookup(
        db, tid, value, kind=kind, warninglists=shared_warninglists(cli_settings().warninglists_path)
    )
    if json:
        emit(answer)
        return
    out.print(f"{answer['value']} ({answer['type']}): {len(answer['matches'])} match(es)", highlight=False)
    for m in answer["matches"]:
        out.print(
            f"  {m['indicator']}  source={m['source']} confidence={m['confidence']} "
            f"tags={','.join(m['tags'])}",
            highlight=False,
        )
    if answer["warninglists"]:
        out.print("known-benign: " + ", ".join(w["name"] for w in answer["warninglists"]), highlight=False)


@intel_app.command("profile")
def intel_profile(
    tenant: TenantOpt,
    owned_domain: Annotated[
        list[str] | None, typer.Option("--owned-domain", help="a domain the tenant owns (repeat)")
    ] = None,
    sector: Annotated[str | None, typer.Option(help="the tenant's sector, e.g. finance")] = None,
    region: Annotated[str | None, typer.Option(help="the tenant's region, e.g. europe")] = None,
    retro_days: Annotated[
        int | None, typer.Option(min=1, max=3650, help="retro-hunt window in days (default 30)")
    ] = None,
    decay: Annotated[
        list[str] | None,
        typer.Option(help="a source's confidence half-life: SOURCE=DAYS ('default' for the rest; repeat)"),
    ] = None,
    json: JsonOpt = False,
) -> None:
    """Show or change the tenant's intel profile (owned domains, sector, region, retro-hunt window, decay
    of confidence per source)."""
    from bastion.intel.service import get_profile, update_profile

    db = open_db()
    tid = _tenant(db, tenant)
    changes: dict[str, Any] = {}
    if owned_domain:
        changes["owned_domains"] = owned_domain
    if sector:
        changes["sector"] = sector.lower()
    if region:
        changes["region"] = region.lower()
    if retro_days is not None:
        changes["retro_days"] = retro_days
    if decay:
        current = dict(get_profile(db, tid).get("decay") or {})
        for item in decay:
            source, eq, days = item.partition("=")
            if not eq or not source.strip():
                raise UserError(f"--decay {item!r}: use SOURCE=DAYS, e.g. --decay urlhaus=7")
            current[source.strip()] = days.strip()
        changes["decay"] = current
    profile = update_profile(db, tid, changes, actor="cli") if changes else get_profile(db, tid)
    if json:
        emit({"profile": profile})
    else:
        for k, v in sorted(profile.items()):
            out.print(f"{k}: {v}", highlight=False)


@feeds_app.command("add")
def feeds_add(
    name: str,
    tenant: TenantOpt,
    url: Annotated[str, typer.Option(help="feed URL (for TAXII: the API root)")],
    fmt: Annotated[str, typer.Option("--format", "-f", help="a load format, or taxii, misp-feed, misp-api")],
    interval: Annotated[
        int, typer.Option(min=0, max=365 * 86_400, help="seconds between polls (0 = manual only)")
    ] = 3600,
    collection: Annotated[str | None, typer.Option(help="TAXII collection id")] = None,
    half_life_days: Annotated[
        float | None,
        typer.Option(min=0.01, max=36_500, callback=finite, help="confidence half-life for this source"),
    ] = None,
    api_key_env: Annotated[
        str | None, typer.Option(help="environment variable holding the feed's API key")
    ] = None,
    map_: Annotated[
        list[str] | None, typer.Option("--map", help="csv/json column mapping FIELD=COLUMN")
    ] = None,
    allow_private: Annotated[
        bool, typer.Option(help="allow a loopback/private address (an internal feed server)")
    ] = False,
    json: JsonOpt = False,
) -> None:
    """Register a feed to poll on a schedule."""
    from bastion.intel.polling import add_feed

    config: dict[str, Any] = {}
    if collection:
        config["collection"] = collection
    if half_life_days is not None:
        config["half_life_days"] = half_life_days
    if api_key_env:
        config["api_key_env"] = api_key_env
    if map_:
        config["mapping"] = _mapping(map_)
    if allow_private:
        config["allow_private"] = True
    db = open_db()
    tid = _tenant(db, tenant)
    feed = add_feed(db, tid, name, url=url, fmt=fmt, interval_s=interval, config=config, actor="cli")
    if json:
        emit({"feed": msgspec.to_builtins(feed)})
    else:
        out.print(f"feed [bold]{name}[/bold] added ({fmt}, every {interval}s)")


@feeds_app.command("list")
def feeds_list(tenant: TenantOpt, json: JsonOpt = False) -> None:
    """Feeds with their schedule and health."""
    from bastion.store.intel import IntelRepository

    db = open_db()
    tid = _tenant(db, tenant)
    with db.read() as conn:
        feeds = IntelRepository(conn, tid).feeds()
    if json:
        emit({"feeds": [msgspec.to_builtins(f) for f in feeds]})
        return
    table = Table("name", "format", "every", "status", "loaded", "last error")
    for f in feeds:
        table.add_row(
            f.name, f.format, f"{f.interval_s}s", f.status, str(f.loaded_total), (f.last_error or "")[:60]
        )
    out.print(table)


@feeds_app.command("poll")
def feeds_poll(
    tenant: TenantOpt,
    name: Annotated[str | None, typer.Argument(help="one feed (default: every feed that is due)")] = None,
    force: Annotated[bool, typer.Option("--all", help="poll every feed, due or not")] = False,
    json: JsonOpt = False,
) -> None:
    """Poll feeds now; intel about the tenant itself starts its bound workflows, as a load does."""
    from bastion.intel.polling import poll_feeds
    from bastion.pipeline import connect_response

    db = open_db()
    connect_response(db)  # else the preemptive triggers would be claimed with nobody to start their runs
    tid = _tenant(db, tenant)
    results = poll_feeds(db, tid, name=name, force=force, actor="cli")
    if json:
        emit({"polled": [msgspec.to_builtins(r) for r in results]})
    else:
        for r in results:
            line = f"{r.feed}: {r.status} loaded={r.loaded} merged={r.merged} rejected={r.rejected}"
            out.print(line + (f" error={r.error}" if r.error else ""), highlight=False)
    if any(r.status == "error" for r in results):
        raise typer.Exit(1)


@attack_app.command("show")
def attack_show(attack_id: str, json: JsonOpt = False) -> None:
    """Print an ATT&CK technique (or tactic, group, software) by id, e.g. T1059.001."""
    from bastion.intel.attack import shared_attack

    doc = shared_attack(cli_settings().attack_path).show(attack_id)
    if json:
        emit(doc)
        return
    out.print(f"[bold]{doc['id']}[/bold] {doc['name']} ({doc['kind']})")
    if doc.get("tactics"):
        out.print("tactics: " + ", ".join(doc["tactics"]))
    if doc.get("platforms"):
        out.print("platforms: " + ", ".join(doc["platforms"]))
    if doc.get("url"):
        out.print(doc["url"])
    out.print(doc.get("description", "").split("\n")[0], highlight=False)


def _import(kind: str, path: Path, tenant: str, json: bool) -> None:
    from bastion.enrich.inventory import import_file
    from bastion.pipeline import connect_response

    db = open_db()
    connect_response(db)  # intel that came before these identities or assets may start workflows now
    tid = _tenant(db, tenant)
    result = import_file(db, tid, path, kind, actor="cli")
    if json:
        emit(msgspec.to_builtins(result))
    else:
        out.print(f"imported {result.imported} {kind}, rejected {result.rejected}")
        for p in result.problems[:10]:
            out.print(f"  {p}", highlight=False)
    _nothing_taken(result.rejected, result.imported, "imported")


@assets_app.command("import")
def assets_import(path: Path, tenant: TenantOpt, json: JsonOpt = False) -> None:
    """Import assets from CSV or JSON (replacing stored assets of the same hostname)."""
    _import("assets", path, tenant, json)


@identities_app.command("import")
def identities_import(path: Path, tenant: TenantOpt, json: JsonOpt = False) -> None:
    """Import identities from CSV or JSON (replacing stored identities of the same username)."""
    _import("identities", path, tenant, json)


def _remove(kind: str, name: str, tenant: str, json: bool) -> None:
    from bastion.enrich.inventory import remove_inventory

    db = open_db()
    tid = _tenant(db, tenant)
    if not remove_inventory(db, tid, kind, name, actor="cli"):
        raise UserError(f"no {'asset' if kind == 'assets' else 'identity'} {name!r} in this tenant")
    if json:
        emit({"removed": name.lower()})
    else:
        out.print(f"removed {name.lower()}")


@assets_app.command("remove")
def assets_remove(hostname: str, tenant: TenantOpt, json: JsonOpt = False) -> None:
    """Forget an asset (a decommissioned host)."""
    _remove("assets", hostname, tenant, json)


@identities_app.command("remove")
def identities_remove(username: str, tenant: TenantOpt, json: JsonOpt = False) -> None:
    """Forget an identity (a user who left)."""
    _remove("identities", username, tenant, json)


@identities_app.command("sync-ldap")
def identities_sync_ldap(
    tenant: TenantOpt,
    url: Annotated[str, typer.Option(help="ldap://host:port")],
    base_dn: Annotated[str, typer.Option(help="search base, e.g. ou=people,dc=example,dc=org")],
    bind_dn: Annotated[str | None, typer.Option(help="bind DN (anonymous when absent)")] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="read the bind password from stdin")
    ] = False,
    active_directory: Annotated[bool, typer.Option("--ad", help="Active Directory attribute names")] = False,
    json: JsonOpt = False,
) -> None:
    """Sync identities from LDAP or Active Directory."""
    from bastion.enrich.ldap_sync import LdapConfig, sync_ldap
    from bastion.pipeline import connect_response

    password = sys.stdin.readline().rstrip("\r\n") if password_stdin else None
    db = open_db()
    connect_response(db)  # a leak of a user synced now may start its bound workflow
    tid = _tenant(db, tenant)
    cfg = LdapConfig(
        url=url, base_dn=base_dn, bind_dn=bind_dn, password=password, active_directory=active_directory
    )
    result = sync_ldap(db, tid, cfg, actor="cli")
    if json:
        emit(msgspec.to_builtins(result))
    else:
        gone = f", removed {result.removed} no longer there" if result.removed else ""
        out.print(f"synced {result.imported} identities from {url}{gone}")
