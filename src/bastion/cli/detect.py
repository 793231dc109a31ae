"""Detection commands: ``bastion detect`` (rules over an events file, no database), ``bastion rules
check`` (which rules cannot be compiled, and why) and ``bastion hunt`` (a rule over stored events)."""

from __future__ import annotations

import multiprocessing
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import orjson
import typer

from bastion.cli._common import JsonOpt, TenantOpt, UserError, app, emit, open_db, out
from bastion.store.detection import DetectionRepository
from bastion.store.tenancy import TenantRepository
from bastion.tenancy.service import require_tenant

if TYPE_CHECKING:  # the rule engine loads pySigma; commands import it when they run, keeping startup fast
    from bastion.detect.correlation import CorrelationEngine
    from bastion.detect.engine import Detector

__all__ = ["detect_command", "hunt_command", "rules_check"]

rules_app = typer.Typer(help="Sigma rules.", no_args_is_help=True)
app.add_typer(rules_app, name="rules")

_CHUNK = 2000
_WORKER_DETECTOR: Detector | None = None
_EVENTS_PATH = ""


def _match_chunk(args: tuple[int, list[Any]]) -> list[tuple[int, int]]:
    from bastion.detect.events import flatten
    from bastion.detect.readers import decode

    start, items = args
    det = _WORKER_DETECTOR
    assert det is not None
    hits: list[tuple[int, int]] = []
    for i, item in enumerate(items):
        try:
            doc = decode(item)
        except orjson.JSONDecodeError as exc:
            raise ValueError(f"{_EVENTS_PATH}: event {start + i} is not valid JSON: {exc}") from None
        for m in det.match_flat(flatten(doc)):
            hits.append((start + i, m.rule.index))
    return hits


def _chunks(items: Iterator[Any]) -> Iterator[tuple[int, list[Any]]]:
    buf: list[Any] = []
    start = 0
    for item in items:
        buf.append(item)
        if len(buf) >= _CHUNK:
            yield start, buf
            start += len(buf)
            buf = []
    if buf:
        yield start, buf


def _write_hits(
    det: Detector,
    hits: list[tuple[int, int]],
    chunk: tuple[int, list[Any]],
    corr: CorrelationEngine | None,
) -> None:
    from bastion.detect.events import flatten
    from bastion.detect.readers import decode

    w = sys.stdout.write
    by_event: dict[int, list[int]] = {}
    for idx, ridx in hits:
        r = det.rules[ridx]
        w(
            orjson.dumps(
                {"rule_id": r.rule_id, "rule_title": r.title, "level": r.level, "event_index": idx}
            ).decode()
        )
        w("\n")
        by_event.setdefault(idx, []).append(ridx)
    if corr is None:
        return
    start, items = chunk
    for idx, matched in by_event.items():
        for hit in corr.feed(flatten(decode(items[idx - start])), matched):
            line = {"rule_id": hit.rule_id, "rule_title": hit.title, "level": hit.level, "event_index": idx}
            w(orjson.dumps(line).decode())
            w("\n")


@app.command("detect")
def detect_command(
    rules: Annotated[list[Path], typer.Option("--rules", help="rule file, folder or zip (repeatable)")],
    events: Annotated[Path, typer.Option("--events", help="JSONL[.gz], JSON array, concatenated JSON, EVTX")],
    stats: Annotated[bool, typer.Option("--stats", help="print one JSON line of figures to stderr")] = False,
    workers: Annotated[
        int, typer.Option("--workers", min=1, max=256, help="processes matching in parallel")
    ] = 1,
) -> None:
    """Run Sigma rules over an events file (no database): one JSON line per match."""
    from bastion.detect.correlation import CorrelationEngine
    from bastion.detect.engine import Detector
    from bastion.detect.readers import read_event_items

    global _WORKER_DETECTOR, _EVENTS_PATH
    for p in rules:
        if not p.exists():
            raise UserError(f"no such rule file or folder: {p}")
    if not events.is_file():
        raise UserError(f"no such events file: {events}")
    det = Detector.from_paths(rules)
    _WORKER_DETECTOR = det
    _EVENTS_PATH = str(events)
    t0 = time.perf_counter()
    n = 0
    items = read_event_items(events)
    corr = CorrelationEngine(det) if det.correlations else None
    if workers <= 1:
        for chunk in _chunks(items):
            n += len(chunk[1])
            _write_hits(det, _match_chunk(chunk), chunk, corr)
    else:
        ctx = multiprocessing.get_context("fork")
        with ctx.Pool(workers) as pool:
            sent: list[tuple[int, list[Any]]] = []

            def remembering() -> Iterator[tuple[int, list[Any]]]:
                for c in _chunks(items):
                    sent.append(c)
                    yield c

            for i, hits in enumerate(pool.imap(_match_chunk, remembering())):
                _write_hits(det, hits, sent[i], corr)
                n += len(sent[i][1])
                sent[i] = (sent[i][0], [])  # matched and reported: drop the items
    sys.stdout.flush()
    seconds = time.perf_counter() - t0
    if stats:
        figures = {
            "events": n,
            "rules": len(det.rules),
            "unsupported": len(det.unsupported),
            "seconds": round(seconds, 4),
            "events_per_s": round(n / seconds, 1) if seconds > 0 else 0.0,
        }
        sys.stderr.write(orjson.dumps(figures).decode() + "\n")


