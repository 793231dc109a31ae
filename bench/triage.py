"""Triage benchmark: dedupe, scoring, correlation into cases and case storage, against storing the same
alerts with no triage, in one run.

Alerts: the SigmaHQ Windows rules are run ONCE over the 8,255 attack-sample events through the real
pipeline stages (normalize, extract observables, detect). The alerts are then replayed as bursts: each
burst is a run of consecutive sample alerts (one sample file's attack) put on one of 200 hosts and one of
200 users at a random moment of a 30-day period, a few seconds apart, until ``--alerts`` (default
100,000). Bursts repeat rules on the same host (dedupe) and chain techniques on one entity (correlation,
ATT&CK progressions); one host in 20 is a critical asset (auto-close safety).

Both sides run the real pipeline entry ``ingest_alerts`` on a fresh SQLite store, in batches of
``--batch`` alerts (one transaction each), on one core: ``triage=True`` (suppress, dedupe, score,
correlate, auto-close, route, cases) and ``triage=False`` (the store path minus triage). Times are wall
clock of the ingest calls only, with the garbage-collector thresholds every Bastion process runs with
(``bastion.tuning``). Prints one JSON object:
{"alerts_per_s", "store_only_alerts_per_s", "ratio", "cases", ...}.
"""

from __future__ import annotations

import argparse
import gzip
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import msgspec

from bastion.detect.engine import Detector
from bastion.detect.tenant import Detection
from bastion.ingest.records import RawRecord
from bastion.model import Alert, Observable, ObservableType
from bastion.pipeline import ingest_alerts, prepare_events
from bastion.store import Database, TenantScope
from bastion.tenancy.service import create_tenant
from bastion.tuning import tune_gc

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
RULES = DATA / "sigma" / "rules" / "windows"
SAMPLES = DATA / "evtx-attack-samples" / "events.jsonl.gz"
HOSTS = 200
DAYS = 30
START = 1_780_000_000_000  # epoch ms of the replayed period's start


def base_alerts() -> tuple[list[Alert], dict[str, float]]:
    """The alerts the Windows rules raise on the attack samples, in sample order."""
    import orjson

    t0 = time.perf_counter()
    det = Detector.from_paths([RULES])
    load_s = time.perf_counter() - t0
    lines = [x for x in gzip.decompress(SAMPLES.read_bytes()).split(b"\n") if x.strip()]
    records = [RawRecord(line=i, data=orjson.loads(x)) for i, x in enumerate(lines, start=1)]
    t0 = time.perf_counter()
    rows, _ = prepare_events(records, now=START, detection=Detection(det))
    detect_s = time.perf_counter() - t0
    alerts = [a for r in rows for a in r.alerts]
    return alerts, {"rule_load_s": round(load_s, 1), "detect_s": round(detect_s, 1), "events": len(lines)}


def replay(base: list[Alert], n: int, seed: int = 7) -> list[Alert]:
    """``n`` alerts as bursts of consecutive base alerts on random hosts and users over 30 days."""
    rng = random.Random(seed)
    out: list[Alert] = []
    burst = 0
    while len(out) < n:
        start = rng.randrange(len(base))
        size = rng.randint(5, 60)
        h = rng.randrange(HOSTS)
        u = h if rng.random() < 0.8 else rng.randrange(HOSTS)
        host, user = f"WS{h:03d}.corp.example", f"CORP\\user{u:03d}"
        at = START + rng.randrange(DAYS * 86_400_000)
        assets = [{"hostname": host, "criticality": 4 if h % 20 == 0 else 2, "owner": "it"}]
        for k, src in enumerate(base[start : start + size]):
            obs = [o for o in src.observables if o.type not in (ObservableType.HOST, ObservableType.USER)]
            obs += [Observable(ObservableType.HOST, host), Observable(ObservableType.USER, user)]
            out.append(
                msgspec.structs.replace(
                    src,
                    time=at + k * rng.randint(1_000, 30_000),
                    external_id=f"{src.external_id}:{burst}",
                    observables=obs,
                    enrichment={"assets": assets},
                )
            )
            at += rng.randint(1_000, 30_000)
            if len(out) >= n:
                break
        burst += 1
    out.sort(key=lambda a: a.time)
    return out


def run(alerts: list[Alert], *, triage: bool, batch: int) -> dict[str, Any]:
    """Ingest ``alerts`` into a fresh SQLite store; return the timing and what was stored."""
    with tempfile.TemporaryDirectory(prefix="bastion-bench-") as tmp:
        db = Database(f"sqlite:///{tmp}/bench.db")
        db.migrate()
        tenant, _ = create_tenant(db, "bench", actor="bench")
        counts = {"accepted": 0, "deduplicated": 0, "auto_closed": 0, "cases": 0}
        t0 = time.perf_counter()
        c0 = time.process_time()
        for i in range(0, len(alerts), batch):
            r = ingest_alerts(db, tenant.id, "bench", alerts[i : i + batch], triage=triage)
            counts["accepted"] += r.accepted
            counts["deduplicated"] += r.deduplicated
            counts["auto_closed"] += r.auto_closed
            counts["cases"] += r.cases
        wall = time.perf_counter() - t0
        cpu = time.process_time() - c0
        with db.read() as conn:
            scope = TenantScope(conn, tenant.id)
            counts["stored_alerts"] = scope.alerts.count()
            counts["stored_cases"] = scope.cases.count()
        db.dispose()
    return {"seconds": wall, "cpu_seconds": cpu, **counts}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--alerts", type=int, default=100_000, help="alerts to triage (default 100000)")
    ap.add_argument(
        "--batch", type=int, default=2000, help="alerts per transaction (default 2000, the ingest default)"
    )
    ap.add_argument("--json", action="store_true", help="print only the JSON result")
    args = ap.parse_args()
    tune_gc()
    for p in (RULES, SAMPLES):
        if not p.exists():
            sys.exit(f"bench: reference data missing: {p}")
    base, prep = base_alerts()
    alerts = replay(base, args.alerts)
    if not args.json:
        print(f"{len(base)} sample alerts, replayed as {len(alerts)}", file=sys.stderr)
    # Warm-up (imports, ATT&CK matrix, statement caches) on a small slice, in its own store.
    run(alerts[:2000], triage=True, batch=args.batch)
    store = run(alerts, triage=False, batch=args.batch)
    tri = run(alerts, triage=True, batch=args.batch)
    x = len(alerts) / tri["seconds"]
    y = len(alerts) / store["seconds"]
    result = {
        "alerts_per_s": round(x, 1),
        "store_only_alerts_per_s": round(y, 1),
        "ratio": round(y / x, 2),
        "cases": tri["cases"],
        "alerts": len(alerts),
        "sample_alerts": len(base),
        "stored_alerts": tri["stored_alerts"],
        "store_only_stored_alerts": store["stored_alerts"],
        "deduplicated": tri["deduplicated"],
        "auto_closed": tri["auto_closed"],
        "triage_seconds": round(tri["seconds"], 2),
        "store_only_seconds": round(store["seconds"], 2),
        "triage_cpu_seconds": round(tri["cpu_seconds"], 2),
        "store_only_cpu_seconds": round(store["cpu_seconds"], 2),
        "batch": args.batch,
        **prep,
    }
    import orjson

    print(orjson.dumps(result).decode())


if __name__ == "__main__":
    main()
