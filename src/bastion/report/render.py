"""Turning metrics (and a case) into a document: HTML and Markdown from Jinja2 templates, PDF from the
same HTML through WeasyPrint.

Templates autoescape everything (rule titles, entity names and case text are user data); Markdown output
is HTML-escaped too, which every Markdown renderer displays as the original characters, and table cells
escape ``|`` and line breaks so a title cannot break a table. The only unescaped content is the SVG our
own chart code produced (matplotlib escapes the text inside it).
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup, escape

from bastion.store._util import now_ms

__all__ = ["FORMATS", "ReportError", "html_to_pdf", "render_report", "summary_sentences", "template_env"]

FORMATS = ("html", "pdf", "md")
_TEMPLATES = Path(__file__).resolve().parent / "templates"


class ReportError(ValueError):
    """A report was asked for something it cannot do (unknown format, unknown case)."""


def check_format(fmt: str) -> str:
    low = fmt.strip().lower()
    if low == "markdown":
        low = "md"
    if low not in FORMATS:
        raise ReportError(f"unknown report format {fmt!r}; use html, pdf or md")
    return low


# ---------------------------------------------------------------- filters


def fmt_duration(seconds: float | None) -> str:
    """``95.0`` -> ``1m 35s``; None -> an em dash (no data)."""
    if seconds is None:
        return "\u2014"
    s = float(seconds)
    if s < 60:
        return f"{s:.1f}s" if s != int(s) else f"{int(s)}s"
    minutes, sec = divmod(round(s), 60)
    if minutes < 60:
        return f"{minutes}m {sec}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h {minutes}m"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours}h"


def fmt_pct(value: float | None) -> str:
    return "\u2014" if value is None else f"{value:.1f}%"


def fmt_num(value: Any) -> str:
    if value is None:
        return "\u2014"
    if isinstance(value, float):
        return f"{value:,.1f}" if value != int(value) else f"{int(value):,}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def fmt_time(ms: int | None) -> str:
    if ms is None:
        return "\u2014"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


_MD_SPECIAL = str.maketrans({c: "\\" + c for c in "\\`*_[]|#"})


def md_cell(value: Any) -> Markup:
    """User text made inert in Markdown: HTML-escaped, Markdown punctuation backslash-escaped (so a title
    can be neither a link nor a table break), on one line."""
    text = str(escape("" if value is None else value)).translate(_MD_SPECIAL)
    return Markup(text.replace("\r", " ").replace("\n", " "))  # noqa: S704 - escaped just above


@cache
def template_env() -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(_TEMPLATES)),
        autoescape=True,  # every template, .html.j2 and .md.j2 alike
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(dur=fmt_duration, pct=fmt_pct, num=fmt_num, when=fmt_time, md=md_cell)
    return env


def html_to_pdf(html: str) -> bytes:
    """Render HTML (with inline SVG) to PDF with WeasyPrint; nothing is fetched from the network."""
    import logging

    from weasyprint import HTML

    logging.getLogger("fontTools").setLevel(logging.WARNING)

    def no_fetch(url: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
        raise ReportError(f"reports do not load external resources ({url[:80]})")

    pdf = HTML(string=html, base_url=str(_TEMPLATES), url_fetcher=no_fetch).write_pdf()
    assert isinstance(pdf, bytes)
    return pdf


# ---------------------------------------------------------------- the period report


def _n(count: Any, noun: str, plural: str | None = None) -> str:
    """``3 alerts``, ``1 alert``."""
    return f"{fmt_num(count)} {noun if count == 1 else (plural or noun + 's')}"


def summary_sentences(m: dict[str, Any]) -> list[str]:
    """The executive summary: the key figures of the period, as sentences."""
    days = m["period"]["days"]
    span = _n(int(days) if days == int(days) else days, "day")
    period = f"{m['period']['start_iso'][:10]} to {m['period']['end_iso'][:10]}"
    dedup = f" ({fmt_pct(m['deduplicated_pct'])} of raw alert volume)" if m["deduplicated_pct"] else ""
    auto = f" ({fmt_pct(m['auto_closed_pct'])})" if m["auto_closed_pct"] else ""
    out = [
        f"Over {span} ({period}), Bastion stored {_n(m['alerts'], 'alert')} and folded "
        f"{_n(m['deduplicated'], 'repeat')} into them by deduplication{dedup}.",
        f"{_n(m['auto_closed'], 'alert')}{auto} {'was' if m['auto_closed'] == 1 else 'were'} closed "
        f"automatically and {fmt_num(m['suppressed'])} by suppression rules; {_n(m['cases'], 'case')} "
        f"{'was' if m['cases'] == 1 else 'were'} opened, of which {fmt_num(m['escalated'])} "
        f"{'was' if m['escalated'] == 1 else 'were'} escalated after an SLA breach.",
    ]
    timing = [
        f"{name} {fmt_duration(m[key])}"
        for name, key in (("MTTD", "mttd_s"), ("MTTA", "mtta_s"), ("MTTC", "mttc_s"), ("MTTR", "mttr_s"))
        if m[key] is not None
    ]
    out.append(
        "Mean times: " + ", ".join(timing) + "."
        if timing
        else "No detection, acknowledgement, containment or resolution times were recorded in the period."
    )
    out.append(
        f"Automation saved an estimated {_n(m['analyst_hours_saved'], 'analyst hour')}, and "
        f"{fmt_num(m['incidents_prevented'])} of {_n(m['preemptive_runs'], 'preemptive workflow run')} "
        "completed before any alert (incidents prevented)."
    )
    if m["top_rules"]:
        top = m["top_rules"][0]
        name = top["title"] or top["rule"]
        out.append(f"The noisiest rule was \u201c{name}\u201d with {_n(top['alerts'], 'alert')}.")
    tactics = m["coverage"]["by_tactic"]
    if tactics:
        out.append(
            f"Alerts covered {_n(len(tactics), 'ATT&CK tactic')}; the most frequent was "
            f"{next(iter(tactics)).replace('_', ' ')}."
        )
    return out


def render_report(metrics: dict[str, Any], fmt: str, *, tenant: str, generated: int | None = None) -> bytes:
    """The period report for ``metrics`` (from :func:`bastion.report.metrics.compute_metrics`) as
    ``html``, ``pdf`` or ``md`` bytes."""
    fmt = check_format(fmt)
    context = {
        "m": metrics,
        "tenant": tenant,
        "generated": generated if generated is not None else now_ms(),
        "summary": summary_sentences(metrics),
    }
    env = template_env()
    if fmt == "md":
        return env.get_template("report.md.j2").render(**context).encode()
    from bastion.report.charts import report_charts

    charts = {k: Markup(v) for k, v in report_charts(metrics).items()}  # noqa: S704 - our own SVG
    html = env.get_template("report.html.j2").render(**context, charts=charts, pdf=fmt == "pdf")
    return html.encode() if fmt == "html" else html_to_pdf(html)
