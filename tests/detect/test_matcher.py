"""One test per value modifier and condition form, with rules written inline."""

from __future__ import annotations

import base64
import textwrap
from typing import Any

import pytest

from bastion.detect.engine import Detector
from bastion.detect.events import flatten
from bastion.detect.rules import parse_rule_text


def _detector(detection: str, placeholders: dict[str, list[str]] | None = None) -> Detector:
    text = "title: inline\nid: 00000000-0000-0000-0000-000000000001\nlogsource: {product: bastiontest}\n"
    text += "level: high\ndetection:\n" + textwrap.indent(textwrap.dedent(detection).strip(), "  ") + "\n"
    det = Detector(parse_rule_text(text), placeholders=placeholders)
    assert not det.unsupported, det.unsupported
    return det


def fires(detection: str, event: dict[str, Any], **kw: Any) -> bool:
    return bool(_detector(detection, **kw).match_document(event))


SEL = "condition: sel"

CASES: list[tuple[str, str, dict[str, Any], bool]] = [
    # plain values: case-insensitive equality, wildcards, escapes
    ("equals", "sel: {Image: 'C:\\Windows\\cmd.exe'}\n" + SEL, {"Image": "c:\\windows\\CMD.EXE"}, True),
    ("equals-not-substring", "sel: {Image: 'cmd.exe'}\n" + SEL, {"Image": "C:\\cmd.exe"}, False),
    ("wildcard-star", "sel: {Image: 'C:*\\cmd.exe'}\n" + SEL, {"Image": "C:\\Windows\\cmd.exe"}, True),
    ("wildcard-question", "sel: {Image: 'cm?.exe'}\n" + SEL, {"Image": "cmX.exe"}, True),
    ("wildcard-question-one-char", "sel: {Image: 'cm?.exe'}\n" + SEL, {"Image": "cmXY.exe"}, False),
    ("escaped-star-literal", "sel: {Name: 'a\\*b'}\n" + SEL, {"Name": "aXb"}, False),
    ("escaped-star-matches-star", "sel: {Name: 'a\\*b'}\n" + SEL, {"Name": "a*b"}, True),
    ("list-is-or", "sel: {Image: [a.exe, b.exe]}\n" + SEL, {"Image": "B.exe"}, True),
    ("number", "sel: {EventID: 4688}\n" + SEL, {"EventID": 4688}, True),
    ("number-as-text", "sel: {EventID: 4688}\n" + SEL, {"EventID": "4688"}, True),
    ("number-other", "sel: {EventID: 4688}\n" + SEL, {"EventID": 46880}, False),
    ("event-list-value", "sel: {Tags: b}\n" + SEL, {"Tags": ["a", "B"]}, True),
    # contains / startswith / endswith / all
    ("contains", "sel: {CommandLine|contains: ' -enc '}\n" + SEL, {"CommandLine": "ps -ENC abc"}, True),
    ("contains-miss", "sel: {CommandLine|contains: ' -enc '}\n" + SEL, {"CommandLine": "ps -e abc"}, False),
    ("startswith", "sel: {Image|startswith: 'C:\\Users\\'}\n" + SEL, {"Image": "c:\\users\\x.exe"}, True),
    (
        "startswith-miss",
        "sel: {Image|startswith: 'C:\\Users\\'}\n" + SEL,
        {"Image": "D:\\c:\\users\\"},
        False,
    ),
    ("endswith", "sel: {Image|endswith: '\\cmd.exe'}\n" + SEL, {"Image": "C:\\X\\CMD.exe"}, True),
    ("endswith-miss", "sel: {Image|endswith: '\\cmd.exe'}\n" + SEL, {"Image": "C:\\cmd.exe.bak"}, False),
    ("contains-all", "sel: {CommandLine|contains|all: [a1, b2]}\n" + SEL, {"CommandLine": "b2 a1"}, True),
    (
        "contains-all-miss",
        "sel: {CommandLine|contains|all: [a1, b2]}\n" + SEL,
        {"CommandLine": "a1 only"},
        False,
    ),
    # cased
    ("cased", "sel: {Name|cased: 'AbC'}\n" + SEL, {"Name": "AbC"}, True),
    ("cased-miss", "sel: {Name|cased: 'AbC'}\n" + SEL, {"Name": "abc"}, False),
    ("cased-contains", "sel: {Name|contains|cased: 'Bc'}\n" + SEL, {"Name": "aBcd"}, True),
    # regular expressions: case-sensitive unless i; unanchored search; flags
    ("re", "sel: {Name|re: 'a[0-9]+z'}\n" + SEL, {"Name": "xxa123zxx"}, True),
    ("re-cased-by-default", "sel: {Name|re: 'abc'}\n" + SEL, {"Name": "ABC"}, False),
    ("re-i", "sel: {Name|re|i: 'abc'}\n" + SEL, {"Name": "xABCx"}, True),
    ("re-m", "sel: {Name|re|m: '^b$'}\n" + SEL, {"Name": "a\nb\nc"}, True),
    ("re-no-m", "sel: {Name|re: '^b$'}\n" + SEL, {"Name": "a\nb\nc"}, False),
    ("re-s", "sel: {Name|re|s: 'a.c'}\n" + SEL, {"Name": "a\nc"}, True),
    ("re-no-s", "sel: {Name|re: 'a.c'}\n" + SEL, {"Name": "a\nc"}, False),
    # cidr
    ("cidr", "sel: {SourceIp|cidr: 10.1.0.0/16}\n" + SEL, {"SourceIp": "10.1.2.3"}, True),
    ("cidr-miss", "sel: {SourceIp|cidr: 10.1.0.0/16}\n" + SEL, {"SourceIp": "10.10.2.3"}, False),
    ("cidr-v6", "sel: {SourceIp|cidr: 'fe80::/10'}\n" + SEL, {"SourceIp": "fe80::1"}, True),
    ("cidr-not-an-ip", "sel: {SourceIp|cidr: 10.0.0.0/8}\n" + SEL, {"SourceIp": "10.example"}, False),
    # encodings
    (
        "base64",
        "sel: {Data|base64: 'evil'}\n" + SEL,
        {"Data": base64.b64encode(b"evil").decode()},
        True,
    ),
    (
        "base64offset-contains",
        "sel: {Data|base64offset|contains: 'http://'}\n" + SEL,
        {"Data": "x" + base64.b64encode(b"ab http://host").decode()},
        True,
    ),
    (
        "utf16le-base64offset",
        "sel: {Data|utf16le|base64offset|contains: 'cmd'}\n" + SEL,
        {"Data": base64.b64encode("xcmd /c".encode("utf-16-le")).decode()},
        True,
    ),
    (
        "wide-base64offset",
        "sel: {Data|wide|base64offset|contains: 'cmd'}\n" + SEL,
        {"Data": base64.b64encode("cmd".encode("utf-16-le")).decode()},
        True,
    ),
    (
        "utf16be-base64",
        "sel: {Data|utf16be|base64: 'ab'}\n" + SEL,
        {"Data": base64.b64encode("ab".encode("utf-16-be")).decode()},
        True,
    ),
    (
        "utf16-bom-base64",
        "sel: {Data|utf16|base64: 'ab'}\n" + SEL,
        {"Data": base64.b64encode(b"\xff\xfe" + "ab".encode("utf-16-le")).decode()},
        True,
    ),
    ("windash-slash", "sel: {CommandLine|windash|contains: ' -f '}\n" + SEL, {"CommandLine": "x /f y"}, True),
    (
        "windash-endash",
        "sel: {CommandLine|windash|contains: ' -f '}\n" + SEL,
        {"CommandLine": "x \u2013f y"},
        True,
    ),
    ("windash-miss", "sel: {CommandLine|windash|contains: ' -f '}\n" + SEL, {"CommandLine": "x +f y"}, False),
    # exists / null / missing fields
    ("exists-true", "sel: {User|exists: true}\n" + SEL, {"User": ""}, True),
    ("exists-true-missing", "sel: {User|exists: true}\n" + SEL, {"Other": 1}, False),
    ("exists-false", "sel: {User|exists: false}\n" + SEL, {"Other": 1}, True),
    ("null-missing", "sel: {User: null}\n" + SEL, {"Other": 1}, True),
    ("null-json-null", "sel: {User: null}\n" + SEL, {"User": None}, True),
    ("null-present", "sel: {User: null}\n" + SEL, {"User": "x"}, False),
    ("empty-string-is-not-missing", "sel: {User: ''}\n" + SEL, {"Other": 1}, False),
    ("empty-string-matches-empty", "sel: {User: ''}\n" + SEL, {"User": ""}, True),
    ("not-on-missing-field", "sel: {User: admin}\ncondition: not sel", {"Other": 1}, True),
    # fieldref
    (
        "fieldref",
        "sel: {TargetUser|fieldref: SubjectUser}\n" + SEL,
        {"TargetUser": "Bob", "SubjectUser": "bob"},
        True,
    ),
    (
        "fieldref-miss",
        "sel: {TargetUser|fieldref: SubjectUser}\n" + SEL,
        {"TargetUser": "a", "SubjectUser": "b"},
        False,
    ),
    ("fieldref-missing", "sel: {TargetUser|fieldref: SubjectUser}\n" + SEL, {"TargetUser": "a"}, False),
    (
        "fieldref-endswith",
        "sel: {Path|fieldref|endswith: Name}\n" + SEL,
        {"Path": "C:\\x\\evil.exe", "Name": "evil.exe"},
        True,
    ),
    # numeric comparisons
    ("lt", "sel: {Size|lt: 10}\n" + SEL, {"Size": 9}, True),
    ("lt-equal", "sel: {Size|lt: 10}\n" + SEL, {"Size": 10}, False),
    ("lte", "sel: {Size|lte: 10}\n" + SEL, {"Size": "10"}, True),
    ("gt", "sel: {Size|gt: 10}\n" + SEL, {"Size": 11}, True),
    ("gt-text-not-number", "sel: {Size|gt: 10}\n" + SEL, {"Size": "big"}, False),
    ("gte", "sel: {Size|gte: 10}\n" + SEL, {"Size": 10.0}, True),
    ("gte-miss", "sel: {Size|gte: 10}\n" + SEL, {"Size": 9.5}, False),
    # keywords (field-less) search every value
    ("keyword", "kw: [mimikatz]\ncondition: kw", {"A": "x", "B": "run MIMIKATZ now"}, True),
    ("keyword-miss", "kw: [mimikatz]\ncondition: kw", {"A": "x", "B": "mimi katz"}, False),
    ("keyword-wildcard", "kw: ['sekurlsa::*pass']\ncondition: kw", {"B": "sekurlsa::logonpasswords"}, True),
    ("keyword-not-across-fields", "kw: ['ab*cd']\ncondition: kw", {"A": "ab", "B": "cd"}, False),
    # conditions
    ("and", "a: {X: 1}\nb: {Y: 2}\ncondition: a and b", {"X": 1, "Y": 2}, True),
    ("and-miss", "a: {X: 1}\nb: {Y: 2}\ncondition: a and b", {"X": 1, "Y": 3}, False),
    ("or", "a: {X: 1}\nb: {Y: 2}\ncondition: a or b", {"X": 0, "Y": 2}, True),
    ("not", "a: {X: 1}\nb: {Y: 2}\ncondition: a and not b", {"X": 1, "Y": 2}, False),
    ("parentheses", "a: {X: 1}\nb: {Y: 2}\nc: {Z: 3}\ncondition: a and (b or c)", {"X": 1, "Z": 3}, True),
    (
        "precedence",
        "a: {X: 1}\nb: {Y: 2}\nc: {Z: 3}\ncondition: a and b or c",
        {"Z": 3},
        True,
    ),
    ("one-of-wildcard", "sel_a: {X: 1}\nsel_b: {Y: 2}\ncondition: 1 of sel_*", {"Y": 2}, True),
    ("all-of-wildcard", "sel_a: {X: 1}\nsel_b: {Y: 2}\ncondition: all of sel_*", {"Y": 2}, False),
    ("all-of-wildcard-hit", "sel_a: {X: 1}\nsel_b: {Y: 2}\ncondition: all of sel_*", {"X": 1, "Y": 2}, True),
    ("one-of-them", "a: {X: 1}\nb: {Y: 2}\ncondition: 1 of them", {"X": 1}, True),
    ("all-of-them", "a: {X: 1}\nb: {Y: 2}\ncondition: all of them", {"X": 1}, False),
    (
        "not-one-of-filters",
        "sel: {X: 1}\nfilter_a: {Y: 2}\nfilter_b: {Z: 3}\ncondition: sel and not 1 of filter_*",
        {"X": 1, "Z": 3},
        False,
    ),
    ("list-of-maps-is-or", "sel:\n  - {X: 1}\n  - {Y: 2}\n" + SEL, {"Y": 2}, True),
    ("map-is-and", "sel: {X: 1, Y: 2}\n" + SEL, {"X": 1}, False),
]


