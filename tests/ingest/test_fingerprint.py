"""Fingerprints: one identity per logical record, whatever the key order or line ending."""

from __future__ import annotations

import gzip
from pathlib import Path

import orjson
import pytest

from bastion.ingest.fingerprint import canonical_bytes, fingerprint

SAMPLES = (
    Path(__file__).resolve().parents[2].parent / "shared" / "data" / "evtx-attack-samples" / "events.jsonl.gz"
)


def test_key_order_and_whitespace_do_not_matter() -> None:
    a = orjson.loads('{"b": 1, "a": {"y": [1, 2, {"q": 1, "p": 2}], "x": "v"}}')
    b = orjson.loads('{\n  "a": {"x": "v", "y": [1, 2, {"p": 2, "q": 1}]},\n  "b": 1\n}')
    assert canonical_bytes(a) == canonical_bytes(b) == b'{"a":{"x":"v","y":[1,2,{"p":2,"q":1}]},"b":1}'
    assert fingerprint(canonical_bytes(a)) == fingerprint(canonical_bytes(b))


def test_text_records_ignore_trailing_line_breaks() -> None:
    line = "CEF:0|Vendor|Product|1.0|100|Login|5|src=10.0.0.1"
    assert (
        canonical_bytes(line + "\r\n")
        == canonical_bytes(line + "\n")
        == canonical_bytes(line)
        == line.encode()
    )
    assert canonical_bytes(line.encode() + b"\n") == line.encode()
    assert canonical_bytes(line + " ") != canonical_bytes(line)  # other whitespace is content


def test_different_records_differ() -> None:
    digest = fingerprint(canonical_bytes({"a": 1}))
    assert len(digest) == 16
    assert digest != fingerprint(canonical_bytes({"a": 2}))
    assert digest != fingerprint(canonical_bytes({"a": "1"}))
    assert digest != fingerprint(canonical_bytes([{"a": 1}]))
    assert canonical_bytes({1: "x"}) == b'{"1":"x"}'


def test_attack_samples_are_distinct_and_stable() -> None:
    if not SAMPLES.is_file():
        pytest.fail(f"attack samples missing: expected {SAMPLES}")
    with gzip.open(SAMPLES) as fh:
        lines = fh.read().splitlines()
    digests = [fingerprint(canonical_bytes(orjson.loads(line))) for line in lines]
    # reparsing gives the same digest; distinct records give distinct digests
    assert digests == [fingerprint(canonical_bytes(orjson.loads(line))) for line in lines]
    assert len(set(digests)) == len({canonical_bytes(orjson.loads(line)) for line in lines})
