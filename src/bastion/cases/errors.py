"""What can go wrong with a case operation, as types the API and CLI map to 404, 409 and 400."""

from __future__ import annotations

__all__ = ["CaseError", "CaseNotFound", "TransitionError"]


class CaseError(ValueError):
    """A user's mistake about a case (bad input); the message says what and how to fix it."""


class CaseNotFound(CaseError):
    """An unknown case, alert, task or attachment id (of this tenant)."""


class TransitionError(CaseError):
    """A change the case's current state does not allow (moving a closed case, closing twice)."""
