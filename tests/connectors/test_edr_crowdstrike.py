"""CrowdStrike Falcon actions against a local double of the Falcon API, over a real socket: OAuth2 token,
host lookup with offset/limit paging, containment and its undo, throttling and the vendor's error bodies."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import bastion.connectors.crowdstrike  # noqa: F401  (registers the crowdstrike.* actions)
from bastion.connectors import ActionContext, ActionError, get_action
from bastion.connectors.call import call_action
from bastion.connectors.core import SSRFError
from bastion.connectors.undo import undo_change
from tests.connectors.edr_servers import CrowdStrikeDouble, serve
from tests.connectors.recorded import changes, tenant_store

HOST = "a1b2c3d4e5f60718293a4b5c6d7e8f90"
SECRETS = {
    "crowdstrike_client_id": CrowdStrikeDouble.client_id,
    "crowdstrike_client_secret": CrowdStrikeDouble.client_secret,
}


@pytest.fixture
def falcon() -> Iterator[CrowdStrikeDouble]:
    double = CrowdStrikeDouble()
    double.add(HOST, "WS-042")
    with serve(double) as running:
        assert isinstance(running, CrowdStrikeDouble)
        yield running


def ctx(falcon: CrowdStrikeDouble, secrets: dict[str, str] | None = None, **conn: Any) -> ActionContext:
    connection = {"name": "crowdstrike", "base_url": falcon.base, "allow_private": True, **conn}
    # A tenant of its own per call site: tokens are cached per tenant and token URL.
    return ActionContext(tenant_id=uuid.uuid4().hex, secrets=secrets or dict(SECRETS), connection=connection)


async def call(fn: Any, inputs: dict[str, Any], c: ActionContext) -> Any:
    return await fn(**inputs, ctx=c)


def run(action_id: str, c: ActionContext, **inputs: Any) -> Any:
    defn = get_action(action_id)
    assert defn is not None
    return asyncio.run(call(defn.fn, inputs, c))


def test_get_device_with_oauth_token_reused(falcon: CrowdStrikeDouble) -> None:
    c = ctx(falcon)
    first = run("crowdstrike.get_device", c, device_id=HOST)
    again = run("crowdstrike.get_device", c, device_id=HOST)
    assert first["hostname"] == "WS-042" and first["status"] == "normal" and again["device_id"] == HOST
    token_calls = [r for r in falcon.seen if r["path"] == "/oauth2/token"]
    assert len(token_calls) == 1  # the second call reused the cached token
    assert b"client_id=cs-client-id" in token_calls[0]["body"]
    reads = [r for r in falcon.seen if r["path"] == "/devices/entities/devices/v2"]
    assert [r["query"]["ids"] for r in reads] == [[HOST], [HOST]]
    assert all(r["headers"]["authorization"].startswith("Bearer ") and r["status"] == 200 for r in reads)


def test_find_device_follows_offset_pagination(falcon: CrowdStrikeDouble) -> None:
    ids = [f"{i:032x}" for i in range(1, 6)]
    for device_id in ids:
        falcon.add(device_id, "KIOSK-7")
    out = run("crowdstrike.find_device", ctx(falcon, settings={"page_size": 2}), hostname="KIOSK-7")
    assert out["device_ids"] == ids and out["total"] == 5 and out["found"]
    queries = [r["query"] for r in falcon.seen if r["path"] == "/devices/queries/devices/v1"]
    assert [(q["offset"], q["limit"]) for q in queries] == [(["0"], ["2"]), (["2"], ["2"]), (["4"], ["2"])]
    assert queries[0]["filter"] == ["hostname:'KIOSK-7'"]
    none = run("crowdstrike.find_device", ctx(falcon), hostname="NOPE")
    assert none == {"hostname": "NOPE", "device_ids": [], "found": False, "total": 0}
    with pytest.raises(ActionError, match="invalid hostname"):
        run("crowdstrike.find_device", ctx(falcon), hostname="x' or hostname:'*")


def test_bad_client_secret_gets_falcons_refusal(falcon: CrowdStrikeDouble) -> None:
    bad = {**SECRETS, "crowdstrike_client_secret": "wrong"}
    with pytest.raises(
        ActionError, match=r"^crowdstrike: 403 Failed to issue access token - Not Authorized$"
    ):
        run("crowdstrike.get_device", ctx(falcon, secrets=bad), device_id=HOST)
    assert falcon.paths() == ["/oauth2/token"]


def test_revoked_token_is_fetched_again_once(falcon: CrowdStrikeDouble) -> None:
    c = ctx(falcon)
    run("crowdstrike.get_device", c, device_id=HOST)
    falcon.tokens.clear()  # Falcon revoked it
    out = run("crowdstrike.get_device", c, device_id=HOST)
    assert out["device_id"] == HOST
    statuses = [(r["path"], r["status"]) for r in falcon.seen]
    assert statuses == [
        ("/oauth2/token", 201),
        ("/devices/entities/devices/v2", 200),
        ("/devices/entities/devices/v2", 401),
        ("/oauth2/token", 201),
        ("/devices/entities/devices/v2", 200),
    ]


def test_throttled_call_waits_for_retry_after_then_succeeds(falcon: CrowdStrikeDouble) -> None:
    falcon.throttle = 1
    c = ctx(falcon)
    out = run("crowdstrike.get_device", c, device_id=HOST)
    assert out["hostname"] == "WS-042"
    assert [r["status"] for r in falcon.seen if r["path"] == "/devices/entities/devices/v2"] == [429, 200]
    assert any("429" in line and "retry in 1s" in line for line in c.logs)


def test_throttling_that_does_not_end_fails_after_bounded_retries(falcon: CrowdStrikeDouble) -> None:
    falcon.throttle, falcon.retry_after = 50, "0"
    limited = r"^crowdstrike: 429 API rate limit exceeded\. \(rate limited: gave up after 4 attempt"
    with pytest.raises(ActionError, match=limited):
        run("crowdstrike.get_device", ctx(falcon), device_id=HOST)
    assert len([r for r in falcon.seen if r["status"] == 429]) == 4


def test_unknown_device_and_loopback_without_allowance(falcon: CrowdStrikeDouble) -> None:
    with pytest.raises(ActionError, match=r"^crowdstrike: 404 Device not found\.$"):
        run("crowdstrike.contain_host", ctx(falcon), device_id="f" * 32)
    assert "/devices/entities/devices-actions/v2" not in falcon.paths()
    seen = len(falcon.seen)
    with pytest.raises(SSRFError):
        run("crowdstrike.get_device", ctx(falcon, allow_private=False), device_id=HOST)
    assert len(falcon.seen) == seen


def test_contain_records_change_is_idempotent_and_undo_lifts(
    falcon: CrowdStrikeDouble, tmp_path: Path
) -> None:
    config = {"base_url": falcon.base, "allow_private": True}
    db, tenant = tenant_store(str(tmp_path / "b.db"), "crowdstrike", config, SECRETS)
    out = asyncio.run(
        call_action(db, tenant, "crowdstrike.contain_host", {"device_id": HOST}, caller="test", key="k1")
    )
    assert out["contained"] and not out["already"] and out["status"] == "containment_pending"
    posts = [r for r in falcon.seen if r["method"] == "POST" and r["path"].startswith("/devices/")]
    assert [(p["query"]["action_name"], p["body"], p["status"]) for p in posts] == [
        (["contain"], b'{"ids":["' + HOST.encode() + b'"]}', 202)
    ]
    [change] = changes(db, tenant)
    assert change["id"] == out["change_id"] and change["action"] == "crowdstrike.contain_host"
    assert change["target"] == f"WS-042 ({HOST})" and change["prior"] == {"status": "normal"}
    assert (change["undo_action"], change["undo_inputs"]) == (
        "crowdstrike.lift_containment",
        {"device_id": HOST},
    )
    assert change["connection"] == "crowdstrike"

    # Falcon shows the containment pending: containing again succeeds, says so, and changes nothing.
    again = asyncio.run(
        call_action(db, tenant, "crowdstrike.contain_host", {"device_id": HOST}, caller="test", key="k2")
    )
    assert again["already"] and again["contained"] and again["status"] == "containment_pending"
    settled = run("crowdstrike.contain_host", ctx(falcon), device_id=HOST)
    assert settled["already"] and settled["status"] == "contained"
    assert again["change_id"] is None  # another caller: not this step's change
    assert len([r for r in falcon.seen if r["path"] == "/devices/entities/devices-actions/v2"]) == 1
    assert [c["change"]["idempotency_key"] for c in changes(db, tenant)] == ["k1"]

    undone = asyncio.run(undo_change(db, tenant, out["change_id"], actor="analyst"))
    assert undone["undone"] and undone["error"] is None
    assert undone["output"]["status"] == "lift_containment_pending" and not undone["output"]["already"]
    lifts = [r for r in falcon.seen if r["query"].get("action_name") == ["lift_containment"]]
    assert len(lifts) == 1 and lifts[0]["status"] == 202
    assert falcon.devices[HOST]["status"] == "lift_containment_pending"
    assert changes(db, tenant)[0]["undone_by"] == "analyst"
    lifted = run("crowdstrike.lift_containment", ctx(falcon), device_id=HOST)
    assert lifted["already"] and lifted["status"] == "lift_containment_pending"


def test_retried_step_returns_its_first_change(falcon: CrowdStrikeDouble, tmp_path: Path) -> None:
    config = {"base_url": falcon.base, "allow_private": True}
    db, tenant = tenant_store(str(tmp_path / "b.db"), "crowdstrike", config, SECRETS)
    c = ActionContext(
        tenant_id=tenant,
        run_id="run-1",
        step_id="contain",
        idempotency_key="run-1:contain",
        secrets=dict(SECRETS),
        connection={"name": "crowdstrike", **config},
    )
    first = run("crowdstrike.contain_host", c, device_id=HOST)
    retry = run("crowdstrike.contain_host", c, device_id=HOST)
    assert retry["already"] and retry["change_id"] == first["change_id"] is not None
    assert [c["change"]["idempotency_key"] for c in changes(db, tenant)] == ["run-1:contain"]
