"""Slack end to end: the request goes out as a Block Kit message through ``slack-sdk`` to a local server
speaking the Slack Web API subset (``chat.postMessage``, ``chat.update``, ``users.info``) over a real
socket; the test then posts signed interaction payloads to Bastion's endpoint (real uvicorn). A bad
signature or a stale timestamp is refused; the Slack user is mapped to a Bastion user per tenant."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlencode

import httpx
import orjson
import pytest
from tests.approvals.conftest import SIGNING_SECRET, SLACK_TOKEN, FakeSlack, Org, make_org
from tests.conftest import RunningServer, start_server

from bastion.respond.approvals import (
    Approval,
    ApprovalError,
    ApprovalSpec,
    get_approval,
    map_slack_user,
    request_approval,
    set_slack_channel,
)
from bastion.store import Database, TenantScope

ENDPOINT = "/api/v1/approvals/slack/actions"


@pytest.fixture
def server(sqlite_db: Database, fake_slack: FakeSlack) -> Iterator[RunningServer]:
    running, srv, thread = start_server(
        sqlite_db,
        approval_link_key="k",
        slack_bot_token=SLACK_TOKEN,
        slack_signing_secret=SIGNING_SECRET,
        slack_api_url=fake_slack.url,
        slack_channel="#soc-approvals",
    )
    yield running
    srv.should_exit = True
    thread.join(10)
    running.queue.close()


@pytest.fixture
def org(server: RunningServer) -> Org:
    return make_org(server.db, "acme")


def ask(server: RunningServer, org: Org, approval_id: str = "run1:isolate", quorum: int = 1) -> Approval:
    return request_approval(
        org.db,
        org.id,
        approval_id=approval_id,
        run_id=approval_id.split(":")[0],
        step_id="isolate",
        action="edr.isolate_host",
        summary="Isolate ws-7",
        target={"host": "ws-7"},
        reason="ransomware note found",
        requested_by="alice",
        spec=ApprovalSpec(roles=["approver"], quorum=quorum, channels=["web", "slack"]),
        settings=server.settings,
    )


def button(fake: FakeSlack, approval_id: str, action_id: str) -> dict[str, Any]:
    for post in fake.called("chat.postMessage"):
        for block in post["blocks"]:
            for element in block.get("elements", []):
                value = element.get("value")
                if element.get("action_id") == action_id and orjson.loads(value)["a"] == approval_id:
                    return element
    raise AssertionError(f"no {action_id} button for {approval_id}")


def click(
    fake: FakeSlack,
    approval_id: str,
    slack_user: str,
    action_id: str = "bastion_approve",
    comment: str | None = None,
) -> bytes:
    element = button(fake, approval_id, action_id)
    payload: dict[str, Any] = {
        "type": "block_actions",
        "user": {"id": slack_user, "username": slack_user.lower(), "team_id": "T0ACME"},
        "team": {"id": "T0ACME"},
        "channel": {"id": "C0APPROVALS", "name": "soc-approvals"},
        "container": {"type": "message", "message_ts": "1700000000.000001", "channel_id": "C0APPROVALS"},
        "actions": [
            {
                "type": "button",
                "block_id": "bastion_approval",
                "action_id": element["action_id"],
                "value": element["value"],
                "action_ts": str(time.time()),
            }
        ],
    }
    if comment is not None:  # what Slack sends for the message's comment box when the button is clicked
        payload["state"] = {
            "values": {
                "bastion_comment": {"bastion_comment_text": {"type": "plain_text_input", "value": comment}}
            }
        }
    return urlencode({"payload": orjson.dumps(payload).decode()}).encode()


def signed(body: bytes, *, ts: int | None = None, secret: str = SIGNING_SECRET) -> dict[str, str]:
    stamp = str(int(time.time()) if ts is None else ts)
    base = b"v0:" + stamp.encode() + b":" + body
    digest = hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return {
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": f"v0={digest}",
        "Content-Type": "application/x-www-form-urlencoded",
    }


def test_slack_approval_end_to_end(
    server: RunningServer, org: Org, fake_slack: FakeSlack, resolved: list[Approval]
) -> None:
    a = ask(server, org)
    [post] = fake_slack.called("chat.postMessage")
    assert post["channel"] == "#soc-approvals" and "Isolate ws-7" in post["text"]
    actions = [b for b in post["blocks"] if b["type"] == "actions"]
    assert [e["text"]["text"] for e in actions[0]["elements"]] == ["Approve", "Deny"]
    where = get_approval(org.db, org.id, a.id).delivery["slack"]
    assert where["channel"] == "C0APPROVALS" and where["ts"]
    map_slack_user(org.db, org.id, "U0BOB", "bob", actor="test")
    body = click(fake_slack, a.id, "U0BOB")
    with httpx.Client(base_url=server.url, timeout=30) as c:
        r = c.post(ENDPOINT, content=body, headers=signed(body))
    assert r.status_code == 200 and r.json() == {"ok": True, "approval": a.id, "status": "approved"}
    a = get_approval(org.db, org.id, a.id)
    assert [(d.user, d.decision, d.channel) for d in a.decisions] == [("bob", "approve", "slack")]
    assert [x.id for x in resolved] == [a.id]
    [update] = fake_slack.called("chat.update")
    assert (update["channel"], update["ts"]) == (where["channel"], where["ts"])
    assert not any(b["type"] == "actions" for b in update["blocks"])
    assert "APPROVED" in orjson.dumps(update["blocks"]).decode()
    # A repeated request (engine retry) posts nothing again.
    ask(server, org)
    assert len(fake_slack.called("chat.postMessage")) == 1


def test_a_comment_typed_in_slack_is_recorded_with_the_decision(
    server: RunningServer, org: Org, fake_slack: FakeSlack
) -> None:
    a = ask(server, org)
    [post] = fake_slack.called("chat.postMessage")
    [box] = [b for b in post["blocks"] if b["type"] == "input"]
    assert box["block_id"] == "bastion_comment" and box["optional"] is True
    assert box["element"] == {
        **box["element"],
        "type": "plain_text_input",
        "action_id": "bastion_comment_text",
    }
    map_slack_user(org.db, org.id, "U0BOB", "bob", actor="test")
    body = click(
        fake_slack, a.id, "U0BOB", "bastion_deny", comment="  host is the CFO's laptop; call first  "
    )
    with httpx.Client(base_url=server.url, timeout=30) as c:
        r = c.post(ENDPOINT, content=body, headers=signed(body))
    assert r.status_code == 200 and r.json()["status"] == "denied"
    [d] = get_approval(org.db, org.id, a.id).decisions
    assert (d.user, d.decision, d.channel, d.comment) == (
        "bob",
        "deny",
        "slack",
        "host is the CFO's laptop; call first",
    )
    [update] = fake_slack.called("chat.update")
    assert not any(b["type"] in ("input", "actions") for b in update["blocks"])
    assert "CFO's laptop" in orjson.dumps(update["blocks"]).decode()
    with org.db.read() as conn:
        decided = [e for e in TenantScope(conn, org.id).audit.entries() if e.action == "approval.decide"]
    assert decided[-1].data["comment"] == "host is the CFO's laptop; call first"


def test_an_empty_comment_box_records_no_comment(
    server: RunningServer, org: Org, fake_slack: FakeSlack
) -> None:
    a = ask(server, org)
    map_slack_user(org.db, org.id, "U0BOB", "bob", actor="test")
    body = click(fake_slack, a.id, "U0BOB", comment="   ")
    with httpx.Client(base_url=server.url, timeout=30) as c:
        assert c.post(ENDPOINT, content=body, headers=signed(body)).status_code == 200
    assert [d.comment for d in get_approval(org.db, org.id, a.id).decisions] == [None]


def test_bad_or_stale_signatures_are_refused(server: RunningServer, org: Org, fake_slack: FakeSlack) -> None:
    a = ask(server, org)
    map_slack_user(org.db, org.id, "U0BOB", "bob", actor="test")
    body = click(fake_slack, a.id, "U0BOB")
    tampered = body.replace(b"bastion_approve", b"bastion_deny")
    with httpx.Client(base_url=server.url, timeout=30) as c:
        cases = [
            (body, signed(body, secret="not-the-secret"), "does not match"),
            (body, signed(body, ts=int(time.time()) - 400), "older than five minutes"),
            (tampered, signed(body), "does not match"),
            (body, {"Content-Type": "application/x-www-form-urlencoded"}, "missing"),
            (body, {**signed(body), "X-Slack-Request-Timestamp": "soon"}, "not a number"),
        ]
        for content, headers, reason in cases:
            r = c.post(ENDPOINT, content=content, headers=headers)
            assert r.status_code == 401 and reason in r.json()["error"], r.text
    assert get_approval(org.db, org.id, a.id).decisions == []
    assert fake_slack.called("chat.update") == []


def test_slack_users_are_mapped_per_tenant(server: RunningServer, org: Org, fake_slack: FakeSlack) -> None:
    a = ask(server, org, quorum=2)
    other = make_org(org.db, "globex")
    map_slack_user(org.db, other.id, "U0EVE", "bob", actor="test")  # bob of globex, not of acme
    map_slack_user(org.db, org.id, "U0VIC", "vic", actor="test")
    fake_slack.emails["U0CAROL"] = "carol@acme.example.org"
    with httpx.Client(base_url=server.url, timeout=30) as c:
        body = click(fake_slack, a.id, "U0EVE")
        r = c.post(ENDPOINT, content=body, headers=signed(body))
        assert r.status_code == 403 and "not linked" in r.json()["error"]
        body = click(fake_slack, a.id, "U0VIC")
        r = c.post(ENDPOINT, content=body, headers=signed(body))
        assert r.status_code == 403 and "role 'viewer'" in r.json()["error"]
        # The person who clicked is told why, privately, in the channel.
        told = fake_slack.called("chat.postEphemeral")
        assert [(t["user"], t["channel"]) for t in told] == [
            ("U0EVE", "C0APPROVALS"),
            ("U0VIC", "C0APPROVALS"),
        ]
        assert "role 'viewer'" in told[-1]["text"]
        # No stored mapping: the e-mail on the Slack profile (users.info) finds carol.
        body = click(fake_slack, a.id, "U0CAROL", "bastion_deny")
        r = c.post(ENDPOINT, content=body, headers=signed(body))
        assert r.status_code == 200 and r.json()["status"] == "denied"
        r = c.post(ENDPOINT, content=body, headers=signed(body))
        assert r.status_code == 409
        junk = urlencode({"payload": "{}"}).encode()
        r = c.post(ENDPOINT, content=junk, headers=signed(junk))
        assert r.status_code == 400 and "block_actions" in r.json()["error"]
    assert [(d.user, d.decision) for d in get_approval(org.db, org.id, a.id).decisions] == [("carol", "deny")]


def test_mapping_slack_users_over_the_api(server: RunningServer, org: Org, fake_slack: FakeSlack) -> None:
    a = ask(server, org)
    with server.client(org.key_for("bob")) as c:
        r = c.put("/api/v1/approvals/slack-users/U0CAROL", json={"user": "carol"})
        assert r.status_code == 403 and "needs admin" in r.json()["error"]
    with server.client(org.admin_key) as c:
        r = c.put("/api/v1/approvals/slack-users/U0CAROL", json={"user": "ghost"})
        assert r.status_code == 400 and "no active user 'ghost'" in r.json()["error"]
        r = c.put("/api/v1/approvals/slack-users/U0CAROL", json={"user": "carol"})
        assert r.status_code == 200 and r.json() == {"slack_user_id": "U0CAROL", "user": "carol"}
    body = click(fake_slack, a.id, "U0CAROL")
    with httpx.Client(base_url=server.url, timeout=30) as c:
        r = c.post(ENDPOINT, content=body, headers=signed(body))
    assert r.status_code == 200 and get_approval(org.db, org.id, a.id).decisions[0].user == "carol"


def test_each_tenant_can_have_its_own_channel(server: RunningServer, org: Org, fake_slack: FakeSlack) -> None:
    other = make_org(org.db, "globex")
    set_slack_channel(org.db, other.id, "#globex-soc", actor="test")
    ask(server, org)
    request_approval(
        org.db,
        other.id,
        approval_id="g:1",
        run_id="g",
        step_id="s",
        action="edr.isolate_host",
        summary="Isolate gx-1",
        target={},
        reason="",
        requested_by=None,
        spec=ApprovalSpec(roles=["approver"], channels=["slack"]),
        settings=server.settings,
    )
    assert [p["channel"] for p in fake_slack.called("chat.postMessage")] == ["#soc-approvals", "#globex-soc"]
    set_slack_channel(org.db, other.id, None, actor="test")
    with pytest.raises(ApprovalError, match="1-100 characters"):
        set_slack_channel(org.db, other.id, " ", actor="test")


def test_votes_so_far_are_shown(server: RunningServer, org: Org, fake_slack: FakeSlack) -> None:
    a = ask(server, org, quorum=2)
    map_slack_user(org.db, org.id, "U0BOB", "bob", actor="test")
    body = click(fake_slack, a.id, "U0BOB")
    with httpx.Client(base_url=server.url, timeout=30) as c:
        r = c.post(ENDPOINT, content=body, headers=signed(body))
    assert r.status_code == 200 and r.json()["status"] == "pending"
    [update] = fake_slack.called("chat.update")
    text = orjson.dumps(update["blocks"]).decode()
    assert "1/2 approvals so far: bob (approve)" in text
    assert any(b["type"] == "actions" for b in update["blocks"])  # still open: buttons stay


def test_slack_failure_does_not_lose_the_request(sqlite_db: Database, fake_slack: FakeSlack) -> None:
    from bastion.config import Settings

    org = make_org(sqlite_db, "acme")
    settings = Settings(slack_bot_token="xoxb-wrong", slack_api_url=fake_slack.url, slack_channel="#x")
    a = request_approval(
        sqlite_db,
        org.id,
        approval_id="r:s",
        run_id="r",
        step_id="s",
        action="edr.isolate_host",
        summary="x",
        target={},
        reason="",
        requested_by=None,
        spec=ApprovalSpec(roles=["approver"], channels=["slack"]),
        settings=settings,
    )
    assert a.status == "pending"
    assert get_approval(sqlite_db, org.id, a.id).delivery["errors"] == [
        "slack: Slack refused chat.postMessage: invalid_auth"
    ]


def test_malformed_signed_payloads_are_refused_with_a_reason(
    server: RunningServer, org: Org, fake_slack: FakeSlack
) -> None:
    a = ask(server, org)
    map_slack_user(org.db, org.id, "U0BOB", "bob", actor="test")
    good = orjson.loads(parse_qs(click(fake_slack, a.id, "U0BOB").decode())["payload"][0])
    cases = [
        ({"actions": 5}, "'actions' must be a list"),
        ({"actions": {"0": good["actions"][0]}}, "'actions' must be a list"),
        ({"actions": ["approve"]}, "'actions' must be a list"),
        ({"user": "U0BOB"}, "'user' must be an object"),
        ({"user": {"id": 7}}, "'user' must be an object"),
        ({"container": "x"}, "'container' must be an object"),
        ({"message": 5, "container": None}, "'message' must be an object"),
        ({"channel": ["C0APPROVALS"]}, "'channel' must be an object"),
        ({"container": {"message_ts": 1700000000}}, "container.message_ts must be a string"),
        ({"state": "x"}, "'state' must be an object"),
        ({"state": {"values": []}}, "'state.values' must be an object"),
        (
            {"state": {"values": {"bastion_comment": {"bastion_comment_text": {"value": 5}}}}},
            "must be a string",
        ),
        (
            {"state": {"values": {"bastion_comment": {"bastion_comment_text": {"value": "x" * 4001}}}}},
            "longer than 4000 characters",
        ),
    ]
    with httpx.Client(base_url=server.url, timeout=30) as c:
        for change, reason in cases:
            body = urlencode({"payload": orjson.dumps({**good, **change}).decode()}).encode()
            r = c.post(ENDPOINT, content=body, headers=signed(body))
            assert r.status_code == 400 and reason in r.json()["error"], (change, r.text)
    assert get_approval(org.db, org.id, a.id).decisions == []
