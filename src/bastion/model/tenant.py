"""Tenants, users and roles."""

from __future__ import annotations

from enum import StrEnum

import msgspec

__all__ = ["ROLE_RANK", "Role", "Tenant", "User"]


class Role(StrEnum):
    ADMIN = "admin"
    ENGINEER = "engineer"
    ANALYST = "analyst"
    APPROVER = "approver"
    VIEWER = "viewer"


ROLE_RANK: dict[Role, int] = {
    Role.VIEWER: 0,
    Role.APPROVER: 1,
    Role.ANALYST: 2,
    Role.ENGINEER: 3,
    Role.ADMIN: 4,
}
"""How much a role may change. Approver sits below analyst: approving is a separate power, not a superset."""


class Tenant(msgspec.Struct, omit_defaults=True):
    id: str
    name: str
    parent_id: str | None = None
    created: int = 0


class User(msgspec.Struct, omit_defaults=True):
    id: str
    tenant_id: str
    name: str
    role: Role
    email: str | None = None
    created: int = 0
