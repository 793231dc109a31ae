"""Readers against real files: the attack-sample JSON lines, SigmaHQ regression EVTX and JSON, and bodies."""

from __future__ import annotations

import gzip
import shutil
import zlib
from collections.abc import Iterable
from pathlib import Path

import orjson
import pytest

from bastion.ingest import readers
from bastion.ingest.readers import (
    READER_FORMATS,
    BodyError,
    BodyTooLarge,
    ReaderError,
    read_body,
    read_path,
)
from bastion.ingest.records import RawRecord, RecordError

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
ATTACK_SAMPLES = DATA / "evtx-attack-samples" / "events.jsonl.gz"
# A SigmaHQ regression case whose .json holds three pretty-printed objects back to back, and its .evtx.
FINDSTR = (
    DATA / "sigma" / "regression_data" / "rules" / "windows" / "process_creation"
    / "proc_creation_win_findstr_recon_everyone" / "47e4bab7-c626-47dc-967b-255608c9a920"
)  # fmt: skip


@pytest.fixture(scope="module", autouse=True)
def _shared_data() -> None:
    for path in (ATTACK_SAMPLES, FINDSTR.with_suffix(".json"), FINDSTR.with_suffix(".evtx")):
        if not path.is_file():
            pytest.fail(f"reference data missing: expected {path} (../shared/data beside the repository)")


def records(items: Iterable[RawRecord | RecordError]) -> list[RawRecord]:
    """The records, failing the test on any RecordError."""
    out = []
    for item in items:
        assert isinstance(item, RawRecord), item
        out.append(item)
    return out


def split(items: list[RawRecord | RecordError]) -> tuple[list[RawRecord], list[RecordError]]:
    good = [i for i in items if isinstance(i, RawRecord)]
    bad = [i for i in items if isinstance(i, RecordError)]
    assert len(good) + len(bad) == len(items)
    return good, bad


# ------------------------------------------------------------------------------------------ JSON lines


def test_attack_samples_jsonl_gz() -> None:
    good, bad = split(list(read_path(ATTACK_SAMPLES)))
    assert bad == []
    assert len(good) == 8255
    assert [r.line for r in good] == list(range(1, 8256))
    assert all(r.format is None for r in good)
    first = good[0].data
    assert isinstance(first, dict)
    assert first["_file"] == "UACME_59_Sysmon.evtx"
    assert first["Event"]["System"]["Channel"] == "Microsoft-Windows-Sysmon/Operational"
    assert {r.data["Event"]["System"]["Channel"] for r in good if isinstance(r.data, dict)} >= {
        "Security",
        "Microsoft-Windows-Sysmon/Operational",
    }


def test_plain_jsonl_and_gzip_detected_by_magic_not_name(tmp_path: Path) -> None:
    plain = tmp_path / "events.jsonl"
    with gzip.open(ATTACK_SAMPLES, "rb") as src, plain.open("wb") as dst:
        shutil.copyfileobj(src, dst)
    disguised = tmp_path / "events.log"  # gzip content, no .gz in the name
    disguised.write_bytes(gzip.compress(plain.read_bytes()[:200_000].rsplit(b"\n", 1)[0] + b"\n"))

    good, bad = split(list(read_path(plain)))
    assert (len(good), bad) == (8255, [])
    expected = [r.data for r in good]
    assert [r.data for r in records(read_path(ATTACK_SAMPLES))] == expected

    small, bad = split(list(read_path(disguised)))
    assert bad == []
    assert 0 < len(small) < 8255
    assert [r.data for r in small] == expected[: len(small)]


