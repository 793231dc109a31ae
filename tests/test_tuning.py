"""Every Bastion process runs with the garbage-collector thresholds of bastion.tuning."""

from __future__ import annotations

import gc
import subprocess
import sys

from bastion.tuning import GC_THRESHOLDS, tune_gc

# Print the thresholds when the CLI process exits (main() ends it with sys.exit).
_PROBE = """
import atexit, gc, sys
atexit.register(lambda: print("thresholds", *gc.get_threshold()))
from bastion.cli import main
sys.argv = ["bastion", "--help"]
main()
"""


def test_tune_gc_sets_the_thresholds_and_the_default_was_lower() -> None:
    before = gc.get_threshold()
    try:
        gc.set_threshold(700, 10, 10)
        tune_gc()
        assert gc.get_threshold() == GC_THRESHOLDS
        assert GC_THRESHOLDS[0] > 700
    finally:
        gc.set_threshold(*before)


def test_the_cli_process_starts_with_the_tuned_thresholds() -> None:
    out = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    line = next(x for x in out.stdout.splitlines() if x.startswith("thresholds"))
    assert tuple(int(x) for x in line.split()[1:]) == GC_THRESHOLDS
