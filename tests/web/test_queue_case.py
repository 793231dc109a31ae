"""The alert queue and the case page in a real browser, on the demo data set (the attack-sample replay
that ``bastion up --demo`` loads): scores with their reasons, filters, a new alert arriving live, a bulk
close, and the demo case's timeline with a comment added from the page. Screenshots of both pages at
1280x800 and 390x844 go to test-artifacts/."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

from playwright.sync_api import Page, expect

from bastion.enrich.inventory import parse_assets, store_assets
from bastion.intel.feeds.base import make_indicator
from bastion.intel.store import load_indicators
from bastion.model import Alert, AlertStatus, Observable, ObservableType, Severity
from bastion.model.intel import IndicatorType
from bastion.pipeline import ingest_alerts
from bastion.respond import service
from bastion.store import TenantScope
from tests.web.conftest import PHONE, Console, off_loop, shot, sign_in, store_alerts


def test_queue_shows_scores_reasons_and_filters(console: Console, page: Page) -> None:
    sign_in(page, console, "analyst", next="/queue?status=all&since=all")
    rows = page.locator("#queue-table tbody tr[data-row]")
    expect(rows.first).to_be_visible()
    total = rows.count()
    assert total >= 5
    # each row: the score, and the biggest reasons behind it
    first = rows.first
    assert re.fullmatch(r"\d+", first.locator(".score").inner_text())
    expect(page.locator("#queue-table .reasons li").first).to_contain_text(re.compile(r"^[+-]\d+ \w+"))
    expect(page.locator("body")).to_have_attribute("data-stream", "on")  # the live stream is connected
    shot(page, "queue")
    # a severity filter narrows the list, and is kept in the URL
    page.select_option("select[name=severity]", "critical")
    with page.expect_navigation():
        page.click("#queue-filters button[type=submit]")
    assert "severity=critical" in page.url
    sevs = page.locator("#queue-table tbody .sev").all_inner_texts()
    assert sevs and set(sevs) <= {"critical"} and len(sevs) < total
    # an entity filter finds the alerts carrying that value
    page.goto(f"{console.url}/queue?status=all&since=all&entity=nobody-has-this-value")
    expect(page.locator("#queue-table tbody")).to_contain_text("No alerts match these filters.")


def test_new_alerts_appear_live_and_bulk_close_works(console: Console, page: Page) -> None:
    sign_in(page, console, "analyst", next="/queue")
    expect(page.locator("body")).to_have_attribute("data-stream", "on")
    title = f"Live test alert {time.time_ns()}"
    alert = Alert(
        title=title,
        severity=Severity.HIGH,
        time=int(time.time() * 1000),
        source="webtest",
        external_id=title,
        observables=[Observable(ObservableType.HOST, "web-live-01")],
    )
    result = off_loop(ingest_alerts, console.db, console.tenant_id, "test", [alert])
    alert_id = result.ids[0]
    row = page.locator(f'tr[data-row="{alert_id}"]')
    expect(row).to_be_visible(timeout=20_000)  # no reload: the stream told the page
    expect(row).to_contain_text(title)
    row.locator("input[name=ids]").check()
    page.select_option("select[name=verdict]", "benign_true_positive")
    page.fill("#bulk-actions input[name=reason]", "test traffic")
    with page.expect_navigation():
        page.click("#bulk-actions button[value=close]")
    expect(page.locator(".flash-ok")).to_have_text("Closed 1 alert(s).")
    expect(page.locator(f'tr[data-row="{alert_id}"]')).to_have_count(0)  # the open queue hides it
    with console.db.read() as conn:
        stored = TenantScope(conn, console.tenant_id).alerts.get(alert_id)
    assert stored is not None and stored.status == AlertStatus.CLOSED
    assert stored.verdict is not None and stored.verdict.value == "benign_true_positive"
    assert stored.close_reason == "test traffic"
    # the alert's own page (the queue's title link) shows it closed, with the score explanation
    page.goto(f"{console.url}/queue?status=closed&since=1h")
    with page.expect_navigation():
        page.locator(f'tr[data-row="{alert_id}"] .alert-title a').click()
    expect(page.locator("#alert-status")).to_have_text("closed")
    expect(page.locator("#alert-score")).to_contain_text("severity")
    expect(page.locator("#alert-actions")).to_contain_text("Reopen")


def test_case_from_the_replay_shows_its_timeline(console: Console, new_page: Callable[..., Page]) -> None:
    # an indicator for the C2 address and the inventory's record of the host, added after the replay
    load_indicators(
        console.db,
        console.tenant_id,
        [make_indicator(IndicatorType.IPV4, "203.0.113.77", "c2-feed", confidence=90)],
        actor="test",
    )
    assets, _ = parse_assets(b"hostname,ips,criticality,owner\nWS-0142,10.20.14.142,high,j.morales\n")
    store_assets(console.db, console.tenant_id, assets, actor="test")
    page = new_page()
    sign_in(page, console, "analyst", next="/queue?status=all&since=all")
    with page.expect_navigation():
        page.locator(f'#queue-table a[href="/cases/{console.case_id}"]').first.click()
    expect(page.locator("h1")).to_contain_text("Intrusion on WS-0142")
    timeline = page.locator("#case-timeline")
    expect(timeline).to_contain_text("Alert added: LSASS memory dumped")
    expect(timeline).to_contain_text("Case opened")
    expect(page.locator("#case-score")).to_contain_text("severity")
    c2 = page.locator("#case-observables li", has_text="203.0.113.77")
    expect(c2).to_contain_text("intel: c2-feed (90%")
    expect(page.locator("#case-assets")).to_contain_text("host WS-0142 · high criticality · owner j.morales")
    expect(page.locator("#case-alerts tbody tr")).to_have_count(7)
    # a comment from the page lands in the comments and on the timeline
    page.fill("#case-comments textarea[name=body]", "Checked WS-0142: <script>x</script> isolated.")
    with page.expect_navigation():
        page.click("#case-comments button[type=submit]")
    expect(page.locator(".flash-ok")).to_have_text("Comment added.")
    expect(page.locator("#case-comments")).to_contain_text("<script>x</script> isolated.")  # shown as text
    expect(timeline).to_contain_text("Checked WS-0142")
    # assigning from the page
    page.select_option("#case-actions select[name=assignee]", "analyst")
    with page.expect_navigation():
        page.click("#case-actions button:has-text('Assign')")
    expect(page.locator("#case-assignee")).to_have_text("analyst")
    shot(page, "case")
    phone = new_page(PHONE)
    sign_in(phone, console, "viewer", next=f"/cases/{console.case_id}")
    expect(phone.locator("#case-timeline")).to_contain_text("Alert added")
    expect(phone.locator("#case-actions")).to_have_count(0)  # a viewer gets no actions
    shot(phone, "case")
    width = phone.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the case page is {width}px wide on a 390px screen"
    phone.goto(f"{console.url}/queue?status=all&since=all")
    expect(phone.locator("#queue-table tbody tr[data-row]").first).to_be_visible()
    shot(phone, "queue")
    width = phone.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the queue is {width}px wide on a 390px screen"


NOTE_WORKFLOW = """
id: web-note
title: Note on a case (console test)
inputs:
  case_id: {type: string}
