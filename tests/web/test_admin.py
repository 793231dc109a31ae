"""Administration in a real browser and over HTTP: API keys shown once, working against the API and
refused once revoked; users added, re-roled and disabled; secrets that never come back to a browser;
the approval policy, SLA targets and score weights; and admin-only access to all of it."""

from __future__ import annotations

import re
from collections.abc import Callable

import httpx
import orjson
import pytest
from playwright.sync_api import Page
from sqlalchemy import select

from bastion.connectors.policy import get_policy
from bastion.model import Role
from bastion.store import Database, TenantRepository, TenantScope
from bastion.store.tables import audit_log
from bastion.tenancy.connections import list_connections, set_connection
from bastion.tenancy.secrets import SecretsVault, load_key
from bastion.tenancy.service import (
    NotFoundError,
    add_user,
    authenticate,
    create_api_key,
    create_tenant,
    list_users,
    set_user_disabled,
    set_user_role,
)
from bastion.triage.policy import load_policy
from tests.web.conftest import PHONE, Console, allow_errors, shot, sign_in

WAIVER = "${{ inputs.host is match('lab-') }}"
SECRET = "sk-live-Zq9!never-shown-again"
HEADER_SECRET = "Bearer hdr-Zq9-never-shown"
ADMIN_POSTS = [
    ("/admin/users", {"name": "mallory", "role": "admin", "password": "mallory-Pass-1234"}),
    ("/admin/users/viewer/role", {"role": "admin"}),
    ("/admin/users/analyst/disable", {"disabled": "1"}),
    ("/admin/keys", {"name": "stolen", "role": "admin"}),
    ("/admin/secrets", {"name": "stolen", "value": "x"}),
    ("/admin/connections", {"name": "evil", "base_url": "https://evil.example"}),
    ("/admin/policy/approval", {"require_approval": "high", "roles": "viewer", "quorum": "1"}),
    ("/admin/policy/triage", {"weight.severity": "0"}),
]


def _actions(console: Console, actor: str) -> list[str]:
    with console.db.read() as conn:
        rows = conn.execute(
            select(audit_log.c.action).where(
                audit_log.c.tenant_id == console.tenant_id, audit_log.c.actor == actor
            )
        )
        return [r.action for r in rows]


def test_an_api_key_is_shown_once_works_and_stops_when_revoked(console: Console, page: Page) -> None:
    sign_in(page, console, "admin")
    page.goto(f"{console.url}/admin")
    form = page.locator("#create-key")
    form.locator("input[name=name]").fill("siem-export")
    form.locator("select[name=role]").select_option("viewer")
    with page.expect_navigation():
        form.locator("button[type=submit]").click()
    key = page.locator("#new-key-value").inner_text().strip()
    assert key.startswith("bst_") and len(key) > 30
    assert "shown this once" in page.locator("#new-key").inner_text()
    assert page.url == f"{console.url}/admin"  # the form redirected: a reload posts nothing
    page.reload()
    assert key not in page.content() and page.locator("#new-key").count() == 0
    assert page.locator('#api-keys tr[data-key-name="siem-export"]').count() == 1

    api = httpx.Client(base_url=console.url, headers={"Authorization": f"Bearer {key}"}, timeout=30)
    assert api.get("/api/v1/metrics").status_code == 200  # a viewer key reads
    assert api.put("/api/v1/triage/policy", json={}).status_code == 403  # ...and may not change

    page.goto(f"{console.url}/admin")  # never again: the list shows the prefix only
    assert key not in page.content()
    row = page.locator('#api-keys tr[data-key-name="siem-export"]')
    assert key[:12] in row.inner_text() and row.locator(".key-state").inner_text() == "active"
    with page.expect_navigation():
        row.locator("button").click()  # confirms through the dialog
    assert page.locator('#api-keys tr[data-key-name="siem-export"] .key-state').inner_text() == "revoked"
    assert api.get("/api/v1/metrics").status_code == 401
    assert {"apikey.create", "apikey.revoke"} <= set(_actions(console, "user:admin"))
    shot(page, "admin")


