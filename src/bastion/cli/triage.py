"""Triage commands: ``bastion triage policy show|set``, ``bastion triage suppress add|list|remove`` and
``bastion alerts list|ack|close|reopen``.

The CLI acts as ``cli`` in the audit log. ``triage_app`` is shared: other triage commands (the SLA
check) register on it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from bastion.cli._common import JsonOpt, TenantOpt, UserError, app, emit, open_db, out
from bastion.model import AlertStatus
from bastion.store import Database, TenantRepository, TenantScope
from bastion.tenancy.service import require_tenant

if TYPE_CHECKING:
    import yaml

    from bastion.model import Alert
    from bastion.triage.suppress import Suppression

__all__ = ["alerts_app", "triage_app"]

triage_app = typer.Typer(help="Alert triage: policy, suppressions, SLAs.", no_args_is_help=True)
app.add_typer(triage_app, name="triage")
alerts_app = typer.Typer(help="Alerts: list, acknowledge, close, reopen.", no_args_is_help=True)
app.add_typer(alerts_app, name="alerts")
policy_app = typer.Typer(help="The tenant's triage policy.", no_args_is_help=True)
triage_app.add_typer(policy_app, name="policy")
suppress_app = typer.Typer(help="Suppression rules (scoped, owned, expiring).", no_args_is_help=True)
triage_app.add_typer(suppress_app, name="suppress")

_ACTOR = "cli"


def _tenant_id(db: Database, name: str) -> str:
    with db.read() as conn:
        return require_tenant(TenantRepository(conn), name).id


def _when(ms: int | None) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S") if ms else "-"


def _alert_row(a: Alert) -> dict[str, Any]:
    return {
        "id": a.id,
        "time": a.time,
        "title": a.title,
        "severity": a.severity.name.lower(),
        "source": a.source,
        "rule_id": a.rule_id,
        "status": a.status.value,
        "score": a.score,
        "queue": a.queue,
        "count": a.count,
        "case_id": a.case_id,
        "verdict": a.verdict.value if a.verdict else None,
        "auto_closed": a.auto_closed,
        "close_reason": a.close_reason,
        "acknowledged": a.acknowledged,
        "closed": a.closed,
    }


# ---------------------------------------------------------------- bastion alerts ...


@alerts_app.command("list")
def alerts_list(
    tenant: TenantOpt,
    status: Annotated[str | None, typer.Option(help="new, acknowledged, in_progress or closed")] = None,
    auto_closed: Annotated[
        bool | None,
        typer.Option("--auto-closed/--not-auto-closed", help="only alerts closed (or not) by triage"),
    ] = None,
    queue: Annotated[str | None, typer.Option(help="routed to this queue")] = None,
    verdict: Annotated[str | None, typer.Option(help="closed with this verdict")] = None,
    min_score: Annotated[int | None, typer.Option("--min-score", min=0, max=100)] = None,
    rule: Annotated[str | None, typer.Option("--rule", help="from this rule id")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 100,
    json: JsonOpt = False,
) -> None:
    """List a tenant's alerts, newest first, by status and triage state."""
    from bastion.triage.alerts import parse_verdict

    try:
        st = AlertStatus(status) if status is not None else None
    except ValueError:
        raise UserError(
            f"unknown status {status!r}; use one of {', '.join(s.value for s in AlertStatus)}"
        ) from None
    vd = parse_verdict(verdict) if verdict is not None else None
    db = open_db()
    tid = _tenant_id(db, tenant)
    with db.read() as conn:
        found, _ = TenantScope(conn, tid).alerts.list(
            status=st,
            auto_closed=auto_closed,
            queue=queue,
            min_score=min_score,
            rule_id=rule,
            verdict=vd,
            limit=limit,
        )
    if json:
        emit([_alert_row(a) for a in found])
        return
    table = Table()
    table.add_column("id", no_wrap=True)
    for name in ("time", "severity", "score", "status", "queue", "title", "closed because"):
        table.add_column(name)
    for a in found:
        why = a.close_reason or (a.verdict.value if a.verdict else "")
        status_text = a.status.value + (" (auto)" if a.auto_closed else "")
        table.add_row(
            a.id or "",
            _when(a.time),
            a.severity.name.lower(),
            str(a.score),
            status_text,
            a.queue or "-",
            a.title,
            why,
        )
    out.print(table)