steps:
  - id: note
    action: core.log
    with: {message: "looked at ${{ inputs.case_id }}"}
"""


def _flash(r: Any) -> str:
    cookie = next((h for h in r.headers.get_list("set-cookie") if h.startswith("bastion_flash=")), "")
    return unquote(cookie.split(";")[0].split("=", 1)[-1])


def test_case_actions_through_the_forms(console: Console) -> None:
    analyst = console.client("analyst")
    ids = store_alerts(console, 3, "forms")
    # bulk assign: alerts without a case are opened into one, assigned to the person
    r = analyst.post_form("/queue/bulk", {"ids": ids, "op": "assign", "assignee": "analyst"})
    assert r.status_code == 303 and _flash(r) == "ok:Assigned 1 case(s)."
    with console.db.read() as conn:
        scope = TenantScope(conn, console.tenant_id)
        case_ids = {scope.alerts.get(i).case_id for i in ids}  # type: ignore[union-attr]
    assert len(case_ids) == 1 and None not in case_ids
    case_id = str(case_ids.pop())
    base = f"/cases/{case_id}"

    def case() -> Any:
        with console.db.read() as conn:
            return TenantScope(conn, console.tenant_id).cases.get(case_id)

    assert case().assignee == "analyst"
    assert (
        _flash(analyst.post_form(f"{base}/status", {"status": "in_progress"}))
        == "ok:Status is now in_progress."
    )
    assert _flash(analyst.post_form(f"{base}/status", {"status": "bogus"})).startswith("error:")
    analyst.post_form(f"{base}/tasks", {"title": "Pull the disk image"})
    task = case().tasks[0]
    analyst.post_form(f"{base}/tasks/{task.id}", {"status": "done"})
    assert case().tasks[0].status.value == "done"
    up = analyst.post(
        f"{base}/attachments", data={"csrf": analyst.csrf}, files={"file": ("n.txt", b"notes 1")}
    )
    assert _flash(up) == "ok:Attached n.txt (7 bytes)."
    att = case().attachments[0]
    got = analyst.get(f"{base}/attachments/{att.id}")
    assert got.content == b"notes 1" and got.headers["content-type"] == "application/octet-stream"
    # split one alert off, then merge that case back
    r = analyst.post_form(f"{base}/split", {"alert_ids": ids[:1], "title": "the odd one"})
    m = re.search(r"into case #(\d+)", _flash(r))
    assert m, _flash(r)
    assert len(case().alert_ids) == 2
    r = analyst.post_form(f"{base}/merge", {"others": f"#{m[1]}"})
    assert _flash(r) == "ok:Merged 1 case(s) into this one."
    assert sorted(case().alert_ids) == sorted(ids)
    # run a workflow on the case: the run carries the case, and finishes
    service.add_workflow(console.db, console.tenant_id, NOTE_WORKFLOW, actor="user:engineer")
    page = analyst.get(base).text
    assert 'value="web-note">web-note (takes the case)' in page
    r = analyst.post_form(f"{base}/run", {"workflow_id": "web-note"})
    m = re.search(r"run ([0-9a-f]{32})", _flash(r))
    assert r.status_code == 303 and m, _flash(r)
    deadline = time.monotonic() + 60
    while service.run_detail(console.db, console.tenant_id, m[1])["status"] != "succeeded":
        assert time.monotonic() < deadline, service.run_detail(console.db, console.tenant_id, m[1])
        time.sleep(0.1)
    assert "web-note step note (core.log): succeeded" in analyst.get(base).text
    assert _flash(analyst.post_form(f"{base}/run", {"workflow_id": "nope"})).startswith("error:no workflow")
    # close with a verdict (its alerts close too), then reopen with a reason
    r = analyst.post_form(f"{base}/close", {"verdict": "true_positive", "reason": "contained"})
    assert _flash(r) == "ok:Case closed (true_positive)."
    assert case().status.value == "closed"
    assert _flash(analyst.post_form(f"{base}/reopen", {"reason": ""})).startswith("error:")
    analyst.post_form(f"{base}/reopen", {"reason": "more activity"})
    assert case().status.value == "in_progress"
    with console.db.read() as conn:
        actions = {
            e.action
            for e in TenantScope(conn, console.tenant_id).audit.entries()
            if e.actor == "user:analyst"
        }
    assert {
        "case.assign",
        "case.status",
        "case.task",
        "case.attachment",
        "case.split",
        "case.merge",
    } <= actions


def test_alert_page_acknowledge_close_suppress_and_reopen(console: Console) -> None:
    analyst = console.client("analyst")
    (alert_id,) = store_alerts(console, 1, "single")
    page = analyst.get(f"/alerts/{alert_id}")
    assert page.status_code == 200 and "single alert 0" in page.text and 'id="alert-actions"' in page.text
    assert 'id="alert-actions"' not in console.client("viewer").get(f"/alerts/{alert_id}").text
    assert _flash(analyst.post_form(f"/alerts/{alert_id}/ack", {})) == "ok:Alert acknowledged."
    r = analyst.post_form(f"/alerts/{alert_id}/close", {"verdict": "true_positive", "suppress": "1"})
    assert _flash(r) == "error:suppress similar is only for alerts closed as false_positive"
    r = analyst.post_form(f"/alerts/{alert_id}/close", {"verdict": "false_positive", "suppress": "1"})
    assert _flash(r) == "ok:Alert closed. Similar alerts are suppressed for 30 days."
    with console.db.read() as conn:
        stored = TenantScope(conn, console.tenant_id).alerts.get(alert_id)
    assert stored is not None and stored.status == AlertStatus.CLOSED and stored.acknowledged is not None
    assert (
        _flash(analyst.post_form(f"/alerts/{alert_id}/reopen", {"reason": "not benign"}))
        == "ok:Alert reopened."
    )
    assert console.client("viewer").post_form(f"/alerts/{alert_id}/ack", {}).status_code == 403
    assert analyst.get("/alerts/nope").status_code == 404


def test_queue_pages_through_every_alert_newest_first(console: Console) -> None:
    """Paging with the "older" link visits every matching alert once, newest first, also when many
    alerts share one time (the cursor breaks ties by id), and keeps the filters; a forged cursor is
    the first page, not an error."""
    stored = store_alerts(console, 31, "paging", source="paging", severity=Severity.LOW, per_time=3)
    viewer = console.client("viewer")
    url = "/queue?status=all&since=all&source=paging&size=25"
    seen: list[str] = []
    pages = 0
    while url:
        page = viewer.get(url)
        assert page.status_code == 200
        seen += re.findall(r'data-row="([0-9a-f]+)"', page.text)
        pages += 1
        older = re.search(r'href="(/queue\?[^"]+)" id="queue-older"', page.text)
        url = older[1].replace("&amp;", "&") if older else ""
        if older:
            assert "source=paging" in url and "size=25" in url
    assert pages == 2 and len(seen) == 31 and sorted(seen) == sorted(stored)
    with console.db.read() as conn:
        scope = TenantScope(conn, console.tenant_id)
        keys = [(a.time, a.id) for a in (scope.alerts.get(i) for i in seen) if a is not None]
    assert keys == sorted(keys, reverse=True)
    forged = viewer.get("/queue?status=all&since=all&source=paging&size=25&before=x:'or'1'='1")
    assert forged.status_code == 200 and len(re.findall(r'data-row="', forged.text)) == 25
    too_big = viewer.get("/queue?size=100000")
    assert too_big.status_code == 400 and "size" in too_big.text
