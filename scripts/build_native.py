"""Compile the hot-path modules listed in ``bastion.native.NATIVE_MODULES`` with mypyc, and the C extensions
in ``C_EXTENSIONS``, in one build (`make native`).

The extension modules go to ``src/bastion/_native/`` with a manifest of the sources they were compiled
from; ``bastion.native`` loads them only while those sources are unchanged. Nothing is rebuilt when the
manifest already matches. A build that fails (no C compiler, a module mypyc rejects) leaves no build
behind: Bastion then runs the pure-Python modules, and this script says why and exits 0, unless
``--strict`` (CI's `make test` passes it, so a module that stops compiling fails the build).
"""

from __future__ import annotations

import argparse
import importlib.machinery
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
sys.path.insert(0, str(SRC))
os.environ["BASTION_NATIVE"] = "0"  # this process must import the sources, never an older build

from bastion import native  # noqa: E402


def build(out: Path) -> None:
    """Compile every listed module as one mypyc group, and each C extension, into ``out`` (raises on any
    failure)."""
    from mypyc.build import mypycify
    from setuptools import Extension, setup

    stamps = {s: native.source_stamp(SRC / s) for s in native.SOURCES}
    with tempfile.TemporaryDirectory(prefix="bastion-native-") as tmp:
        work = Path(tmp)
        cwd = Path.cwd()
        os.chdir(SRC)  # mypyc names modules by their path from here
        try:
            extensions = mypycify(
                ["--config-file", str(ROOT / "pyproject.toml"), *native.NATIVE_MODULES],
                opt_level="3",
                group_name=native.GROUP,
                target_dir=str(work / "c"),
            )
            extensions += [
                Extension(native.module_name(source), [source], extra_compile_args=["-O3"])
                for source in native.C_EXTENSIONS
            ]
            setup(
                name="bastion-native",
                ext_modules=extensions,
                script_args=[
                    "--quiet",
                    "build_ext",
                    "--build-lib",
                    str(work / "lib"),
                    "--build-temp",
                    str(work / "obj"),
                ],
            )
        finally:
            os.chdir(cwd)
        suffix = importlib.machinery.EXTENSION_SUFFIXES[0]
        modules = {}
        for source in native.SOURCES:
            rel = source.rpartition(".")[0] + suffix
            target = out / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(work / "lib" / rel, target)
            modules[source] = {"file": rel, "stamp": stamps[source]}
        group = native.GROUP + "__mypyc" + suffix
        shutil.copy2(work / "lib" / group, out / group)
    manifest = {"suffix": suffix, "group": group, "modules": modules}
    (out / native.MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--force", action="store_true", help="rebuild even if the build matches the sources")
    ap.add_argument("--clean", action="store_true", help="remove the build: run pure Python")
    ap.add_argument("--strict", action="store_true", help="exit 1 if the modules cannot be compiled")
    args = ap.parse_args()
    if args.clean:
        shutil.rmtree(native.NATIVE_DIR, ignore_errors=True)
        print("native: removed; Bastion runs pure Python")
        return 0
    files, reason = native.check()
    if files and not args.force:
        print(f"native: up to date ({len(native.SOURCES)} compiled modules)")
        return 0
    count = f"{len(native.NATIVE_MODULES)} modules with mypyc and {len(native.C_EXTENSIONS)} C extensions"
    print(f"native: compiling {count} ({reason or 'forced'})")
    started = time.monotonic()
    staging = native.NATIVE_DIR.with_name("_native.new")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        build(staging)
    except (Exception, SystemExit) as exc:  # setuptools reports compiler failures as SystemExit
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(native.NATIVE_DIR, ignore_errors=True)
        print(f"native: compile failed, Bastion runs pure Python: {exc}", file=sys.stderr)
        return 1 if args.strict else 0
    shutil.rmtree(native.NATIVE_DIR, ignore_errors=True)
    staging.rename(native.NATIVE_DIR)
    where = native.NATIVE_DIR.relative_to(ROOT)
    print(f"native: compiled in {time.monotonic() - started:.0f} s into {where}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
