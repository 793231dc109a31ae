"""Intel matcher benchmark: load N generated indicators, then match a mixed stream of observables, against
the same lookups as indexed SQL queries on the same indicators in SQLite, in one run.

Indicators (``--indicators``, default 10,000,000), generated from a fixed seed: 40% IPv4 addresses,
5% CIDR ranges (/24-/30, disjoint, from 11.0.0.0 up), 25% domains (matched with their subdomains),
10% URLs, 20% hashes (SHA-256 and MD5); a fifth of the domains have three labels, the rest two.
Observables (``--lookups``, default 1,000,000): the same mix of types, 1% of them hits (a loaded value, a
subdomain of a loaded domain, an address inside a loaded range, a URL written differently), the rest
random misses.

- bastion: ``Matcher.add`` for every indicator, then ``Matcher.prepare`` (the range segments and the batch
  filter, which the first batch would build otherwise) (load_s, and the process RSS after it), then
  ``Matcher.match_many`` over the stream in batches of 2,000 on one core (``lookups_per_s``), expiry checked.
Lookup rates are per second of this process's CPU time (``time.process_time``: one core, not counting
time spent waiting for a core on a shared machine); ``*_wall`` are the same per wall-clock second.

- baseline: the same indicators bulk-loaded into an SQLite file with an index on the value and on range
  starts (load time reported apart), then the same observables as indexed queries: exact value; for an
  address also the nearest range start below it (``ORDER BY start DESC LIMIT 1``, correct for the
  disjoint generated ranges); for a domain one ``IN`` over its parents; URLs normalized first.
  ``--baseline-lookups`` (default 100,000) of the stream are run; the rate is per second of query time.

The process runs with the garbage-collector thresholds every Bastion process starts with
(``bastion.tuning``), the baseline included.

Prints {"indicators", "load_s", "rss_mb", "lookups_per_s", "baseline_lookups_per_s", "speedup", ...}.
"""

from __future__ import annotations

import argparse
import gc
import ipaddress
import os
import random
import resource
import sqlite3
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import orjson

from bastion.intel.matcher import Matcher
from bastion.intel.urlkeys import canonical_url
from bastion.model.intel import IndicatorType as T
from bastion.tuning import tune_gc

WORDS = [
    "alpha",
    "bravo",
    "cloud",
    "delta",
    "echo",
    "fox",
    "grid",
    "host",
    "ion",
    "jet",
    "kilo",
    "lima",
    "mesh",
    "nova",
    "opal",
    "pixel",
    "quartz",
    "relay",
]
WORDS += ["sync", "tango", "umbra", "vault", "wave", "xeno", "yard", "zeta"]
TLDS = ["com", "net", "org", "io", "info", "xyz", "ru", "cn", "biz", "top"]


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _domain(rng: random.Random, i: int) -> str:
    return f"{rng.choice(WORDS)}{i:x}{rng.choice(WORDS)}.{rng.choice(TLDS)}"


BATCH = 2000  # observables matched per call, as the pipeline batches them
_RANGE_AREA = [0x0B000000, 0x0B000000]


def generate(n: int, seed: int = 7) -> Iterator[tuple[int, T, str]]:
    """(id, type, canonical value) for n indicators."""
    rng = random.Random(seed)
    cidr_base = 0x0B000000  # ranges are carved, disjoint, upwards from 11.0.0.0
    for i in range(n):
        r = i % 20
        if r < 8:
            yield i, T.IPV4, str(ipaddress.IPv4Address(rng.getrandbits(32)))
        elif r < 9:
            prefix = rng.randint(24, 30)
            size = 1 << (32 - prefix)
            cidr_base = (cidr_base + size - 1) // size * size
            yield i, T.CIDR, f"{ipaddress.IPv4Address(cidr_base)}/{prefix}"
            cidr_base += size
            _RANGE_AREA[1] = max(_RANGE_AREA[1], cidr_base)
        elif r < 14:  # a fifth of them one level down (cdn.example.com), as real feeds list both
            name = _domain(rng, i)
            yield i, T.DOMAIN, f"{rng.choice(WORDS)}.{name}" if r == 13 else name
        elif r < 16:
            yield i, T.URL, f"http://{_domain(rng, i)}/{rng.choice(WORDS)}/{i}.php?id={rng.getrandbits(20)}"
        elif r < 19:
            yield i, T.SHA256, f"{rng.getrandbits(256):064x}"
        else:
            yield i, T.MD5, f"{rng.getrandbits(128):032x}"


