"""`bench/agents_eval.py` keeps working: a short run reports the design and malware sections."""

from __future__ import annotations

import os
import subprocess
import sys

import orjson

from .conftest import ROOT


def test_agents_eval_short_run_reports_design_and_malware() -> None:
    env_free = {k: v for k, v in os.environ.items() if not k.startswith(("BASTION_EVAL_LLM", "BASTION_LLM"))}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "agents_eval.py"), "--json", "--limit", "5"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        env=env_free,
    )
    assert proc.returncode == 0, proc.stderr
    result = orjson.loads(proc.stdout)
    assert result["objectives"] == 5
    design = result["offline"]["design"]
    assert design["n"] == 5 and design["validity_rate"] == 1.0
    assert 0.0 <= design["precision"] <= 1.0 and design["recall"] >= 0.8
    malware = result["offline"]["malware"]
    assert ("accuracy" in malware and malware["n"] == 5) or "error" in malware
    assert result["configured"] is None
