"""Shared pieces for the intel tests: a tenant in a migrated store."""

from __future__ import annotations

import pytest

from bastion.store import Database
from bastion.tenancy.service import create_tenant


@pytest.fixture
def tenant_id(db: Database) -> str:
    tenant, _ = create_tenant(db, "acme")
    return tenant.id


@pytest.fixture
def sqlite_tenant(sqlite_db: Database) -> str:
    tenant, _ = create_tenant(sqlite_db, "acme")
    return tenant.id
