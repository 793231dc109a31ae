"""Ingest benchmark: normalize + extract observables + store, against the floor, in one run.

Input: the 8,255 attack-sample Windows events (../shared/data/evtx-attack-samples) replicated to at least
200,000 events. Each copy is made a distinct event (its record id and time shifted), so every event takes
the whole path: nothing is deduplicated away. The field values repeat from copy to copy, though, and the
observable extraction memoizes up to 8,192 values (paths, users, hosts and command lines repeat in real
logs too): after the first copy nearly every value is a memo hit, more than real data would give.

Measured, each into a fresh SQLite file on one core, from the same in-memory JSON lines:
- bastion: orjson.loads of each line -> normalize -> extract observables -> store (events, observable
  index, one audit entry per batch), one transaction per batch;
- floor: orjson.loads of each line plus a bulk insert of the raw rows, one transaction per batch, into a
  SQLite file set up as the store sets up its own (WAL, synchronous=NORMAL, the same page size: 32 KiB
  pages alone make the floor about a quarter faster than SQLite's default 4 KiB).

Both are run ``--rounds`` times, alternating, each round into fresh files; the figures are each side's best
round (as ``timeit`` does: the least-disturbed run), and every round's rate is printed too. The process
runs with the garbage-collector thresholds every Bastion process starts with (``bastion.tuning``), the
floor included.

Prints {"events_per_s", "floor_events_per_s", "ratio_to_floor", ...}; ratio_to_floor = floor / bastion.
"""

from __future__ import annotations

import argparse
import copy
import gzip
import os
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

import orjson

from bastion.config import Settings
from bastion.store.db import SQLITE_PAGE_SIZE
from bastion.tuning import tune_gc

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT.parent / "shared" / "data" / "evtx-attack-samples" / "events.jsonl.gz"
DAY_MS = 86_400_000


def replicate(target: int) -> list[bytes]:
    """The sample lines, copied until there are ``target`` distinct events."""
    if not SAMPLES.is_file():
        sys.exit(f"bench: sample events missing: {SAMPLES}")
    with gzip.open(SAMPLES, "rb") as fh:
        base = [orjson.loads(line) for line in fh if line.strip()]
    lines: list[bytes] = []
    copy_no = 0
    while len(lines) < target:
        for rec in base:
            if copy_no:
                rec = copy.deepcopy(rec)
                system = rec["Event"]["System"]
                system["EventRecordID"] = int(system.get("EventRecordID") or 0) + copy_no * 10_000_000
                tc = system.get("TimeCreated", {}).get("#attributes", {})
                if "SystemTime" in tc:
                    year = int(tc["SystemTime"][:4]) + copy_no % 5
                    tc["SystemTime"] = f"{year:04d}{tc['SystemTime'][4:]}"
            lines.append(orjson.dumps(rec))
            if len(lines) >= target:
                break
        copy_no += 1
    return lines


def run_bastion(lines: list[bytes], workdir: Path, batch: int) -> tuple[float, int]:
    from bastion.ingest.records import RawRecord
    from bastion.pipeline import prepare_events, store_events
    from bastion.store import Database
    from bastion.tenancy.service import create_tenant

    db = Database(f"sqlite:///{workdir / 'bastion.db'}")
    db.migrate()
    tenant, _ = create_tenant(db, "bench")
    accepted = 0
    t0 = time.perf_counter()
    for start in range(0, len(lines), batch):
        chunk = lines[start : start + batch]
        records = [
            RawRecord(line=start + i + 1, data=orjson.loads(line), format=None)
            for i, line in enumerate(chunk)
        ]
        rows, errors = prepare_events(records)
        accepted += store_events(db, tenant.id, "bench", rows, errors, source="bench").accepted
    elapsed = time.perf_counter() - t0
    db.dispose()
    return elapsed, accepted


def run_floor(lines: list[bytes], workdir: Path, batch: int) -> float:
    conn = sqlite3.connect(workdir / "floor.db", isolation_level=None)
    conn.execute(f"PRAGMA page_size={SQLITE_PAGE_SIZE}")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("CREATE TABLE raw_events (id INTEGER PRIMARY KEY, raw TEXT NOT NULL)")
    t0 = time.perf_counter()
    for start in range(0, len(lines), batch):
        chunk = lines[start : start + batch]
        parsed = [orjson.loads(line) for line in chunk]
        rows = [(line.decode(),) for line, _ in zip(chunk, parsed, strict=True)]
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO raw_events (raw) VALUES (?)", rows)
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - t0
    conn.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument(
        "--batch",
        type=int,
        default=Settings.model_fields["ingest_batch_size"].default,
        help="events a transaction (default: what Bastion stores per transaction, ingest_batch_size)",
    )
    parser.add_argument(
        "--rounds", type=int, default=3, help="alternating rounds; the best of each side counts"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    tune_gc()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    lines = replicate(args.events)
    ours: list[float] = []
    floor: list[float] = []
    for round_no in range(args.rounds):
        with tempfile.TemporaryDirectory(prefix="bastion-bench-") as tmp:
            floor.append(run_floor(lines, Path(tmp), args.batch))
            ours_s, accepted = run_bastion(lines, Path(tmp), args.batch)
            ours.append(ours_s)
        if accepted != len(lines):
            sys.exit(f"bench: round {round_no + 1} stored {accepted} of {len(lines)}; input must be distinct")
    ours_s, floor_s = min(ours), min(floor)
    result = {
        "events": len(lines),
        "events_per_s": round(len(lines) / ours_s),
        "floor_events_per_s": round(len(lines) / floor_s),
        "ratio_to_floor": round(ours_s / floor_s, 2),
        "seconds": round(ours_s, 2),
        "floor_seconds": round(floor_s, 2),
        "batch": args.batch,
        "rounds": args.rounds,
        "round_events_per_s": [round(len(lines) / s) for s in ours],
        "round_floor_events_per_s": [round(len(lines) / s) for s in floor],
    }
    if args.json:
        print(orjson.dumps(result).decode())
    else:
        for k, v in result.items():
            print(f"{k:>20}: {v}")


if __name__ == "__main__":
    main()
