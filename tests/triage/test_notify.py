"""The notification actions against real servers: ``notify.email`` through ``aiosmtpd``, ``notify.webhook``
through a local HTTP server behind the SSRF guard, and both inside a workflow run by the real CLI."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson
import pytest

from bastion.config import Settings
from bastion.connectors import ActionContext, ActionError, get_action
from bastion.connectors.core import SSRFError
from bastion.connectors.settings import using_settings
from bastion.store import Database
from bastion.tenancy.service import create_tenant
from tests.approvals.conftest import Smtp, smtp  # noqa: F401  (the real SMTP server fixture)
from tests.conftest import cli_json, free_port, run_cli


def call(action_id: str, inputs: dict[str, Any], ctx: ActionContext, settings: Settings | None = None) -> Any:
    defn = get_action(action_id)
    assert defn is not None

    async def go() -> Any:
        return await defn.fn(**inputs, ctx=ctx)

    if settings is None:
        return asyncio.run(go())
    with using_settings(settings):
        return asyncio.run(go())


class Hook(BaseHTTPRequestHandler):
    received: list[Any] = []

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        Hook.received.append(orjson.loads(self.rfile.read(length)))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"ok": true}')

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def hook() -> Iterator[str]:
    Hook.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()
    server.server_close()


def test_email_is_sent_with_html_and_a_stable_message_id(smtp: Smtp) -> None:  # noqa: F811
    settings = Settings(smtp_host=smtp.host, smtp_port=smtp.port, smtp_from="soc@acme.example.org")
    ctx = ActionContext(tenant_id="t1", idempotency_key="run1:notify")
    inputs = {
        "to": ["a@acme.example.org", "b@acme.example.org", "a@acme.example.org"],
        "subject": "Case #4\nescalated",
        "body": "Plain words.",
        "html": "<p>Rich words.</p>",
    }
    out = call("notify.email", inputs, ctx, settings)
    assert out["to"] == ["a@acme.example.org", "b@acme.example.org"] and out["subject"] == "Case #4 escalated"
    [mail] = smtp.inbox.messages
    assert mail["From"] == "soc@acme.example.org" and mail["To"] == "a@acme.example.org, b@acme.example.org"
    assert mail["Message-ID"] == out["message_id"]
    parts = {p.get_content_type(): p.get_payload(decode=True) for p in mail.walk() if not p.is_multipart()}
    assert b"Plain words." in parts["text/plain"] and b"Rich words." in parts["text/html"]
    again = call("notify.email", {**inputs, "html": None}, ctx, settings)
    assert again["message_id"] == out["message_id"]  # same logical send, same id
    other = call(
        "notify.email", inputs, ActionContext(tenant_id="t1", idempotency_key="run2:notify"), settings
    )
    assert other["message_id"] != out["message_id"]


def test_email_mistakes_and_missing_configuration() -> None:
    ctx = ActionContext(tenant_id="t1")
    for bad in ([], "", "no-at-sign", ["a@b.c\nBcc: x@y.z"], ["a@b.c, d@e.f"]):
        with pytest.raises(ActionError, match=r"address|recipient"):
            call(
                "notify.email", {"to": bad, "subject": "s", "body": "b"}, ctx, Settings(smtp_host="127.0.0.1")
            )
    with pytest.raises(ActionError, match="BASTION_SMTP_HOST"):
        call("notify.email", {"to": "a@b.c", "subject": "s", "body": "b"}, ctx, Settings(smtp_host=None))
    with pytest.raises(ActionError, match=r"SMTP 127\.0\.0\.1"):
        closed = Settings(smtp_host="127.0.0.1", smtp_port=free_port())
        call("notify.email", {"to": "a@b.c", "subject": "s", "body": "b"}, ctx, closed)


def test_webhook_posts_json_behind_the_ssrf_guard(hook: str) -> None:
    with pytest.raises(SSRFError, match="loopback/private"):
        call("notify.webhook", {"url": hook, "text": "hello"}, ActionContext(tenant_id="t1"))
    assert Hook.received == []
    allowed = ActionContext(tenant_id="t1", connection={"allow_private": True})
    out = call("notify.webhook", {"url": hook, "text": "hello"}, allowed)
    assert out["status"] == 200 and out["json"] == {"ok": True}
    call("notify.webhook", {"url": hook, "payload": {"case": 7, "kind": "contain"}}, allowed)
    assert Hook.received == [{"text": "hello"}, {"case": 7, "kind": "contain"}]
    with pytest.raises(ActionError, match="payload or a text"):
        call("notify.webhook", {"url": hook}, allowed)


def test_actions_are_listed(sqlite_db: Database) -> None:
    found = {a["id"]: a for a in cli_json("actions", "list", db_url=sqlite_db.url)["actions"]}
    assert found["notify.email"]["impact"] == "low" and found["notify.webhook"]["impact"] == "low"
    assert set(found["notify.email"]["input_schema"]["required"]) == {"to", "subject", "body"}
    assert found["notify.webhook"]["input_schema"]["required"] == ["url"]


def test_workflow_notifies_by_email_and_webhook(
    sqlite_db: Database,
    smtp: Smtp,  # noqa: F811
    hook: str,
    tmp_path: Path,
) -> None:
    db = sqlite_db
    create_tenant(db, "acme")
    wf = tmp_path / "notify.yaml"
    wf.write_text(
        """
id: tell-the-team
inputs:
  host: {type: string}
steps:
  - id: mail
    action: notify.email
    with:
      to: soc@acme.example.org
      subject: "Host ${{ inputs.host }} isolated"
      body: "The host ${{ inputs.host }} was isolated by run ${{ run.id }}."
  - id: chat
    action: notify.webhook
    connection: chat
    with: {url: /hook, text: "Host ${{ inputs.host }} isolated"}
"""
    )
    env = {"BASTION_SMTP_HOST": smtp.host, "BASTION_SMTP_PORT": str(smtp.port)}
    base = hook.rsplit("/", 1)[0]
    config = orjson.dumps({"base_url": base, "allow_private": True}).decode()
    run_cli("connection", "set", "chat", "--tenant", "acme", "--config", config, db_url=db.url, check=True)
    run_cli("workflow", "add", str(wf), "--tenant", "acme", db_url=db.url, check=True)
    proc = run_cli(
        "workflow",
        "run",
        "tell-the-team",
        "--tenant",
        "acme",
        "--input",
        "host=ws-042",
        "--wait",
        "--json",
        db_url=db.url,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    result = orjson.loads(proc.stdout)
    assert result["status"] == "succeeded", result
    [mail] = smtp.inbox.messages
    assert mail["Subject"] == "Host ws-042 isolated" and result["run_id"] in mail.get_payload()
    assert Hook.received == [{"text": "Host ws-042 isolated"}]
