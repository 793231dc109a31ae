"""Microsoft Defender for Endpoint actions against a local double of the Entra token endpoint and the
Defender API, over a real socket: client-credentials token, machine actions, isolation state paged with
``@odata.nextLink``, isolation and its undo, throttling and the vendor's error bodies."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

import bastion.connectors.defender  # noqa: F401  (registers the defender.* actions)
from bastion.connectors import ActionContext, ActionError, get_action
from bastion.connectors.call import call_action
from bastion.connectors.undo import undo_change
from tests.connectors.edr_servers import DEFENDER_SCOPE, DefenderDouble, serve
from tests.connectors.recorded import changes, tenant_store

MACHINE = "1e5bc9d7e413ddd7902c2932e418702b84d0cc07"
OTHER = "0a1b2c3d4e5f60718293a4b5c6d7e8f901234567"
SECRETS = {
    "defender_client_id": DefenderDouble.client_id,
    "defender_client_secret": DefenderDouble.client_secret,
}


@pytest.fixture
def mde() -> Iterator[DefenderDouble]:
    double = DefenderDouble()
    double.add(MACHINE, "ws-042.contoso.com")
    double.add(OTHER, "srv-db1.contoso.com")
    with serve(double) as running:
        assert isinstance(running, DefenderDouble)
        yield running


def config(mde: DefenderDouble, **settings: Any) -> dict[str, Any]:
    login = {"azure_tenant_id": mde.azure_tenant, "login_url": mde.base, **settings}
    return {"base_url": mde.base, "allow_private": True, "settings": login}


def ctx(mde: DefenderDouble, secrets: dict[str, str] | None = None, **settings: Any) -> ActionContext:
    return ActionContext(
        tenant_id=uuid.uuid4().hex,
        secrets=secrets or dict(SECRETS),
        connection={"name": "defender", **config(mde, **settings)},
    )


async def call(fn: Any, inputs: dict[str, Any], c: ActionContext) -> Any:
    return await fn(**inputs, ctx=c)


def run(action_id: str, c: ActionContext, **inputs: Any) -> Any:
    defn = get_action(action_id)
    assert defn is not None
    return asyncio.run(call(defn.fn, inputs, c))


def test_get_machine_with_client_credentials_token(mde: DefenderDouble) -> None:
    out = run("defender.get_machine", ctx(mde), machine_id=MACHINE)
    assert out["computer_name"] == "ws-042.contoso.com" and out["health_status"] == "Active"
    token, read = mde.seen
    assert token["path"] == f"/{mde.azure_tenant}/oauth2/v2.0/token" and token["status"] == 200
    from urllib.parse import parse_qs

    form = parse_qs(token["body"].decode())
    assert form["grant_type"] == ["client_credentials"] and form["scope"] == [DEFENDER_SCOPE]
    assert read["path"] == f"/api/machines/{MACHINE}" and read["headers"]["authorization"].startswith(
        "Bearer "
    )


def test_find_machine_by_dns_name_across_pages(mde: DefenderDouble) -> None:
    """The machine list filtered on computerDnsName (OData), every page; names compare like Defender's."""
    for i in range(3):  # the double pages 2 machines at a time: 4 of this name means two pages
        mde.add(f"{i:040x}", "WS-042.contoso.com")
    out = run("defender.find_machine", ctx(mde), hostname="ws-042.contoso.com")
    assert out["found"] is True and out["total"] == 4 and MACHINE in out["machine_ids"]
    reads = [r for r in mde.seen if r["path"] == "/api/machines"]
    assert len(reads) == 2 and "computerDnsName eq 'ws-042.contoso.com'" in reads[0]["query"]["$filter"][0]
    none = run("defender.find_machine", ctx(mde), hostname="no-such-host")
    assert none == {"hostname": "no-such-host", "machine_ids": [], "found": False, "total": 0}
    with pytest.raises(ActionError, match="invalid hostname"):
        run("defender.find_machine", ctx(mde), hostname="x' or 1 eq 1")


def test_refusals_carry_the_vendors_error(mde: DefenderDouble) -> None:
    bad = {**SECRETS, "defender_client_secret": "nope"}
    with pytest.raises(
        ActionError, match=r"^defender: 401 invalid_client: AADSTS7000215: Invalid client secret"
    ):
        run("defender.get_machine", ctx(mde, secrets=bad), machine_id=MACHINE)
    with pytest.raises(ActionError, match=r"^defender: 400 invalid_request: AADSTS90002"):
        run("defender.get_machine", ctx(mde, azure_tenant_id="someone-else"), machine_id=MACHINE)
    with pytest.raises(
        ActionError, match=r"^defender: 404 ResourceNotFound Machine f+ was not found \(target "
    ):
        run("defender.get_machine", ctx(mde), machine_id="f" * 40)
    with pytest.raises(ActionError, match="invalid machine id"):
        run("defender.isolate_machine", ctx(mde), machine_id="../machines/x", comment="c")
    with pytest.raises(ActionError, match=r"settings\.azure_tenant_id"):
        run("defender.get_machine", ctx(mde, azure_tenant_id=""), machine_id=MACHINE)
    assert all(not r["path"].startswith("/api/machines/..") for r in mde.seen)