@alerts_app.command("ack")
def alerts_ack(alert_id: str, tenant: TenantOpt, json: JsonOpt = False) -> None:
    """Acknowledge an alert (the first acknowledgement's time is kept)."""
    from bastion.triage.alerts import acknowledge

    db = open_db()
    tid = _tenant_id(db, tenant)
    with db.write() as conn:
        alert = acknowledge(TenantScope(conn, tid), _ACTOR, alert_id)
    if json:
        emit(_alert_row(alert))
    else:
        out.print(f"alert {alert_id} acknowledged", highlight=False)


@alerts_app.command("close")
def alerts_close(
    alert_id: str,
    tenant: TenantOpt,
    verdict: Annotated[str, typer.Option(help="true_positive, benign_true_positive or false_positive")],
    reason: Annotated[str | None, typer.Option("--reason", "-m", help="why")] = None,
    suppress_similar: Annotated[
        bool,
        typer.Option("--suppress-similar", help="false positives: suppress this rule on this host/user"),
    ] = False,
    suppress_for: Annotated[
        str, typer.Option("--for", help="how long the suppression lasts: 7d, 12h, 2w or a date")
    ] = "30d",
    json: JsonOpt = False,
) -> None:
    """Close an alert with a verdict; with --suppress-similar also add a scoped suppression."""
    from bastion.triage.alerts import close_alert

    db = open_db()
    tid = _tenant_id(db, tenant)
    with db.write() as conn:
        done = close_alert(
            TenantScope(conn, tid),
            _ACTOR,
            alert_id,
            verdict,
            reason=reason,
            suppress_similar=suppress_similar,
            suppress_for=suppress_for,
        )
    s: Suppression | None = done["suppression"]
    if json:
        emit({"alert": _alert_row(done["alert"]), "suppression": s.to_dict() if s else None})
        return
    out.print(f"alert {alert_id} closed as {verdict}", highlight=False)
    if s is not None:
        out.print(f"suppression {s.id} added: {_describe(s)}, until {_when(s.expires)}", highlight=False)


@alerts_app.command("reopen")
def alerts_reopen(
    alert_id: str,
    tenant: TenantOpt,
    reason: Annotated[str, typer.Option("--reason", "-m", help="why it needs another look")],
    json: JsonOpt = False,
) -> None:
    """Reopen a closed or auto-closed alert (the old close reason is kept in a note and the audit)."""
    from bastion.triage.alerts import reopen_alert

    db = open_db()
    tid = _tenant_id(db, tenant)
    with db.write() as conn:
        alert = reopen_alert(TenantScope(conn, tid), _ACTOR, alert_id, reason=reason)
    if json:
        emit(_alert_row(alert))
    else:
        out.print(f"alert {alert_id} reopened", highlight=False)


# ---------------------------------------------------------------- bastion triage policy ...


# A policy is a few levels deep; far deeper YAML (thousands of "[") would exhaust the stack in the parser.
_POLICY_MAX_DEPTH = 50


class _TooDeep(Exception):
    """The policy file nests deeper than any policy does."""


def _policy_loader() -> type[yaml.SafeLoader]:
    """yaml's safe loader, refusing nesting deeper than :data:`_POLICY_MAX_DEPTH` where it starts (built
    on first use: yaml is imported inside the commands)."""
    import yaml

    class Loader(yaml.SafeLoader):
        depth = 0

        def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
            if self.depth >= _POLICY_MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise _TooDeep(f"nesting deeper than {_POLICY_MAX_DEPTH} levels (line {mark.line + 1})")
            self.depth += 1
            try:
                return super().compose_node(parent, index)
            finally:
                self.depth -= 1

    return Loader


@policy_app.command("show")
def policy_show(tenant: TenantOpt, json: JsonOpt = False) -> None:
    """Print the tenant's triage policy, defaults merged in."""
    import msgspec
    import yaml

    from bastion.triage.policy import load_policy

    db = open_db()
    tid = _tenant_id(db, tenant)
    with db.read() as conn:
        doc = msgspec.to_builtins(load_policy(conn, tid))
    if json:
        emit(doc)
    else:
        out.print(yaml.safe_dump(doc, sort_keys=False), highlight=False, markup=False, end="")


