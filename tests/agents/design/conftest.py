"""Fixtures for the workflow design and construction tests: a tenant (with an approver and an analyst)
on a real SQLite store, and the labelled objectives of the benchmark."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from bastion.agents.spec import AgentDeps
from bastion.model import Role
from bastion.store import Database
from bastion.tenancy.connections import set_connection
from bastion.tenancy.service import add_user, create_tenant

ROOT = Path(__file__).resolve().parents[3]
OBJECTIVES = ROOT / "bench" / "objectives.yml"


def labelled() -> list[dict[str, Any]]:
    return list(yaml.safe_load(OBJECTIVES.read_text())["objectives"])


class Tenant:
    def __init__(self, db: Database, name: str) -> None:
        tenant, _ = create_tenant(db, name)
        self.db = db
        self.name = name
        self.id = tenant.id
        add_user(db, name, "alice", Role.ANALYST, email="alice@example.org")
        add_user(db, name, "bob", Role.APPROVER, email="bob@example.org")

    def connect(self, *names: str) -> None:
        for n in names:
            set_connection(self.db, self.id, n, {"base_url": f"https://{n}.example"}, actor="test")

    def deps(self, actor: str = "user:alice") -> AgentDeps:
        return AgentDeps(db=self.db, tenant_id=self.id, actor=actor, run_id="")


@pytest.fixture
def tenant(sqlite_db: Database) -> Iterator[Tenant]:
    yield Tenant(sqlite_db, "acme")
