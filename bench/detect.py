"""Detection benchmark: the streaming matcher against pysigma-backend-sqlite, in one run.

Rules: every rule under ../shared/data/sigma/rules/windows (about 2,400). Events: the 8,255 attack-sample
Windows events replicated to ``--events`` (default 100,000). Copies are identical documents; the matcher
keeps nothing between events, so a copy costs what the original does.

Measured on one core, from the same in-memory JSON lines:
- bastion: orjson.loads of each line -> flatten -> indexed, prefiltered match against all rules;
- baseline: the same rules converted by pysigma-backend-sqlite (conversion time reported apart), the same
  events flattened into an indexed SQLite table (load time reported apart), then every query run, each
  restricted to its Channel/EventID (what pySigma's Windows log-source pipelines add; it makes the
  baseline faster, not slower). baseline_events_per_s = events / query seconds.

Times are CPU seconds of this process (time.process_time), so other load on a shared machine does not
count against either side. Bastion's side makes ``--rounds`` passes over the events (default 5, about two
CPU seconds each) and its median pass counts, every pass's rate printed too; the baseline is one pass of
about forty seconds. On a shared machine one two-second pass moved by a fifth between runs; the median
takes that noise out without favouring either side (the best pass would). The process runs with the
garbage-collector thresholds every Bastion process starts with (``bastion.tuning``), the baseline
included. Peak RSS is read right after the bastion run, before the baseline loads anything.
``compiled`` says whether the matcher ran from its mypyc build (``make native``; ``BASTION_NATIVE=0``
measures the pure-Python modules).
Prints one JSON object: {"events_per_s", "baseline_events_per_s", "speedup", "peak_rss_mb", "rules", ...}.
"""

from __future__ import annotations

import argparse
import gzip
import multiprocessing
import os
import resource
import statistics
import sys
import time
from pathlib import Path

import orjson

from bastion import native
from bastion.detect.engine import Detector
from bastion.detect.events import flatten
from bastion.detect.sqlref import SqliteReference
from bastion.tuning import tune_gc

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
RULES = DATA / "sigma" / "rules" / "windows"
SAMPLES = DATA / "evtx-attack-samples" / "events.jsonl.gz"


_DET: Detector | None = None


def _count(chunk: list[bytes]) -> int:
    assert _DET is not None
    return sum(len(_DET.match_flat(flatten(orjson.loads(line)))) for line in chunk)


def _parallel(det: Detector, lines: list[bytes], workers: int) -> dict[str, object]:
    """Throughput of ``workers`` forked processes (as ``bastion detect --workers``), wall clock."""
    global _DET
    _DET = det
    size = 2000
    chunks = [lines[i : i + size] for i in range(0, len(lines), size)]
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(workers) as pool:
        pool.map(_count, chunks[: workers * 2])  # warm the workers' indexes
        t0 = time.perf_counter()
        total = sum(pool.map(_count, chunks))
        wall = time.perf_counter() - t0
    return {
        "workers": workers,
        "workers_events_per_s": round(len(lines) / wall, 1),
        "workers_matches": total,
        "cpu_count": os.cpu_count(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=100_000, help="events to match (default 100000)")
    ap.add_argument("--rounds", type=int, default=5, help="passes over the events; the median counts")
    ap.add_argument("--json", action="store_true", help="print only the JSON result")
    ap.add_argument("--no-baseline", action="store_true", help="skip the SQLite baseline")
    ap.add_argument("--workers", type=int, default=1, help="also measure N forked processes (wall clock)")
    args = ap.parse_args()
    tune_gc()
    for p in (RULES, SAMPLES):
        if not p.exists():
            sys.exit(f"bench: reference data missing: {p}")
    base = [x for x in gzip.decompress(SAMPLES.read_bytes()).split(b"\n") if x.strip()]
    lines = (base * (args.events // len(base) + 1))[: args.events]

    t0 = time.process_time()
    det = Detector.from_paths([RULES])
    load_s = time.process_time() - t0
    # Warm-up on one copy builds the per-log-source indexes, as a long-running service would have them.
    for line in base:
        det.match_flat(flatten(orjson.loads(line)))
    passes: list[float] = []
    for _ in range(max(1, args.rounds)):
        t0 = time.process_time()
        matches = 0
        for line in lines:
            matches += len(det.match_flat(flatten(orjson.loads(line))))
        passes.append(time.process_time() - t0)
    ours_s = statistics.median(passes)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result: dict[str, object] = {
        "events": len(lines),
        "rules": len(det.rules),
        "unsupported": len(det.unsupported),
        "rule_load_s": round(load_s, 2),
        "seconds": round(ours_s, 2),
        "events_per_s": round(len(lines) / ours_s, 1),
        "round_events_per_s": [round(len(lines) / x, 1) for x in passes],
        "matches": matches,
        "peak_rss_mb": round(peak_mb, 1),
        "compiled": native.status()["compiled"],  # the mypyc build of the matcher (make native) in use
    }
    if args.workers > 1:
        result.update(_parallel(det, lines, args.workers))
    if not args.no_baseline:
        ref = SqliteReference(det)
        t0 = time.process_time()
        conn, evs = ref.connect(flatten(orjson.loads(line)) for line in lines)
        sql_load_s = time.process_time() - t0
        t0 = time.process_time()
        pairs = ref.run(conn, evs)
        sql_s = time.process_time() - t0
        result.update(
            {
                "baseline_convert_s": round(ref.convert_seconds, 2),
                "baseline_load_s": round(sql_load_s, 2),
                "baseline_seconds": round(sql_s, 2),
                "baseline_events_per_s": round(len(lines) / sql_s, 1),
                "baseline_matches": len(pairs),
                "speedup": round(sql_s / ours_s, 2),
            }
        )
    print(orjson.dumps(result).decode())


if __name__ == "__main__":
    main()
