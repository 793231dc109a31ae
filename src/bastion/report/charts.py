"""The report's charts, drawn with matplotlib as inline SVG.

Matplotlib runs on the Agg backend (no display), text stays text (``svg.fonttype: none``) so the HTML and
the PDF use the page's fonts, and each chart gets its own id salt so several SVGs can share one page
without their element ids colliding. A chart with nothing to show still renders, with a message saying
so, so a quiet period gives a readable report instead of an error.
"""

from __future__ import annotations

import io
from typing import Any, cast

__all__ = ["report_charts"]

_W, _H = 7.2, 2.8  # inches: fits an A4 page's text width
_BLUE, _GREEN, _RED, _GREY = "#2f6db5", "#3a9a5b", "#c4453c", "#8a8f98"


_RC: dict[str, Any] = {
    "svg.fonttype": "none",
    "font.family": "DejaVu Sans",
    "font.size": 8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "text.parse_math": False,  # titles are user data: a "$" is a dollar sign, not TeX
}


def _figure(salt: str) -> Any:
    """A figure not registered with pyplot (safe in the API's worker threads)."""
    import matplotlib
    from matplotlib.figure import Figure

    matplotlib.rcParams["svg.hashsalt"] = salt
    fig = Figure(figsize=(_W, _H), dpi=100)
    return fig, fig.subplots()


def _svg(fig: Any) -> str:
    buf = io.StringIO()
    fig.tight_layout()
    fig.savefig(buf, format="svg", metadata={"Date": None})
    text = buf.getvalue()
    return text[text.index("<svg") :]  # inline: drop the XML declaration and DOCTYPE


def _empty(salt: str, title: str, message: str) -> str:
    fig, ax = _figure(salt)
    ax.set_title(title, loc="left", fontsize=10)
    ax.axis("off")
    ax.text(0.5, 0.5, message, ha="center", va="center", color=_GREY, fontsize=11, transform=ax.transAxes)
    return _svg(fig)


def _int_locator() -> Any:
    from matplotlib.ticker import MaxNLocator

    return MaxNLocator(integer=True)


def _day_ticks(ax: Any, labels: list[str]) -> None:
    step = max(1, len(labels) // 10)
    ticks = list(range(0, len(labels), step))
    ax.set_xticks(ticks)
    ax.set_xticklabels([labels[i][5:] for i in ticks], rotation=0)


def volume_chart(series: list[dict[str, Any]]) -> str:
    title = "Alert volume per day"
    if not any(d["alerts"] for d in series):
        return _empty("volume", title, "No alerts in this period")
    fig, ax = _figure("volume")
    x = list(range(len(series)))
    ax.bar(x, [d["alerts"] for d in series], color=_BLUE, label="alerts stored")
    ax.set_title(title, loc="left", fontsize=10)
    ax.set_ylabel("alerts")
    ax.yaxis.set_major_locator(_int_locator())
    _day_ticks(ax, [d["day"] for d in series])
    return _svg(fig)


def closed_vs_escalated_chart(series: list[dict[str, Any]]) -> str:
    title = "Auto-closed alerts vs escalated cases per day"
    if not any(d["auto_closed"] or d["escalated"] for d in series):
        return _empty("closedesc", title, "Nothing auto-closed or escalated in this period")
    fig, ax = _figure("closedesc")
    x = list(range(len(series)))
    width = 0.4
    ax.bar(
        [i - width / 2 for i in x],
        [d["auto_closed"] for d in series],
        width,
        color=_GREEN,
        label="auto-closed alerts",
    )
    ax.bar(
        [i + width / 2 for i in x],
        [d["escalated"] for d in series],
        width,
        color=_RED,
        label="escalated cases",
    )
    ax.set_title(title, loc="left", fontsize=10)
    ax.legend(frameon=False)
    ax.yaxis.set_major_locator(_int_locator())
    _day_ticks(ax, [d["day"] for d in series])
    return _svg(fig)


def timing_chart(series: list[dict[str, Any]]) -> str:
    title = "MTTD and MTTR per day (minutes)"
    if not any(d["mttd_s"] is not None or d["mttr_s"] is not None for d in series):
        return _empty("timing", title, "No detection or resolution timings in this period")
    fig, ax = _figure("timing")
    x = list(range(len(series)))
    for key, label, color in (("mttd_s", "MTTD", _BLUE), ("mttr_s", "MTTR", _RED)):
        pts = [(i, d[key] / 60.0) for i, d in zip(x, series, strict=True) if d[key] is not None]
        if pts:
            ax.plot(
                [p[0] for p in pts], [p[1] for p in pts], marker="o", markersize=3, color=color, label=label
            )
    ax.set_title(title, loc="left", fontsize=10)
    ax.set_ylabel("minutes")
    ax.set_xlim(-0.5, len(series) - 0.5)
    ax.legend(frameon=False)
    _day_ticks(ax, [d["day"] for d in series])
    return _svg(fig)


def tactic_chart(by_tactic: dict[str, int]) -> str:
    title = "ATT&CK coverage: alerts per tactic"
    if not by_tactic:
        return _empty("tactics", title, "No alerts tagged with an ATT&CK tactic in this period")
    fig, ax = _figure("tactics")
    names = list(by_tactic)[:14][::-1]
    ax.barh([n.replace("_", " ") for n in names], [by_tactic[n] for n in names], color=_BLUE)
    ax.set_title(title, loc="left", fontsize=10)
    ax.set_xlabel("alerts")
    ax.xaxis.set_major_locator(_int_locator())
    return _svg(fig)


def top_rules_chart(top_rules: list[dict[str, Any]]) -> str:
    title = "Top rules by alerts"
    if not top_rules:
        return _empty("rules", title, "No alerts in this period")
    fig, ax = _figure("rules")
    rows = top_rules[:10][::-1]
    labels = [(r["title"] or r["rule"])[:60] for r in rows]
    ax.barh(range(len(rows)), [r["alerts"] for r in rows], color=_BLUE)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels(labels)
    ax.set_title(title, loc="left", fontsize=10)
    ax.set_xlabel("alerts")
    ax.xaxis.set_major_locator(_int_locator())
    return _svg(fig)


def report_charts(metrics: dict[str, Any]) -> dict[str, str]:
    """Every chart of the period report, by name, as inline SVG text."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    series = metrics.get("series") or []
    with matplotlib.rc_context(cast(Any, _RC)):
        return {
            "volume": volume_chart(series),
            "closed_vs_escalated": closed_vs_escalated_chart(series),
            "timings": timing_chart(series),
            "tactics": tactic_chart(metrics.get("coverage", {}).get("by_tactic") or {}),
            "top_rules": top_rules_chart(metrics.get("top_rules") or []),
        }