@rules_app.command("check")
def rules_check(
    paths: Annotated[list[Path], typer.Argument(help="rule files, folders or zips")],
    json: JsonOpt = False,
) -> None:
    """Compile every rule and report each one that cannot be used, with the reason."""
    from bastion.detect.engine import Detector
    from bastion.detect.rules import load_rules

    for p in paths:
        if not p.exists():
            raise UserError(f"no such rule file or folder: {p}")
    det = Detector(load_rules(paths))
    total = len(det.rules) + len(det.unsupported)
    unmapped = [
        {"source": r.source, "rule_id": r.rule_id, "title": r.title, "logsource": _logsource(r.rule)}
        for r in det.rules
        if not r.mapped
    ]
    report = {
        "rules": total,
        "supported": len(det.rules),
        "unsupported": len(det.unsupported),
        "unsupported_pct": round(100.0 * len(det.unsupported) / total, 3) if total else 0.0,
        "correlations": len(det.correlations),
        "problems": [p.as_dict() for p in det.unsupported],
        "unmapped_logsource": unmapped,
    }
    if json:
        emit(report)
        return
    out.print(
        f"{report['supported']} of {total} rules compiled; {report['unsupported']} unsupported "
        f"({report['unsupported_pct']}%); {len(unmapped)} with a Windows log source no channel is mapped to"
    )
    for problem in det.unsupported:
        out.print(f"  {problem.source}: {problem.reason}", highlight=False, soft_wrap=True)


def _logsource(rule: Any) -> dict[str, str | None]:
    ls = rule.logsource
    return {"product": ls.product, "service": ls.service, "category": ls.category}


# ---------------------------------------------------------------- tenant rule packs, overrides, suppressions

pack_app = typer.Typer(help="A tenant's rule packs.", no_args_is_help=True)
rules_app.add_typer(pack_app, name="pack")


@pack_app.command("add")
def pack_add(
    name: str,
    path: Annotated[Path, typer.Argument(help="rule file, folder or zip")],
    tenant: TenantOpt,
    json: JsonOpt = False,
) -> None:
    """Enable a rule pack for a tenant."""
    from bastion.detect.tenant import add_pack

    row = add_pack(open_db(), tenant, name, str(path))
    if json:
        emit({"pack": row.name, "path": row.path, "enabled": row.enabled})
    else:
        out.print(f"pack [bold]{row.name}[/bold] enabled ({row.path})")


@pack_app.command("list")
def pack_list(tenant: TenantOpt, json: JsonOpt = False) -> None:
    """List a tenant's rule packs."""
    db = open_db()
    with db.read() as conn:
        t = require_tenant(TenantRepository(conn), tenant)
        packs = DetectionRepository(conn, t.id).packs()
    rows = [{"name": p.name, "path": p.path, "enabled": p.enabled} for p in packs]
    if json:
        emit({"packs": rows})
    else:
        for r in rows:
            out.print(f"{r['name']}\t{'on' if r['enabled'] else 'off'}\t{r['path']}", highlight=False)


@pack_app.command("disable")
def pack_disable(name: str, tenant: TenantOpt, json: JsonOpt = False) -> None:
    """Turn a tenant's rule pack off (kept, can be enabled again)."""
    from bastion.detect.tenant import set_pack_enabled

    set_pack_enabled(open_db(), tenant, name, False)
    _done(json, {"pack": name, "enabled": False}, f"pack {name} disabled")


@pack_app.command("enable")
def pack_enable(name: str, tenant: TenantOpt, json: JsonOpt = False) -> None:
    """Turn a tenant's rule pack back on."""
    from bastion.detect.tenant import set_pack_enabled

    set_pack_enabled(open_db(), tenant, name, True)
    _done(json, {"pack": name, "enabled": True}, f"pack {name} enabled")


@rules_app.command("disable")
def rule_disable(rule_id: str, tenant: TenantOpt, json: JsonOpt = False) -> None:
    """Turn one rule off for a tenant."""
    from bastion.detect.tenant import set_rule_enabled

    set_rule_enabled(open_db(), tenant, rule_id, False)
    _done(json, {"rule_id": rule_id, "enabled": False}, f"rule {rule_id} disabled")


