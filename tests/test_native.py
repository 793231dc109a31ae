"""The compiled build of the hot-path modules (mypyc) and of the C extensions: in use after `make`,
identical to pure Python, never used stale."""

from __future__ import annotations

import importlib
import importlib.machinery
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from bastion import native

SUFFIX = importlib.machinery.EXTENSION_SUFFIXES[0]

# The attack samples through the pipeline's prepare stage (normalize, extract observables, fingerprint,
# detect with the SigmaHQ Windows rules); prints the number of alerts and a hash of every prepared row:
# id, normalized event JSON, raw, observables, and its alerts (rule, severity, why it fired, ...).
PREPARED_DIGEST = """
import gzip, hashlib, sys
from pathlib import Path
import msgspec, orjson
import bastion.native
from bastion.detect.engine import Detector
from bastion.detect.tenant import Detection
from bastion.ingest.records import RawRecord
from bastion.pipeline import prepare_events

data = Path(sys.argv[1])
det = Detector.from_paths([data / "sigma" / "rules" / "windows"])
raw = gzip.decompress((data / "evtx-attack-samples" / "events.jsonl.gz").read_bytes())
records = [RawRecord(line=i, data=orjson.loads(x)) for i, x in enumerate(raw.splitlines(), 1) if x.strip()]
rows, _ = prepare_events(records, now=1_780_000_000_000, detection=Detection(det))
digest = hashlib.sha256()
for row in rows:
    digest.update(msgspec.json.encode(row))
print(bastion.native.status()["compiled"], sum(len(r.alerts) for r in rows), digest.hexdigest())
"""


def _run(code: str, *args: str, native_on: bool) -> str:
    env = {**os.environ, "BASTION_NATIVE": "1" if native_on else "0"}
    out = subprocess.run(
        [sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, timeout=240
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_the_listed_modules_are_loaded_compiled() -> None:
    """`make test` builds them strictly; unless a run opts out, every listed module comes from its build."""
    if os.environ.get("BASTION_NATIVE") == "0":
        assert native.status() == {"compiled": False, "modules": [], "reason": "disabled by BASTION_NATIVE"}
        return
    assert native.status()["compiled"], native.status()["reason"]
    for source in native.SOURCES:
        module = importlib.import_module(native.module_name(source))
        assert module.__file__ is not None and module.__file__.endswith(SUFFIX), module.__file__


def test_compiled_and_pure_python_prepare_identical_events_and_alerts(shared_data: Path) -> None:
    compiled = _run(PREPARED_DIGEST, str(shared_data), native_on=True)
    pure = _run(PREPARED_DIGEST, str(shared_data), native_on=False)
    assert compiled.startswith("True ") and pure.startswith("False "), (compiled, pure)
    assert compiled.split()[1:] == pure.split()[1:]
    assert int(pure.split()[1]) > 1000  # the samples raise about 1,200 alerts: a real comparison


def test_an_edited_source_makes_the_whole_build_unused(tmp_path: Path) -> None:
    files, reason = native.check()
    assert files, reason
    build = tmp_path / "_native"
    shutil.copytree(native.NATIVE_DIR, build)
    manifest = json.loads((build / native.MANIFEST).read_text())
    for edited in (native.NATIVE_MODULES[-1], native.C_EXTENSIONS[0]):
        changed = json.loads(json.dumps(manifest))
        changed["modules"][edited]["stamp"]["size"] += 1
        (build / native.MANIFEST).write_text(json.dumps(changed))
        assert native.check(build) == ({}, f"{edited} changed since it was compiled (run `make native`)")


def test_a_build_for_another_interpreter_or_module_list_is_refused(tmp_path: Path) -> None:
    build = tmp_path / "_native"
    shutil.copytree(native.NATIVE_DIR, build)
    manifest = json.loads((build / native.MANIFEST).read_text())
    (build / native.MANIFEST).write_text(json.dumps({**manifest, "suffix": ".cpython-399-x.so"}))
    files, reason = native.check(build)
    assert files == {} and reason.startswith("built for .cpython-399-x.so")
    del manifest["modules"][native.NATIVE_MODULES[0]]
    (build / native.MANIFEST).write_text(json.dumps(manifest))
    assert native.check(build) == ({}, "built for another module list (run `make native`)")
    assert native.check(tmp_path / "nothing") == ({}, "no compiled build (run `make native`)")


def test_a_damaged_manifest_is_refused_not_raised(tmp_path: Path) -> None:
    build = tmp_path / "_native"
    build.mkdir()
    for text, start in [
        ("{not json", "unreadable manifest"),
        ('["a list"]', "malformed manifest"),
        (json.dumps({"suffix": SUFFIX, "modules": {s: {} for s in native.SOURCES}}), "malformed"),
    ]:
        (build / native.MANIFEST).write_text(text)
        files, reason = native.check(build)
        assert files == {} and reason.startswith(start), reason


def test_bastion_native_0_runs_the_sources() -> None:
    code = "import bastion.detect.engine as m, bastion.native as n; print(m.__file__, n.status()['reason'])"
    out = _run(code, native_on=False)
    assert out == f"{Path(native.SOURCE_ROOT, 'bastion/detect/engine.py')} disabled by BASTION_NATIVE"
    code = "import bastion.intel.matcher as m; print(m._scan)"  # no C extension: batches go the Python way
    assert _run(code, native_on=False) == "None"
    assert _run(code, native_on=True) == "<built-in function scan>"
