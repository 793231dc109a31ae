"""The Okta connector against a local double of Okta's Users API (real socket, SSWS auth, Okta error
bodies, 429 with X-Rate-Limit-Reset), and suspend's recorded change undone through call_action."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bastion.connectors import okta
from bastion.connectors.call import call_action
from bastion.connectors.policy import invoke
from bastion.connectors.registry import ActionContext, ActionError, get_action
from bastion.connectors.undo import expire_changes
from bastion.connectors.vendor_http import VendorError, VendorRateLimited, retry_delay
from bastion.store import Database
from tests.connectors.recorded import change_count, change_row, tenant_store
from tests.connectors.vendor_servers import OktaDouble, serve


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    double = OktaDouble()
    with serve(double):
        conn = {"base_url": double.url, "allow_private": True}
        path = tmp_path_factory.mktemp("okta") / "bastion.db"
        db, tenant = tenant_store(str(path), "okta", conn, {okta.SECRET: double.token})
        yield {"double": double, "db": db, "tenant": tenant, "connection": {**conn, "name": "okta"}}
        db.dispose()


@pytest.fixture
def double(env: dict[str, Any]) -> OktaDouble:
    found: OktaDouble = env["double"]
    found.seen.clear()
    found.throttle.clear()
    found.reset_in_s = 1
    return found


def run(env: dict[str, Any], action_id: str, key: str = "", token: str | None = None, **inputs: Any) -> Any:
    defn = get_action(action_id)
    assert defn is not None and defn.connection == "okta" and defn.secrets == (okta.SECRET,)
    ctx = ActionContext(
        tenant_id=env["tenant"],
        run_id="r1",
        step_id="s1",
        idempotency_key=key,
        secrets={okta.SECRET: token if token is not None else env["double"].token},
        connection=env["connection"],
    )
    return asyncio.run(invoke(defn, inputs, ctx))


ACTIONS = (
    "okta.get_user",
    "okta.suspend_user",
    "okta.unsuspend_user",
    "okta.clear_sessions",
    "okta.reset_factors",
)


def test_actions_declare_impact() -> None:
    impacts = {a: getattr(get_action(a), "impact", None) for a in ACTIONS}
    assert impacts == {a: ("read" if a == "okta.get_user" else "high") for a in ACTIONS}


def test_get_user_sends_the_ssws_token_and_maps_the_user(env: dict[str, Any], double: OktaDouble) -> None:
    user = double.add_user("ada.lovelace@example.com")
    out = run(env, "okta.get_user", user="ada.lovelace@example.com")
    assert out["id"] == user["id"] and out["status"] == "ACTIVE"
    assert out["login"] == "ada.lovelace@example.com" and out["first_name"] == "Ada"
    assert [(s.method, s.path) for s in double.seen] == [("GET", "/api/v1/users/ada.lovelace@example.com")]
    assert double.seen[0].headers["Authorization"] == f"SSWS {double.token}"


def test_a_wrong_token_is_refused_with_okta_error_body(env: dict[str, Any], double: OktaDouble) -> None:
    user = double.add_user("bad.token@example.com")
    with pytest.raises(VendorError, match=r"^okta: 401 E0000011 Invalid token provided$") as info:
        run(env, "okta.get_user", token="00wrong", user=user["id"])
    assert info.value.status == 401 and info.value.code == "E0000011"
    bare = httpx.get(f"{double.url}/api/v1/users/{user['id']}")  # no header at all
    assert bare.status_code == 401 and bare.json()["errorCode"] == "E0000011"
    bearer = httpx.get(
        f"{double.url}/api/v1/users/{user['id']}", headers={"Authorization": f"Bearer {double.token}"}
    )
    assert bearer.status_code == 401


def test_unknown_user_is_okta_404(env: dict[str, Any], double: OktaDouble) -> None:
    with pytest.raises(
        ActionError, match=r"okta: 404 E0000007 Not found: Resource not found: nobody@x\.org \(User\)"
    ):
        run(env, "okta.get_user", user="nobody@x.org")


def test_suspend_records_a_change_whose_undo_restores_the_user(
    env: dict[str, Any], double: OktaDouble
) -> None:
    user = double.add_user("grace.hopper@example.com")
    out = run(env, "okta.suspend_user", user="grace.hopper@example.com")
    assert double.users[user["id"]]["status"] == "SUSPENDED"
    assert out["changed"] is True and out["prior_status"] == "ACTIVE" and out["status"] == "SUSPENDED"
    assert ("POST", f"/api/v1/users/{user['id']}/lifecycle/suspend") in [
        (s.method, s.path) for s in double.seen
    ]
    row = change_row(env["db"], out["change_id"])
    assert row["undo_action"] == "okta.unsuspend_user" and row["undo_inputs"] == {"user": user["id"]}
    assert row["prior"]["status"] == "ACTIVE" and row["target"] == f"okta:user:{user['id']}"
    assert row["connection"] == "okta" and row["tenant_id"] == env["tenant"] and row["expires"] is None

    db: Database = env["db"]
    undone = asyncio.run(
        call_action(
            db, env["tenant"], row["undo_action"], row["undo_inputs"], caller="undo", key=f"undo:{row['id']}"
        )
    )
    assert undone["changed"] is True and undone["status"] == "ACTIVE"
    assert double.users[user["id"]]["status"] == "ACTIVE"
    assert double.seen[-1].path == f"/api/v1/users/{user['id']}/lifecycle/unsuspend"


def test_suspend_with_expiry_is_lifted_when_it_expires(env: dict[str, Any], double: OktaDouble) -> None:
    user = double.add_user("timed.user@example.com")
    out = run(env, "okta.suspend_user", user="timed.user@example.com", expires_in_s=3600)
    row = change_row(env["db"], out["change_id"])
    # expires is taken just before the row is written: within a few ms of created + 1 h
    assert row["expires"] is not None and 3_590_000 < row["expires"] - row["created"] <= 3_600_000
    assert asyncio.run(expire_changes(env["db"], now=row["expires"] - 1, tenant_id=env["tenant"])) == []
    assert double.users[user["id"]]["status"] == "SUSPENDED"
    done = asyncio.run(expire_changes(env["db"], now=row["expires"], tenant_id=env["tenant"]))
    assert [(d["id"], d["undone"]) for d in done] == [(row["id"], True)]
    assert double.users[user["id"]]["status"] == "ACTIVE"


def test_suspending_a_suspended_user_changes_and_records_nothing(
    env: dict[str, Any], double: OktaDouble
) -> None:
    double.add_user("already.off@example.com", status="SUSPENDED")
    before = change_count(env["db"])
    out = run(env, "okta.suspend_user", user="already.off@example.com")
    assert out == {**out, "changed": False, "change_id": None, "status": "SUSPENDED"}
    assert [s.method for s in double.seen] == ["GET"]
    assert change_count(env["db"]) == before


def test_suspend_refused_by_okta_keeps_its_reason(env: dict[str, Any], double: OktaDouble) -> None:
    user = double.add_user("staged.user@example.com", status="STAGED")
    before = change_count(env["db"])
    with pytest.raises(
        ActionError,
        match=r"okta: 400 E0000001 Api validation failed: suspend "
        r"\(Cannot suspend a user that is not active\)",
    ):
        run(env, "okta.suspend_user", user=user["id"])
    assert double.users[user["id"]]["status"] == "STAGED" and change_count(env["db"]) == before


def test_unsuspend_of_an_active_user_is_a_no_op(env: dict[str, Any], double: OktaDouble) -> None:
    user = double.add_user("still.on@example.com")
    out = run(env, "okta.unsuspend_user", user=user["id"])
    assert out["changed"] is False and out["status"] == "ACTIVE"
    assert [s.method for s in double.seen] == ["GET"]


def test_clear_sessions_deletes_sessions_and_oauth_tokens(env: dict[str, Any], double: OktaDouble) -> None:
    user = double.add_user("linus.t@example.com")
    out = run(env, "okta.clear_sessions", user=user["id"])
    assert out == {"user": user["id"], "sessions_cleared": True, "oauth_tokens_revoked": True}
    assert double.sessions[user["id"]] == 0
    assert (
        double.seen[-1].method == "DELETE" and double.seen[-1].path == f"/api/v1/users/{user['id']}/sessions"
    )
    assert double.seen[-1].query == {"oauthTokens": ["true"]}


def test_clear_sessions_of_unknown_user_fails(env: dict[str, Any], double: OktaDouble) -> None:
    with pytest.raises(ActionError, match=r"okta: 404 E0000007"):
        run(env, "okta.clear_sessions", user="00unothere")


def test_reset_factors_resets_every_factor(env: dict[str, Any], double: OktaDouble) -> None:
    user = double.add_user("mfa.user@example.com")
    assert double.factors[user["id"]]
    out = run(env, "okta.reset_factors", user=user["id"])
    assert out == {"user": user["id"], "factors_reset": True} and double.factors[user["id"]] == []
    assert (double.seen[-1].method, double.seen[-1].path) == (
        "POST",
        f"/api/v1/users/{user['id']}/lifecycle/reset_factors",
    )


def test_reset_factors_with_wrong_token_fails_and_changes_nothing(
    env: dict[str, Any], double: OktaDouble
) -> None:
    user = double.add_user("mfa.kept@example.com")
    with pytest.raises(ActionError, match="okta: 401 E0000011"):
        run(env, "okta.reset_factors", token="nope", user=user["id"])
    assert double.factors[user["id"]] == ["push", "totp"]


def test_a_429_is_retried_after_the_reset_and_then_succeeds(env: dict[str, Any], double: OktaDouble) -> None:
    user = double.add_user("busy.user@example.com")
    double.throttle[f"/api/v1/users/{user['id']}/lifecycle/reset_factors"] = 1
    out = run(env, "okta.reset_factors", user=user["id"])
    assert out["factors_reset"] is True and double.factors[user["id"]] == []
    assert [s.path for s in double.seen].count(f"/api/v1/users/{user['id']}/lifecycle/reset_factors") == 2


def test_a_rate_limit_reset_too_far_away_fails_at_once(env: dict[str, Any], double: OktaDouble) -> None:
    user = double.add_user("very.busy@example.com")
    double.reset_in_s = 600
    double.throttle[f"/api/v1/users/{user['id']}"] = 5
    with pytest.raises(VendorRateLimited, match=r"okta: 429 E0000047 .*retry in \d+s") as info:
        run(env, "okta.get_user", user=user["id"])
    assert info.value.retry_after_s is not None and info.value.retry_after_s > 500
    assert len(double.seen) == 1


def test_loopback_needs_allow_private(env: dict[str, Any], double: OktaDouble) -> None:
    defn = get_action("okta.get_user")
    assert defn is not None
    ctx = ActionContext(
        tenant_id=env["tenant"], secrets={okta.SECRET: double.token}, connection={"base_url": double.url}
    )
    with pytest.raises(ActionError, match="loopback/private"):
        asyncio.run(invoke(defn, {"user": "x"}, ctx))
    assert double.seen == []


def test_docs_name_every_input() -> None:
    for name in ACTIONS:
        defn = get_action(name)
        assert defn is not None and defn.description
        assert all("description" in p for p in defn.schema["properties"].values()), name


def test_message_without_body_uses_status(tmp_path: Path) -> None:
    assert okta.describe_error(502, None, "") == ("", "")  # not Okta's: vendor_http shows the body
    assert str(VendorError("okta", 502, "", "")) == "okta: 502"


def test_a_retried_step_gets_back_the_change_its_first_attempt_recorded(
    env: dict[str, Any], double: OktaDouble
) -> None:
    double.add_user("retried.step@example.com")
    first = run(env, "okta.suspend_user", key="r1:s1", user="retried.step@example.com")
    before = change_count(env["db"])
    again = run(env, "okta.suspend_user", key="r1:s1", user="retried.step@example.com")
    assert first["changed"] is True and again["changed"] is False
    assert again["change_id"] == first["change_id"] and change_count(env["db"]) == before
    other = run(env, "okta.suspend_user", key="r2:s1", user="retried.step@example.com")
    assert other["change_id"] is None  # another step found it already done: nothing of its own to undo


def test_retry_delay_reads_the_vendors_headers() -> None:
    now = 1_700_000_000.0
    assert retry_delay({"retry-after": "7"}, 0, now=now) == 7.0
    assert retry_delay({"retry-after": "Tue, 14 Nov 2023 22:13:40 GMT"}, 0, now=now) == 20.0
    assert retry_delay({"x-rate-limit-reset": str(int(now) + 42)}, 0, now=now) == 42.0
    assert retry_delay({"x-rate-limit-reset": str(int(now) - 5)}, 0, now=now) == 0.0
    assert [retry_delay({}, n, now=now) for n in range(5)] == [1.0, 2.0, 4.0, 8.0, 8.0]