@rules_app.command("enable")
def rule_enable(rule_id: str, tenant: TenantOpt, json: JsonOpt = False) -> None:
    """Turn one rule back on for a tenant."""
    from bastion.detect.tenant import set_rule_enabled

    set_rule_enabled(open_db(), tenant, rule_id, True)
    _done(json, {"rule_id": rule_id, "enabled": True}, f"rule {rule_id} enabled")


def _done(json: bool, doc: dict[str, Any], line: str) -> None:
    """What a command that changes one thing reports: one JSON object, or one line."""
    if json:
        emit(doc)
    else:
        out.print(line, highlight=False)


@rules_app.command("suppress")
def rule_suppress(
    tenant: TenantOpt,
    field: Annotated[
        list[str], typer.Option("--field", help="FIELD=VALUE the event must carry (repeatable)")
    ],
    rule: Annotated[str | None, typer.Option("--rule", help="rule id (default: any rule)")] = None,
    expires: Annotated[
        str | None, typer.Option(help="expiry: ISO-8601, epoch, or a duration like 7d")
    ] = None,
    reason: Annotated[str | None, typer.Option(help="why (kept in the audit log)")] = None,
    json: JsonOpt = False,
) -> None:
    """Add a suppression: matches with these field values raise no alert."""
    from bastion.detect.tenant import add_suppression
    from bastion.model.timefmt import check_time_range, parse_time_ms

    fields: dict[str, str] = {}
    for item in field:
        k, sep, v = item.partition("=")
        if not sep or not k.strip():
            raise UserError(f"--field takes FIELD=VALUE, got {item!r}")
        fields[k.strip()] = v
    exp = None
    if expires:
        m = _DURATION.match(expires.strip())
        now = _now_ms()
        exp = (
            check_time_range(expires, now + int(m.group(1)) * _UNIT_MS[m.group(2)])
            if m
            else parse_time_ms(expires)
        )
        if exp <= now:
            raise UserError(f"--expires {expires!r} is in the past; give a later time or a duration")
    row = add_suppression(open_db(), tenant, fields, rule_id=rule, reason=reason, expires=exp)
    if json:
        emit({"id": row.id, "rule_id": row.rule_id, "fields": row.fields, "expires": row.expires})
    else:
        out.print(f"suppression {row.id} added")


@rules_app.command("unsuppress")
def rule_unsuppress(sid: str, tenant: TenantOpt, json: JsonOpt = False) -> None:
    """Remove a suppression by id."""
    from bastion.detect.tenant import remove_suppression

    remove_suppression(open_db(), tenant, sid)
    _done(json, {"suppression": sid, "removed": True}, f"suppression {sid} removed")


@rules_app.command("suppressions")
def rule_suppressions(tenant: TenantOpt, json: JsonOpt = False) -> None:
    """List a tenant's suppressions."""
    db = open_db()
    with db.read() as conn:
        t = require_tenant(TenantRepository(conn), tenant)
        rows = DetectionRepository(conn, t.id).suppressions()
    items = [
        {"id": r.id, "rule_id": r.rule_id, "fields": r.fields, "expires": r.expires, "reason": r.reason}
        for r in rows
    ]
    if json:
        emit({"suppressions": items})
    else:
        for i in items:
            out.print(f"{i['id']}\t{i['rule_id'] or '*'}\t{i['fields']}\t{i['expires']}", highlight=False)


_DURATION = re.compile(r"^(\d+)([smhdw])$")
_UNIT_MS = {"s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}


def _now_ms() -> int:
    return int(time.time() * 1000)


# ---------------------------------------------------------------- retro-hunt


@app.command("hunt")
def hunt_command(
    tenant: TenantOpt,
    rule: Annotated[list[Path], typer.Option("--rule", help="rule file, folder or zip (repeatable)")],
    since: Annotated[str, typer.Option(help="how far back: a duration (30d, 12h) or a time")] = "30d",
    json: JsonOpt = False,
) -> None:
    """Run Sigma rules over a tenant's stored events."""
    from bastion.detect.tenant import hunt
    from bastion.model.timefmt import parse_time_ms

    for p in rule:
        if not p.exists():
            raise UserError(f"no such rule file or folder: {p}")
    start = parse_time_ms("-" + since if _DURATION.match(since.strip()) else since)
    det, hits, n = hunt(open_db(), tenant, list(rule), since=start)
    report = {
        "events": n,
        "rules": len(det.rules),
        "unsupported": len(det.unsupported),
        "since": start,
        "matches": hits,
    }
    if json:
        emit(report)
        return
    out.print(f"{len(hits)} matches in {n} events since {start}")
    for h in hits:
        out.print(f"{h['time']}\t{h['event_id']}\t{h['rule_title']}", highlight=False)
