"""Adds the console's routes, static files and session handling to the API's FastAPI app."""

from __future__ import annotations

from fastapi import FastAPI

__all__ = ["install_console"]


def install_console(app: FastAPI) -> None:
    """Mount the console at ``/`` on ``app`` (the API keeps ``/api/v1``)."""
