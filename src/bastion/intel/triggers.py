"""The ``intel`` trigger hook: preemptive matches are announced here, and whoever starts workflows (the
response engine) subscribes. Nothing in ``intel`` knows about workflows.

``emit`` calls every subscriber in registration order; a subscriber that raises is logged and the
others still run, so one broken binding cannot hide a leaked credential from the rest.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import msgspec

__all__ = ["IntelTrigger", "emit", "on_intel_match", "subscribers", "unsubscribe"]

log = logging.getLogger(__name__)


class IntelTrigger(msgspec.Struct, omit_defaults=True):
    """One preemptive match. ``type`` is ``credential-leak``, ``lookalike-domain``, ``vulnerable-software``,
    ``sector`` or ``region``; exactly what matched is in ``identity``, ``asset`` or ``domain``."""

    tenant_id: str
    type: str
    key: str
    indicator: dict[str, Any]
    identity: dict[str, Any] | None = None
    asset: dict[str, Any] | None = None
    domain: str | None = None
    owned_domain: str | None = None
    reason: str = ""

    def inputs(self) -> dict[str, Any]:
        """The values a bound workflow receives as ``inputs``."""
        details = self.indicator.get("details") or {}
        out: dict[str, Any] = {
            "type": self.type,
            "indicator": self.indicator.get("value"),
            "source": self.indicator.get("source"),
            "reason": self.reason,
        }
        if self.identity:
            out["email"] = self.identity.get("email")
            out["username"] = self.identity.get("username")
            out["groups"] = list(self.identity.get("groups") or [])
        if self.type == "credential-leak":
            out["breach"] = details.get("breach_source")
            out["breach_date"] = details.get("breach_date")
        if self.asset:
            out["hostname"] = self.asset.get("hostname")
            out["owner"] = self.asset.get("owner")
        if self.domain:
            out["domain"] = self.domain
            out["owned_domain"] = self.owned_domain
        return out


Subscriber = Callable[[IntelTrigger], Any]
_subscribers: list[Subscriber] = []
_lock = threading.Lock()


def on_intel_match(fn: Subscriber) -> Subscriber:
    """Subscribe ``fn`` to intel triggers (usable as a decorator); returns ``fn``."""
    with _lock:
        if fn not in _subscribers:
            _subscribers.append(fn)
    return fn


def unsubscribe(fn: Subscriber) -> None:
    with _lock:
        if fn in _subscribers:
            _subscribers.remove(fn)


def subscribers() -> list[Subscriber]:
    with _lock:
        return list(_subscribers)


def emit(trigger: IntelTrigger) -> int:
    """Deliver a trigger to every subscriber; returns how many took it without raising."""
    delivered = 0
    for fn in subscribers():
        try:
            fn(trigger)
            delivered += 1
        except Exception:
            log.exception("intel trigger subscriber %r failed on %s", fn, trigger.key)
    return delivered