def test_users_are_added_re_roled_and_disabled(console: Console, page: Page) -> None:
    sign_in(page, console, "admin")
    page.goto(f"{console.url}/admin")
    form = page.locator("#add-user")
    form.locator("input[name=name]").fill("dana")
    form.locator("select[name=role]").select_option("analyst")
    form.locator("input[name=email]").fill("dana@demo.example.org")
    form.locator("input[name=password]").fill("dana-Pass-12345")
    with page.expect_navigation():
        form.locator("button[type=submit]").click()
    row = page.locator('#users tr[data-user="dana"]')
    assert row.locator("select[name=role]").input_value() == "analyst"
    console.passwords["dana"] = "dana-Pass-12345"
    dana = console.client("dana")  # signs in through the real form
    assert dana.get("/admin").status_code == 403

    with page.expect_navigation():
        row.locator("select[name=role]").select_option("approver")  # submits itself
    assert page.locator('#users tr[data-user="dana"] select[name=role]').input_value() == "approver"
    with console.db.read() as conn:
        found = TenantScope(conn, console.tenant_id).users.by_name("dana")
    assert found is not None and found.role.value == "approver"

    with page.expect_navigation():
        page.locator('#users tr[data-user="dana"] button').click()
    assert page.locator('#users tr[data-user="dana"] .user-state').inner_text() == "disabled"
    assert dana.get("/queue").status_code == 303  # the open session ends with the account
    assert dana.get("/queue").headers["location"].startswith("/login")
    assert {"user.create", "user.role", "user.disable"} <= set(_actions(console, "user:admin"))

    # an admin cannot lock themself out; mistakes come back with the reason
    c = console.client("admin")
    r = c.post_form("/admin/users/admin/disable", {"disabled": "1"})
    assert r.status_code == 400 and "cannot disable yourself" in r.text
    r = c.post_form("/admin/users", {"name": "x y", "role": "analyst", "password": "long-enough-1"})
    assert r.status_code == 400 and "invalid user name" in r.text
    r = c.post_form("/admin/users", {"name": "shorty", "role": "analyst", "password": "short"})
    assert r.status_code == 400 and "at least 10 characters" in r.text
    r = c.post_form("/admin/users", {"name": "dana", "role": "analyst", "password": "long-enough-1"})
    assert r.status_code == 400 and "already exists" in r.text


def test_a_saved_secret_is_never_rendered_back(console: Console, page: Page) -> None:
    sign_in(page, console, "admin")
    page.goto(f"{console.url}/admin/settings")
    form = page.locator("#save-secret")
    form.locator("input[name=name]").fill("vt_api_key")
    form.locator("input[name=value]").fill(SECRET)
    with page.expect_navigation():
        form.locator("button[type=submit]").click()
    assert "secret vt_api_key saved" in page.locator("#flash").inner_text()
    assert page.locator('#secrets tr[data-row="vt_api_key"]').count() == 1
    assert page.locator("#save-secret input[name=value]").input_value() == ""
    assert SECRET not in page.content()

    form = page.locator("#save-connection")
    form.locator("input[name=name]").fill("virustotal")
    form.locator("input[name=base_url]").fill("https://www.virustotal.com/api/v3")
    form.locator("input[name=secrets]").fill("vt_api_key")
    form.locator("textarea[name=settings]").fill('{"quota": 500}')
    with page.expect_navigation():
        form.locator("button[type=submit]").click()
    row = page.locator('#connections tr[data-row="virustotal"]')
    assert "vt_api_key" in row.inner_text() and "500" in row.inner_text()
    conn = {c["name"]: c["config"] for c in list_connections(console.db, console.tenant_id)}["virustotal"]
    assert conn["secrets"] == ["vt_api_key"] and conn["settings"] == {"quota": 500} and conn["verify_tls"]

    # a connection whose headers carry a credential: only the header's name is shown, and changing the
    # connection in the form keeps the headers as they were
    set_connection(
        console.db,
        console.tenant_id,
        "misp",
        {"base_url": "https://misp.example.org", "headers": {"Authorization": HEADER_SECRET}},
        actor="test",
    )
    page.goto(f"{console.url}/admin/settings?edit=misp")
    assert "Authorization" in page.locator('#connections tr[data-row="misp"]').inner_text()
    assert HEADER_SECRET not in page.content()
    form = page.locator("#save-connection")
    assert form.locator("input[name=base_url]").input_value() == "https://misp.example.org"
    form.locator("input[name=base_url]").fill("https://misp2.example.org")
    with page.expect_navigation():
        form.locator("button[type=submit]").click()
    misp = {c["name"]: c["config"] for c in list_connections(console.db, console.tenant_id)}["misp"]
    assert misp["base_url"] == "https://misp2.example.org"
    assert misp["headers"] == {"Authorization": HEADER_SECRET}

    # the vault holds it, encrypted; no page, as any user, shows it
    with console.db.read() as c:
        assert SecretsVault(load_key(console.db)).get_many(
            TenantScope(c, console.tenant_id), ["vt_api_key"]
        ) == {"vt_api_key": SECRET}
    admin = console.client("admin")
    for path in ("/admin", "/admin/settings", "/dashboard", "/intel", "/rules", "/suppressions", "/agents"):
        text = admin.get(path).text
        assert SECRET not in text and HEADER_SECRET not in text, path
    assert not any(SECRET in a or HEADER_SECRET in a for a in _audit_data(console))

    with page.expect_navigation():
        page.locator('#secrets tr[data-row="vt_api_key"] button').click()
    assert page.locator('#secrets tr[data-row="vt_api_key"]').count() == 0
    assert {"secret.create", "secret.delete", "connection.set"} <= set(_actions(console, "user:admin"))