def test_revoked_token_gets_the_api_401_then_a_new_token(mde: DefenderDouble) -> None:
    c = ctx(mde)
    run("defender.get_machine", c, machine_id=MACHINE)
    mde.tokens.clear()
    run("defender.get_machine", c, machine_id=MACHINE)
    assert [r["status"] for r in mde.seen] == [200, 200, 401, 200, 200]
    assert mde.seen[2]["answer"]["error"]["code"] == "Unauthorized"


def test_av_scan_and_investigation_package(mde: DefenderDouble) -> None:
    c = ctx(mde)
    scan = run("defender.run_av_scan", c, machine_id=MACHINE, comment="IR-12 sweep", scan_type="Full")
    assert (
        scan["type"] == "RunAntiVirusScan"
        and scan["status"] == "Pending"
        and scan["action"]["scope"] == "Full"
    )
    package = run("defender.collect_investigation_package", c, machine_id=MACHINE, comment="IR-12 evidence")
    assert package["type"] == "CollectInvestigationPackage" and package["action_id"]
    posts = [
        (r["path"], orjson.loads(r["body"]), r["status"])
        for r in mde.seen
        if r["method"] == "POST" and "/api/" in r["path"]
    ]
    assert posts == [
        (f"/api/machines/{MACHINE}/runAntiVirusScan", {"Comment": "IR-12 sweep", "ScanType": "Full"}, 201),
        (f"/api/machines/{MACHINE}/collectInvestigationPackage", {"Comment": "IR-12 evidence"}, 201),
    ]
    with pytest.raises(
        ActionError, match=r"^defender: 400 ActiveRequestAlreadyExists Action is already in progress"
    ):
        run("defender.collect_investigation_package", c, machine_id=MACHINE, comment="again")


def test_throttled_then_success(mde: DefenderDouble) -> None:
    c = ctx(mde)
    run("defender.get_machine", c, machine_id=MACHINE)
    mde.throttle = 1
    out = run("defender.get_machine", c, machine_id=MACHINE)
    assert out["machine_id"] == MACHINE
    assert [r["status"] for r in mde.seen if r["path"].startswith("/api/")] == [200, 429, 200]
    mde.throttle, mde.retry_after = 9, "0"
    with pytest.raises(ActionError, match=r"^defender: 429 TooManyRequests Too many requests"):
        run("defender.get_machine", c, machine_id=MACHINE)


def test_isolate_records_change_is_idempotent_and_undo_releases(mde: DefenderDouble, tmp_path: Path) -> None:
    db, tenant = tenant_store(str(tmp_path / "b.db"), "defender", config(mde), SECRETS)
    c = ActionContext(tenant_id=tenant, secrets=dict(SECRETS), connection={"name": "defender", **config(mde)})
    # Earlier history of both machines, more than one page of machine actions.
    run("defender.run_av_scan", c, machine_id=MACHINE, comment="old scan")
    run("defender.run_av_scan", c, machine_id=OTHER, comment="other machine")
    run("defender.collect_investigation_package", c, machine_id=MACHINE, comment="old package")
    run("defender.isolate_machine", c, machine_id=OTHER, comment="other isolated")

    out = asyncio.run(
        call_action(
            db,
            tenant,
            "defender.isolate_machine",
            {"machine_id": MACHINE, "comment": "Malware on ws-042", "isolation_type": "Selective"},
            caller="test",
            key="k1",
        )
    )
    assert out["isolated"] and not out["already"] and out["type"] == "Isolate" and out["status"] == "Pending"
    isolate = [r for r in mde.seen if r["path"] == f"/api/machines/{MACHINE}/isolate"]
    assert [orjson.loads(r["body"]) for r in isolate] == [
        {"Comment": "Malware on ws-042", "IsolationType": "Selective"}
    ]
    [change] = [ch for ch in changes(db, tenant) if ch["target"] == MACHINE]
    assert change["id"] == out["change_id"] and change["target"] == MACHINE
    assert change["undo_action"] == "defender.release_machine"
    assert change["undo_inputs"] == {
        "machine_id": MACHINE,
        "comment": "Undo of Bastion isolation: Malware on ws-042",
    }
    assert change["change"]["machine_action"] == out["action_id"]

    # The isolation is pending: isolating again succeeds, says so, and posts nothing.
    again = run("defender.isolate_machine", c, machine_id=MACHINE, comment="again")
    assert again["already"] and again["isolated"] and again["change_id"] is None
    assert len([r for r in mde.seen if r["path"] == f"/api/machines/{MACHINE}/isolate"]) == 1
    pages = [r for r in mde.seen if r["path"] == "/api/machineactions" and MACHINE in str(r["query"])]
    assert pages[0]["query"]["$filter"] == [f"machineId eq '{MACHINE}'"]
    assert any("$skip" in r["query"] for r in pages)  # the @odata.nextLink was followed

    undone = asyncio.run(undo_change(db, tenant, out["change_id"], actor="analyst"))
    assert undone["undone"] and undone["output"]["type"] == "Unisolate" and not undone["output"]["already"]
    [release] = [r for r in mde.seen if r["path"] == f"/api/machines/{MACHINE}/unisolate"]
    assert orjson.loads(release["body"]) == {"Comment": "Undo of Bastion isolation: Malware on ws-042"}
    assert release["status"] == 201
    second = run("defender.release_machine", c, machine_id=MACHINE, comment="again")
    assert second["already"] and not second["isolated"]
    other = run("defender.isolate_machine", c, machine_id=OTHER, comment="still isolated")
    assert other["already"]
