"""PagerDuty Events API v2: ``pagerduty.trigger`` and ``pagerduty.resolve`` (``POST /v2/enqueue``).

The integration's routing key travels in the body (the Events API takes no auth header), so it is a
secret. PagerDuty answers 202 ``{"status": "success", "message": "Event processed", "dedup_key": ...}``
and 400 ``{"status": "invalid event", "message": ..., "errors": [...]}``. When the workflow gives no
dedup key, one is derived from the step's idempotency key, so a retried step re-sends the same event
instead of paging twice. The connection's base_url is the Events endpoint (https://events.pagerduty.com).
"""

from __future__ import annotations

import hashlib
from typing import Any, Literal

from bastion.connectors.registry import ActionContext, action
from bastion.connectors.vendor_http import base_url, request, secret

__all__ = ["resolve", "trigger"]

EXAMPLE = "https://events.pagerduty.com"


def _describe(status: int, doc: Any, text: str) -> tuple[str, str]:
    if isinstance(doc, dict) and ("message" in doc or "errors" in doc):
        errors = doc.get("errors") or []
        head = str(doc.get("message") or doc.get("status") or "")
        return "", f"{head}: {'; '.join(map(str, errors))}" if errors else head
    return "", ""


async def _enqueue(ctx: ActionContext, event: dict[str, Any]) -> dict[str, Any]:
    event = {"routing_key": secret(ctx, "pagerduty", "pagerduty_routing_key"), **event}
    url = base_url(ctx, "pagerduty", EXAMPLE) + "/v2/enqueue"
    answer = await request(ctx, "pagerduty", "POST", url, json=event, describe=_describe)
    doc = answer.json if isinstance(answer.json, dict) else {}
    return {
        "status": doc.get("status", "success"),
        "message": doc.get("message"),
        "dedup_key": doc.get("dedup_key", event.get("dedup_key")),
    }


@action(
    "pagerduty.trigger",
    impact="low",
    secrets=("pagerduty_routing_key",),
    idempotent=True,
    connection="pagerduty",
)
async def trigger(
    summary: str,
    source: str,
    severity: Literal["critical", "error", "warning", "info"] = "error",
    dedup_key: str | None = None,
    component: str | None = None,
    group: str | None = None,
    event_class: str | None = None,
    custom_details: dict[str, Any] | None = None,
    *,
    ctx: ActionContext,
) -> dict[str, Any]:
    """Open (or add to) a PagerDuty alert, which pages the on-call responder of the service.

    Args:
        summary: one line saying what is wrong (PagerDuty keeps 1024 characters)
        source: the affected system (host name, service)
        severity: critical, error, warning or info
        dedup_key: the alert's key; sending the same key again updates that alert (default: one per step)
        component: the part of the source that is affected
        group: a logical grouping of sources
        event_class: the class or type of the event
        custom_details: free-form details shown with the alert
    """
    if dedup_key is None and ctx.idempotency_key:
        seed = f"{ctx.tenant_id}:{ctx.idempotency_key}".encode()
        dedup_key = "bastion-" + hashlib.sha256(seed).hexdigest()[:32]
    payload: dict[str, Any] = {"summary": summary[:1024], "source": source, "severity": severity}
    for key, value in (
        ("component", component),
        ("group", group),
        ("class", event_class),
        ("custom_details", custom_details),
    ):
        if value is not None:
            payload[key] = value
    event: dict[str, Any] = {"event_action": "trigger", "payload": payload}
    if dedup_key:
        event["dedup_key"] = dedup_key
    return await _enqueue(ctx, event)


@action(
    "pagerduty.resolve",
    impact="low",
    secrets=("pagerduty_routing_key",),
    idempotent=True,
    connection="pagerduty",
)
async def resolve(dedup_key: str, *, ctx: ActionContext) -> dict[str, Any]:
    """Resolve the PagerDuty alert opened with this dedup key (resolving twice is harmless).

    Args:
        dedup_key: the key pagerduty.trigger returned
    """
    return await _enqueue(ctx, {"event_action": "resolve", "dedup_key": dedup_key})