def observables(n: int, sample: list[tuple[T, str]], seed: int = 11) -> list[tuple[str, str]]:
    """A mixed stream, 1% hits derived from loaded indicators."""
    rng = random.Random(seed)
    out: list[tuple[str, str]] = []
    for i in range(n):
        if i % 100 == 0 and sample:
            kind, value = sample[rng.randrange(len(sample))]
            if kind is T.CIDR:
                net = ipaddress.ip_network(value)
                out.append(("ipv4", str(net.network_address + rng.randrange(net.num_addresses))))
            elif kind is T.DOMAIN:
                out.append(("domain", f"www.{value}"))
            elif kind is T.URL:
                out.append(("url", value.replace("http://", "HTTP://", 1)))
            else:
                out.append((kind.value, value))
            continue
        r = i % 10
        if r < 5:
            ip = rng.getrandbits(32)
            while _RANGE_AREA[0] <= ip < _RANGE_AREA[1]:  # misses stay out of the generated ranges
                ip = rng.getrandbits(32)
            out.append(("ipv4", str(ipaddress.IPv4Address(ip))))
        elif r < 8:
            out.append(("domain", f"mail.{rng.choice(WORDS)}-{i}.{rng.choice(TLDS)}"))
        elif r < 9:
            out.append(("url", f"https://cdn-{i}.example/{rng.choice(WORDS)}?q={i}"))
        else:
            out.append(("sha256", f"{rng.getrandbits(256):064x}"))
    return out


def bench_bastion(n: int, lookups: int) -> tuple[dict[str, float], list[tuple[str, str]], int]:
    gc.collect()
    base_rss = _rss_mb()
    m = Matcher()
    sample: list[tuple[T, str]] = []
    t0, c0 = time.perf_counter(), time.process_time()
    add = m.add
    for ident, kind, value in generate(n):
        add(ident, kind, value)
        if ident % 997 == 0:
            sample.append((kind, value))
    m.prepare()  # builds the range segments and the batch filter (else the first batch would), loading
    load_s, load_cpu = time.perf_counter() - t0, time.process_time() - c0
    gc.collect()
    rss = _rss_mb()
    stream = observables(lookups, sample)
    now = int(time.time() * 1000)
    t0, c0 = time.perf_counter(), time.process_time()
    hits = 0
    for start in range(0, len(stream), BATCH):
        hits += sum(1 for found in m.match_many(stream[start : start + BATCH], now) if found)
    look_s, look_cpu = time.perf_counter() - t0, time.process_time() - c0
    return (
        {
            "load_s": round(load_s, 2),
            "load_cpu_s": round(load_cpu, 2),
            "rss_mb": round(rss, 1),
            "rss_before_load_mb": round(base_rss, 1),
            "lookups_per_s": round(lookups / look_cpu),
            "lookups_per_s_wall": round(lookups / look_s),
            "hits": hits,
        },
        stream,
        hits,
    )


