"""Undo and expiry of the changes response actions recorded: a person undoes one by id (function, API,
CLI), an expired block is removed on time by ``expire_changes`` (``now=`` in the future), a failing undo
is kept on the change and tried again, and every outcome is audited. The undo runs the recorded undo
action through ``call_action`` (here ``edl.remove`` on the real store, seen through the real EDL route).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import select

from bastion.connectors.changes import record_change
from bastion.connectors.edl import create_list, list_entries
from bastion.connectors.registry import ActionContext
from bastion.connectors.undo import (
    AlreadyUndone,
    ChangeNotFound,
    expire_changes,
    get_change,
    list_changes,
    undo_change,
)
from bastion.model import Role
from bastion.store._util import now_ms
from bastion.store.tables import audit_log
from bastion.tenancy.service import create_api_key
from tests.connectors.test_edl import bastion_cli, edl_server, edl_store, run_action

HOUR_MS = 3600 * 1000


@pytest.fixture
def env(tmp_path: Path) -> Iterator[dict[str, Any]]:
    db, tenant_id, key = edl_store(tmp_path)
    token = create_list(db, tenant_id, "c2", actor="test")
    url, stop = edl_server(db)
    yield {"db": db, "tenant": tenant_id, "key": key, "url": url, "token": token}
    stop()
    db.dispose()


def _served(env: dict[str, Any]) -> str:
    with httpx.Client(timeout=30) as http:
        answer = http.get(f"{env['url']}/edl/acme/c2.txt", params={"token": env["token"]})
    assert answer.status_code == 200, answer.text
    return answer.text


def _audit(env: dict[str, Any], action: str) -> list[Any]:
    with env["db"].read() as conn:
        return list(
            conn.execute(
                select(audit_log).where(audit_log.c.tenant_id == env["tenant"], audit_log.c.action == action)
            )
        )


def _change(env: dict[str, Any], change_id: str) -> dict[str, Any]:
    with env["db"].read() as conn:
        found = get_change(conn, env["tenant"], change_id)
    assert found is not None
    return found


def test_a_person_undoes_a_change_by_id(env: dict[str, Any]) -> None:
    db, tid = env["db"], env["tenant"]
    block = run_action("edl.add", tid, key="a", list="c2", value="198.51.100.7", reason="beaconing")
    keep = run_action("edl.add", tid, key="b", list="c2", value="evil.example")
    assert _served(env) == "198.51.100.7\nevil.example\n"

    with db.read() as conn:
        listed = list_changes(conn, tid, open_only=True)
    assert {c["id"] for c in listed} == {block["change_id"], keep["change_id"]}
    first = next(c for c in listed if c["id"] == block["change_id"])
    assert first["undo_action"] == "edl.remove" and first["undo_inputs"] == {
        "list": "c2",
        "value": "198.51.100.7",
    }
    assert first["prior"] == {"present": False} and first["open"] is True

    result = asyncio.run(undo_change(db, tid, block["change_id"], actor="user:alice"))
    assert result["undone"] is True and result["output"]["removed"] is True
    assert _served(env) == "evil.example\n"
    change = _change(env, block["change_id"])
    assert change["undone_by"] == "user:alice" and change["undone"] is not None and not change["open"]
    entries = _audit(env, "change.undo")
    assert [(e.actor, e.target_id) for e in entries] == [("user:alice", block["change_id"])]
    assert orjson.loads(entries[0].data)["undo_action"] == "edl.remove"

    with db.read() as conn:
        assert [c["id"] for c in list_changes(conn, tid, open_only=True)] == [keep["change_id"]]
        assert len(list_changes(conn, tid)) == 2
    with pytest.raises(AlreadyUndone):
        asyncio.run(undo_change(db, tid, block["change_id"], actor="user:alice"))
    with pytest.raises(ChangeNotFound):
        asyncio.run(undo_change(db, tid, "0" * 32, actor="user:alice"))
    with pytest.raises(ChangeNotFound):  # another tenant's change is not found from this tenant
        asyncio.run(undo_change(db, "f" * 32, keep["change_id"], actor="user:alice"))


def test_an_expired_block_is_removed_on_time_and_others_are_left(env: dict[str, Any]) -> None:
    db, tid = env["db"], env["tenant"]
    short = run_action("edl.add", tid, key="s", list="c2", value="203.0.113.5", expires_in="1h")
    long = run_action("edl.add", tid, key="l", list="c2", value="203.0.113.6", expires_in="48h")
    forever = run_action("edl.add", tid, key="f", list="c2", value="203.0.113.7")
    assert _served(env) == "203.0.113.5\n203.0.113.6\n203.0.113.7\n"

    assert asyncio.run(expire_changes(db)) == []  # nothing is due yet
    later = now_ms() + 2 * HOUR_MS
    done = asyncio.run(expire_changes(db, now=later))
    assert [(d["id"], d["undone"], d["tenant_id"]) for d in done] == [(short["change_id"], True, tid)]
    with db.read() as conn:  # removed from the store, not merely hidden by its expiry
        values = [e["value"] for e in list_entries(conn, tid, "c2", include_expired=True)]
    assert values == ["203.0.113.6", "203.0.113.7"]
    assert _change(env, short["change_id"])["undone_by"] == "expiry"
    assert _change(env, long["change_id"])["open"] and _change(env, forever["change_id"])["open"]
    assert [e.target_id for e in _audit(env, "change.expired")] == [short["change_id"]]
    assert asyncio.run(expire_changes(db, now=later)) == []  # undone once only

    done = asyncio.run(expire_changes(db, now=now_ms() + 49 * HOUR_MS))
    assert [d["id"] for d in done] == [long["change_id"]]
    assert _served(env) == "203.0.113.7\n"


def test_a_failing_undo_is_recorded_and_retried_at_the_next_expiry(env: dict[str, Any]) -> None:
    db, tid = env["db"], env["tenant"]
    ctx = ActionContext(tenant_id=tid, run_id="run-9", step_id="block")
    change_id = record_change(  # its undo names a list that does not exist: edl.remove refuses
        ctx,
        action="edl.add",
        target="gone:192.0.2.1",
        prior={"present": False},
        change={"list": "gone", "value": "192.0.2.1"},
        undo_action="edl.remove",
        undo_inputs={"list": "gone", "value": "192.0.2.1"},
        expires=now_ms() - 1,
    )
    done = asyncio.run(expire_changes(db))
    assert done[0]["undone"] is False and "no blocklist 'gone'" in done[0]["error"]
    change = _change(env, change_id)
    assert change["open"] and "no blocklist 'gone'" in change["undo_error"]
    audited = _audit(env, "change.expired")
    assert orjson.loads(audited[0].data)["ok"] is False

    create_list(db, tid, "gone", actor="test")  # the cause is fixed: the next run undoes it
    done = asyncio.run(expire_changes(db))
    assert [(d["id"], d["undone"]) for d in done] == [(change_id, True)]
    assert _change(env, change_id)["undo_error"] is None


def test_changes_over_the_api_and_the_command_line(env: dict[str, Any]) -> None:
    db, tid = env["db"], env["tenant"]
    one = run_action("edl.add", tid, key="1", list="c2", value="192.0.2.10")
    two = run_action("edl.add", tid, key="2", list="c2", value="192.0.2.11", expires_in="1h")
    viewer = create_api_key(db, "acme", role=Role.VIEWER, actor="test")
    auth = {"Authorization": f"Bearer {env['key']}"}
    with httpx.Client(base_url=env["url"], timeout=30) as http:
        assert http.get("/api/v1/changes").status_code == 401
        listed = http.get("/api/v1/changes", headers=auth).json()["changes"]
        assert {c["id"] for c in listed} == {one["change_id"], two["change_id"]}
        denied = http.post(
            f"/api/v1/changes/{one['change_id']}/undo", headers={"Authorization": f"Bearer {viewer}"}
        )
        assert denied.status_code == 403
        undone = http.post(f"/api/v1/changes/{one['change_id']}/undo", headers=auth)
        assert undone.status_code == 200, undone.text
        assert undone.json()["undone"] is True and undone.json()["undone_by"].startswith("apikey:")
        assert http.post(f"/api/v1/changes/{one['change_id']}/undo", headers=auth).status_code == 409
        assert http.post(f"/api/v1/changes/{'0' * 32}/undo", headers=auth).status_code == 404
        still_open = http.get("/api/v1/changes", headers=auth, params={"open": "true"}).json()["changes"]
        assert [c["id"] for c in still_open] == [two["change_id"]]
    assert _served(env) == "192.0.2.11\n"

    shown = bastion_cli(db, "changes", "list", "-t", "acme", "--open", "--json")
    assert shown.exit_code == 0, shown.output
    assert [c["id"] for c in orjson.loads(shown.stdout)["changes"]] == [two["change_id"]]
    expired = bastion_cli(db, "changes", "expire", "--json")
    assert expired.exit_code == 0 and orjson.loads(expired.stdout) == {"expired": []}  # not due yet
    undo = bastion_cli(db, "changes", "undo", two["change_id"], "-t", "acme", "--as", "bob", "--json")
    assert undo.exit_code == 0, undo.output
    assert orjson.loads(undo.stdout)["undone_by"] == "user:bob"
    assert _served(env) == ""
