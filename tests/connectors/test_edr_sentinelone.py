"""SentinelOne actions against a local double of the management API (v2.1), over a real socket: ApiToken
auth, agent lookup paged with ``nextCursor``, network disconnect and its undo, throttling and the vendor's
error bodies."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

import bastion.connectors.sentinelone  # noqa: F401  (registers the sentinelone.* actions)
from bastion.connectors import ActionContext, ActionError, get_action
from bastion.connectors.call import call_action
from bastion.connectors.undo import undo_change
from tests.connectors.edr_servers import SentinelOneDouble, serve
from tests.connectors.recorded import changes, tenant_store

AGENT = "1358209342316456789"
SECRETS = {"sentinelone_api_token": SentinelOneDouble.token}


@pytest.fixture
def s1() -> Iterator[SentinelOneDouble]:
    double = SentinelOneDouble()
    double.add(AGENT, "WS-042")
    with serve(double) as running:
        assert isinstance(running, SentinelOneDouble)
        yield running


def ctx(s1: SentinelOneDouble, token: str = SentinelOneDouble.token) -> ActionContext:
    return ActionContext(
        tenant_id="t1",
        secrets={"sentinelone_api_token": token},
        connection={"name": "sentinelone", "base_url": s1.base, "allow_private": True},
    )


async def call(fn: Any, inputs: dict[str, Any], c: ActionContext) -> Any:
    return await fn(**inputs, ctx=c)


def run(action_id: str, c: ActionContext, **inputs: Any) -> Any:
    defn = get_action(action_id)
    assert defn is not None
    return asyncio.run(call(defn.fn, inputs, c))


def test_get_agent_by_id_and_by_name_across_pages(s1: SentinelOneDouble) -> None:
    for i in range(3):
        s1.add(f"99000000000000000{i}", "KIOSK")
    s1.page_size = 2
    one = run("sentinelone.get_agent", ctx(s1), agent_id=AGENT)
    assert one["found"] and one["computer_name"] == "WS-042" and one["network_status"] == "connected"
    kiosks = run("sentinelone.get_agent", ctx(s1), computer_name="KIOSK")
    assert kiosks["count"] == 3 and [a["id"] for a in kiosks["agents"]] == [
        f"99000000000000000{i}" for i in range(3)
    ]
    queries = [r["query"] for r in s1.seen]
    assert queries[0] == {"ids": [AGENT]}
    assert queries[1] == {"computerName": ["KIOSK"]} and queries[2] == {
        "computerName": ["KIOSK"],
        "cursor": ["2"],
    }
    assert all(r["headers"]["authorization"] == f"ApiToken {s1.token}" for r in s1.seen)
    nobody = run("sentinelone.get_agent", ctx(s1), computer_name="NOPE")
    assert not nobody["found"] and nobody["agent_id"] is None
    with pytest.raises(ActionError, match="give agent_id or computer_name"):
        run("sentinelone.get_agent", ctx(s1))


def test_bad_token_gets_sentinelones_401(s1: SentinelOneDouble) -> None:
    with pytest.raises(ActionError, match=r"^sentinelone: 401 4010010 Authentication Failed$"):
        run("sentinelone.disconnect_agent", ctx(s1, token="stale"), agent_id=AGENT)
    assert [(r["status"], r["answer"]["errors"][0]["code"]) for r in s1.seen] == [(401, 4010010)]
    assert s1.agents[AGENT]["networkStatus"] == "connected"


def test_throttled_then_success_and_unknown_agent(s1: SentinelOneDouble) -> None:
    s1.throttle = 1
    out = run("sentinelone.get_agent", ctx(s1), agent_id=AGENT)
    assert out["found"] and [r["status"] for r in s1.seen] == [429, 200]
    assert s1.seen[0]["answer"]["errors"][0]["title"] == "Too many requests"
    with pytest.raises(ActionError, match="no agent with id '404'"):
        run("sentinelone.disconnect_agent", ctx(s1), agent_id="404")
    assert not [r for r in s1.seen if r["method"] == "POST"]


def test_disconnect_records_change_is_idempotent_and_undo_reconnects(
    s1: SentinelOneDouble, tmp_path: Path
) -> None:
    config = {"base_url": s1.base, "allow_private": True}
    db, tenant = tenant_store(str(tmp_path / "b.db"), "sentinelone", config, SECRETS)
    out = asyncio.run(
        call_action(db, tenant, "sentinelone.disconnect_agent", {"agent_id": AGENT}, caller="test", key="k1")
    )
    assert out["disconnected"] and not out["already"] and out["affected"] == 1
    [post] = [r for r in s1.seen if r["method"] == "POST"]
    assert post["path"] == "/web/api/v2.1/agents/actions/disconnect"
    assert orjson.loads(post["body"]) == {"filter": {"ids": [AGENT]}} and post["answer"] == {
        "data": {"affected": 1}
    }
    [change] = changes(db, tenant)
    assert change["id"] == out["change_id"] and change["prior"] == {"networkStatus": "connected"}
    assert (change["undo_action"], change["undo_inputs"]) == (
        "sentinelone.reconnect_agent",
        {"agent_id": AGENT},
    )

    again = run("sentinelone.disconnect_agent", ctx(s1), agent_id=AGENT)
    assert again["already"] and again["network_status"] == "disconnecting"
    assert len([r for r in s1.seen if r["method"] == "POST"]) == 1 and len(changes(db, tenant)) == 1

    undone = asyncio.run(undo_change(db, tenant, out["change_id"], actor="analyst"))
    assert undone["undone"] and undone["output"]["affected"] == 1
    posts = [r["path"] for r in s1.seen if r["method"] == "POST"]
    assert posts[-1] == "/web/api/v2.1/agents/actions/connect" and len(posts) == 2
    assert s1.agents[AGENT]["networkStatus"] == "connecting"
    back = run("sentinelone.reconnect_agent", ctx(s1), agent_id=AGENT)
    assert back["already"] and not back["disconnected"]