@pytest.mark.parametrize(
    ("detection", "event", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_forms(detection: str, event: dict[str, Any], expected: bool) -> None:
    assert fires(detection, event) is expected


def test_placeholder_expansion_with_values() -> None:
    det = "sel: {User|expand: '%admins%'}\n" + SEL
    assert fires(det, {"User": "Root"}, placeholders={"admins": ["root", "administrator"]})
    assert not fires(det, {"User": "guest"}, placeholders={"admins": ["root", "administrator"]})


def test_unknown_placeholder_is_wildcard() -> None:
    det = "sel: {User|expand: 'x%anything%'}\n" + SEL
    assert fires(det, {"User": "xyz"})
    assert not fires(det, {"User": "yz"})


def test_two_conditions_either_fires() -> None:
    text = textwrap.dedent(
        """\
        title: two
        logsource: {product: bastiontest}
        detection:
          a: {X: 1}
          b: {Y: 2}
          condition:
            - a
            - b
        """
    )
    det = Detector(parse_rule_text(text))
    assert det.match_document({"Y": 2}) and not det.match_document({"Z": 2})


def test_unicode_case_insensitive() -> None:
    assert fires("sel: {Name|contains: 'ÄBC'}\n" + SEL, {"Name": "xäbcx"})


def test_neq_modifier() -> None:
    assert fires("sel: {User|neq: admin}\n" + SEL, {"User": "bob"})
    assert not fires("sel: {User|neq: admin}\n" + SEL, {"User": "ADMIN"})


def test_rules_check_names_each_broken_rule(tmp_path: Any) -> None:
    import subprocess
    import sys

    import orjson

    (tmp_path / "good.yml").write_text(
        "title: good\nlogsource: {product: x}\ndetection:\n  sel: {a: 1}\n  condition: sel\n"
    )
    (tmp_path / "badmod.yml").write_text(
        "title: bad modifier\nid: 00000000-0000-0000-0000-0000000000bb\nlogsource: {product: x}\n"
        "detection:\n  sel: {a|nosuchmodifier: 1}\n  condition: sel\n"
    )
    (tmp_path / "badcond.yml").write_text(
        "title: bad condition\nlogsource: {product: x}\n"
        "detection:\n  sel: {a: 1}\n  condition: sel and missing\n"
    )
    (tmp_path / "notyaml.yml").write_text("title: [unclosed\n")
    proc = subprocess.run(
        [sys.executable, "-m", "bastion.cli", "rules", "check", str(tmp_path), "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    report = orjson.loads(proc.stdout)
    assert report["rules"] == 4 and report["supported"] == 1 and report["unsupported"] == 3
    by_file = {p["source"].rsplit("/", 1)[-1]: p for p in report["problems"]}
    assert set(by_file) == {"badmod.yml", "badcond.yml", "notyaml.yml"}
    assert "nosuchmodifier" in by_file["badmod.yml"]["reason"]
    assert by_file["badmod.yml"]["rule_id"] == "00000000-0000-0000-0000-0000000000bb"
    assert "missing" in by_file["badcond.yml"]["reason"]
    assert "YAML" in by_file["notyaml.yml"]["reason"]


def test_a_candidate_must_hit_every_indexed_requirement() -> None:
    det = _detector(
        """
        img: {Image|endswith: '\\cmd.exe'}
        trav: {CommandLine|contains: '/../../'}
        condition: img and trav
        """
    )
    assert det.match_document({"Image": "C:\\cmd.exe", "CommandLine": "x /../../y"})
    assert not det.match_document({"Image": "C:\\cmd.exe", "CommandLine": "x /../y"})
    assert not det.match_document({"Image": "C:\\ps.exe", "CommandLine": "x /../../y"})


@pytest.mark.parametrize("re2_fits", [True, False])
def test_literal_sets_re2_cannot_compile_match_the_same(
    re2_fits: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bastion.detect import engine

    if not re2_fits:  # too little memory for any set: the prefilter falls back to Aho-Corasick
        monkeypatch.setattr(engine, "_RE2_MAX_MEM", 1 << 10)
    words = [f"kw{i:05d}-" + "x" * 60 for i in range(80)] + ["Ünïcode::ärger"]
    det = _detector(
        "keywords:\n"
        + "".join(f"  - '{w}'\n" for w in words)
        + "sel: {Image|endswith: '\\ab.exe', User: 'Bob'}\n"
        + "condition: keywords or sel"
    )
    ev = {"A": "pre " + words[40].upper() + " post", "B": 3}
    assert det.match_document(ev)
    assert det.match_document({"A": "ÜNÏCODE::ÄRGER"})
    assert not det.match_document({"A": words[40][:-1], "B": "kw00040"})
    assert det.match_document({"Image": "C:\\AB.EXE", "User": "bob"})
    assert not det.match_document({"Image": "C:\\AB.EXE", "User": "bobby"})
    bucket = next(iter(det._gen_cache.values()))
    assert bucket.literals is not None
    assert (bucket.literals.set is not None) is re2_fits


def _candidates(det: Detector, doc: dict[str, Any]) -> set[int]:
    """The rule variants the prefilter lets through to evaluation (not the ids of extra requirements)."""
    ev = flatten(doc)
    return {i for i in det._bucket(ev).candidates(ev) if i < len(det._variants)}


def test_literals_count_only_in_their_own_field() -> None:
    """The prefilter searches every value at once; a literal found in another field, or an exact value
    found only inside a longer one, makes no candidate. A list value counts element by element."""
    sub = _detector("sel: {Image|endswith: '\\\\evil.exe'}\n" + SEL)
    assert _candidates(sub, {"Image": "C:\\EVIL.EXE"})
    assert not _candidates(sub, {"Image": "C:\\good.exe", "CommandLine": "C:\\evil.exe"})
    assert _candidates(sub, {"Image": ["x", "c:\\evil.exe"]})
    exact = _detector("sel: {TargetName: 'Bob'}\n" + SEL)
    assert _candidates(exact, {"TargetName": "BOB"})
    assert not _candidates(exact, {"TargetName": "Bobby", "Other": "bob"})
    assert not _candidates(exact, {"TargetName": "x\x00bob\x00y"})
    assert _candidates(exact, {"TargetName": ["alice", "bob"]})
    assert not _candidates(exact, {"TargetName": ["alice", "bobby"], "Other": ["bob"]})
    assert exact.match_document({"TargetName": ["alice", "bob"]})