def _audit_data(console: Console) -> list[str]:
    with console.db.read() as conn:
        return [
            str(r.data)
            for r in conn.execute(select(audit_log.c.data).where(audit_log.c.tenant_id == console.tenant_id))
        ]


def test_policies_are_saved_through_their_services(console: Console) -> None:
    c = console.client("admin")
    r = c.post_form(
        "/admin/policy/approval",
        {
            "require_approval": ["high", "low"],
            "roles": ["approver", "admin"],
            "quorum": "2",
            "timeout_h": "4",
            "on_timeout": "deny",
            "waivers": orjson.dumps([{"action": "edr.isolate_host", "condition": WAIVER}]).decode(),
        },
    )
    assert r.status_code == 303, r.text
    with console.db.read() as conn:
        policy = get_policy(conn, console.tenant_id)
    assert policy["require_approval"] == ["high", "low"]
    assert policy["default_approval"] == {
        "roles": ["approver", "admin"],
        "quorum": 2,
        "on_timeout": "deny",
        "timeout_s": 14400.0,
    }
    assert policy["waivers"][0]["action"] == "edr.isolate_host"
    page = c.get("/admin/settings").text
    assert re.search(r'name="require_approval" value="low" checked', page)

    weights = {
        "severity": 40,
        "fidelity": 10,
        "intel": 20,
        "asset": 10,
        "identity": 5,
        "techniques": 10,
        "history": 5,
        "warninglist": 15,
    }
    sla = {
        "critical": (10, 45, 600),
        "high": (30, 240, 4320),
        "medium": (240, 1440, 10080),
        "low": (1440, 4320, 43200),
        "informational": (4320, 10080, 43200),
    }
    form = {f"weight.{k}": str(v) for k, v in weights.items()}
    for sev, (ack, contain, resolve) in sla.items():
        form |= {
            f"sla.{sev}.acknowledge_s": str(ack),
            f"sla.{sev}.contain_s": str(contain),
            f"sla.{sev}.resolve_s": str(resolve),
        }
    r = c.post_form("/admin/policy/triage", form)
    assert r.status_code == 303, r.text
    with console.db.read() as conn:
        triage = load_policy(conn, console.tenant_id)
    assert triage.weights.severity == 40 and triage.weights.identity == 5
    assert (
        triage.sla.targets["critical"].acknowledge_s == 600
        and triage.sla.targets["critical"].contain_s == 2700
    )
    assert triage.autoclose.max_score == 20  # the rest of the policy is untouched
    assert {"respond.policy.set", "triage.policy.set"} <= set(_actions(console, "user:admin"))

    bad = dict(form, **{"sla.high.contain_s": "5"})  # contain before acknowledge
    r = c.post_form("/admin/policy/triage", bad)
    assert r.status_code == 400 and "acknowledge &lt;= contain &lt;= resolve" in r.text
    r = c.post_form(
        "/admin/policy/approval", {"require_approval": "high", "roles": "approver", "waivers": "[oops"}
    )
    assert r.status_code == 400 and "not valid JSON" in r.text
    r = c.post_form("/admin/policy/approval", {"require_approval": "high", "quorum": "1"})
    assert r.status_code == 400 and "at least one role" in r.text


@pytest.mark.parametrize("who", ["viewer", "analyst", "engineer", "approver"])
def test_only_admins_see_or_change_administration(console: Console, who: str) -> None:
    c = console.client(who)
    for path in ("/admin", "/admin/settings"):
        r = c.get(path)
        assert r.status_code == 403 and "needs admin" in r.text
    assert 'href="/admin"' not in c.get("/dashboard").text  # not in the navigation either
    before = _changes(console, who)
    for path, data in ADMIN_POSTS:
        r = c.post_form(path, data)  # with the user's own valid CSRF token: the role refuses it
        assert r.status_code == 403, (path, r.status_code)
    assert _changes(console, who) == before
    with console.db.read() as conn:
        scope = TenantScope(conn, console.tenant_id)
        assert scope.users.by_name("mallory") is None
        assert scope.users.by_name("viewer").role.value == "viewer"
    assert not any(k["name"] == "stolen" for k in _keys(console))


