"""``/api/v1/agents``: agent runs (objective runs, specialist agents) over HTTP."""

from __future__ import annotations

from fastapi import APIRouter

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/agents", tags=["agents"])
