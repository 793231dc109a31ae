"""The Entra ID connector against a local double of the identity platform's token endpoint and Microsoft
Graph v1.0 (real socket, client-credentials grant, bearer tokens, Graph and AADSTS error bodies, 429 with
Retry-After), and disable's recorded change undone through call_action."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs

import httpx
import orjson
import pytest

from bastion.connectors import entra
from bastion.connectors.call import call_action
from bastion.connectors.policy import invoke
from bastion.connectors.registry import ActionContext, ActionError, get_action
from bastion.connectors.vendor_http import VendorError, clear_token_cache
from tests.connectors.recorded import change_count, change_row, tenant_store
from tests.connectors.vendor_servers import EntraDouble, serve

ACTIONS = (
    "entra.get_user",
    "entra.disable_user",
    "entra.enable_user",
    "entra.revoke_sessions",
    "entra.confirm_compromised",
)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    double = EntraDouble()
    with serve(double):
        conn = {
            "base_url": double.url,
            "allow_private": True,
            "settings": {"tenant": double.tenant, "client_id": double.client_id, "login_url": double.url},
        }
        path = tmp_path_factory.mktemp("entra") / "bastion.db"
        db, tenant = tenant_store(str(path), "entra", conn, {entra.SECRET: double.client_secret})
        yield {"double": double, "db": db, "tenant": tenant, "connection": {**conn, "name": "entra"}}
        db.dispose()


@pytest.fixture
def double(env: dict[str, Any]) -> EntraDouble:
    found: EntraDouble = env["double"]
    found.seen.clear()
    found.throttle.clear()
    found.reject_all = False
    clear_token_cache()
    return found


def run(env: dict[str, Any], action_id: str, key: str = "", secret: str | None = None, **inputs: Any) -> Any:
    defn = get_action(action_id)
    assert defn is not None and defn.connection == "entra" and defn.secrets == (entra.SECRET,)
    ctx = ActionContext(
        tenant_id=env["tenant"],
        run_id="r1",
        step_id="s1",
        idempotency_key=key,
        secrets={entra.SECRET: secret if secret is not None else env["double"].client_secret},
        connection=env["connection"],
    )
    return asyncio.run(invoke(defn, inputs, ctx))


def graph_calls(double: EntraDouble) -> list[tuple[str, str]]:
    return [(s.method, s.path) for s in double.seen if not s.path.endswith("/token")]


def test_actions_declare_impact_and_document_inputs() -> None:
    impacts = {}
    for name in ACTIONS:
        defn = get_action(name)
        assert defn is not None and defn.description
        assert all("description" in p for p in defn.schema["properties"].values()), name
        impacts[name] = defn.impact
    assert impacts == {name: ("read" if name == "entra.get_user" else "high") for name in ACTIONS}


def test_client_credentials_token_then_bearer_and_the_token_is_cached(
    env: dict[str, Any], double: EntraDouble
) -> None:
    user = double.add_user("ada.lovelace@contoso.com")
    out = run(env, "entra.get_user", user="ada.lovelace@contoso.com")
    assert out == {
        "id": user["id"],
        "user_principal_name": "ada.lovelace@contoso.com",
        "display_name": "Ada Lovelace",
        "mail": "ada.lovelace@contoso.com",
        "account_enabled": True,
    }
    token_req = double.seen[0]
    assert (token_req.method, token_req.path) == ("POST", f"/{double.tenant}/oauth2/v2.0/token")
    assert token_req.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert {k: v[0] for k, v in parse_qs(token_req.body.decode()).items()} == {
        "client_id": double.client_id,
        "client_secret": double.client_secret,
        "scope": "https://graph.microsoft.com/.default",
        "grant_type": "client_credentials",
    }
    get = double.seen[1]
    assert get.path == "/v1.0/users/ada.lovelace@contoso.com"
    assert get.query["$select"] == [entra.USER_FIELDS]
    assert (
        get.headers["Authorization"].startswith("Bearer ")
        and get.headers["Authorization"][7:] in double.valid_tokens
    )
    run(env, "entra.get_user", user=user["id"])
    assert sum(s.path.endswith("/token") for s in double.seen) == 1 and len(graph_calls(double)) == 2


def test_a_wrong_client_secret_fails_with_the_aadsts_reason(env: dict[str, Any], double: EntraDouble) -> None:
    double.add_user("x.y@contoso.com")
    with pytest.raises(
        VendorError, match=r"^entra: 401 invalid_client AADSTS7000215: Invalid client secret"
    ) as info:
        run(env, "entra.get_user", secret="wrong", user="x.y@contoso.com")
    assert info.value.status == 401 and info.value.code == "invalid_client"
    assert graph_calls(double) == []


def test_graph_rejects_missing_or_foreign_tokens_with_its_error_body(
    env: dict[str, Any], double: EntraDouble
) -> None:
    user = double.add_user("no.token@contoso.com")
    bare = httpx.get(f"{double.url}/v1.0/users/{user['id']}")
    assert bare.status_code == 401 and bare.json()["error"]["code"] == "InvalidAuthenticationToken"
    assert bare.json()["error"]["message"] == "Access token is empty."
    forged = httpx.get(f"{double.url}/v1.0/users/{user['id']}", headers={"Authorization": "Bearer forged"})
    assert forged.status_code == 401 and "innerError" in forged.json()["error"]


def test_a_revoked_cached_token_is_replaced_once(env: dict[str, Any], double: EntraDouble) -> None:
    user = double.add_user("token.roll@contoso.com")
    run(env, "entra.get_user", user=user["id"])
    issued = double.tokens_issued
    double.revoke_all_tokens()
    out = run(env, "entra.get_user", user=user["id"])
    assert out["id"] == user["id"] and double.tokens_issued == issued + 1
    assert [c[0] for c in graph_calls(double)] == ["GET", "GET", "GET"]  # ok, refused, ok with a new token


def test_unknown_user_is_graph_404(env: dict[str, Any], double: EntraDouble) -> None:
    with pytest.raises(
        ActionError, match=r"entra: 404 Request_ResourceNotFound Resource 'ghost@contoso\.com' does not exist"
    ):
        run(env, "entra.get_user", user="ghost@contoso.com")


def test_disable_records_a_change_whose_undo_enables_the_account(
    env: dict[str, Any], double: EntraDouble
) -> None:
    user = double.add_user("grace.hopper@contoso.com")
    out = run(env, "entra.disable_user", user="grace.hopper@contoso.com")
    assert double.users[user["id"]]["accountEnabled"] is False
    assert out["changed"] is True and out["account_enabled"] is False and out["user"] == user["id"]
    patch = [s for s in double.seen if s.method == "PATCH"]
    assert len(patch) == 1 and patch[0].path == f"/v1.0/users/{user['id']}"
    assert orjson.loads(patch[0].body) == {"accountEnabled": False}
    assert patch[0].headers["Content-Type"] == "application/json"
    row = change_row(env["db"], out["change_id"])
    assert row["undo_action"] == "entra.enable_user" and row["undo_inputs"] == {"user": user["id"]}
    assert row["prior"]["accountEnabled"] is True and row["change"]["accountEnabled"] is False
    assert row["connection"] == "entra"

    undone = asyncio.run(
        call_action(env["db"], env["tenant"], row["undo_action"], row["undo_inputs"], caller="undo", key="u1")
    )
    assert undone["changed"] is True and double.users[user["id"]]["accountEnabled"] is True


def test_disabling_a_disabled_account_changes_and_records_nothing(
    env: dict[str, Any], double: EntraDouble
) -> None:
    double.add_user("already.off@contoso.com", enabled=False)
    before = change_count(env["db"])
    out = run(env, "entra.disable_user", user="already.off@contoso.com")
    assert out["changed"] is False and out["change_id"] is None
    assert [m for m, _ in graph_calls(double)] == ["GET"] and change_count(env["db"]) == before


def test_enable_of_unknown_user_fails(env: dict[str, Any], double: EntraDouble) -> None:
    with pytest.raises(ActionError, match=r"entra: 404 Request_ResourceNotFound"):
        run(env, "entra.enable_user", user="00000000-0000-0000-0000-000000000000")


def test_revoke_sessions(env: dict[str, Any], double: EntraDouble) -> None:
    user = double.add_user("linus.t@contoso.com")
    before = user["signInSessionsValidFromDateTime"]
    out = run(env, "entra.revoke_sessions", user=user["id"])
    assert out == {"user": user["id"], "revoked": True}
    assert double.users[user["id"]]["signInSessionsValidFromDateTime"] != before
    assert graph_calls(double) == [("POST", f"/v1.0/users/{user['id']}/revokeSignInSessions")]


def test_revoke_sessions_of_unknown_user_fails(env: dict[str, Any], double: EntraDouble) -> None:
    with pytest.raises(ActionError, match=r"entra: 404 Request_ResourceNotFound"):
        run(env, "entra.revoke_sessions", user="nobody@contoso.com")


def test_a_429_is_retried_after_retry_after_and_then_succeeds(
    env: dict[str, Any], double: EntraDouble
) -> None:
    user = double.add_user("busy.user@contoso.com")
    path = f"/v1.0/users/{user['id']}/revokeSignInSessions"
    double.throttle[path] = 1
    before = user["signInSessionsValidFromDateTime"]
    out = run(env, "entra.revoke_sessions", user=user["id"])
    assert out["revoked"] is True and double.users[user["id"]]["signInSessionsValidFromDateTime"] != before
    assert [p for _, p in graph_calls(double)] == [path, path]


def test_confirm_compromised_resolves_names_to_object_ids(env: dict[str, Any], double: EntraDouble) -> None:
    a = double.add_user("victim.one@contoso.com")
    b = double.add_user("victim.two@contoso.com")
    out = run(env, "entra.confirm_compromised", users=["victim.one@contoso.com", b["id"]])
    assert out == {"user_ids": [a["id"], b["id"]], "confirmed": True}
    assert double.risky[a["id"]] == "high" and double.risky[b["id"]] == "high"
    post = double.seen[-1]
    assert post.path == "/v1.0/identityProtection/riskyUsers/confirmCompromised"
    assert orjson.loads(post.body) == {"userIds": [a["id"], b["id"]]}


def test_confirm_compromised_with_a_bad_id_fails(env: dict[str, Any], double: EntraDouble) -> None:
    with pytest.raises(ActionError, match=r"entra: 400 BadRequest Invalid user id 'not-a-guid'"):
        run(env, "entra.confirm_compromised", users=["not-a-guid"])
    assert double.risky.get("not-a-guid") is None


def test_missing_settings_are_named(env: dict[str, Any]) -> None:
    defn = get_action("entra.get_user")
    assert defn is not None
    ctx = ActionContext(
        tenant_id="t", secrets={entra.SECRET: "s"}, connection={"base_url": "https://graph.example"}
    )
    with pytest.raises(ActionError, match=r"settings\.tenant and settings\.client_id"):
        asyncio.run(invoke(defn, {"user": "x"}, ctx))


def test_a_retried_step_gets_back_the_change_its_first_attempt_recorded(
    env: dict[str, Any], double: EntraDouble
) -> None:
    double.add_user("retried.step@contoso.com")
    first = run(env, "entra.disable_user", key="r1:s1", user="retried.step@contoso.com")
    before = change_count(env["db"])
    again = run(env, "entra.disable_user", key="r1:s1", user="retried.step@contoso.com")
    assert first["changed"] is True and again["changed"] is False
    assert again["change_id"] == first["change_id"] and change_count(env["db"]) == before
    other = run(env, "entra.disable_user", key="r2:s1", user="retried.step@contoso.com")
    assert other["change_id"] is None  # another step found it already done: nothing of its own to undo


def test_a_fresh_token_refused_by_graph_is_not_retried(env: dict[str, Any], double: EntraDouble) -> None:
    user = double.add_user("no.consent@contoso.com")
    double.reject_all = True
    with pytest.raises(
        VendorError, match=r"^entra: 401 InvalidAuthenticationToken Access token validation failure"
    ) as info:
        run(env, "entra.revoke_sessions", user=user["id"])
    assert info.value.code == "InvalidAuthenticationToken"
    assert sum(s.path.endswith("/token") for s in double.seen) == 1 and len(graph_calls(double)) == 1


def test_tenant_id_setting_is_accepted(env: dict[str, Any], double: EntraDouble) -> None:
    user = double.add_user("alt.setting@contoso.com")
    settings = {"tenant_id": double.tenant, "client_id": double.client_id, "login_url": double.url}
    defn = get_action("entra.get_user")
    assert defn is not None
    ctx = ActionContext(
        tenant_id=env["tenant"],
        secrets={entra.SECRET: double.client_secret},
        connection={**env["connection"], "settings": settings},
    )
    assert asyncio.run(invoke(defn, {"user": user["id"]}, ctx))["id"] == user["id"]