@policy_app.command("set")
def policy_set(
    tenant: TenantOpt,
    file: Annotated[Path, typer.Argument(help="YAML or JSON: a partial policy, merged over the defaults")],
    json: JsonOpt = False,
) -> None:
    """Replace the tenant's triage policy with the document in FILE (checked before it is stored)."""
    import msgspec
    import yaml

    from bastion.triage.policy import save_policy

    try:
        loader = _policy_loader()(file.read_text(encoding="utf-8"))
        try:
            document = loader.get_single_data()
        finally:
            loader.dispose()
    except _TooDeep as exc:
        raise UserError(f"{file}: {exc}") from None
    except yaml.YAMLError as exc:
        raise UserError(f"{file}: not valid YAML or JSON: {str(exc).splitlines()[0]}") from None
    if not isinstance(document, dict):
        raise UserError(f"{file}: a triage policy must be a mapping of settings")
    db = open_db()
    tid = _tenant_id(db, tenant)
    with db.write() as conn:
        policy = save_policy(conn, tid, document, _ACTOR)
        TenantScope(conn, tid).audit.append(
            _ACTOR, "triage.policy.set", "triage_policy", tid, {"document": document}
        )
    if json:
        emit(msgspec.to_builtins(policy))
    else:
        out.print(f"triage policy of {tenant} updated from {file}", highlight=False)


# ---------------------------------------------------------------- bastion triage suppress ...


def _describe(s: Suppression) -> str:
    parts = []
    if s.rule_id:
        parts.append(f"rule {s.rule_id}")
    if s.source:
        parts.append(f"source {s.source}")
    parts += [f"{k}={v}" for k, v in sorted(s.fields.items())]
    if s.entity:
        parts.append(f"{s.entity[0]}:{s.entity[1]}")
    return ", ".join(parts)


def _fields(pairs: list[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--field {pair!r} must be NAME=VALUE, like title='Test alert*'")
        found[key.strip()] = value
    return found


@suppress_app.command("add")
def suppress_add(
    tenant: TenantOpt,
    owner: Annotated[str, typer.Option(help="who answers for this suppression")],
    expires: Annotated[str, typer.Option("--for", help="how long it lasts (7d, 12h, 2w) or until a date")],
    rule: Annotated[str | None, typer.Option("--rule", help="rule id (wildcards * and ?)")] = None,
    source: Annotated[str | None, typer.Option(help="alert source")] = None,
    field: Annotated[
        list[str] | None,
        typer.Option(
            "--field", help="NAME=VALUE on title, severity, rule_id, rule_name, source, tag, technique"
        ),
    ] = None,
    entity: Annotated[str | None, typer.Option(help="TYPE:VALUE, like host:ws01 or user:alice")] = None,
    reason: Annotated[str | None, typer.Option("--reason", "-m", help="why")] = None,
    json: JsonOpt = False,
) -> None:
    """Add a suppression: matching alerts are closed as they arrive (still stored and searchable)."""
    from bastion.triage.suppress import add_suppression

    fields = _fields(field or [])
    db = open_db()
    tid = _tenant_id(db, tenant)
    with db.write() as conn:
        s = add_suppression(
            TenantScope(conn, tid),
            _ACTOR,
            owner=owner,
            expires=expires,
            rule_id=rule,
            source=source,
            fields=fields,
            entity=entity,
            reason=reason,
        )
    if json:
        emit(s.to_dict())
    else:
        out.print(f"suppression {s.id} added: {_describe(s)}, until {_when(s.expires)}", highlight=False)


@suppress_app.command("list")
def suppress_list(
    tenant: TenantOpt,
    all_: Annotated[bool, typer.Option("--all", help="include expired suppressions")] = False,
    json: JsonOpt = False,
) -> None:
    """List the tenant's suppressions (active ones unless --all)."""
    from bastion.triage.suppress import list_suppressions

    db = open_db()
    tid = _tenant_id(db, tenant)
    with db.read() as conn:
        found = list_suppressions(conn, tid, all_)
    if json:
        emit([s.to_dict() for s in found])
        return
    table = Table()
    table.add_column("id", no_wrap=True)
    for name in ("matches", "owner", "expires", "hits", "last hit", "reason"):
        table.add_column(name)
    for s in found:
        table.add_row(
            s.id, _describe(s), s.owner, _when(s.expires), str(s.hits), _when(s.last_hit), s.reason or ""
        )
    out.print(table)


@suppress_app.command("remove")
def suppress_remove(suppression_id: str, tenant: TenantOpt, json: JsonOpt = False) -> None:
    """Remove a suppression (its definition stays in the audit log)."""
    from bastion.triage.suppress import remove_suppression

    db = open_db()
    tid = _tenant_id(db, tenant)
    with db.write() as conn:
        s = remove_suppression(TenantScope(conn, tid), _ACTOR, suppression_id)
    if json:
        emit({"deleted": s.to_dict()})
    else:
        out.print(f"suppression {suppression_id} removed", highlight=False)
