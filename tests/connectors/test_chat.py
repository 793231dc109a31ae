"""Chat and paging actions against local doubles of Slack, Teams, PagerDuty and a signed-webhook
receiver (over real sockets), and ``email.send`` against a real ``aiosmtpd`` server."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from collections.abc import Iterator
from typing import Any

import pytest

import bastion.connectors.email
import bastion.connectors.pagerduty
import bastion.connectors.slack
import bastion.connectors.teams
import bastion.connectors.webhook  # noqa: F401  (registers the actions in this process)
from bastion.config import Settings
from bastion.connectors import ActionContext, ActionError, get_action
from bastion.connectors.core import SSRFError
from bastion.connectors.settings import using_settings
from bastion.connectors.vendor_http import VendorRateLimited
from bastion.connectors.webhook import sign, verify
from tests.approvals.conftest import Smtp, smtp  # noqa: F401  (the real SMTP server fixture)
from tests.connectors.saas_servers import PagerDutyDouble, SlackDouble, TeamsDouble, WebhookReceiver, serve


def call(action_id: str, inputs: dict[str, Any], ctx: ActionContext) -> Any:
    defn = get_action(action_id)
    assert defn is not None, action_id

    async def go() -> Any:
        return await defn.fn(**inputs, ctx=ctx)

    return asyncio.run(go())


def ctx(base_url: str | None, secrets: dict[str, str], **kw: Any) -> ActionContext:
    conn: dict[str, Any] = {"allow_private": True}
    if base_url:
        conn["base_url"] = base_url
    return ActionContext(tenant_id="t1", secrets=secrets, connection=conn, **kw)


# ------------------------------------------------------------------------------------------ Slack


@pytest.fixture
def slack() -> Iterator[SlackDouble]:
    with serve(SlackDouble()) as double:
        assert isinstance(double, SlackDouble)
        yield double


def slack_ctx(slack: SlackDouble, token: str | None = None) -> ActionContext:
    return ctx(f"{slack.url}/api/", {"slack_bot_token": token or slack.token})


def test_slack_posts_with_the_bot_token_to_a_channel_by_name_or_id(slack: SlackDouble) -> None:
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*Host isolated*"}}]
    out = call(
        "slack.post_message", {"channel": "#soc", "text": "Host isolated", "blocks": blocks}, slack_ctx(slack)
    )
    assert out["ok"] is True and out["channel"] == "C024BE91L" and out["ts"].endswith(".000100")
    seen = slack.requests[-1]
    assert seen.path == "/api/chat.postMessage"
    assert seen.headers["authorization"] == f"Bearer {slack.token}"
    assert slack.posted[-1]["blocks"] == blocks
    reply = call(
        "slack.post_message",
        {"channel": "C024BE91L", "text": "done", "thread_ts": out["ts"]},
        slack_ctx(slack),
    )
    assert reply["channel"] == "C024BE91L" and slack.posted[-1]["thread_ts"] == out["ts"]


def test_slack_errors_in_an_ok_false_body_become_action_errors(slack: SlackDouble) -> None:
    with pytest.raises(ActionError, match=r"^slack: 200 channel_not_found$"):
        call("slack.post_message", {"channel": "#nowhere", "text": "x"}, slack_ctx(slack))
    with pytest.raises(ActionError, match=r"^slack: 200 invalid_auth$"):
        call("slack.post_message", {"channel": "#soc", "text": "x"}, slack_ctx(slack, "xoxb-wrong"))
    no_token = ctx(f"{slack.url}/api/", {})
    with pytest.raises(ActionError, match="secret 'slack_bot_token' is not set"):
        call("slack.post_message", {"channel": "#soc", "text": "x"}, no_token)
    assert slack.posted == []


def test_slack_waits_out_a_429_then_posts(slack: SlackDouble) -> None:
    slack.throttle(1)
    out = call("slack.post_message", {"channel": "#soc", "text": "after the limit"}, slack_ctx(slack))
    assert out["ok"] is True
    assert len(slack.requests) == 2 and len(slack.posted) == 1


def test_slack_refuses_loopback_without_allow_private(slack: SlackDouble) -> None:
    guarded = ActionContext(
        tenant_id="t1", secrets={"slack_bot_token": slack.token}, connection={"base_url": f"{slack.url}/api/"}
    )
    with pytest.raises(SSRFError):
        call("slack.post_message", {"channel": "#soc", "text": "x"}, guarded)
    assert slack.requests == []


# ------------------------------------------------------------------------------------------ Teams


@pytest.fixture
def teams() -> Iterator[TeamsDouble]:
    with serve(TeamsDouble()) as double:
        assert isinstance(double, TeamsDouble)
        yield double


def test_teams_posts_an_adaptive_card_to_the_webhook_in_the_secret(teams: TeamsDouble) -> None:
    inputs = {
        "title": "Account suspended",
        "text": "bob@acme.example.org was suspended pending investigation.",
        "facts": {"User": "bob", "Case": 42},
        "link": "https://bastion.example.org/cases/42",
    }
    out = call("teams.post_card", inputs, ctx(None, {"teams_webhook_url": teams.url + teams.path}))
    assert out == {"delivered": True, "status": 200}
    card = teams.cards[-1]
    assert card["version"] == "1.4"
    assert card["body"][0]["text"] == "Account suspended"
    assert card["body"][2] == {
        "type": "FactSet",
        "facts": [{"title": "User", "value": "bob"}, {"title": "Case", "value": "42"}],
    }
    assert card["actions"][0]["url"] == "https://bastion.example.org/cases/42"


def test_teams_wrong_webhook_and_missing_secret(teams: TeamsDouble) -> None:
    with pytest.raises(ActionError, match=r"^teams: 404 Webhook not found$"):
        call(
            "teams.post_card",
            {"title": "t", "text": "x"},
            ctx(None, {"teams_webhook_url": teams.url + "/webhookb2/other"}),
        )
    with pytest.raises(ActionError, match="secret 'teams_webhook_url' is not set"):
        call("teams.post_card", {"title": "t", "text": "x"}, ctx(None, {}))
    assert teams.cards == []


# -------------------------------------------------------------------------------------- PagerDuty


@pytest.fixture
def pagerduty() -> Iterator[PagerDutyDouble]:
    with serve(PagerDutyDouble()) as double:
        assert isinstance(double, PagerDutyDouble)
        yield double


def test_pagerduty_trigger_is_idempotent_per_step_and_resolve_closes_it(pagerduty: PagerDutyDouble) -> None:
    c = ctx(pagerduty.url, {"pagerduty_routing_key": pagerduty.routing_key}, idempotency_key="run-1:page")
    inputs = {
        "summary": "Ransomware on ws-17",
        "source": "ws-17",
        "severity": "critical",
        "custom_details": {"case": 7},
    }
    first = call("pagerduty.trigger", inputs, c)
    again = call("pagerduty.trigger", inputs, c)
    assert first["status"] == "success" and first["dedup_key"] == again["dedup_key"]
    assert first["dedup_key"].startswith("bastion-")
    event = pagerduty.events[0]
    assert event["routing_key"] == pagerduty.routing_key and event["event_action"] == "trigger"
    assert event["payload"] == {
        "summary": "Ransomware on ws-17",
        "source": "ws-17",
        "severity": "critical",
        "custom_details": {"case": 7},
    }
    assert pagerduty.requests[0].path == "/v2/enqueue"
    assert pagerduty.open_alerts == {first["dedup_key"]}
    done = call("pagerduty.resolve", {"dedup_key": first["dedup_key"]}, c)
    assert done["status"] == "success" and pagerduty.open_alerts == set()


def test_pagerduty_invalid_events_show_the_vendor_errors(pagerduty: PagerDutyDouble) -> None:
    bad_key = ctx(pagerduty.url, {"pagerduty_routing_key": "short"})
    with pytest.raises(
        ActionError, match=r"^pagerduty: 400 Event object is invalid: Length of 'routing_key'"
    ):
        call("pagerduty.trigger", {"summary": "s", "source": "h"}, bad_key)
    good = ctx(pagerduty.url, {"pagerduty_routing_key": pagerduty.routing_key})
    with pytest.raises(ActionError, match=r"'payload.severity' is invalid"):
        call("pagerduty.trigger", {"summary": "s", "source": "h", "severity": "sev1"}, good)
    assert pagerduty.events == []


def test_pagerduty_backs_off_on_429_without_retry_after(pagerduty: PagerDutyDouble) -> None:
    pagerduty.throttle(1)
    c = ctx(pagerduty.url, {"pagerduty_routing_key": pagerduty.routing_key})
    out = call("pagerduty.trigger", {"summary": "s", "source": "h", "dedup_key": "k-1"}, c)
    assert out["dedup_key"] == "k-1" and len(pagerduty.requests) == 2
    assert any("429 rate limited" in line and "retry in 1s" in line for line in c.logs)


# ---------------------------------------------------------------------------------- signed webhook


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with serve(WebhookReceiver()) as double:
        assert isinstance(double, WebhookReceiver)
        yield double


def test_signed_webhook_is_verified_by_the_receiver(receiver: WebhookReceiver) -> None:
    payload = {"event": "case.closed", "case": {"number": 7, "verdict": "true_positive"}, "note": "é"}
    c = ctx(receiver.url, {"webhook_signing_key": receiver.key}, idempotency_key="run-9:hook")
    out = call("webhook.send_signed", {"url": "/hooks/bastion", "payload": payload}, c)
    assert out["status"] == 200 and out["json"] == {"received": True}
    assert receiver.accepted == [payload]
    seen = receiver.requests[-1]
    assert seen.path == "/hooks/bastion" and seen.headers["content-type"] == "application/json"
    ts = seen.headers["x-bastion-timestamp"]
    mac = hmac.new(receiver.key.encode(), ts.encode() + b"." + seen.body, hashlib.sha256).hexdigest()
    assert seen.headers["x-bastion-signature"] == f"v1={mac}"
    assert seen.headers["x-bastion-delivery"] == out["delivery"]
    assert verify(receiver.key, ts, seen.body, seen.headers["x-bastion-signature"])
    assert not verify("other-key", ts, seen.body, seen.headers["x-bastion-signature"])
    assert not verify(receiver.key, ts, seen.body + b" ", seen.headers["x-bastion-signature"])
    old = str(int(time.time()) - 3600)
    assert not verify(receiver.key, old, seen.body, sign(receiver.key, old, seen.body))


def test_signed_webhook_wrong_key_is_refused_and_429_is_retried(receiver: WebhookReceiver) -> None:
    with pytest.raises(ActionError, match=r"^webhook: 401 .*invalid signature"):
        call(
            "webhook.send_signed",
            {"url": "/h", "payload": {"a": 1}},
            ctx(receiver.url, {"webhook_signing_key": "wrong"}),
        )
    receiver.throttle(1)
    out = call(
        "webhook.send_signed",
        {"url": "/h", "payload": {"a": 2}},
        ctx(receiver.url, {"webhook_signing_key": receiver.key}),
    )
    assert out["status"] == 200 and receiver.accepted == [{"a": 2}]


def test_a_rate_limit_that_never_ends_fails_after_bounded_retries(receiver: WebhookReceiver) -> None:
    c = ctx(receiver.url, {"webhook_signing_key": receiver.key})
    receiver.retry_after = "0"
    receiver.throttle(100)
    with pytest.raises(VendorRateLimited, match=r"^webhook: 429 .*\(rate limited: gave up after 4 attempt"):
        call("webhook.send_signed", {"url": "/h", "payload": {}}, c)
    assert len(receiver.requests) == 4  # the first try and three polite retries
    receiver.retry_after = "3600"
    with pytest.raises(VendorRateLimited, match=r"retry in 3600s\)$"):
        call("webhook.send_signed", {"url": "/h", "payload": {}}, c)
    assert len(receiver.requests) == 5  # too long a wait is not slept through
    assert receiver.accepted == []


# ------------------------------------------------------------------------------------------- e-mail


def test_email_send_is_notify_email_under_the_contract_name(smtp: Smtp) -> None:  # noqa: F811
    settings = Settings(smtp_host=smtp.host, smtp_port=smtp.port, smtp_from="soc@acme.example.org")
    c = ActionContext(tenant_id="t1", idempotency_key="run-3:mail")
    with using_settings(settings):
        out = call(
            "email.send", {"to": ["bob@acme.example.org"], "subject": "Your account", "body": "Reset it."}, c
        )
    assert out["sent"] is True and out["to"] == ["bob@acme.example.org"]
    msg = smtp.inbox.messages[-1]
    assert msg["Subject"] == "Your account" and msg["From"] == "soc@acme.example.org"
    assert msg["Message-ID"] == out["message_id"]
    with pytest.raises(ActionError, match="invalid e-mail address"), using_settings(settings):
        call("email.send", {"to": "not-an-address", "subject": "s", "body": "b"}, c)
    email_def, notify_def = get_action("email.send"), get_action("notify.email")
    assert email_def is not None and notify_def is not None
    assert email_def.schema == notify_def.schema and email_def.impact == notify_def.impact == "low"
