"""Agent evaluation: the workflow design agent on a labelled set of objectives, and the malware agent on
labelled files, for the offline reasoner and, when one is configured, for a model.

- design: every objective of ``bench/objectives.yml`` (objective text, the tenant's connected products,
  the action ids a good design uses) goes through the design agent; a design counts as *valid* when its
  YAML passes Bastion's validator. Action recall is |expected & planned| / |expected| and precision
  |expected & planned| / |planned| (helper ``core.*`` steps not counted), averaged over objectives and
  also pooled (micro). Offline, the agent's reasoner and its tools run in this process on a scratch
  SQLite store (one tenant per set of connections).
- malware: the files written by ``bench.malware_samples.build_samples`` (each with its expected verdict:
  malicious, suspicious, clean); accuracy is the share whose verdict matches. Offline this is the
  static analysis the agent's reasoner reports (:func:`bastion.agents.malware.analyze.analyze`).
- configured model: ``BASTION_EVAL_LLM_URL`` and ``BASTION_EVAL_LLM_MODEL`` (optionally
  ``BASTION_EVAL_LLM_PROVIDER``, default openai, and ``BASTION_EVAL_LLM_KEY``), or the runtime's
  ``BASTION_LLM_*`` variables. The same agents then run through the agent runtime with that model as the
  scratch tenant's ``llm`` connection. With none, ``"configured": null``.

Prints one JSON object with ``--json`` (a short summary otherwise)::

    {"objectives": N, "offline": {"design": {"validity_rate", "recall", "precision", ...},
     "malware": {"accuracy", ...}}, "configured": null | {...}, "seconds": ...}
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
import yaml

ROOT = Path(__file__).resolve().parents[1]
OBJECTIVES = ROOT / "bench" / "objectives.yml"
_HELPERS = ("core.",)


def load_objectives(path: Path = OBJECTIVES) -> list[dict[str, Any]]:
    doc = yaml.safe_load(path.read_text())
    return list(doc["objectives"])


def _counted(actions: list[str]) -> set[str]:
    return {a for a in actions if not a.startswith(_HELPERS)}


def score_design(expected: list[str], output: dict[str, Any]) -> dict[str, Any]:
    """Validity, recall and precision of one design output against the expected action ids."""
    from bastion.respond.validate import validate_text

    source = output.get("workflow_yaml") or ""
    workflow, problems = validate_text(source) if source else (None, [])
    planned = _counted([str(s.get("action")) for s in output.get("steps") or []])
    if workflow is not None:  # the YAML is the truth when there is one
        planned = _counted([s.action for s in workflow.all_steps() if s.action])
    want = set(expected)
    hit = want & planned
    return {
        "valid": workflow is not None,
        "problems": [p.message for p in problems][:3],
        "planned": sorted(planned),
        "missing": sorted(want - planned),
        "extra": sorted(planned - want),
        "hits": len(hit),
        "expected_n": len(want),
        "planned_n": len(planned),
        "recall": len(hit) / len(want) if want else 1.0,
        "precision": len(hit) / len(planned) if planned else 0.0,
    }


def summarize_design(cases: list[dict[str, Any]]) -> dict[str, Any]:
    n = len(cases)
    hits = sum(c["hits"] for c in cases)
    return {
        "n": n,
        "validity_rate": sum(c["valid"] for c in cases) / n if n else 0.0,
        "recall": sum(c["recall"] for c in cases) / n if n else 0.0,
        "precision": sum(c["precision"] for c in cases) / n if n else 0.0,
        "micro_recall": hits / max(1, sum(c["expected_n"] for c in cases)),
        "micro_precision": hits / max(1, sum(c["planned_n"] for c in cases)),
        "errors": sum(1 for c in cases if c.get("error")),
        "cases": cases,
    }


class Scratch:
    """A throwaway store with one tenant per set of connected products."""

    def __init__(self, folder: Path) -> None:
        from bastion.store import Database

        os.environ.setdefault("BASTION_SECRET_KEY_FILE", str(folder / "secret.key"))
        os.environ.setdefault("BASTION_SAMPLES_DIR", str(folder / "samples"))  # the malware agent's files
        self.db = Database(f"sqlite:///{folder / 'eval.db'}")
        self.db.migrate()
        self._tenants: dict[tuple[str, ...], str] = {}

    def tenant(self, connections: list[str], llm: dict[str, Any] | None = None) -> str:
        from bastion.tenancy.connections import set_connection
        from bastion.tenancy.service import create_tenant

        key = tuple(sorted(connections))
        if key in self._tenants:
            return self._tenants[key]
        tenant, _ = create_tenant(self.db, f"eval{len(self._tenants)}")
        for name in key:
            set_connection(self.db, tenant.id, name, {"base_url": f"https://{name}.example"}, actor="bench")
        if llm is not None:
            self._set_llm(tenant.id, llm)
        self._tenants[key] = tenant.id
        return tenant.id

    def _set_llm(self, tenant_id: str, llm: dict[str, Any]) -> None:
        from bastion.store import TenantScope
        from bastion.tenancy.connections import set_connection
        from bastion.tenancy.secrets import SecretsVault, load_key

        set_connection(
            self.db,
            tenant_id,
            "llm",
            {
                "base_url": llm["url"],
                "settings": {"provider": llm["provider"], "model": llm["model"]},
                "allow_private": True,
            },
            actor="bench",
        )
        if llm.get("key"):
            with self.db.write() as conn:
                SecretsVault(load_key(self.db)).put(TenantScope(conn, tenant_id), "llm_api_key", llm["key"])


def design_offline(scratch: Scratch, objectives: list[dict[str, Any]]) -> dict[str, Any]:
    from bastion.agents.offline import play
    from bastion.agents.spec import AgentDeps, Task

    cases = []
    for item in objectives:
        tid = scratch.tenant(list(item.get("connections") or []))
        task = Task(
            agent="design", objective=item["objective"], input={"objective": item["objective"]}, tenant_id=tid
        )
        try:
            played = play("design", task, AgentDeps(db=scratch.db, tenant_id=tid, actor="bench", run_id=""))
            if played.output is None:
                raise RuntimeError(f"{played.status}: {played.error}")
            case = score_design(item["expect"], played.output)
        except Exception as exc:  # one objective the agent cannot handle must not end the evaluation
            case = {**score_design(item["expect"], {}), "error": f"{type(exc).__name__}: {exc}"}
        cases.append({"id": item["id"], "heldout": bool(item.get("heldout")), **case})
    return _with_heldout(cases)


def _with_heldout(cases: list[dict[str, Any]]) -> dict[str, Any]:
    """The summary over all objectives, and the held-out ones' alone (written after the planner was
    tuned on the rest: the honest figure for how it copes with new wording)."""
    out = summarize_design(cases)
    held = [c for c in cases if c.get("heldout")]
    if held:
        out["heldout"] = {k: v for k, v in summarize_design(held).items() if k != "cases"}
    return out


def design_configured(
    scratch: Scratch, objectives: list[dict[str, Any]], llm: dict[str, Any]
) -> dict[str, Any]:
    from bastion.agents.runtime import run_agent
    from bastion.agents.spec import Task

    cases = []
    for item in objectives:
        tid = scratch.tenant(["llm-" + llm["model"], *(item.get("connections") or [])], llm)
        task = Task(
            agent="design", objective=item["objective"], input={"objective": item["objective"]}, tenant_id=tid
        )
        try:
            result = run_agent(scratch.db, tid, "design", task, actor="bench", wait_s=300.0)
            case = score_design(item["expect"], result.output or {})
            if result.output is None:
                case["error"] = result.error or result.status
        except Exception as exc:
            case = {**score_design(item["expect"], {}), "error": f"{type(exc).__name__}: {exc}"}
        cases.append({"id": item["id"], "heldout": bool(item.get("heldout")), **case})
    return _with_heldout(cases)


def _samples(folder: Path, limit: int | None) -> list[tuple[Path, str]]:
    sys.path.insert(0, str(ROOT))
    from bench.malware_samples import build_samples  # the malware helper's labelled corpus

    found = build_samples(folder)
    return found[:limit] if limit else found


def malware_offline(folder: Path, limit: int | None) -> dict[str, Any]:
    try:
        files = _samples(folder, limit)
        from bastion.agents.malware.analyze import analyze
    except Exception as exc:  # the malware part lands separately; report instead of failing
        return {"error": f"{type(exc).__name__}: {exc}"}
    rows = []
    for path, expected in files:
        try:
            verdict = str(analyze(path).verdict)
        except Exception as exc:
            verdict = f"error: {type(exc).__name__}: {exc}"
        rows.append({"file": path.name, "expected": expected, "verdict": verdict, "ok": verdict == expected})
    return _malware_summary(rows)


def malware_configured(
    scratch: Scratch, folder: Path, limit: int | None, llm: dict[str, Any]
) -> dict[str, Any]:
    try:
        files = _samples(folder, limit)
        from bastion.agents.runtime import run_agent
        from bastion.agents.spec import Task, get_agent

        get_agent("malware")
    except Exception as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}
    tid = scratch.tenant(["llm-" + llm["model"]], llm)
    rows = []
    from bastion.agents.malware.samples import submit

    for path, expected in files:
        sample = submit(tid, path.read_bytes(), path.name)  # the agent reads only submitted samples
        task = Task(
            agent="malware", objective=f"analyse {path.name}", input={"path": str(sample)}, tenant_id=tid
        )
        try:
            result = run_agent(scratch.db, tid, "malware", task, actor="bench", wait_s=300.0)
            verdict = str((result.output or {}).get("verdict") or f"error: {result.error or result.status}")
        except Exception as exc:
            verdict = f"error: {type(exc).__name__}: {exc}"
        rows.append({"file": path.name, "expected": expected, "verdict": verdict, "ok": verdict == expected})
    return _malware_summary(rows)


def _malware_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    n = len(rows)
    return {"n": n, "accuracy": sum(r["ok"] for r in rows) / n if n else 0.0, "files": rows}


def configured_llm() -> dict[str, Any] | None:
    """The model to evaluate besides the offline reasoner, from the environment; None when none is set."""
    env = os.environ
    if env.get("BASTION_EVAL_LLM_URL") and env.get("BASTION_EVAL_LLM_MODEL"):
        return {
            "url": env["BASTION_EVAL_LLM_URL"],
            "model": env["BASTION_EVAL_LLM_MODEL"],
            "provider": env.get("BASTION_EVAL_LLM_PROVIDER", "openai"),
            "key": env.get("BASTION_EVAL_LLM_KEY"),
        }
    if env.get("BASTION_LLM_PROVIDER") and env["BASTION_LLM_PROVIDER"].lower() != "none":
        return {
            "url": env.get("BASTION_LLM_BASE_URL") or "https://api.openai.com/v1",
            "model": env.get("BASTION_LLM_MODEL") or "gpt-4o-mini",
            "provider": env["BASTION_LLM_PROVIDER"],
            "key": env.get("BASTION_LLM_API_KEY"),
        }
    return None


def evaluate(limit: int | None = None, objectives_path: Path = OBJECTIVES) -> dict[str, Any]:
    t0 = time.perf_counter()
    objectives = load_objectives(objectives_path)
    if limit:
        objectives = objectives[:limit]
    llm = configured_llm()
    with tempfile.TemporaryDirectory(prefix="bastion-agents-eval-") as tmp:
        folder = Path(tmp)
        scratch = Scratch(folder)
        result: dict[str, Any] = {
            "objectives": len(objectives),
            "offline": {
                "design": design_offline(scratch, objectives),
                "malware": malware_offline(folder / "samples", limit),
            },
            "configured": None,
        }
        if llm is not None:
            from bastion.respond.runtime import Executor

            executor = Executor(scratch.db, kind="bench", listen=False)
            executor.launch()
            try:
                result["configured"] = {
                    "model": f"{llm['provider']}:{llm['model']}",
                    "url": llm["url"],
                    "design": design_configured(scratch, objectives, llm),
                    "malware": malware_configured(scratch, folder / "samples-llm", limit, llm),
                }
            finally:
                executor.shutdown()
        scratch.db.dispose()
    result["seconds"] = round(time.perf_counter() - t0, 2)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--limit", type=int, default=None, help="only the first N objectives and files")
    parser.add_argument("--objectives", type=Path, default=OBJECTIVES, help="the labelled objectives file")
    parser.add_argument("--cases", action="store_true", help="keep the per-objective detail in the JSON")
    args = parser.parse_args()
    result = evaluate(args.limit, args.objectives)
    if not args.cases:
        for part in ("offline", "configured"):
            section = result.get(part) or {}
            if isinstance(section.get("design"), dict):
                cases = section["design"].pop("cases", [])
                section["design"]["failures"] = [
                    {k: c[k] for k in ("id", "valid", "missing", "extra", "problems", "error") if k in c}
                    for c in cases
                    if not c["valid"] or c["missing"] or c.get("error")
                ]
    if args.json:
        sys.stdout.write(orjson.dumps(result).decode() + "\n")
        return
    off = result["offline"]
    d = off["design"]
    print(
        f"design (offline): {result['objectives']} objectives, validity {d['validity_rate']:.2f}, "
        f"recall {d['recall']:.2f}, precision {d['precision']:.2f}"
    )
    m = off["malware"]
    print(
        "malware (offline): "
        + (f"accuracy {m['accuracy']:.2f} on {m['n']} files" if "accuracy" in m else m.get("error", ""))
    )
    print(f"configured model: {result['configured']['model'] if result['configured'] else 'none'}")


if __name__ == "__main__":
    main()
