"""The ``bastion`` command line (Typer + Rich).

Every reporting command takes ``--json`` and then prints exactly one JSON object. A user's mistake
prints one line, ``error: ...``, and exits 2 (1 for an ingest that rejected records); never a traceback.
Set ``BASTION_DEBUG=1`` to see tracebacks anyway.

Commands live in one module per area (``core`` for tenancy, ingest, search, audit and running); each
registers itself on the shared ``app`` from ``_common`` when imported here.
"""

from __future__ import annotations

import os
import sys

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
        if isinstance(exc, OperationalError):
            message = f"database error: {str(exc.orig).splitlines()[0] if exc.orig else message}"
        err.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
        sys.exit(2)
