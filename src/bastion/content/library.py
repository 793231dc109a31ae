"""The shipped response-workflow library: YAML files in ``bastion/content/workflows`` that a tenant
installs (stores as its own workflow, then edits and versions like any other).

The files are package data read with :mod:`importlib.resources`, so the library works from a wheel as
well as from a checkout. Installing goes through :func:`bastion.respond.service.add_workflow`, the same
validation and audit as ``bastion workflow add``; installing an unchanged workflow stores nothing new.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

from bastion.respond.validate import parse_workflow
from bastion.store import Database

__all__ = ["LibraryError", "install", "load_shipped", "shipped_names", "shipped_workflows"]

_SUFFIX = ".yml"


class LibraryError(ValueError):
    """A name that is not in the shipped library; the message lists what is."""


def _folder() -> Any:
    return resources.files("bastion.content").joinpath("workflows")


def shipped_names() -> list[str]:
    """The shipped workflows' names (file names without ``.yml``), sorted."""
    return sorted(
        entry.name[: -len(_SUFFIX)]
        for entry in _folder().iterdir()
        if entry.name.endswith(_SUFFIX) and entry.is_file()
    )


def load_shipped(name: str) -> str:
    """The YAML text of the shipped workflow ``name`` (with or without ``.yml``)."""
    stem = name[: -len(_SUFFIX)] if name.endswith(_SUFFIX) else name
    if stem not in shipped_names():
        raise LibraryError(f"no shipped workflow {name!r}; shipped: {', '.join(shipped_names())}")
    return str(_folder().joinpath(stem + _SUFFIX).read_text(encoding="utf-8"))


def shipped_workflows() -> list[dict[str, Any]]:
    """One summary per shipped workflow: id, title, version, trigger (what starts it on its own: the
    first kind other than ``manual``, else ``manual``), triggers (every kind), description and file."""
    found: list[dict[str, Any]] = []
    for name in shipped_names():
        workflow = parse_workflow(load_shipped(name))
        kinds = [t.kind for t in workflow.triggers]
        found.append(
            {
                "id": workflow.id,
                "title": workflow.title,
                "version": workflow.version,
                "trigger": next((k for k in kinds if k != "manual"), "manual"),
                "triggers": kinds,
                "description": workflow.description,
                "file": name + _SUFFIX,
            }
        )
    return found


def install(db: Database, tenant_id: str, names: list[str], actor: str) -> list[dict[str, Any]]:
    """Store the named shipped workflows in the tenant (all checked to exist before any is stored).

    Returns :func:`~bastion.respond.service.add_workflow`'s answer for each, in order.
    """
    from bastion.respond.service import add_workflow

    texts = [load_shipped(n) for n in names]
    return [add_workflow(db, tenant_id, text, actor=actor) for text in texts]
