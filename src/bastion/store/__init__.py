"""The store: tables, migrations and tenant-scoped repositories."""

from bastion.store.db import Database, StoreConfigError
from bastion.store.scope import TenantScope
from bastion.store.tenancy import DuplicateError, TenantRepository

__all__ = ["Database", "DuplicateError", "StoreConfigError", "TenantRepository", "TenantScope"]
