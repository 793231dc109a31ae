"""A tenant-scoped view of the store inside one transaction: the only way services reach tenant data."""

from __future__ import annotations

from functools import cached_property

from sqlalchemy import Connection

from bastion.store.alerts import AlertRepository
from bastion.store.audit import AuditRepository
from bastion.store.cases import CaseRepository
from bastion.store.events import EventRepository
from bastion.store.tenancy import UserRepository

__all__ = ["TenantScope"]


class TenantScope:
    """Repositories bound to one connection and one tenant id; every query they run filters on it."""

    def __init__(self, conn: Connection, tenant_id: str) -> None:
        self.conn = conn
        self.tenant_id = tenant_id

    @cached_property
    def events(self) -> EventRepository:
        return EventRepository(self.conn, self.tenant_id)

    @cached_property
    def alerts(self) -> AlertRepository:
        return AlertRepository(self.conn, self.tenant_id)

    @cached_property
    def cases(self) -> CaseRepository:
        return CaseRepository(self.conn, self.tenant_id)

    @cached_property
    def users(self) -> UserRepository:
        return UserRepository(self.conn, self.tenant_id)

    @cached_property
    def audit(self) -> AuditRepository:
        return AuditRepository(self.conn, self.tenant_id)
