"""Compiled builds of the hot-path modules, used only while they match their sources.

`make native` (part of `make install`) compiles the modules in ``NATIVE_MODULES`` with mypyc, and the C
extensions in ``C_EXTENSIONS``, into ``src/bastion/_native/`` and writes a manifest of the size and
modification time of every source it compiled. Importing ``bastion`` calls :func:`activate`, which puts a
finder in front of the normal import system that loads those extension modules instead of the ``.py``
files, but only if every listed source still has the size and modification time it had when compiled.
The compiled modules of a build call each other directly, so one edited file makes the whole build
unusable: Bastion then runs the pure-Python modules (identical behaviour, slower) and says so once on
stderr. ``BASTION_NATIVE=0`` runs pure Python on purpose.

The pure-Python modules stay the reference: they are what mypy checks and what the compiled code is
generated from; the tests compare both on the attack samples. A C extension has no Python twin of the
same name: the module that imports it keeps a pure-Python path for when it is not there (without a build,
with ``BASTION_NATIVE=0``), and its tests hold both paths to the same answers.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import json
import os
import sys
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from pathlib import Path
from types import ModuleType
from typing import Any

#: Source files compiled by ``make native``, relative to ``src/``: modules the benchmarks show spending
#: their time in Python bytecode (not in C libraries) and faster compiled (the intel matcher was tried and
#: was not; docs/architecture.md). Not a package's ``__init__.py``: a compiled module's body runs before
#: the import system gives it the ``__path__`` its submodules need.
NATIVE_MODULES: tuple[str, ...] = (
    "bastion/detect/compiler.py",
    "bastion/detect/engine.py",
    "bastion/detect/events.py",
    "bastion/detect/readers.py",
    "bastion/ingest/fingerprint.py",
    "bastion/ingest/normalize/windows.py",
    "bastion/ingest/observables.py",
    "bastion/ingest/prepare.py",
)

#: Hand-written C extensions, relative to ``src/``, each importable as the module its path names (without
#: ``.c``) only from a usable build: a per-item loop that mypyc cannot make fast (the intel matcher's
#: batches: docs/intel.md).
C_EXTENSIONS: tuple[str, ...] = ("bastion/intel/_batchscan.c",)

#: Every source a build is made from, and must still match to be used.
SOURCES: tuple[str, ...] = NATIVE_MODULES + C_EXTENSIONS

#: The shared library mypyc builds for the group; the per-module extensions import it by this name.
GROUP = "bastion_native"
PACKAGE_DIR = Path(__file__).resolve().parent
SOURCE_ROOT = PACKAGE_DIR.parent
NATIVE_DIR = PACKAGE_DIR / "_native"
MANIFEST = "manifest.json"

_state: dict[str, Any] = {"active": False, "reason": "not activated", "modules": []}


def module_name(source: str) -> str:
    """``bastion/detect/engine.py`` -> ``bastion.detect.engine`` (``.c`` likewise)."""
    return source.rpartition(".")[0].replace("/", ".")


def source_stamp(path: Path) -> dict[str, int]:
    """What must not change between compiling a source and loading its build."""
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


class _NativeFinder(importlib.abc.MetaPathFinder):
    """Finds the compiled build of exactly the modules the manifest lists; everything else falls through."""

    def __init__(self, files: dict[str, Path]) -> None:
        self.files = files

    def find_spec(
        self, fullname: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        file = self.files.get(fullname)
        if file is None:
            return None
        loader = importlib.machinery.ExtensionFileLoader(fullname, str(file))
        return importlib.util.spec_from_file_location(fullname, file, loader=loader)


def check(directory: Path = NATIVE_DIR) -> tuple[dict[str, Path], str]:
    """The extension file of every compiled module, or no files and why the build cannot be used."""
    try:
        manifest = json.loads((directory / MANIFEST).read_text())
    except FileNotFoundError:
        return {}, "no compiled build (run `make native`)"
    except (OSError, ValueError) as exc:
        return {}, f"unreadable manifest {directory / MANIFEST}: {exc}"
    try:
        return _check(directory, manifest)
    except (AttributeError, KeyError, TypeError) as exc:  # importing bastion must never fail on a build
        return {}, f"malformed manifest {directory / MANIFEST}: {exc!r}"


def _check(directory: Path, manifest: Any) -> tuple[dict[str, Path], str]:
    suffix = importlib.machinery.EXTENSION_SUFFIXES[0]
    if manifest.get("suffix") != suffix:
        return {}, f"built for {manifest.get('suffix')}, this interpreter loads {suffix}"
    modules = manifest.get("modules", {})
    if sorted(modules) != sorted(SOURCES):
        return {}, "built for another module list (run `make native`)"
    files = {GROUP + "__mypyc": directory / manifest["group"]}
    for source, entry in modules.items():
        try:
            stamp = source_stamp(SOURCE_ROOT / source)
        except OSError:
            return {}, f"{source} is missing"
        if stamp != entry["stamp"]:
            return {}, f"{source} changed since it was compiled (run `make native`)"
        files[module_name(source)] = directory / entry["file"]
    missing = [str(f) for f in files.values() if not f.is_file()]
    if missing:
        return {}, f"compiled file missing: {missing[0]}"
    return files, ""


def activate() -> bool:
    """Load the compiled modules from now on if the build matches the sources; report once if not."""
    if _state["active"]:
        return True
    if os.environ.get("BASTION_NATIVE", "1").strip().lower() in {"0", "false", "no", "off"}:
        _state["reason"] = "disabled by BASTION_NATIVE"
        return False
    files, reason = check()
    if not files:
        _state["reason"] = reason
        if (NATIVE_DIR / MANIFEST).exists():  # a build exists but is stale: worth a line
            print(f"bastion: running pure Python: {reason}", file=sys.stderr)
        return False
    loaded = [name for name in files if name in sys.modules]
    if loaded:  # imported before the finder could serve them: mixing builds would run stale code
        _state["reason"] = f"{loaded[0]} was imported before bastion"
        return False
    sys.meta_path.insert(0, _NativeFinder(files))
    _state.update(active=True, reason="", modules=sorted(module_name(s) for s in SOURCES))
    return True


def status() -> dict[str, Any]:
    """Whether the compiled modules are in use, which, and if not, why (for health and version output)."""
    return {"compiled": _state["active"], "modules": list(_state["modules"]), "reason": _state["reason"]}
