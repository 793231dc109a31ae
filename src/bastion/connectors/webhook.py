"""``webhook.send_signed``: POST a JSON document that the receiver can prove came from Bastion.

Signature scheme (what a receiver checks):

* ``X-Bastion-Timestamp``: Unix time in seconds when the request was signed.
* ``X-Bastion-Signature``: ``v1=`` followed by the lower-case hex HMAC-SHA256, keyed with the shared
  secret (its UTF-8 bytes), of ``<timestamp>.<raw body bytes>`` (the timestamp, a dot, the body exactly
  as received, before any JSON parsing).
* ``X-Bastion-Delivery``: an id that stays the same when the same step is retried, to drop repeats.

The receiver recomputes the HMAC, compares in constant time and refuses timestamps older than a few
minutes (replay). :func:`verify` does exactly this and is what a Python receiver can use. The scheme
follows Slack's and Stripe's, so existing verifier code adapts easily.
"""

from __future__ import annotations

import hashlib
import hmac
import time
import uuid
from typing import Any

import orjson

from bastion.connectors.registry import ActionContext, action
from bastion.connectors.vendor_http import request, secret

__all__ = ["SIGNATURE_HEADER", "TIMESTAMP_HEADER", "send_signed", "sign", "verify"]

SIGNATURE_HEADER = "X-Bastion-Signature"
TIMESTAMP_HEADER = "X-Bastion-Timestamp"
DELIVERY_HEADER = "X-Bastion-Delivery"
TOLERANCE_S = 300


def sign(key: str, timestamp: str, body: bytes) -> str:
    """The ``X-Bastion-Signature`` value for ``body`` sent at ``timestamp``."""
    mac = hmac.new(key.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


def verify(
    key: str, timestamp: str | None, body: bytes, signature: str | None, *, now: float | None = None
) -> bool:
    """Whether a received request is signed with ``key`` and no older than five minutes."""
    if not timestamp or not signature:
        return False
    try:
        sent = int(timestamp)
    except ValueError:
        return False
    if abs((time.time() if now is None else now) - sent) > TOLERANCE_S:
        return False
    return hmac.compare_digest(sign(key, timestamp, body), signature)


@action(
    "webhook.send_signed",
    impact="low",
    secrets=("webhook_signing_key",),
    idempotent=True,
    connection="webhook",
)
async def send_signed(
    url: str, payload: Any, headers: dict[str, str] | None = None, *, ctx: ActionContext
) -> dict[str, Any]:
    """POST a JSON document signed with HMAC-SHA256 (headers X-Bastion-Timestamp and X-Bastion-Signature).

    Args:
        url: absolute http(s) URL, or a path joined to the connection's base_url
        payload: the JSON document to send
        headers: extra request headers
    """
    key = secret(ctx, "webhook", "webhook_signing_key")
    body = orjson.dumps(payload)
    timestamp = str(int(time.time()))
    if ctx.idempotency_key:
        delivery = hashlib.sha256(f"{ctx.tenant_id}:{ctx.idempotency_key}".encode()).hexdigest()[:32]
    else:
        delivery = uuid.uuid4().hex
    send = {
        **(headers or {}),
        "Content-Type": "application/json",
        TIMESTAMP_HEADER: timestamp,
        SIGNATURE_HEADER: sign(key, timestamp, body),
        DELIVERY_HEADER: delivery,
    }
    answer = await request(ctx, "webhook", "POST", url, headers=send, content=body)
    text = None if answer.json is not None else answer.text
    return {"status": answer.status, "delivery": delivery, "json": answer.json, "text": text}
