"""The dashboard in a real browser and over HTTP: the triage metrics of a period from the demo data set,
the report's SVG charts, the period and filter picker, live figures, at desktop and phone sizes."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from playwright.sync_api import Page, expect

from bastion.report.metrics import compute_metrics
from bastion.report.period import resolve_window
from bastion.web.pages.dashboard import LIVE_EVERY_S, human_duration
from tests.web.conftest import DESKTOP, PHONE, Console, shot, sign_in, store_alerts


def _metrics(console: Console, period: str = "7d") -> dict:
    lo, hi = resolve_window(period)
    with console.db.read() as conn:
        return compute_metrics(conn, console.tenant_id, start=lo, end=hi)


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_dashboard_renders_the_period_metrics(
    console: Console, new_page: Callable[..., Page], viewport: tuple[int, int]
) -> None:
    expected = _metrics(console)
    assert expected["alerts"] > 0 and expected["top_entities"], "the demo data set should give figures"
    page = new_page(viewport)
    sign_in(page, console, "viewer")
    page.goto(f"{console.url}/dashboard?period=7d")
    kpi = page.locator('.kpi[data-kpi="Alerts"] .value')
    assert kpi.inner_text() == f"{expected['alerts']:,}"
    auto = page.locator('.kpi[data-kpi="Auto-closed"] .value')
    assert auto.inner_text() == f"{expected['auto_closed']:,}"
    mttd = page.locator('.kpi[data-kpi="MTTD"] .value')
    assert mttd.inner_text() == human_duration(expected["mttd_s"])
    assert page.locator('.kpi[data-kpi="Analyst hours saved"] .value').inner_text() == (
        f"{expected['analyst_hours_saved']:g}"
    )
    assert page.locator('.kpi[data-kpi="Incidents prevented"]').is_visible()
    # the report's charts, inline SVG, scaled to the page
    for chart in ("timings", "volume", "closed", "tactics"):
        svg = page.locator(f"#chart-{chart} svg")
        assert svg.count() == 1
        box = svg.bounding_box()
        assert box is not None and 0 < box["width"] <= viewport[0]
    top = expected["top_entities"][0]
    assert top["value"] in page.locator("#top-entities").inner_text()
    for tactic in expected["coverage"]["by_tactic"]:
        assert tactic.replace("_", " ") in page.locator("#coverage").inner_text()
    # nothing wider than the screen but the scrolling tables
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 1, f"the page is {overflow}px wider than the {viewport[0]}px viewport"
    shot(page, "dashboard")


def test_period_picker_changes_the_period(console: Console, page: Page) -> None:
    sign_in(page, console, "analyst")
    page.goto(f"{console.url}/dashboard?period=7d")
    with page.expect_navigation():
        page.select_option("select[name=period]", "24h")  # submits itself
    assert "period=24h" in page.url
    line = page.locator("#period-line").inner_text()
    assert "(1.0 days)" in line
    # a window with no data: the figures say so instead of failing
    page.goto(f"{console.url}/dashboard?start=2020-01-01&end=2020-02-01")
    assert page.locator('.kpi[data-kpi="Alerts"] .value').inner_text() == "0"
    assert page.locator('.kpi[data-kpi="MTTD"] .value').inner_text() == "\u2014"
    assert "No alerts in this period" in page.locator("#chart-volume").inner_text()


def test_the_figures_follow_new_alerts_live(console: Console, page: Page) -> None:
    """New alerts reach an open dashboard without a reload (through the stream, recomputed at most
    every LIVE_EVERY_S seconds); the period picker is left as it was."""
    sign_in(page, console, "viewer")
    page.goto(f"{console.url}/dashboard?period=24h")
    expect(page.locator("body")).to_have_attribute("data-stream", "on")
    kpi = page.locator('.kpi[data-kpi="Alerts"] .value')
    before = int(kpi.inner_text().replace(",", ""))
    store_alerts(console, 3, "dashboard", source="dashtest")
    expect(kpi).to_have_text(f"{before + 3:,}", timeout=LIVE_EVERY_S * 1000 + 20_000)
    assert page.locator("select[name=period]").input_value() == "24h"


def test_filters_and_bad_periods_over_http(console: Console) -> None:
    c = console.client("viewer")
    high = _metrics(console)
    r = c.get("/dashboard", params={"period": "7d", "severity": "high"})
    assert r.status_code == 200
    assert "severity high" in r.text
    lo, hi = resolve_window("7d")
    from bastion.model import Severity

    with console.db.read() as conn:
        only_high = compute_metrics(conn, console.tenant_id, start=lo, end=hi, severity=Severity.HIGH)
    assert only_high["alerts"] < high["alerts"]
    shown = re.search(r'data-kpi="Alerts".*?class="value">([^<]+)<', r.text, re.S)
    assert shown and shown.group(1) == f"{only_high['alerts']:,}"
    bad = c.get("/dashboard", params={"period": "forever"})
    assert bad.status_code == 200
    assert "is not a duration" in bad.text  # shown above the default period's figures
    assert c.get("/dashboard", params={"severity": "loud"}).text.count("flash-error") == 1
    # signed out: sent to sign in, never shown
    anon = console.client()
    r = anon.get("/dashboard")
    assert r.status_code == 303 and r.headers["location"].startswith("/login")


def test_human_duration() -> None:
    assert human_duration(None) == "\u2014"
    assert human_duration(42.4) == "42s"
    assert human_duration(3933.9) == "1h 05m"
    assert human_duration(90061) == "1d 01h"
