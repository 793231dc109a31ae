"""The intel, rules and suppressions pages in a real browser and over HTTP: feed health from real polls
of a local feed server, a lookup that finds a loaded STIX indicator, a rule turned off that the detector
no longer runs, suppressions added and removed with owner and expiry, and the role checks on every form."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page

from bastion.detect.tenant import DETECTORS, add_pack, tenant_detector
from bastion.detect.tenant import add_suppression as add_detect_suppression
from bastion.intel.polling import add_feed, poll_feeds
from bastion.intel.store import lookup
from bastion.intel.warninglists import shared_warninglists
from bastion.store.detection import DetectionRepository
from bastion.store.tables import audit_log
from bastion.triage.suppress import list_suppressions
from tests.conftest import free_port
from tests.intel.servers import LOCAL, http_server
from tests.web.conftest import PHONE, Console, allow_errors, sign_in

PACK = "process-access"
RULE = "3b4b232a-af90-427c-a22f-30b0c0837b95"  # "CMSTP Execution Process Access" in the pack below
C2 = "10.0.0.0"  # the indicator of the STIX example bundle


@pytest.fixture(scope="module")
def world(console: Console, shared_data: Path) -> Iterator[Console]:
    """The console's tenant with a Sigma pack and three feeds: one polled from a local server (ok), one
    whose server is gone (error) and one never polled."""
    rules = shared_data / "sigma" / "rules" / "windows" / "process_access"
    add_pack(console.db, console.tenant, PACK, str(rules), actor="test")
    bundle = (shared_data / "stix21" / "examples" / "indicator-for-c2-ip-address.json").read_bytes()

    def handler(
        method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        return (
            (200, {"Content-Type": "application/json"}, bundle) if path == "/bundle.json" else (404, {}, b"")
        )

    db, tid = console.db, console.tenant_id
    with http_server(handler) as (base, _rec):
        add_feed(db, tid, "c2-feed", url=f"{base}/bundle.json", fmt="stix", config=LOCAL, actor="test")
        assert poll_feeds(db, tid, name="c2-feed")[0].status == "ok"
    add_feed(
        db,
        tid,
        "gone-feed",
        url=f"http://127.0.0.1:{free_port()}/feed.csv",
        fmt="csv",
        config=LOCAL,
        actor="test",
    )
    assert poll_feeds(db, tid, name="gone-feed")[0].status == "error"
    add_feed(db, tid, "new-feed", url="https://feeds.example.org/x.json", fmt="stix", actor="test")
    # The warning lists load once per process (seconds): load them now, not under a page's timeout.
    shared_warninglists(console.settings.warninglists_path)
    yield console


def _audited(console: Console, action: str, actor: str) -> int:
    from sqlalchemy import func, select

    with console.db.read() as conn:
        return int(
            conn.execute(
                select(func.count()).where(
                    audit_log.c.tenant_id == console.tenant_id,
                    audit_log.c.action == action,
                    audit_log.c.actor == actor,
                )
            ).scalar_one()
        )


# ---------------------------------------------------------------- intel


def test_feed_health_and_a_lookup_that_finds_a_loaded_indicator(world: Console, page: Page) -> None:
    sign_in(page, world, "viewer")
    page.goto(f"{world.url}/intel")
    feeds = page.locator("#feeds")
    ok = feeds.locator('tr:has-text("c2-feed")')
    assert ok.locator(".health").inner_text() == "ok"
    assert ok.locator("td.right").inner_text() == "1"  # indicators loaded by the poll
    broken = feeds.locator('tr:has-text("gone-feed")')
    assert broken.locator(".health").inner_text() == "error"
    assert "ConnectError" in broken.inner_text()  # the poller's recorded error
    assert feeds.locator('tr:has-text("new-feed") .health').inner_text() == "never"

    page.fill("input[name=q]", C2)
    with page.expect_navigation():
        page.click("#lookup-form button[type=submit]")
    expected = lookup(world.db, world.tenant_id, C2)["matches"]
    assert expected, "the polled feed's indicator is in the store"
    rows = page.locator("#lookup-matches tbody tr")
    assert rows.count() == len(expected)
    row = rows.first.inner_text()
    hit = expected[0]
    assert hit["indicator"] in row and str(hit["confidence"]) in row
    assert f"TLP:{hit['tlp'].upper()}" in row
    assert all(s in row for s in hit["sources"])
    assert "1 match" in page.locator("#lookup-summary").inner_text()


def test_lookup_links_to_the_alerts_and_cases_that_carry_a_value(world: Console) -> None:
    c = world.client("analyst")
    r = c.get("/intel", params={"q": "ws-0142"})
    assert r.status_code == 200
    assert 'id="lookup-alerts"' in r.text
    assert f'href="/cases/{world.case_id}"' in r.text  # the demo case holds the host's alerts
    nothing = c.get("/intel", params={"q": "no-such-value.invalid"})
    assert 'id="lookup-alerts-none"' in nothing.text
    bad = c.get("/intel", params={"q": "1.2.3.4", "type": "planet"})
    assert "unknown indicator type" in bad.text


def test_an_engineer_polls_a_feed_now(world: Console, page: Page, shared_data: Path) -> None:
    bundle = (shared_data / "stix21" / "examples" / "indicators-for-C2-with-COA.json").read_bytes()
    sha = "ef537f25c895bfa782526529a9b63d97aa631564d5d789c2b765448c8635fb6c"

    def handler(
        method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        return 200, {"Content-Type": "application/json"}, bundle

    sign_in(page, world, "engineer")
    with http_server(handler) as (base, rec):
        add_feed(
            world.db,
            world.tenant_id,
            "coa-feed",
            url=f"{base}/coa.json",
            fmt="stix",
            config=LOCAL,
            actor="test",
        )
        page.goto(f"{world.url}/intel")
        row = page.locator('#feeds tr:has-text("coa-feed")')
        assert row.locator(".health").inner_text() == "never"
        with page.expect_navigation():
            row.locator('button[data-poll="coa-feed"]').click()
        assert len(rec.requests) == 1  # fetched from the feed's server, now
    assert "feed coa-feed polled: ok" in page.locator("#flash").inner_text()
    assert page.locator('#feeds tr:has-text("coa-feed") .health').inner_text() == "ok"
    assert lookup(world.db, world.tenant_id, sha)["matches"]

    viewer = world.client("viewer")
    assert "data-poll" not in viewer.get("/intel").text
    assert viewer.post_form("/intel/feeds/poll", {"name": "coa-feed"}).status_code == 403


# ---------------------------------------------------------------- rules


def test_disabling_a_rule_shows_and_the_detector_sees_it(world: Console, page: Page) -> None:
    before = DETECTORS.for_tenant(world.db, world.tenant_id)
    assert before is not None and RULE in {r.rule_id for r in before.detector.rules}
    sign_in(page, world, "engineer")
    page.goto(f"{world.url}/rules")
    pack = page.locator(f'section[data-pack="{PACK}"]')
    assert "23 rules" in pack.inner_text()
    row = page.locator(f'tr[data-rule="{RULE}"]')
    assert row.locator(".rule-state").inner_text() == "enabled"
    with page.expect_navigation():
        row.locator("button").click()
    row = page.locator(f'tr[data-rule="{RULE}"]')
    assert row.locator(".rule-state").inner_text() == "disabled"
    assert f"rule {RULE} disabled" in page.locator("#flash").inner_text()

    with world.db.read() as conn:
        assert RULE in DetectionRepository(conn, world.tenant_id).disabled_rules()
    after = DETECTORS.for_tenant(world.db, world.tenant_id)  # what the ingest pipeline runs next batch
    assert after is not None and RULE not in {r.rule_id for r in after.detector.rules}
    assert len(after.detector.rules) == len(before.detector.rules) - 1
    assert RULE not in {r.rule_id for r in tenant_detector(world.db, world.tenant).rules}
    assert _audited(world, "detection.rule.disable", "user:engineer") == 1

    # the search box narrows the list; "only disabled" shows just the one
    page.goto(f"{world.url}/rules?disabled=true")
    assert page.locator(f'section[data-pack="{PACK}"] tbody tr').count() == 1

    # a whole pack off: the tenant has no detection until it is back on
    page.goto(f"{world.url}/rules")
    with page.expect_navigation():
        page.click(f'button[data-pack-toggle="{PACK}"]')  # confirms through the dialog
    assert "off" in page.locator(f'section[data-pack="{PACK}"] h2').inner_text()
    assert DETECTORS.for_tenant(world.db, world.tenant_id) is None
    with page.expect_navigation():
        page.click(f'button[data-pack-toggle="{PACK}"]')
    assert DETECTORS.for_tenant(world.db, world.tenant_id) is not None

    page.goto(f"{world.url}/rules?q=cmstp")
    row = page.locator(f'tr[data-rule="{RULE}"]')
    assert page.locator(f'section[data-pack="{PACK}"] tbody tr').count() == 1
    with page.expect_navigation():
        row.locator("button").click()
    assert "q=cmstp" in page.url  # back to the same search
    assert page.locator(f'tr[data-rule="{RULE}"] .rule-state').inner_text() == "enabled"
    enabled = DETECTORS.for_tenant(world.db, world.tenant_id)
    assert enabled is not None and RULE in {r.rule_id for r in enabled.detector.rules}


def test_only_engineers_switch_rules_even_by_a_forged_post(world: Console) -> None:
    for who in ("viewer", "analyst"):
        c = world.client(who)
        page = c.get("/rules")
        assert page.status_code == 200 and RULE in page.text
        assert 'action="/rules/rule"' not in page.text and "data-pack-toggle" not in page.text
        r = c.post_form("/rules/rule", {"rule_id": RULE, "enabled": "0"})
        assert r.status_code == 403, r.text
        r = c.post_form("/rules/packs", {"name": PACK, "enabled": "0"})
        assert r.status_code == 403
    engineer = world.client("engineer")
    r = engineer.post_form("/rules/rule", {"rule_id": RULE, "enabled": "0"}, csrf=False)
    assert r.status_code == 403  # no CSRF token
    with world.db.read() as conn:
        assert RULE not in DetectionRepository(conn, world.tenant_id).disabled_rules()
        assert all(p.enabled for p in DetectionRepository(conn, world.tenant_id).packs())


# ---------------------------------------------------------------- suppressions


def test_suppressions_with_owner_and_expiry_added_and_removed(world: Console, page: Page) -> None:
    det = add_detect_suppression(
        world.db,
        world.tenant,
        {"Image": "C:\\lab\\tool.exe"},
        rule_id=RULE,
        reason="lab box",
        actor="user:admin",
    )
    sign_in(page, world, "analyst")
    page.goto(f"{world.url}/suppressions")
    drow = page.locator(f'#detect-suppressions tr[data-row="{det.id}"]')
    assert "user:admin" in drow.inner_text() and "never" in drow.inner_text()

    form = page.locator("#add-suppression")
    form.locator("input[name=expires]").fill("3d")
    form.locator("select[name=entity_type]").select_option("host")
    form.locator("input[name=entity_value]").fill("ws-0008")
    form.locator("textarea[name=fields]").fill("severity=low")
    form.locator("textarea[name=reason]").fill("patch window on ws-0008")
    with page.expect_navigation():
        form.locator("button[type=submit]").click()
    assert "suppression added" in page.locator("#flash").inner_text()
    with world.db.read() as conn:
        found = [s for s in list_suppressions(conn, world.tenant_id) if s.entity_value == "ws-0008"]
    assert len(found) == 1 and found[0].owner == "analyst" and found[0].fields == {"severity": "low"}
    row = page.locator(f'#triage-suppressions tr[data-row="{found[0].id}"]')
    text = row.inner_text()
    assert "analyst" in text and "ws-0008" in text and "patch window" in text
    assert re.search(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}", text)  # the expiry

    # a suppression without a condition is refused with the reason, and what was typed stays
    form = page.locator("#add-suppression")
    form.locator("textarea[name=reason]").fill("mute it all")
    form.locator("input[name=entity_value]").fill("")
    form.locator("textarea[name=fields]").fill("")
    with page.expect_response(lambda r: r.request.method == "POST") as resp:
        form.locator("button[type=submit]").click()
    assert resp.value.status == 400
    allow_errors(page, "400")  # the refused form comes back as a 400 page, as the API answers
    assert "at least one condition" in page.locator("#form-error").inner_text()
    assert page.locator("#add-suppression textarea[name=reason]").input_value() == "mute it all"

    with page.expect_navigation():
        page.locator(f'#triage-suppressions tr[data-row="{found[0].id}"] button').click()
    with page.expect_navigation():
        page.locator(f'#detect-suppressions tr[data-row="{det.id}"] button').click()
    assert page.locator(f'tr[data-row="{found[0].id}"]').count() == 0
    assert page.locator(f'tr[data-row="{det.id}"]').count() == 0
    assert _audited(world, "triage.suppression.remove", "user:analyst") == 1
    assert _audited(world, "detection.suppression.remove", "user:analyst") == 1


def test_viewers_cannot_change_suppressions(world: Console) -> None:
    det = add_detect_suppression(world.db, world.tenant, {"User": "svc_scan"}, actor="test")
    c = world.client("viewer")
    page = c.get("/suppressions")
    assert page.status_code == 200 and det.id in page.text
    assert 'id="add-suppression"' not in page.text and "/remove" not in page.text
    assert c.post_form("/suppressions", {"expires": "1d", "source": "edr"}).status_code == 403
    assert c.post_form(f"/suppressions/detection/{det.id}/remove", {}).status_code == 403
    with world.db.read() as conn:
        assert det.id in {s.id for s in DetectionRepository(conn, world.tenant_id).suppressions()}
        assert not [s for s in list_suppressions(conn, world.tenant_id) if s.source == "edr"]


# ---------------------------------------------------------------- both sizes


def test_pages_fit_a_phone(world: Console, new_page: Callable[..., Page]) -> None:
    page = new_page(PHONE)
    sign_in(page, world, "engineer")
    for path in (f"/intel?q={C2}", "/rules", "/suppressions"):
        page.goto(world.url + path)
        page.wait_for_load_state("networkidle")  # the favicon too: leaving earlier aborts it
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1, f"{path} is {overflow}px wider than the screen"
