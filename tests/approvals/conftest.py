"""Fixtures for the approval tests: a tenant with users of every role, a local server speaking the Slack
Web API subset Bastion uses (over a real socket), and a real ``aiosmtpd`` SMTP server."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from email import message_from_bytes
from email.message import Message
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from tests.conftest import free_port

from bastion.demo.local_slack import LocalSlack
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


FakeSlack = LocalSlack  # the tests' name for the product's local Slack double


@pytest.fixture
def fake_slack() -> Iterator[FakeSlack]:
    state = FakeSlack(SLACK_TOKEN, channel_id="C0APPROVALS").start()
    yield state
    state.stop()


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