def test_broken_lines_reported_by_number_while_good_ones_come_through(tmp_path: Path) -> None:
    path = tmp_path / "mixed.jsonl"
    path.write_text(
        '{"n": 1}\n'
        "\n"
        '{"n": 2, oops}\n'
        "42\n"
        '"just a string"\n'
        '{"n": 3}\n'
        "   \n"
        '{"n": 4, "s": "caf\u00e9"}\n'
        '{"n": 5\n'
        "[1, 2]\n"
        '{"n": 6}\n',
        encoding="utf-8",
    )
    good, bad = split(list(read_path(path)))
    assert [(r.line, r.data) for r in good] == [
        (1, {"n": 1}),
        (6, {"n": 3}),
        (8, {"n": 4, "s": "caf\u00e9"}),
        (11, {"n": 6}),
    ]
    assert [e.line for e in bad] == [3, 4, 5, 9, 10]
    assert bad[0].reason.startswith("invalid JSON at column 10:")
    assert bad[1].reason == "expected a JSON object, got a number"
    assert bad[2].reason == "expected a JSON object, got a string"
    assert "invalid JSON" in bad[3].reason
    assert bad[4].reason == "expected a JSON object, got an array"


def test_jsonl_whose_first_line_is_cut_short_is_still_read_line_by_line(tmp_path: Path) -> None:
    path = tmp_path / "cut.jsonl"
    path.write_text('{"n": 1, "s": "cut sho\n{"n": 2}\n{"n": 3}\n')
    items = list(read_path(path))
    assert isinstance(items[0], RecordError) and items[0].line == 1
    assert items[1:] == [RawRecord(2, {"n": 2}), RawRecord(3, {"n": 3})]


