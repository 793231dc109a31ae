"""Wildcard values and ``re`` values that are literals joined by ``.*`` are tested without a regex; the
answers are Python's ``re`` answers."""

from __future__ import annotations

import random
import re

import pytest

from bastion.detect.compiler import _MULTI, _chain_search, _glob_test, _merge, _pattern_regex
from bastion.detect.engine import Detector
from bastion.detect.events import flatten
from bastion.detect.rules import parse_rule_text
from bastion.detect.selectivity import regex_literal_chain


def _random_piece(rng: random.Random) -> object:
    return _MULTI if rng.random() < 0.4 else "".join(rng.choices("ab\n", k=rng.randint(1, 3)))


def test_wildcard_values_agree_with_the_regex_on_random_patterns() -> None:
    rng = random.Random(1)
    checked = 0
    for _ in range(20_000):
        parts = _merge([_random_piece(rng) for _ in range(rng.randint(1, 6))])
        test, rx = _glob_test(parts), _pattern_regex(parts, lower=False)
        assert test is not None
        for _ in range(5):
            s = "".join(rng.choices("ab\n", k=rng.randint(0, 10)))
            assert test(s) == (rx.match(s) is not None), (parts, s)
            checked += 1
    assert checked == 100_000


def test_literal_chains_agree_with_re_search_on_random_patterns() -> None:
    rng = random.Random(2)
    tokens = ["a", "b", "+", "\\+", ".*", "\n", "\\.", ".", "\\d", "[a]", "a*", "\\n", " ", "é", ".*?"]
    chains = 0
    for _ in range(20_000):
        pattern = "".join(rng.choices(tokens, k=rng.randint(0, 7)))
        flags = rng.choice([0, re.DOTALL, re.MULTILINE, re.IGNORECASE])
        try:
            rx = re.compile(pattern, flags)
        except re.error:
            continue
        chain = regex_literal_chain(pattern, flags)
        if chain is None:
            continue
        chains += 1
        test = _chain_search(*chain)
        for _ in range(6):
            s = "".join(rng.choices("ab+\n.é ", k=rng.randint(0, 12)))
            assert test(s) == (rx.search(s) is not None), (pattern, flags, s)
    assert chains > 2_000  # the generator makes plenty of chains, not only refusals


@pytest.mark.parametrize(
    ("pattern", "flags", "chain"),
    [
        ("\\+.*\\+.*\\+", 0, (("+", "+", "+"), False)),
        ("cmd.*/c.*whoami", re.DOTALL, (("cmd", "/c", "whoami"), True)),
        ("(?s)cmd.*whoami", 0, (("cmd", "whoami"), True)),  # an inline flag counts as a flag
        ("(?i)cmd.*whoami", 0, None),
        (".*", 0, ((), False)),
        ("a\\.*b", 0, None),  # \.* is "any number of dots", not a literal
        ("a.*?b", 0, None),
        ("a\\d.*b", 0, None),
        ("a.*b", re.IGNORECASE, None),
        ("^a.*b", re.MULTILINE, None),
    ],
)
def test_what_counts_as_a_literal_chain(
    pattern: str, flags: int, chain: tuple[tuple[str, ...], bool] | None
) -> None:
    assert regex_literal_chain(pattern, flags) == chain


def test_rules_with_both_forms_match_as_before() -> None:
    rule = """
title: Plus-sign obfuscation or a split command
id: 5e0b7b6a-4c9f-4f57-9a3a-2f7d9b0c1e11
logsource: {product: windows, category: process_creation}
detection:
    plus: {CommandLine|re: '\\+.*\\+.*\\+.*\\+'}
    split: {CommandLine: '*net*user*/add'}
    condition: plus or split
level: high
"""
    det = Detector(parse_rule_text(rule))

    def fires(cmd: str) -> bool:
        system = {"Channel": "Security", "EventID": 4688}
        doc = {"Event": {"System": system, "EventData": {"CommandLine": cmd}}}
        return bool(det.match_flat(flatten(doc)))

    assert fires("powershell 'a'+'b'+'c'+'d'+'e'")
    assert not fires("powershell 'a'+'b'+'c'+'d'")  # three are not four
    assert not fires("powershell 'a'+'b'+'c'\n+'d'+'e'")  # "." does not cross a line
    assert fires("NET.exe User bob pw /ADD")  # wildcard values ignore case
    assert not fires("net user bob /add pw")
