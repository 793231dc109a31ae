"""The operator's settings as connectors see them (SMTP server, DNS resolver integration): the ones given
to :func:`configure` (``bastion up`` does), or inside :func:`using_settings` the caller's; otherwise the
environment and ``bastion.toml``. Tenants configure connections, never these: they reach the host."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from bastion.config import Settings, load_settings

__all__ = ["configure", "current_settings", "using_settings"]

_configured: list[Settings] = []
_override: ContextVar[Settings | None] = ContextVar("bastion_connector_settings", default=None)


def configure(settings: Settings | None) -> None:
    """The settings connectors use in this process; None forgets them."""
    _configured[:] = [settings] if settings is not None else []


@contextmanager
def using_settings(settings: Settings) -> Iterator[None]:
    """Use ``settings`` for connector calls from this context (and tasks started in it)."""
    token = _override.set(settings)
    try:
        yield
    finally:
        _override.reset(token)


def current_settings() -> Settings:
    found = _override.get()
    if found is not None:
        return found
    if not _configured:
        _configured.append(load_settings())
    return _configured[0]