def bench_sqlite(n: int, stream: list[tuple[str, str]]) -> dict[str, float]:
    folder = tempfile.mkdtemp(prefix="bastion-bench-intel-")
    path = Path(folder) / "intel.db"
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=OFF")
    db.execute("CREATE TABLE ind (id INTEGER PRIMARY KEY, kind TEXT NOT NULL, value TEXT NOT NULL)")
    db.execute("CREATE TABLE cidr (id INTEGER PRIMARY KEY, start INTEGER NOT NULL, stop INTEGER NOT NULL)")
    t0 = time.perf_counter()
    batch: list[tuple[int, str, str]] = []
    ranges: list[tuple[int, int, int]] = []
    for ident, kind, value in generate(n):
        if kind is T.CIDR:
            net = ipaddress.ip_network(value)
            ranges.append((ident, int(net.network_address), int(net.broadcast_address)))
        else:
            batch.append((ident, kind.value, value))
        if len(batch) >= 100_000:
            db.executemany("INSERT INTO ind VALUES (?, ?, ?)", batch)
            batch = []
    db.executemany("INSERT INTO ind VALUES (?, ?, ?)", batch)
    db.executemany("INSERT INTO cidr VALUES (?, ?, ?)", ranges)
    db.execute("CREATE INDEX ix_ind_value ON ind (value)")
    db.execute("CREATE INDEX ix_cidr_start ON cidr (start)")
    db.commit()
    load_s = time.perf_counter() - t0
    cur = db.cursor()
    hits = 0
    t0, c0 = time.perf_counter(), time.process_time()
    for t, v in stream:
        found = False
        if t == "ipv4":
            found = cur.execute("SELECT id FROM ind WHERE value = ?", (v,)).fetchone() is not None
            x = int(ipaddress.IPv4Address(v))
            row = cur.execute(
                "SELECT id, stop FROM cidr WHERE start <= ? ORDER BY start DESC LIMIT 1", (x,)
            ).fetchone()
            found = found or (row is not None and row[1] >= x)
        elif t == "domain":
            parts = v.lower().split(".")
            parents = [".".join(parts[i:]) for i in range(len(parts) - 1)]
            q = f"SELECT id FROM ind WHERE value IN ({','.join('?' * len(parents))}) LIMIT 1"
            found = cur.execute(q, parents).fetchone() is not None
        elif t == "url":
            found = (
                cur.execute("SELECT id FROM ind WHERE value = ?", (canonical_url(v),)).fetchone() is not None
            )
        else:
            found = cur.execute("SELECT id FROM ind WHERE value = ?", (v.lower(),)).fetchone() is not None
        hits += found
    q_s, q_cpu = time.perf_counter() - t0, time.process_time() - c0
    db.close()
    for f in Path(folder).iterdir():
        f.unlink()
    os.rmdir(folder)
    return {
        "baseline_load_s": round(load_s, 2),
        "baseline_lookups_per_s": round(len(stream) / q_cpu),
        "baseline_lookups_per_s_wall": round(len(stream) / q_s),
        "baseline_hits": hits,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--indicators", type=int, default=10_000_000)
    ap.add_argument("--lookups", type=int, default=1_000_000)
    ap.add_argument("--baseline-lookups", type=int, default=100_000, help="SQL lookups run (rate per second)")
    ap.add_argument("--no-baseline", action="store_true")
    ap.add_argument("--json", action="store_true", help="print only the JSON result")
    args = ap.parse_args()
    tune_gc()
    result: dict[str, float] = {"indicators": args.indicators, "lookups": args.lookups}
    ours, stream, hits = bench_bastion(args.indicators, args.lookups)
    result.update(ours)
    if not args.no_baseline:
        sub = stream[: args.baseline_lookups]
        base = bench_sqlite(args.indicators, sub)
        result.update(base)
        expected = sum(1 for i in range(len(sub)) if i % 100 == 0)
        result["baseline_lookups"] = len(sub)
        result["baseline_expected_hits"] = expected
        result["speedup"] = round(result["lookups_per_s"] / result["baseline_lookups_per_s"], 1)
    print(orjson.dumps(result).decode())
    if not args.json:
        print(f"hits {hits} of {args.lookups} observables", file=sys.stderr)


if __name__ == "__main__":
    main()
