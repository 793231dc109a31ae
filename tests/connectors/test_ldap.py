"""The ``ldap.*`` actions against a real slapd: ppolicy locking (binds fail, then work again), the
password-marker lock on a directory without ppolicy, AD's userAccountControl on msuser-schema entries,
forced password resets, group membership, recorded changes undone through call_action, and errors."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from ldap3 import Connection, Server
from sqlalchemy import insert, select

import bastion.connectors.ldap  # noqa: F401  (registers the ldap.* actions)
from bastion.connectors import ActionContext, ActionError, get_action
from bastion.connectors.call import call_action
from bastion.connectors.core import SSRFError
from bastion.connectors.policy import invoke
from bastion.connectors.undo import get_change, undo_change
from bastion.respond import engine
from bastion.store import Database
from bastion.store.connectors import action_changes
from bastion.store.workflows import now_ms, respond_connections
from bastion.tenancy.secrets import set_secret
from bastion.tenancy.service import create_tenant
from tests.conftest import free_port
from tests.connectors.ldap_server import (
    ADMIN,
    ADMIN_PASSWORD,
    PASSWORDS,
    SUFFIX,
    can_bind,
    ppolicy_slapd,
    seed_people,
)
from tests.enrich.slapd import slapd

ALICE = f"uid=alice,ou=people,{SUFFIX}"
BOB = f"uid=bob,ou=people,{SUFFIX}"
CAROL = f"cn=Carol Cole,ou=people,{SUFFIX}"
ADMINS = f"cn=admins,ou=groups,{SUFFIX}"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Database, str]]:
    db = Database(f"sqlite:///{tmp_path_factory.mktemp('ldap-store') / 'bastion.db'}")
    db.migrate()
    tenant, _ = create_tenant(db, "acme")
    yield db, tenant.id
    db.dispose()


@pytest.fixture
def tenant(store: tuple[Database, str]) -> str:
    engine.configure(store[0])  # record_change writes to the engine's store
    return store[1]


@pytest.fixture
def directory(tmp_path: Path) -> Iterator[str]:
    with ppolicy_slapd(tmp_path) as url:
        seed_people(url, ppolicy=True)
        yield url


@pytest.fixture
def plain_directory(tmp_path: Path) -> Iterator[str]:
    with slapd(tmp_path) as url:  # the enrich fixture: no ppolicy overlay
        seed_people(url, ppolicy=False)
        yield url


def connection(url: str, **settings: Any) -> dict[str, Any]:
    return {
        "name": "ldap",
        "base_url": url,
        "allow_private": True,
        "settings": {"base_dn": f"ou=people,{SUFFIX}", "group_base": f"ou=groups,{SUFFIX}", **settings},
    }


def ctx(tenant: str, url: str, password: str = ADMIN_PASSWORD, **kw: Any) -> ActionContext:
    conn = kw.pop("conn", None) or connection(url)
    secrets = {"ldap_bind_dn": ADMIN, "ldap_bind_password": password}
    return ActionContext(tenant_id=tenant, secrets=secrets, connection=conn, **kw)


def run(action_id: str, context: ActionContext, **inputs: Any) -> Any:
    defn = get_action(action_id)
    assert defn is not None, action_id
    return asyncio.run(invoke(defn, inputs, context))


def read(url: str, dn: str) -> dict[str, list[bytes]]:
    """An entry's raw attributes, operational ones included, read as the directory manager."""
    conn = Connection(Server(url), user=ADMIN, password=ADMIN_PASSWORD, auto_bind=True)
    try:
        conn.search(dn, "(objectClass=*)", search_scope="BASE", attributes=["*", "+"])
        return {k.lower(): list(v) for k, v in conn.entries[0].entry_raw_attributes.items()}
    finally:
        conn.unbind()


def store_connection(db: Database, tenant: str, url: str) -> None:
    """The tenant's ``ldap`` connection and bind secrets, as call_action and undo read them.

    The row is written directly: tenancy.connections.set_connection only accepts http(s) base URLs
    today (see the report: it needs to allow ldap:// and ldaps://)."""
    with db.write() as conn:
        conn.execute(respond_connections.delete().where(respond_connections.c.tenant_id == tenant))
        config = {k: v for k, v in connection(url).items() if k != "name"}
        config["secrets"] = ["ldap_bind_dn", "ldap_bind_password"]
        conn.execute(
            insert(respond_connections).values(
                tenant_id=tenant, name="ldap", config=orjson.dumps(config).decode(), updated=now_ms()
            )
        )
    set_secret(db, tenant, "ldap_bind_dn", ADMIN, actor="test")
    set_secret(db, tenant, "ldap_bind_password", ADMIN_PASSWORD, actor="test")


def test_actions_are_registered_with_their_impact() -> None:
    impacts = {
        "ldap.find_user": "read",
        "ldap.disable_user": "high",
        "ldap.enable_user": "high",
        "ldap.reset_password": "high",
        "ldap.remove_from_group": "high",
        "ldap.add_to_group": "low",
        "ldap.list_group_members": "read",
    }
    for action_id, impact in impacts.items():
        defn = get_action(action_id)
        assert defn is not None and defn.impact == impact, action_id
        assert defn.connection == "ldap" and set(defn.secrets) == {"ldap_bind_dn", "ldap_bind_password"}
        for name, prop in defn.schema["properties"].items():
            assert prop.get("description"), f"{action_id}: input {name} is not documented"


