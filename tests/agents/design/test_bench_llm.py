"""`bench/agents_eval.py` with a configured model: the design agent runs through the agent runtime with
a scripted OpenAI-compatible model (a real HTTP server) that plans with the planner tool and answers
with its YAML; the report gives the model's own section."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import orjson

from tests.agents.llm_server import ScriptedLLM, call, say

from .conftest import ROOT, labelled


def _tool_results(body: dict[str, Any]) -> list[Any]:
    """The tool results the model was sent (the runtime fences each one as untrusted data)."""
    found = []
    for m in body.get("messages", []):
        if m.get("role") == "tool":
            content = str(m["content"])
            if content.startswith("<untrusted-data"):
                content = content.split("\n", 1)[1].rsplit("\n", 1)[0]
            try:
                found.append(json.loads(content))
            except (TypeError, ValueError):
                found.append(m.get("content"))
    return found


def _model(body: dict[str, Any], index: int) -> dict[str, Any]:
    """A model that uses the tools the way the instructions say: plan, then answer with the plan."""
    names = [t["function"]["name"] for t in body.get("tools", [])]
    if "plan_workflow" not in names:
        return say("no verdict")  # the malware agent: this scripted model has nothing useful to say
    planned = [r for r in _tool_results(body) if isinstance(r, dict) and "workflow_yaml" in r]
    if not planned:
        prompt = json.dumps(body.get("messages", []))
        objective = next(i["objective"] for i in labelled() if json.dumps(i["objective"])[1:-1] in prompt)
        return call("plan_workflow", {"objective": objective})
    plan = planned[-1]["plan"]
    steps = [
        {"action": s["action"], "why": "the model kept the planner's step: " + s["why"]}
        for s in plan["steps"]
    ]
    return call(
        "final_result", {"steps": steps, "workflow_yaml": planned[-1]["workflow_yaml"], "valid": True}
    )


def test_agents_eval_reports_a_configured_model() -> None:
    with ScriptedLLM([_model], repeat_last=True) as llm:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("BASTION_EVAL_LLM", "BASTION_LLM"))}
        env |= {"BASTION_EVAL_LLM_URL": llm.url, "BASTION_EVAL_LLM_MODEL": "scripted-1"}
        proc = subprocess.run(
            [sys.executable, str(ROOT / "bench" / "agents_eval.py"), "--json", "--limit", "1"],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=ROOT,
            env=env,
        )
    assert proc.returncode == 0, proc.stderr
    result = orjson.loads(proc.stdout)
    configured = result["configured"]
    assert configured["model"] == "openai:scripted-1"
    design = configured["design"]
    assert design["n"] == 1 and design["validity_rate"] == 1.0 and design["recall"] == 1.0, design
    assert "n" in configured["malware"] or "error" in configured["malware"]
    assert any("plan_workflow" in [t["function"]["name"] for t in r.get("tools", [])] for r in llm.requests)
