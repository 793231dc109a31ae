"""Shared pieces of the command line: the root app, options, output and failure helpers.

Every command module under ``bastion.cli`` imports ``app`` from here and registers its commands on it.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

import orjson
import typer
from rich.console import Console

from bastion.config import Settings, load_settings
from bastion.store import Database

__all__ = [
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


def cli_settings() -> Settings:
    return load_settings(database_url=State.database_url)


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
