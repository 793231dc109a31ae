"""The ``bastion`` command line (Typer + Rich).

Every reporting command takes ``--json`` and then prints exactly one JSON object. A user's mistake
prints one line, ``error: ...``, and exits 2 (1 for an ingest that rejected records, or a run waited for
that failed); never a traceback.
Set ``BASTION_DEBUG=1`` to see tracebacks anyway.

Commands live in one module per area (``core`` for tenancy, ingest, search, audit and running); each
registers itself on the shared ``app`` from ``_common`` when imported here.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import click
import typer
from sqlalchemy.exc import OperationalError

import bastion.cli.approvals  # noqa: F401
from bastion.cli import (
    agents,  # noqa: F401
    cases,  # noqa: F401
    connectors,  # noqa: F401
    core,  # noqa: F401  (registers commands)
    detect,  # noqa: F401
    intel,  # noqa: F401
    report,  # noqa: F401
    sla,  # noqa: F401
    triage,  # noqa: F401
    workflow,  # noqa: F401
)
from bastion.cli._common import UserError, app, err
from bastion.tuning import tune_gc

__all__ = ["app", "main"]


# ---------------------------------------------------------------- entry point


def _setting_problem(error: Any) -> str:
    name = ".".join(str(p) for p in error.get("loc", ())) or "settings"
    env = f"BASTION_{name.upper()}" if "." not in name else None
    where = f" ({env} or bastion.toml)" if env else ""
    return f"bad setting {name}{where}: {error.get('msg')} (got {error.get('input')!r})"


def main() -> None:
    """Run the CLI, turning user mistakes into one line and a non-zero exit."""
    tune_gc()
    debug = os.environ.get("BASTION_DEBUG") == "1"
    try:
        rv = app(standalone_mode=False)
        sys.exit(rv if isinstance(rv, int) else 0)
    # Typer 0.29+ ships its own copy of click, with its own exception classes: catch both families.
    except (click.exceptions.Exit, typer.Exit) as exc:
        sys.exit(exc.exit_code)
    except (click.exceptions.Abort, typer.Abort):
        err.print("aborted")
        sys.exit(130)
    except (click.ClickException, typer.TyperException) as exc:
        show = getattr(exc, "show", None)
        if show is not None:
            show()
        else:
            err.print(f"[red]error:[/red] {exc.format_message()}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    except (UserError, ValueError, OSError, OperationalError) as exc:
        if debug:
            raise
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        from pydantic import ValidationError

        if isinstance(exc, ValidationError):  # settings: name the field and the value, not just a count
            message = "; ".join(_setting_problem(e) for e in exc.errors())
        if isinstance(exc, OperationalError):
            message = f"database error: {str(exc.orig).splitlines()[0] if exc.orig else message}"
        err.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
        sys.exit(2)
