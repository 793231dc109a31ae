"""Signed one-click approval links: what they carry, how they are signed and how they are checked.

A link token is ``base64url(claims) "." base64url(HMAC-SHA256(key, claims))``. The claims bind the link
to one tenant, approval, run, step, approver (user) and decision, and carry an expiry and a random nonce.
The signature stops alteration and forgery; the nonce is also stored (``approval_link_tokens``) and
spent on first use, which makes the link single-use. The key comes from the ``approval_link_key`` setting
or, when that is unset, from a key file created on first use with mode 0600 (every process of one
installation must share it).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from pathlib import Path
from typing import Any

import orjson

from bastion.config import Settings
from bastion.respond.approvals.model import LinkError

__all__ = ["link_key", "sign_claims", "verify_token"]


def link_key(settings: Settings) -> bytes:
    """The HMAC key: the configured one, else the key file's (created if missing)."""
    if settings.approval_link_key:
        return settings.approval_link_key.encode("utf-8")
    path = Path(settings.approval_link_key_file).expanduser()
    try:
        return bytes.fromhex(path.read_text().strip())
    except FileNotFoundError:
        pass
    except ValueError:
        raise LinkError(f"approval link key file {path} is not hex; delete it to make a new key") from None
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first: use theirs
        return bytes.fromhex(path.read_text().strip())
    with os.fdopen(fd, "w") as fh:
        fh.write(key.hex())
    return key


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign_claims(key: bytes, claims: dict[str, Any]) -> str:
    body = orjson.dumps(claims, option=orjson.OPT_SORT_KEYS)
    mac = hmac.new(key, body, hashlib.sha256).digest()
    return f"{_b64(body)}.{_b64(mac)}"


_REQUIRED = {"t": str, "a": str, "r": str, "s": str, "u": str, "d": str, "e": int, "n": str}


def verify_token(key: bytes, token: str, *, now_ms: int) -> dict[str, Any]:
    """The claims of a genuine, unexpired token; :class:`LinkError` otherwise (single use is checked
    against the store by the caller)."""
    body_text, dot, mac_text = token.partition(".")
    if not dot or not body_text or not mac_text:
        raise LinkError("malformed approval link")
    try:
        body = _unb64(body_text)
        mac = _unb64(mac_text)
    except (ValueError, TypeError):
        raise LinkError("malformed approval link") from None
    if not hmac.compare_digest(mac, hmac.new(key, body, hashlib.sha256).digest()):
        raise LinkError("approval link signature does not match: the link was altered or is not ours")
    try:
        claims = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise LinkError("malformed approval link") from None
    if not isinstance(claims, dict) or any(not isinstance(claims.get(k), t) for k, t in _REQUIRED.items()):
        raise LinkError("malformed approval link")
    if claims["d"] not in ("approve", "deny"):
        raise LinkError("malformed approval link")
    if claims["e"] <= now_ms:
        raise LinkError("approval link has expired; decide in the web console or CLI instead")
    return claims
