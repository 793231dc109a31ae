"""Shared pieces of the command line: the root app, options, output and failure helpers.

Every command module under ``bastion.cli`` imports ``app`` from here and registers its commands on it.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

import orjson
import typer
from rich.console import Console
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from bastion.config import Settings, load_settings
from bastion.store import Database
from bastion.store._util import INT64_MAX

__all__ = [
    "INT64_MAX",
    "JsonOpt",
    "State",
    "TenantOpt",
    "UserError",
    "app",
    "check_output",
    "cli_settings",
    "emit",
    "err",
    "fail",
    "finite",
    "open_db",
    "out",
    "write_output",
]

app = typer.Typer(
    name="bastion",
    help="Bastion: self-hosted security operations.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console()
err = Console(stderr=True)
JsonOpt = Annotated[bool, typer.Option("--json", help="print one JSON object")]
TenantOpt = Annotated[str, typer.Option("--tenant", "-t", help="tenant name")]


class UserError(Exception):
    """A mistake by the person at the keyboard: one line, non-zero exit."""


class State:
    database_url: str | None = None


def cli_settings(**overrides: Any) -> Settings:
    settings = load_settings(database_url=State.database_url, **overrides)
    _check_store_url(settings.database_url)
    return settings


def _check_store_url(url: str) -> None:
    """Refuse a SQLite URL without a file: SQLite would keep the store in memory, so a command would
    report success (a new tenant's API key, say) and keep nothing. ``Database`` itself still opens one
    (tests use it)."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return  # Database names the bad URL
    if parsed.get_backend_name() != "sqlite":
        return
    if (parsed.database or "") in ("", ":memory:") or "memory" in str(parsed.query.get("mode", "")):
        raise UserError(
            f"the store URL {url!r} names no file, so nothing would be kept: "
            "use sqlite:///path/to/bastion.db (or postgresql://...)"
        )


def open_db() -> Database:
    db = Database(cli_settings().database_url)
    db.migrate()
    return db


def emit(obj: Any) -> None:
    sys.stdout.write(orjson.dumps(obj).decode() + "\n")


def check_output(path: Path | None) -> Path:
    """A command's ``--out`` file, checked before any work: missing or a folder is a user mistake."""
    if path is None:
        raise UserError("--out FILE is required")
    if path.is_dir():
        raise UserError(f"--out {path} is a directory; give a file name")
    return path


def write_output(path: Path, data: bytes) -> None:
    """Write a command's file output, creating its folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def finite(value: float | None) -> float | None:
    """Typer callback for float options: NaN passes every min/max check (it compares false), and
    neither it nor infinity is a number of seconds or days."""
    if value is not None and not math.isfinite(value):
        raise typer.BadParameter("must be a finite number")
    return value


def fail(message: str, code: int = 2) -> NoReturn:
    err.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


@app.callback()
def _root(
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url",
            envvar="BASTION_DATABASE_URL",
            help="store URL: sqlite:///path.db (default ./var/bastion.db) or postgresql://...",
        ),
    ] = None,
) -> None:
    State.database_url = database_url
