"""The period report: HTML with inline SVG charts, the same as PDF (checked as an image), and Markdown
tables; user data escaped; a period with no data still gives a readable report."""

from __future__ import annotations

from pathlib import Path

from bastion.report.metrics import compute_metrics
from bastion.report.render import render_report
from bastion.store import Database
from tests.report.history import build_history
from tests.report.pages import first_page_ink

EVIL = "Suspicious <script>alert(1)</script> | PowerShell"


def _m(db: Database, tid: str, start: int, end: int) -> dict:
    with db.read() as conn:
        return compute_metrics(conn, tid, start=start, end=end)


def test_html_report_has_summary_tables_and_charts(sqlite_db: Database) -> None:
    h = build_history(sqlite_db, title_one=EVIL)
    html = render_report(_m(sqlite_db, h.tenant_id, h.start, h.end), "html", tenant="acme").decode()
    assert "Executive summary" in html
    assert "Bastion stored 3 alerts and folded 3 repeats into them by deduplication (50.0%" in html
    assert "Mean times: MTTD 2m 0s, MTTA 3m 0s, MTTC 12m 30s, MTTR 1h 30m." in html
    assert "saved an estimated 1.1 analyst hours" in html
    assert html.count("<svg") == 5  # volume, auto-closed vs escalated, MTTD/MTTR, top rules, tactics
    for title in (
        "Alert volume per day",
        "Auto-closed alerts vs escalated cases",
        "MTTD and MTTR per day",
        "Top rules by alerts",
        "alerts per tactic",
    ):
        assert title in html
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<td>execution</td>" in html and "<td>host</td><td>ws1</td>" in html
    assert "No alerts in this period" not in html


def test_pdf_report_first_page_is_not_blank(sqlite_db: Database, tmp_path: Path) -> None:
    h = build_history(sqlite_db)
    pdf = render_report(_m(sqlite_db, h.tenant_id, h.start, h.end), "pdf", tenant="acme")
    assert pdf.startswith(b"%PDF-")
    path = tmp_path / "report.pdf"
    path.write_bytes(pdf)
    assert first_page_ink(path) > 0.01


def test_markdown_report_has_the_tables(sqlite_db: Database) -> None:
    h = build_history(sqlite_db, title_one=EVIL)
    md = render_report(_m(sqlite_db, h.tenant_id, h.start, h.end), "md", tenant="acme").decode()
    assert md.startswith("# Security operations report: acme")
    assert "Charts are in the HTML and PDF versions" in md and "<svg" not in md
    assert "| Alerts stored | 3 |" in md
    assert "| Repeats deduplicated | 3 (50.0%) |" in md
    assert "| MTTD | 3 | 2m 0s | 2m 0s | 2m 0s |" in md
    assert "| execution | 2 |" in md and "| persistence | 1 |" in md
    assert "| host | ws1 | 2 |" in md
    assert "| Respond | 5 | workflow runs 3, containment actions 2 |" in md
    # The rule title can neither inject HTML nor break the table.
    assert "| r1 | Suspicious &lt;script&gt;alert(1)&lt;/script&gt; \\| PowerShell | 2 | 5 | 1 |" in md
    assert "<script>" not in md


def test_reports_of_an_empty_period_render(sqlite_db: Database, tmp_path: Path) -> None:
    h = build_history(sqlite_db)
    m = _m(sqlite_db, h.tenant_id, h.end, h.end + 86_400_000)
    assert m["alerts"] == 0
    html = render_report(m, "html", tenant="acme").decode()
    assert "No alerts in this period" in html
    assert "Nothing auto-closed or escalated in this period" in html
    assert "No detection, acknowledgement, containment or resolution times were recorded" in html
    assert html.count("<svg") == 5
    md = render_report(m, "md", tenant="acme").decode()
    assert "| (no alerts) | | 0 | 0 | 0 |" in md
    path = tmp_path / "empty.pdf"
    path.write_bytes(render_report(m, "pdf", tenant="acme"))
    assert first_page_ink(path) > 0.005


def test_chart_text_is_literal_and_escaped() -> None:
    from bastion.report.charts import report_charts

    rules = [{"rule": "r", "title": "Paid $5 or $6 to <b>x</b>", "alerts": 3}]
    charts = report_charts({"series": [], "coverage": {"by_tactic": {}}, "top_rules": rules})
    assert "No alerts in this period" in charts["volume"]
    svg = charts["top_rules"]
    assert svg.startswith("<svg") and "Paid $5 or $6 to &lt;b&gt;x&lt;/b&gt;" in svg and "<b>" not in svg