def test_find_user_gives_dn_status_and_attributes_but_no_password(tenant: str, directory: str) -> None:
    found = run("ldap.find_user", ctx(tenant, directory), username="alice")
    assert found["dn"] == ALICE
    assert found["username"] == "alice"
    assert found["status"] == "active"
    assert found["attributes"]["mail"] == "alice@example.org"
    assert "inetOrgPerson" in found["object_classes"]
    text = orjson.dumps(found).decode()
    assert "SSHA" not in text and "userPassword" not in text


def test_disable_locks_the_account_with_ppolicy_and_enable_unlocks_it(
    tenant: str, directory: str, store: tuple[Database, str]
) -> None:
    assert can_bind(directory, ALICE, PASSWORDS["alice"])
    out = run("ldap.disable_user", ctx(tenant, directory), username="alice")
    assert out["changed"] is True and out["scheme"] == "ppolicy" and out["prior"]["status"] == "active"
    assert read(directory, ALICE)["pwdaccountlockedtime"] == [b"000001010000Z"]
    assert not can_bind(directory, ALICE, PASSWORDS["alice"])
    assert run("ldap.find_user", ctx(tenant, directory), username="alice")["status"] == "disabled"

    with store[0].read() as conn:
        change = get_change(conn, tenant, out["change_id"])
    assert change is not None
    assert change["action"] == "ldap.disable_user" and change["target"] == ALICE
    assert change["undo_action"] == "ldap.enable_user"
    assert change["undo_inputs"] == {"username": "alice"}
    assert change["prior"] == {"status": "active", "scheme": "ppolicy", "pwdAccountLockedTime": None}

    again = run("ldap.disable_user", ctx(tenant, directory), username="alice")
    assert again["changed"] is False and again["change_id"] is None  # nothing new to undo

    enabled = run("ldap.enable_user", ctx(tenant, directory), username="alice")
    assert enabled["changed"] is True and enabled["prior_status"] == "disabled"
    assert "pwdaccountlockedtime" not in read(directory, ALICE)
    assert can_bind(directory, ALICE, PASSWORDS["alice"])


def test_a_retried_step_returns_the_change_its_first_attempt_recorded(tenant: str, directory: str) -> None:
    step = {"run_id": "r1", "step_id": "suspend", "idempotency_key": "r1:suspend"}
    first = run("ldap.disable_user", ctx(tenant, directory, **step), username="bob")
    retry = run("ldap.disable_user", ctx(tenant, directory, **step), username="bob")
    assert first["changed"] is True and retry["changed"] is False
    assert retry["change_id"] == first["change_id"]
    other = run("ldap.disable_user", ctx(tenant, directory, idempotency_key="another"), username="bob")
    assert other["change_id"] is None


def test_undo_of_a_recorded_disable_restores_access(
    tenant: str, directory: str, store: tuple[Database, str]
) -> None:
    db = store[0]
    store_connection(db, tenant, directory)
    out = run("ldap.disable_user", ctx(tenant, directory), username="bob")
    assert not can_bind(directory, BOB, PASSWORDS["bob"])

    result = asyncio.run(undo_change(db, tenant, out["change_id"], actor="analyst"))
    assert result["undone"] is True, result["error"]
    assert result["output"]["changed"] is True
    assert can_bind(directory, BOB, PASSWORDS["bob"])
    with db.read() as conn:
        change = get_change(conn, tenant, out["change_id"])
    assert change is not None and change["undone_by"] == "analyst"


def test_password_marker_lock_on_a_directory_without_ppolicy(tenant: str, plain_directory: str) -> None:
    url = plain_directory
    out = run("ldap.disable_user", ctx(tenant, url), username="bob")
    assert out["scheme"] == "password" and out["changed"] is True
    assert read(url, BOB)["userpassword"][0].startswith(b"{BASTION-LOCKED}{SSHA}")
    assert "SSHA" not in orjson.dumps(out).decode()  # the hash is not copied into the recorded prior state
    assert not can_bind(url, BOB, PASSWORDS["bob"])

    # A reset while disabled keeps the account disabled; enable then lets the new password in.
    reset = run("ldap.reset_password", ctx(tenant, url), username="bob", return_password=True)
    assert not can_bind(url, BOB, reset["password"])
    assert run("ldap.find_user", ctx(tenant, url), username="bob")["status"] == "disabled"
    assert run("ldap.enable_user", ctx(tenant, url), username="bob")["changed"] is True
    assert can_bind(url, BOB, reset["password"])
    assert not can_bind(url, BOB, PASSWORDS["bob"])


