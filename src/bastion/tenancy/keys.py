"""API keys and passwords: how secrets are made, hashed and checked.

An API key is 256 random bits (``bst_`` + URL-safe base64). Only its SHA-256 is stored: with that much
entropy a slow hash adds nothing but latency to every request. Passwords, which people choose, are hashed
with argon2id.
"""

from __future__ import annotations

import hashlib
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

__all__ = ["KEY_PREFIX", "hash_api_key", "hash_password", "new_api_key", "verify_password"]

KEY_PREFIX = "bst_"
_hasher = PasswordHasher()


def new_api_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(stored_hash, password)
    except (VerificationError, InvalidHashError):
        return False
