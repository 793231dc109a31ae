"""The console's foundation over real HTTP and in a real browser: sign-in and the session cookie,
sign-out, CSRF on every state change, roles, throttled sign-in, security headers, and the live event
stream seeing a change made by another process (the real ``bastion`` CLI)."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable

from playwright.sync_api import Page, expect
from sqlalchemy import select

from bastion.store import TenantScope
from bastion.store.web import web_login_failures, web_sessions
from tests.conftest import run_cli
from tests.web.conftest import PHONE, Console, shot, sign_in


def test_pages_need_a_session(console: Console) -> None:
    anon = console.client()
    r = anon.get("/queue?status=all")
    assert r.status_code == 303 and r.headers["location"] == "/login?next=%2Fqueue%3Fstatus%3Dall"
    assert anon.get(f"/cases/{console.case_id}").status_code == 303
    assert anon.get("/ui/stream?topics=alerts").status_code == 401
    assert anon.post("/queue/bulk", data={"op": "acknowledge"}).status_code == 401
    # a mistyped console link gets a page; the API keeps its JSON errors
    missing = anon.get("/no-such-page")
    assert missing.status_code == 404 and "There is no such page." in missing.text
    assert anon.get("/api/v1/no-such-thing").json() == {"error": "Not Found"}
    # a made-up session cookie is no session
    anon.cookies.set("bastion_session", "forged-value")
    assert anon.get("/queue").status_code == 303


def test_sign_in_cookie_session_hash_and_sign_out(console: Console) -> None:
    c = console.client()
    form = c.get("/login")
    assert form.headers["x-frame-options"] == "DENY"
    assert "script-src 'self'" in form.headers["content-security-policy"]
    token = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert token
    r = c.post(
        "/login",
        data={
            "tenant": "demo",
            "user": "analyst",
            "password": console.passwords["analyst"],
            "csrf": token[1],
            "next": "/cases",
        },
    )
    assert r.status_code == 303 and r.headers["location"] == "/cases"
    cookie = next(h for h in r.headers.get_list("set-cookie") if h.startswith("bastion_session="))
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie  # served over plain http in the test; https sets it
    value = cookie.split(";")[0].split("=", 1)[1]
    with console.db.read() as conn:
        hashes = {row.id_hash for row in conn.execute(select(web_sessions.c.id_hash))}
        audit = [e.action for e in TenantScope(conn, console.tenant_id).audit.entries()]
    assert hashlib.sha256(value.encode()).hexdigest() in hashes
    assert value not in hashes  # only the hash is stored
    assert "web.signin" in audit
    page = c.get("/cases")
    assert page.status_code == 200 and ">analyst<" in page.text
    csrf = re.search(r'<meta name="csrf-token" content="([^"]+)"', page.text)
    assert csrf
    out = c.post("/logout", data={"csrf": csrf[1]})
    assert out.status_code == 303 and out.headers["location"] == "/login"
    c.cookies.set("bastion_session", value)  # the old cookie no longer works anywhere
    assert c.get("/cases").status_code == 303
    with console.db.read() as conn:
        assert "web.signout" in [e.action for e in TenantScope(conn, console.tenant_id).audit.entries()]


def test_state_changes_without_the_csrf_token_are_refused(console: Console) -> None:
    analyst = console.client("analyst")
    url = f"/cases/{console.case_id}/comments"
    assert analyst.post_form(url, {"body": "no token"}, csrf=False).status_code == 403
    assert analyst.post(url, data={"body": "wrong token", "csrf": "x" * 40}).status_code == 403
    assert analyst.post("/logout").status_code == 403
    page = analyst.get(f"/cases/{console.case_id}").text
    assert "no token" not in page and "wrong token" not in page
    # the header form (console.js's fetch) and the form field both pass
    ok = analyst.post(url, data={"body": "header token"}, headers={"X-CSRF-Token": analyst.csrf})
    assert ok.status_code == 303
    assert analyst.post_form(url, {"body": "field token"}).status_code == 303
    page = analyst.get(f"/cases/{console.case_id}").text
    assert "header token" in page and "field token" in page
    # the sign-in form has its own token (there is no session yet)
    anon = console.client()
    r = anon.post(
        "/login", data={"tenant": "demo", "user": "analyst", "password": console.passwords["analyst"]}
    )
    assert r.status_code == 403


def test_roles_are_enforced_on_pages_and_posts(console: Console) -> None:
    viewer = console.client("viewer")
    queue = viewer.get("/queue?status=all&since=all")
    assert queue.status_code == 200
    assert 'id="bulk-actions"' not in queue.text and 'name="ids"' not in queue.text
    case = viewer.get(f"/cases/{console.case_id}")
    assert case.status_code == 200 and 'id="case-actions"' not in case.text
    ids = re.findall(r'data-row="([0-9a-f]{32})"', queue.text)
    assert ids
    refused = viewer.post_form("/queue/bulk", {"ids": ids[:1], "op": "acknowledge"})
    assert refused.status_code == 403 and "needs analyst" in refused.text
    assert viewer.post_form(f"/cases/{console.case_id}/assign", {"assignee": "viewer"}).status_code == 403
    with console.db.read() as conn:
        alert = TenantScope(conn, console.tenant_id).alerts.get(ids[0])
    assert alert is not None and alert.acknowledged is None  # nothing changed


def test_sign_in_is_throttled_after_repeated_failures(console: Console) -> None:
    c = console.client()
    token = re.search(r'name="csrf" value="([^"]+)"', c.get("/login").text)
    assert token
    attempt = {"tenant": "demo", "user": "engineer", "csrf": token[1]}
    for i in range(5):
        r = c.post("/login", data={**attempt, "password": f"guess-{i}"})
        assert r.status_code == 401 and "wrong tenant, user or password" in r.text
        token = re.search(r'name="csrf" value="([^"]+)"', r.text)  # each form has a fresh token
        assert token
        attempt["csrf"] = token[1]
    # locked now: even the right password is refused until the lock passes
    r = c.post("/login", data={**attempt, "password": console.passwords["engineer"]})
    assert r.status_code == 429 and "too many failed sign-ins" in r.text
    assert 0 < int(r.headers["retry-after"]) <= 60
    with console.db.read() as conn:
        row = conn.execute(
            select(web_login_failures).where(web_login_failures.c.key == "user:demo/engineer")
        ).one()
        failed = [
            e for e in TenantScope(conn, console.tenant_id).audit.entries() if e.action == "web.signin_failed"
        ]
    assert row.failures == 5 and row.locked_until is not None
    assert len(failed) >= 5
    # an unknown user is refused the same way (and counted), without saying the user does not exist
    token = re.search(r'name="csrf" value="([^"]+)"', r.text)
    assert token
    r = c.post("/login", data={"tenant": "demo", "user": "nobody", "password": "x", "csrf": token[1]})
    assert r.status_code == 401 and "wrong tenant, user or password" in r.text
    # another account from the same address is not locked by it
    assert console.client("analyst").csrf


def test_event_stream_sees_a_change_made_by_another_process(console: Console) -> None:
    analyst = console.client("analyst")
    assert analyst.get("/ui/stream?topics=nope").status_code == 403
    ids = re.findall(r'name="ids" value="([0-9a-f]{32})"', analyst.get("/queue?status=new&since=all").text)
    assert ids
    target = ids[-1]
    events: list[tuple[str, dict[str, object]]] = []
    with analyst.stream("GET", "/ui/stream?topics=alerts,approvals", timeout=30) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        lines = stream.iter_lines()
        name = ""
        acked = False
        for line in lines:
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                events.append((name, json.loads(line[6:])))
                if name == "ready" and not acked:
                    acked = True
                    run_cli("alerts", "ack", target, "--tenant", "demo", db_url=console.db.url, check=True)
                if name == "alerts":
                    break
    kinds = [n for n, _ in events]
    assert kinds[0] == "ready" and kinds[-1] == "alerts"
    changes = events[-1][1]["changes"]
    assert isinstance(changes, list)
    assert {"action": "alert.acknowledge", "target_type": "alert", "target_id": target} in changes


def test_sign_in_and_out_in_the_browser_at_both_sizes(
    console: Console, new_page: Callable[..., Page]
) -> None:
    page = new_page()
    page.goto(f"{console.url}/queue")
    expect(page).to_have_url(re.compile(r"/login\?next=%2Fqueue$"))
    expect(page.locator("input[name=tenant]")).to_have_value("demo")  # the only tenant is filled in
    shot(page, "sign-in")
    sign_in(page, console, "analyst", next="/queue")
    expect(page).to_have_url(re.compile(r"/queue$"))
    expect(page.locator(".who .user")).to_have_text("analyst")
    expect(page.locator(".who .role")).to_have_text("analyst")
    page.click("text=Sign out")
    expect(page).to_have_url(re.compile(r"/login$"))
    expect(page.locator(".flash-ok")).to_have_text("Signed out.")
    phone = new_page(PHONE)
    sign_in(phone, console, "viewer", next="/queue")
    expect(phone.locator(".nav")).to_be_hidden()  # folded behind the menu button on a phone
    phone.click(".nav-burger")
    expect(phone.locator(".nav a", has_text="Queue")).to_be_visible()
    width = phone.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page is {width}px wide on a 390px screen"


def test_demo_user_gets_a_fresh_password_each_start(console: Console) -> None:
    from bastion.web.session import SignInRefused, demo_user
    from bastion.web.session import sign_in as password_sign_in

    user, first = demo_user(console.db, "demo")
    assert user == "demo" and len(first) >= 16
    password_sign_in(console.db, "demo", "demo", first, "127.0.0.9")
    again, second = demo_user(console.db, "demo")  # a second start replaces the password
    assert again == "demo" and second != first
    try:
        password_sign_in(console.db, "demo", "demo", first, "127.0.0.9")
    except SignInRefused:
        pass
    else:
        raise AssertionError("the previous demo password still signs in")
    password_sign_in(console.db, "demo", "demo", second, "127.0.0.9")


def test_redirects_never_leave_the_console() -> None:
    """Sign-in's ``next`` and every flash redirect go only to paths of this site."""
    from bastion.web.render import local_path

    for bad in ("https://evil.example/", "//evil.example", "/\\evil.example", "/\t/evil.example", "", None):
        assert local_path(bad) == "/", bad
    assert local_path("/cases/12?tab=timeline") == "/cases/12?tab=timeline"