def test_reset_password_forces_a_change_and_records_no_undo(
    tenant: str, directory: str, store: tuple[Database, str]
) -> None:
    with store[0].read() as conn:
        before = len(conn.execute(select(action_changes.c.id)).all())
    out = run("ldap.reset_password", ctx(tenant, directory), username="alice")
    assert out["reset"] is True and out["must_change"] is True and out["undoable"] is False
    assert "password" not in out
    assert not can_bind(directory, ALICE, PASSWORDS["alice"])
    assert read(directory, ALICE)["pwdreset"] == [b"TRUE"]
    with store[0].read() as conn:
        assert len(conn.execute(select(action_changes.c.id)).all()) == before

    shown = run("ldap.reset_password", ctx(tenant, directory), username="alice", return_password=True)
    assert len(shown["password"]) == 24
    assert can_bind(directory, ALICE, shown["password"])


def test_remove_from_group_lists_members_and_is_undone_through_call_action(
    tenant: str, directory: str, store: tuple[Database, str]
) -> None:
    db = store[0]
    store_connection(db, tenant, directory)
    listed = run("ldap.list_group_members", ctx(tenant, directory), group="admins")
    assert listed["group"] == ADMINS
    assert {m["username"] for m in listed["members"]} == {"alice", None}  # carol's DN has no uid

    ad = connection(directory, user_attr="sAMAccountName", flavor="ad")
    as_ad = run("ldap.list_group_members", ctx(tenant, directory, conn=ad), group="admins")
    assert {m["username"] for m in as_ad["members"]} == {None, "carol"}  # read from carol's entry

    out = run("ldap.remove_from_group", ctx(tenant, directory), username="alice", group="admins")
    assert out["changed"] is True and out["attribute"] == "member" and out["change_id"]
    members = run("ldap.list_group_members", ctx(tenant, directory), group=ADMINS)["members"]
    assert ALICE not in [m["dn"] for m in members]
    again = run("ldap.remove_from_group", ctx(tenant, directory), username="alice", group="admins")
    assert again["changed"] is False and again["change_id"] is None

    with db.read() as conn:
        change = get_change(conn, tenant, out["change_id"])
    assert change is not None and change["undo_action"] == "ldap.add_to_group"
    assert change["undo_inputs"] == {"username": "alice", "group": ADMINS}
    undone = asyncio.run(
        call_action(db, tenant, change["undo_action"], change["undo_inputs"], caller="undo", key="u1")
    )
    assert undone["changed"] is True
    members = run("ldap.list_group_members", ctx(tenant, directory), group="admins")["members"]
    assert ALICE in [m["dn"] for m in members]


def test_active_directory_flavor_uses_user_account_control_and_pwd_last_set(
    tenant: str, directory: str, store: tuple[Database, str]
) -> None:
    ad = connection(directory, user_attr="sAMAccountName", flavor="ad")
    found = run("ldap.find_user", ctx(tenant, directory, conn=ad), username="carol")
    assert found["dn"] == CAROL and found["user_account_control"] == 512 and found["status"] == "active"

    out = run("ldap.disable_user", ctx(tenant, directory, conn=ad), username="carol")
    assert out["scheme"] == "userAccountControl" and out["prior"]["userAccountControl"] == 512
    assert read(directory, CAROL)["useraccountcontrol"] == [b"514"]
    with store[0].read() as conn:
        change = get_change(conn, tenant, out["change_id"])
    assert change is not None and change["prior"]["userAccountControl"] == 512
    assert run("ldap.enable_user", ctx(tenant, directory, conn=ad), username="carol")["changed"] is True
    assert read(directory, CAROL)["useraccountcontrol"] == [b"512"]

    reset = run(
        "ldap.reset_password", ctx(tenant, directory, conn=ad), username="carol", return_password=True
    )
    entry = read(directory, CAROL)
    assert entry["pwdlastset"] == [b"0"]
    assert entry["unicodepwd"] == [f'"{reset["password"]}"'.encode("utf-16-le")]


def test_errors_name_the_user_and_the_server_answer(tenant: str, directory: str) -> None:
    with pytest.raises(ActionError, match="no user 'nobody' \\(uid\\)"):
        run("ldap.disable_user", ctx(tenant, directory), username="nobody")
    with pytest.raises(
        ActionError, match=f"bind as {ADMIN} to {directory} failed: invalidCredentials \\(49\\)"
    ):
        run("ldap.find_user", ctx(tenant, directory, password="wrong"), username="alice")
    with pytest.raises(ActionError, match="no group 'auditors'"):
        run("ldap.remove_from_group", ctx(tenant, directory), username="alice", group="auditors")
    private = {**connection(directory), "allow_private": False}
    with pytest.raises(SSRFError, match=f"refused URL '{directory}'.*allow_private"):
        run("ldap.find_user", ctx(tenant, directory, conn=private), username="alice")
    wrong_scheme = {**connection(directory), "base_url": directory.replace("ldap://", "http://")}
    with pytest.raises(ActionError, match="must be ldap://"):
        run("ldap.find_user", ctx(tenant, directory, conn=wrong_scheme), username="alice")
    closed = f"ldap://127.0.0.1:{free_port()}"  # nothing listens there
    with pytest.raises(ActionError, match=f"cannot reach {closed}"):
        run("ldap.find_user", ctx(tenant, closed), username="alice")
    # Unchanged by the failures above.
    assert can_bind(directory, ALICE, PASSWORDS["alice"])