def _changes(console: Console, who: str) -> list[str]:
    """What ``who`` changed, by the audit log (sign-in and other console bookkeeping aside)."""
    return [a for a in _actions(console, f"user:{who}") if not a.startswith("web.")]


def _keys(console: Console) -> list[dict]:
    from bastion.tenancy.service import list_api_keys

    return list_api_keys(console.db, console.tenant)


def test_forms_without_the_csrf_token_are_refused(console: Console) -> None:
    c = console.client("admin")
    r = c.post_form("/admin/keys", {"name": "no-csrf", "role": "viewer"}, csrf=False)
    assert r.status_code == 403 and "CSRF" in r.text
    assert not any(k["name"] == "no-csrf" for k in _keys(console))


def test_admin_pages_fit_a_phone(console: Console, new_page: Callable[..., Page]) -> None:
    page = new_page(PHONE)
    sign_in(page, console, "admin")
    for path in ("/admin", "/admin/settings"):
        page.goto(console.url + path)
        page.wait_for_load_state("networkidle")
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1, f"{path} is {overflow}px wider than the screen"
    shot(page, "admin-settings")
    viewer = new_page(PHONE)
    sign_in(viewer, console, "viewer")
    allow_errors(viewer, "403")
    viewer.goto(console.url + "/admin")
    assert "needs admin" in viewer.locator("#error-message").inner_text()


def test_the_user_services_behind_the_page(sqlite_db: Database) -> None:
    """Role changes and disabling (added for this page) take effect on the user's API keys at once."""
    create_tenant(sqlite_db, "acme")
    with sqlite_db.read() as conn:
        tid = TenantRepository(conn).by_name("acme").id
    add_user(sqlite_db, "acme", "kim", Role.ANALYST, password="kim-Pass-12345")
    key = create_api_key(sqlite_db, "acme", user="kim", name="kim-cli")
    assert authenticate(sqlite_db, key).role is Role.ANALYST
    set_user_role(sqlite_db, tid, "kim", Role.VIEWER, actor="user:root")
    assert authenticate(sqlite_db, key).role is Role.VIEWER
    set_user_disabled(sqlite_db, tid, "kim", True, actor="user:root")
    assert authenticate(sqlite_db, key) is None
    [kim] = list_users(sqlite_db, tid)
    assert kim["disabled"] and kim["role"] is Role.VIEWER and kim["has_password"]
    assert "password_hash" not in kim
    set_user_disabled(sqlite_db, tid, "kim", False, actor="user:root")
    assert authenticate(sqlite_db, key) is not None
    with pytest.raises(NotFoundError):
        set_user_role(sqlite_db, tid, "nobody", Role.ADMIN, actor="user:root")
    with pytest.raises(NotFoundError):
        set_user_disabled(sqlite_db, tid, "nobody", True, actor="user:root")
    with sqlite_db.read() as conn:
        actions = [e.action for e in TenantScope(conn, tid).audit.entries()]
    assert actions.count("user.role") == 1 and actions.count("user.disable") == 1
    assert actions.count("user.enable") == 1


def test_a_new_key_reaches_only_the_session_that_made_it(console: Console) -> None:
    """The created key travels in a sealed, session-bound cookie: the creating session sees it once,
    another session (of the same admin) holding the same cookie sees nothing, and a forged cookie is
    ignored."""
    mine, other = console.client("admin"), console.client("admin")
    r = mine.post_form("/admin/keys", {"name": "handover-test", "role": "viewer"})
    assert r.status_code == 303 and r.headers["location"] == "/admin"
    sealed = r.cookies.get("bastion_new_key")
    assert sealed and "bst_" not in sealed
    other.cookies.set("bastion_new_key", sealed, path="/admin")
    assert 'id="new-key"' not in other.get("/admin").text
    shown = mine.get("/admin").text
    key = re.search(r'id="new-key-value">([^<]+)<', shown)
    assert key and key[1].startswith("bst_")
    assert 'id="new-key"' not in mine.get("/admin").text  # the page deleted the cookie
    mine.cookies.set("bastion_new_key", "forged", path="/admin")
    assert mine.get("/admin").status_code == 200
