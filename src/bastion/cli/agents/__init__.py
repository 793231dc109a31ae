"""``bastion agent ...``: the specialist agents from the command line. Each module of this package adds
its commands to :data:`agent_app` (one module per agent or area); they are all imported here."""

from __future__ import annotations

import importlib
import pkgutil

import typer

from bastion.cli._common import app

__all__ = ["agent_app"]

agent_app = typer.Typer(
    help="Specialist agents: malware analysis, workflow design, objective runs, ...", no_args_is_help=True
)
app.add_typer(agent_app, name="agent")

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
