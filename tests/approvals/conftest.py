"""Fixtures for the approval tests: a tenant with users of every role, a local server speaking the Slack
Web API subset Bastion uses (over a real socket), and a real ``aiosmtpd`` SMTP server."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson
import pytest
from aiosmtpd.controller import Controller
from tests.conftest import free_port

from bastion.model import Role
from bastion.respond.approvals import set_resolution_listener
from bastion.store import Database
from bastion.tenancy.service import add_user, create_api_key, create_tenant

SLACK_TOKEN = "xoxb-test-token"
SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
USERS = {
    "alice": Role.APPROVER,
    "bob": Role.APPROVER,
    "carol": Role.APPROVER,
    "erin": Role.ENGINEER,
    "ann": Role.ANALYST,
    "vic": Role.VIEWER,
    "root": Role.ADMIN,
}


@dataclass
class Org:
    """A tenant with one user per name in USERS (e-mail ``<name>@example.org``) and its admin key."""

    db: Database
    name: str
    id: str
    admin_key: str

    def key_for(self, user: str) -> str:
        return create_api_key(self.db, self.name, user=user, name=f"key-{user}")


def make_org(db: Database, name: str) -> Org:
    tenant, key = create_tenant(db, name)
    for user, role in USERS.items():
        add_user(db, name, user, role, email=f"{user}@{name}.example.org")
    return Org(db, name, tenant.id, key)


@pytest.fixture
def resolved() -> Iterator[list[Any]]:
    """Every approval announced to the resolution listener, in order."""
    seen: list[Any] = []
    set_resolution_listener(seen.append)
    yield seen
    set_resolution_listener(None)


@dataclass
class FakeSlack:
    url: str
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    emails: dict[str, str] = field(default_factory=dict)

    def called(self, method: str) -> list[dict[str, Any]]:
        return [body for m, body in self.calls if m == method]


def _slack_handler(state: FakeSlack) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_args: Any) -> None:
            pass

        def _args(self) -> dict[str, Any]:
            parts = urlsplit(self.path)
            args: dict[str, Any] = {k: v[0] for k, v in parse_qs(parts.query).items()}
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            ctype = self.headers.get("Content-Type", "")
            if raw and ctype.startswith("application/json"):
                args.update(orjson.loads(raw))
            elif raw:
                args.update({k: v[0] for k, v in parse_qs(raw.decode()).items()})
            return args

        def _answer(self, doc: dict[str, Any]) -> None:
            body = orjson.dumps(doc)
            self.send_response(200)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _handle(self) -> None:
            method = urlsplit(self.path).path.rsplit("/", 1)[-1]
            args = self._args()
            if self.headers.get("Authorization") != f"Bearer {SLACK_TOKEN}":
                self._answer({"ok": False, "error": "invalid_auth"})
                return
            state.calls.append((method, args))
            if method == "chat.postMessage":
                if not args.get("channel"):
                    self._answer({"ok": False, "error": "channel_not_found"})
                    return
                ts = f"1700000000.{len(state.calls):06d}"
                self._answer({"ok": True, "channel": "C0APPROVALS", "ts": ts, "message": {"ts": ts}})
            elif method == "chat.update":
                self._answer({"ok": True, "channel": args.get("channel"), "ts": args.get("ts")})
            elif method == "chat.postEphemeral":
                if not args.get("channel") or not args.get("user"):
                    self._answer({"ok": False, "error": "invalid_arguments"})
                    return
                self._answer({"ok": True, "message_ts": "1700000001.000001"})
            elif method == "users.info":
                email = state.emails.get(str(args.get("user")))
                if email is None:
                    self._answer({"ok": False, "error": "user_not_found"})
                else:
                    self._answer({"ok": True, "user": {"id": args["user"], "profile": {"email": email}}})
            else:
                self._answer({"ok": False, "error": "unknown_method"})

        do_GET = _handle
        do_POST = _handle

    return Handler


@pytest.fixture
def fake_slack() -> Iterator[FakeSlack]:
    port = free_port()
    state = FakeSlack(url=f"http://127.0.0.1:{port}/api/")
    httpd = ThreadingHTTPServer(("127.0.0.1", port), _slack_handler(state))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield state
    httpd.shutdown()
    httpd.server_close()


class _Inbox:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:
        # smtplib waits for this reply, so a message is here by the time the sender returns.
        self.messages.append(message_from_bytes(envelope.content))
        return "250 Message accepted for delivery"


@dataclass
class Smtp:
    host: str
    port: int
    inbox: _Inbox


@pytest.fixture
def smtp() -> Iterator[Smtp]:
    inbox = _Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield Smtp("127.0.0.1", port, inbox)
    controller.stop()