def test_truncated_gzip_keeps_what_was_read_and_reports_the_end(tmp_path: Path) -> None:
    data = ATTACK_SAMPLES.read_bytes()
    cut = tmp_path / "cut.jsonl.gz"
    cut.write_bytes(data[: len(data) // 2])
    items = list(read_path(cut))
    good, bad = split(items)
    assert 1000 < len(good) < 8255
    assert len(bad) == 1 and items[-1] is bad[0]
    assert "cannot read further" in bad[0].reason
    assert bad[0].line == good[-1].line + 1 or bad[0].line == good[-1].line + 2


def test_gzip_cut_within_the_bytes_format_detection_reads_is_read_the_same(tmp_path: Path) -> None:
    """Cut before the detection sample's end: the whole lines before the cut are read, the cut reported
    at its line. Cut before anything decompresses: the file cannot be read, said before any record."""
    data = ATTACK_SAMPLES.read_bytes()
    cut = tmp_path / "cut.jsonl.gz"
    cut.write_bytes(data[:3000])
    items = list(read_path(cut))
    good, bad = split(items)
    assert len(good) >= 1 and all(isinstance(r.data, dict) for r in good)
    assert len(bad) == 1 and items[-1] is bad[0] and "cannot read further" in bad[0].reason
    stub = tmp_path / "stub.jsonl.gz"
    stub.write_bytes(data[:20])
    with pytest.raises(ReaderError, match=r"cannot read .*stub\.jsonl\.gz"):
        read_path(stub)


# ----------------------------------------------------------------------------------------------- JSON


def test_json_array_file(tmp_path: Path) -> None:
    path = tmp_path / "array.json"
    path.write_text('[\n  {"a": 1},\n  {"b": {"c": [1, 2]}},\n  7,\n  {"d": null}\n]\n')
    items = list(read_path(path))
    assert items == [
        RawRecord(1, {"a": 1}),
        RawRecord(2, {"b": {"c": [1, 2]}}),
        RecordError(3, "array item is a number, not a JSON object"),
        RawRecord(4, {"d": None}),
    ]


def test_single_pretty_printed_object(tmp_path: Path) -> None:
    path = tmp_path / "one.json"
    path.write_bytes(orjson.dumps({"Event": {"System": {"EventID": 1}}}, option=orjson.OPT_INDENT_2))
    assert list(read_path(path)) == [RawRecord(1, {"Event": {"System": {"EventID": 1}}})]


def test_sigma_regression_json_with_objects_back_to_back_matches_its_evtx() -> None:
    items = list(read_path(FINDSTR.with_suffix(".json")))
    good, bad = split(items)
    assert bad == []
    assert [r.line for r in good] == [1, 67, 133]  # the line each object starts on
    from_evtx = [r.data for r in records(read_path(FINDSTR.with_suffix(".evtx")))]
    ids = [r.data["Event"]["System"]["EventRecordID"] for r in good if isinstance(r.data, dict)]
    assert ids == [d["Event"]["System"]["EventRecordID"] for d in from_evtx if isinstance(d, dict)]
    assert ids == [12249325, 12249342, 12249358]


def test_malformed_object_among_pretty_printed_ones_resumes_at_the_next(tmp_path: Path) -> None:
    path = tmp_path / "several.json"
    path.write_text('{\n  "a": 1\n}\n{\n  "b": 2,\n  oops\n}\n{\n  "c": 3\n}\n{\n  "d": [1,\n')
    items = list(read_path(path))
    assert items[0] == RawRecord(1, {"a": 1})
    assert isinstance(items[1], RecordError) and items[1].line == 6
    assert items[1].reason.startswith("invalid JSON at line 6 column 3:")
    assert items[2] == RawRecord(8, {"c": 3})
    assert items[3] == RecordError(13, "invalid JSON at line 13 column 1: Expecting value")
    assert len(items) == 4


def test_large_json_streams_in_chunks_with_the_same_result(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past the whole-document size the file is decoded chunk by chunk; chunk borders fall inside
    strings, numbers, multi-byte characters and literals, and the records come out the same."""
    with gzip.open(ATTACK_SAMPLES, "rb") as f:
        events = [orjson.loads(next(f)) for _ in range(300)]
    events[5]["Event"]["EventData"] = {"Note": "caf\u00e9 \u2603 \U0001f600", "N": 12345678901234, "T": True}
    array = tmp_path / "array.json"
    array.write_bytes(orjson.dumps(events, option=orjson.OPT_INDENT_2))
    pretty = tmp_path / "pretty.json"
    pretty.write_bytes(b"\n".join(orjson.dumps(e, option=orjson.OPT_INDENT_2) for e in events))
    minified_gz = tmp_path / "minified.json.gz"
    minified_gz.write_bytes(gzip.compress(orjson.dumps(events)))

    whole = [r.data for r in records(read_path(array))]
    assert whole == events
    monkeypatch.setattr(readers, "_WHOLE_DOCUMENT", 1000)
    monkeypatch.setattr(readers, "_CHUNK", 997)
    for path in (array, pretty, minified_gz):
        good, bad = split(list(read_path(path, "json")))
        assert bad == []
        assert [r.data for r in good] == events
    assert [r.line for r in read_path(array)] == list(range(1, 301))


def test_streamed_array_with_a_broken_item_reports_it_and_stops(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(readers, "_WHOLE_DOCUMENT", 10)
    monkeypatch.setattr(readers, "_CHUNK", 7)
    path = tmp_path / "broken.json"
    path.write_text('[\n {"a": 1},\n {"b": 2},\n {"c": 3 "d": 4},\n {"e": 5}\n]')
    items = list(read_path(path))
    assert items[:2] == [RawRecord(1, {"a": 1}), RawRecord(2, {"b": 2})]
    assert isinstance(items[2], RecordError) and items[2].line == 3
    assert items[2].reason.startswith("invalid JSON at line 4 column 10:")
    assert len(items) == 3


def test_streamed_array_with_an_item_nested_too_deeply_reports_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Python's decoder recurses per level: an item nested thousands deep raised RecursionError out of
    the reader (a traceback, after the batches before it were stored)."""
    monkeypatch.setattr(readers, "_WHOLE_DOCUMENT", 10)
    path = tmp_path / "deep.json"
    path.write_text('[{"a": 1},\n{"b": ' + "[" * 50_000 + "]" * 50_000 + "}]")
    items = list(read_path(path))
    assert items[0] == RawRecord(1, {"a": 1})
    assert isinstance(items[1], RecordError) and items[1].line == 2
    assert items[1].reason.startswith("invalid JSON at line 2") and "nested too deeply" in items[1].reason
    assert len(items) == 2


# ----------------------------------------------------------------------------------------------- EVTX


def test_evtx_file_reads_into_attack_sample_shape(tmp_path: Path) -> None:
    evtx = sorted((DATA / "sigma" / "regression_data").rglob("*.evtx"))
    assert len(evtx) > 100
    with gzip.open(ATTACK_SAMPLES, "rb") as f:
        sample = orjson.loads(f.readline())
    total = 0
    for path in evtx[:25]:
        good, bad = split(list(read_path(path)))
        assert bad == [], path
        assert good, path
        for n, record in enumerate(good, 1):
            assert record.line == n and record.format == "windows"
            assert isinstance(record.data, dict) and set(record.data) == {"Event"}
            system = record.data["Event"]["System"]
            assert set(system) == set(sample["Event"]["System"]), path
            assert isinstance(system["Channel"], str) and isinstance(system["EventID"], int)
            assert "SystemTime" in system["TimeCreated"]["#attributes"]
        total += len(good)
    assert total >= 25

    packed = tmp_path / "events.evtx.gz"
    packed.write_bytes(gzip.compress(FINDSTR.with_suffix(".evtx").read_bytes()))
    assert [r.data for r in records(read_path(packed))] == [
        r.data for r in records(read_path(FINDSTR.with_suffix(".evtx")))
    ]


def test_damaged_evtx_chunk_is_a_record_error(tmp_path: Path) -> None:
    data = bytearray(FINDSTR.with_suffix(".evtx").read_bytes())
    data[0x1000 + 0x200 : 0x1000 + 0x600] = b"A" * 0x400  # inside the first chunk's string table
    path = tmp_path / "damaged.evtx"
    path.write_bytes(bytes(data))
    items = list(read_path(path))
    assert items and all(isinstance(i, RecordError) for i in items)
    assert isinstance(items[0], RecordError) and "unreadable EVTX chunk" in items[0].reason


# ---------------------------------------------------------------------------------------- CEF / syslog


def test_text_lines_get_cef_or_syslog_by_content(tmp_path: Path) -> None:
    su = "<34>Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick on /dev/pts/8"
    cef = (
        "Sep 19 08:26:10 host CEF:0|Security|threatmanager|1.0|100|worm successfully stopped|10|src=10.0.0.1"
    )
    nginx = "2024-03-01T10:00:00.123+01:00 web01 nginx[12]: GET /"
    path = tmp_path / "messages"
    path.write_text(f"{su}\r\n\n{cef}\n{nginx}\n")
    assert list(read_path(path)) == [
        RawRecord(1, su, "syslog"),
        RawRecord(3, cef, "cef"),
        RawRecord(4, nginx, "syslog"),
    ]
    # A named format applies to every line.
    assert {r.format for r in records(read_path(path, "syslog"))} == {"syslog"}


def test_format_override_and_reader_errors(tmp_path: Path) -> None:
    assert READER_FORMATS == ("jsonl", "json", "evtx", "cef", "syslog")
    odd = tmp_path / "odd.txt"
    odd.write_text("hello there\nsecond line\n")
    with pytest.raises(ReaderError, match="not in a recognized format"):
        read_path(odd)
    assert [r.data for r in records(read_path(odd, "cef"))] == ["hello there", "second line"]
    with pytest.raises(ReaderError, match="unknown reader format 'windows'"):
        read_path(odd, "windows")
    with pytest.raises(ReaderError, match="not an EVTX file"):
        read_path(odd, "evtx")
    with pytest.raises(ReaderError, match="file not found"):
        read_path(tmp_path / "missing.jsonl")
    with pytest.raises(ReaderError, match="is a directory"):
        read_path(tmp_path)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    assert list(read_path(empty)) == []
    pretty = tmp_path / "one.json"
    pretty.write_text('{\n "a": 1\n}\n')
    assert [type(i) for i in read_path(pretty, "jsonl")] == [RecordError, RecordError, RecordError]


# --------------------------------------------------------------------------------------------- bodies


def test_body_object_array_and_ndjson() -> None:
    assert list(read_body(b'{"a": 1}', "application/json", None)) == [RawRecord(1, {"a": 1})]
    assert list(read_body(b'[{"a": 1}, "x", {"b": 2}]', "application/json", None)) == [
        RawRecord(1, {"a": 1}),
        RecordError(2, "array item is a string, not a JSON object"),
        RawRecord(3, {"b": 2}),
    ]
    ndjson = b'{"a": 1}\n{"a": 2, x}\n\n{"a": 3}\n'
    expected = [
        RawRecord(1, {"a": 1}),
        RecordError(2, "invalid JSON at column 10: unexpected character, expected a string key"),
        RawRecord(4, {"a": 3}),
    ]
    assert list(read_body(ndjson, "application/x-ndjson; charset=utf-8", None)) == expected
    assert list(read_body(ndjson, "application/json", None)) == expected  # recognized without the type
    cut_first = b'{"a": 1, "b": "cut sho\n{"a": 2}\n'
    assert list(read_body(cut_first, None, None))[1:] == [RawRecord(2, {"a": 2})]


def test_body_gzip_by_header_or_magic() -> None:
    lines = b"".join(orjson.dumps({"n": i}) + b"\n" for i in range(1000))
    packed = gzip.compress(lines)
    for encoding in ("gzip", "GZIP", "x-gzip", None):
        items = list(read_body(packed, "application/x-ndjson", encoding))
        assert [r.data for r in records(items)] == [{"n": i} for i in range(1000)]
    two_members = gzip.compress(b'[{"a": 1},') + gzip.compress(b'{"b": 2}]')
    assert [r.data for r in records(read_body(two_members, None, "gzip"))] == [{"a": 1}, {"b": 2}]
    deflated = zlib.compress(b'{"z": true}')
    assert list(read_body(deflated, "application/json", "deflate")) == [RawRecord(1, {"z": True})]


def test_malformed_body_names_the_position() -> None:
    body = b'{\n  "a": 1,\n  "b": [1, 2\n  "c": 3\n}'
    with pytest.raises(BodyError, match=r"invalid JSON at line 4 column 3: "):
        read_body(body, "application/json", None)
    with pytest.raises(BodyError, match="expected a JSON object"):
        read_body(b"42", "application/json", None)
    with pytest.raises(BodyError, match="empty request body"):
        read_body(b"  \n", "application/json", None)
    with pytest.raises(BodyError, match="truncated"):
        read_body(gzip.compress(b'{"a": 1}')[:-10], None, "gzip")
    with pytest.raises(BodyError, match="not valid gzip"):
        read_body(b"\x1f\x8bnot really gzip at all", None, None)
    with pytest.raises(BodyError, match="unsupported Content-Encoding 'br'"):
        read_body(b"{}", "application/json", "br")


def test_gzip_bomb_raises_body_too_large() -> None:
    bomb = gzip.compress(b"{" + b" " * (200 * 1024 * 1024) + b"}", compresslevel=9)
    assert len(bomb) < 1024 * 1024
    with pytest.raises(BodyTooLarge) as info:
        read_body(bomb, "application/json", "gzip", max_bytes=10 * 1024 * 1024)
    assert info.value.limit == 10 * 1024 * 1024
    with pytest.raises(BodyTooLarge):
        read_body(bomb, "application/json", None, max_bytes=10 * 1024 * 1024)  # found by its magic
    with pytest.raises(BodyTooLarge):
        read_body(b'{"a": "' + b"x" * 2000 + b'"}', "application/json", None, max_bytes=1000)
    # Exactly at the limit is fine.
    body = b'{"a": "' + b"x" * 100 + b'"}'
    assert len(list(read_body(gzip.compress(body), None, "gzip", max_bytes=len(body)))) == 1


def test_body_of_cef_and_syslog_lines() -> None:
    body = (
        b"CEF:0|Vendor|Product|1.0|42|Something|5|src=10.0.0.1\n<13>Feb  5 17:32:18 10.0.0.99 Use the BFG!\n"
    )
    assert list(read_body(body, "text/plain", None)) == [
        RawRecord(1, "CEF:0|Vendor|Product|1.0|42|Something|5|src=10.0.0.1", "cef"),
        RawRecord(2, "<13>Feb  5 17:32:18 10.0.0.99 Use the BFG!", "syslog"),
    ]
