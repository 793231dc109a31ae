"""The report of one incident in HTML, Markdown and PDF: summary with the score explained, timeline,
actions taken, approvals, evidence with hashes, alerts."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from bastion.report.case_report import render_case_report
from bastion.report.render import ReportError
from bastion.store import Database
from tests.report.history import build_history
from tests.report.pages import first_page_ink

SHA = hashlib.sha256(b"pcap bytes").hexdigest()


def test_case_report_html(sqlite_db: Database) -> None:
    h = build_history(sqlite_db, title_one="Encoded <img src=x> PowerShell")
    html = render_case_report(sqlite_db, h.tenant_id, h.ids["case1"], "html").decode()
    assert "<h1>Case #1: Intrusion on ws1</h1>" in html
    for fragment in (
        "<th>Severity</th><td>high</td>",
        "<th>Status</th><td>closed</td>",
        "<th>Verdict</th><td>true_positive</td>",
        "<td>72 / 100</td>",
        "+28.0 severity: high (4/5)",  # the score explained line by line
        "+6.0 asset: ws1 criticality 3",
        "edr.isolate_host</code> <strong>(containment)</strong>",  # actions taken
        "carol approve at ",  # approvals: who decided what, when
        "&ldquo;go ahead&rdquo;",
        "capture.pcap",  # evidence
        SHA,
        "<code>ws1</code>",
        "Encoded &lt;img src=x&gt; PowerShell",  # the alert, escaped
        "Case opened",  # the timeline
    ):
        assert fragment in html, fragment
    assert "<img src=x>" not in html


def test_case_report_markdown_and_pdf(sqlite_db: Database, tmp_path: Path) -> None:
    h = build_history(sqlite_db)
    md = render_case_report(sqlite_db, h.tenant_id, h.ids["case1"], "md").decode()
    assert md.startswith("# Case #1: Intrusion on ws1")
    assert "| Score | 72 / 100 |" in md
    assert "- +28.0 severity: high (4/5)" in md
    assert "| contain-host | isolate | edr.isolate\\_host (containment) | succeeded |" in md
    assert "carol approve at " in md and "via cli: go ahead" in md
    assert f"| capture.pcap | application/vnd.tcpdump.pcap | 10 | {SHA} | user:bob, " in md
    assert "| Suspicious PowerShell | high | sigma | r1 | " in md
    assert "## Timeline" in md and "Case opened" in md
    pdf = render_case_report(sqlite_db, h.tenant_id, h.ids["case1"], "pdf")
    assert pdf.startswith(b"%PDF-")
    path = tmp_path / "case.pdf"
    path.write_bytes(pdf)
    assert first_page_ink(path) > 0.01


def test_case_report_escapes_and_handles_an_empty_case(sqlite_db: Database) -> None:
    h = build_history(sqlite_db)
    html = render_case_report(sqlite_db, h.tenant_id, h.ids["case2"], "html").decode()
    assert "Escalated &lt;b&gt;phish&lt;/b&gt;" in html and "<b>phish</b>" not in html
    assert "No workflow acted on this case or its alerts." in html
    assert "No alerts are linked to this case." in html
    md = render_case_report(sqlite_db, h.tenant_id, h.ids["case2"], "md").decode()
    assert "# Case #2: Escalated &lt;b&gt;phish&lt;/b&gt;" in md


def test_case_report_refuses_unknown_case_format_and_tenant(sqlite_db: Database) -> None:
    h = build_history(sqlite_db)
    with pytest.raises(ReportError, match="no case"):
        render_case_report(sqlite_db, h.tenant_id, "0" * 32, "html")
    with pytest.raises(ReportError, match="unknown report format"):
        render_case_report(sqlite_db, h.tenant_id, h.ids["case1"], "docx")
    from bastion.store import TenantRepository

    with sqlite_db.read() as conn:
        other = TenantRepository(conn).by_name("acme-other")
    assert other is not None
    with pytest.raises(ReportError, match="no case"):  # another tenant's case is not there
        render_case_report(sqlite_db, other.id, h.ids["case1"], "md")
