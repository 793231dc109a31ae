"""The console on the attack-sample replay: the SigmaHQ process-creation rules run over the 8,255
attack-sample events through the real `bastion ingest`, and the analyst opens a case that triage built
from them and reads its timeline. Then every page of the navigation, at 1280x800 and 390x844, renders
without a console error, a failed request or a page wider than the screen."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import Page, expect

from bastion.store import TenantScope
from tests.conftest import run_cli
from tests.web.conftest import DESKTOP, PHONE, Console, shot, sign_in

RULES = "sigma/rules/windows/process_creation"
SAMPLES = "evtx-attack-samples/events.jsonl.gz"


def _replay(console: Console, shared_data: Path) -> str:
    """Ingest the attack samples with the process-creation rules; the id of the case with most alerts."""
    pack = run_cli("rules", "pack", "add", "proc", str(shared_data / RULES), "--tenant", console.tenant,
                   db_url=console.db.url)  # fmt: skip
    assert pack.returncode == 0, pack.stderr
    url = console.db.url
    ingested = run_cli("ingest", str(shared_data / SAMPLES), "--tenant", console.tenant, db_url=url)
    assert ingested.returncode == 0, ingested.stderr
    with console.db.read() as conn:
        scope = TenantScope(conn, console.tenant_id)
        alerts, _ = scope.alerts.list(limit=5000)
        sigma = {a.id for a in alerts if a.source == "sigma"}
        assert len(sigma) >= 20, "the replay raised too few alerts"
        by_case: dict[str, int] = {}
        for case in scope.cases.list(limit=500):
            count = len(sigma & set(scope.cases.alert_ids(case["id"])))
            if count:
                by_case[case["id"]] = count
    assert by_case, "triage opened no case from the replayed alerts"
    return max(by_case, key=lambda cid: by_case[cid])


def test_a_case_from_the_attack_sample_replay(console: Console, page: Page, shared_data: Path) -> None:
    case_id = _replay(console, shared_data)
    with console.db.read() as conn:
        scope = TenantScope(conn, console.tenant_id)
        case = scope.cases.get(case_id)
        found = [scope.alerts.get(aid) for aid in scope.cases.alert_ids(case_id)]
        titles = {a.title for a in found if a is not None}
    assert case is not None
    sign_in(page, console, "analyst", next="/queue")
    page.goto(f"{console.url}/queue?source=sigma&status=all&since=all")
    expect(page.locator("#queue-table tbody tr[data-row]").first).to_be_visible()
    page.goto(f"{console.url}/cases/{case_id}")
    expect(page.locator("h1")).to_contain_text(case.title)
    timeline = page.locator("#case-timeline")
    expect(timeline).to_be_visible()
    assert any(title in timeline.inner_text() for title in titles), "no alert of the case in its timeline"
    shot(page, "case-attack-replay")


PAGES = ["/dashboard", "/queue", "/cases", "/approvals", "/workflows", "/runs", "/intel", "/rules",
         "/suppressions", "/agents", "/admin", "/admin/settings"]  # fmt: skip


def test_every_page_renders_cleanly_on_desktop_and_phone(
    console: Console, new_page: Callable[..., Page]
) -> None:
    for size in (DESKTOP, PHONE):
        page = new_page(size)
        sign_in(page, console, "admin", next="/queue")
        for path in [*PAGES, f"/cases/{console.case_id}"]:
            response = page.goto(f"{console.url}{path}")
            assert response is not None and response.status == 200, (path, size)
            expect(page.locator("main h1, h1").first).to_be_visible()
            overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 1, f"{path} at {size} is {overflow}px wider than the screen"
