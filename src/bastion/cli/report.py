"""Metrics and reports: ``bastion metrics`` (the SOC figures of a period) and ``bastion report`` (the
period's executive report as HTML, PDF or Markdown). The case report is ``bastion cases report``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from bastion.cli._common import (
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
from bastion.model import Severity
from bastion.store import Database, TenantRepository
from bastion.tenancy.service import require_tenant

__all__ = ["metrics_command", "report_command"]

PeriodOpt = Annotated[
    str | None, typer.Option("--period", "-p", help="how far back from --end (default 30d): 30d, 12h, 2w")
]
StartOpt = Annotated[str | None, typer.Option("--start", help="period start: ISO-8601 or epoch (s/ms)")]
EndOpt = Annotated[str | None, typer.Option("--end", help="period end (default now)")]
SeverityOpt = Annotated[str | None, typer.Option("--severity", help="only alerts of this severity")]
SourceOpt = Annotated[str | None, typer.Option("--source", help="only alerts from this source")]


def _tenant(db: Database, name: str) -> tuple[str, str]:
    with db.read() as conn:
        t = require_tenant(TenantRepository(conn), name)
    return t.id, t.name


def _compute(
    tenant: str,
    period: str | None,
    start: str | None,
    end: str | None,
    severity: str | None,
    source: str | None,
) -> tuple[dict[str, Any], str]:
    from bastion.report.metrics import compute_metrics
    from bastion.report.period import resolve_window

    try:
        sev = Severity.parse(severity) if severity is not None else None
    except ValueError as exc:
        raise UserError(f"--severity: {exc}") from None
    lo, hi = resolve_window(period, start, end)
    db = open_db()
    try:
        tid, name = _tenant(db, tenant)
        with db.read() as conn:
            return compute_metrics(conn, tid, start=lo, end=hi, severity=sev, source=source), name
    finally:
        db.dispose()


def _print_metrics(m: dict[str, Any], tenant: str) -> None:
    from bastion.report.render import fmt_duration, fmt_num, fmt_pct, fmt_time

    out.print(
        f"[bold]{tenant}[/bold]  {fmt_time(m['period']['start'])} to {fmt_time(m['period']['end'])}",
        highlight=False,
    )
    table = Table(show_header=True, header_style="bold")
    table.add_column("metric")
    table.add_column("value", justify="right")
    rows = [
        ("alerts", fmt_num(m["alerts"])),
        ("deduplicated", f"{fmt_num(m['deduplicated'])} ({fmt_pct(m['deduplicated_pct'])})"),
        ("auto-closed", f"{fmt_num(m['auto_closed'])} ({fmt_pct(m['auto_closed_pct'])})"),
        ("suppressed", fmt_num(m["suppressed"])),
        ("cases", fmt_num(m["cases"])),
        ("escalated", fmt_num(m["escalated"])),
        ("analyst touches / case", fmt_num(m["analyst_touches_per_case"])),
        ("MTTD", fmt_duration(m["mttd_s"])),
        ("MTTA", fmt_duration(m["mtta_s"])),
        ("MTTC", fmt_duration(m["mttc_s"])),
        ("MTTR", fmt_duration(m["mttr_s"])),
        ("analyst hours saved", fmt_num(m["analyst_hours_saved"])),
        ("incidents prevented", f"{fmt_num(m['incidents_prevented'])} of {fmt_num(m['preemptive_runs'])}"),
    ]
    for name, value in rows:
        table.add_row(name, value)
    out.print(table)
    if m["coverage"]["by_tactic"]:
        tactics = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in m["coverage"]["by_tactic"].items())
        out.print(f"ATT&CK tactics: {tactics}", highlight=False, markup=False)


@app.command("metrics")
def metrics_command(
    tenant: TenantOpt,
    period: PeriodOpt = None,
    start: StartOpt = None,
    end: EndOpt = None,
    severity: SeverityOpt = None,
    source: SourceOpt = None,
    json: JsonOpt = False,
) -> None:
    """SOC metrics of a period from recorded timestamps: volume, MTTD/MTTA/MTTC/MTTR, savings, coverage."""
    m, name = _compute(tenant, period, start, end, severity, source)
    if json:
        emit(m)
    else:
        _print_metrics(m, name)


@app.command("report")
def report_command(
    tenant: TenantOpt,
    output: Annotated[Path | None, typer.Option("--out", "-o", help="the file to write")] = None,
    format: Annotated[str, typer.Option("--format", "-f", help="html, pdf or md")] = "html",
    period: PeriodOpt = None,
    start: StartOpt = None,
    end: EndOpt = None,
    severity: SeverityOpt = None,
    source: SourceOpt = None,
    json: JsonOpt = False,
) -> None:
    """Write the period's report: executive summary, tables and charts (HTML, PDF or Markdown)."""
    from bastion.report.render import check_format, render_report

    fmt = check_format(format)
    output = check_output(output)
    m, name = _compute(tenant, period, start, end, severity, source)
    data = render_report(m, fmt, tenant=name)
    write_output(output, data)
    if json:
        emit({"format": fmt, "out": str(output), "bytes": len(data), "alerts": m["alerts"]})
    else:
        out.print(f"wrote {output} ({len(data)} bytes, {fmt})", highlight=False)
