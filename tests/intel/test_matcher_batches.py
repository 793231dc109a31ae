"""``Matcher.match_many`` gives what ``Matcher.match`` gives, observable by observable, for any mix of types
and any batch size (it groups a batch by type and matches each group in bulk), and both agree with a
brute-force reading of the indicators. Every test runs twice: with the batches' per-observable pass
compiled (``_batchscan.c``, which `make test` builds) and in pure Python."""

from __future__ import annotations

import ipaddress
import random
import socket
import sys
import threading

import numpy as np
import pytest

from bastion import native
from bastion.intel import keyfilter, matcher
from bastion.intel.keyfilter import KeyFilter
from bastion.intel.matcher import _SMALL_BATCH, Matcher
from bastion.intel.normalize import normalize_url
from bastion.intel.urlkeys import canonical_url, canonical_urls
from bastion.model.intel import IndicatorType as T


@pytest.fixture(autouse=True, params=["compiled", "pure"])
def batch_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Which way batches go: the compiled scan (as built; `make test` insists on the build) or Python."""
    if request.param == "pure":  # both parts of the build: the scan and the filter's hash of text
        monkeypatch.setattr(matcher, "_scan", None)
        monkeypatch.setattr(keyfilter, "_key_hashes", None)
    return str(request.param)


def test_the_compiled_scan_is_in_use_with_the_compiled_build(batch_path: str) -> None:
    if batch_path == "compiled" and native.status()["compiled"]:
        assert matcher._scan is not None and keyfilter._key_hashes is not None
    if batch_path == "pure":
        assert matcher._scan is None and keyfilter._key_hashes is None


NOW = 10_000
BIG = _SMALL_BATCH + 6  # observables enough for a batch to be grouped and filtered, not matched one by one

INDICATORS: list[tuple[int, T, str, dict[str, object]]] = [
    (1, T.IPV4, "203.0.113.7", {}),
    (23, T.IPV4, "198.51.100.9", {}),  # also inside ranges 3 and 4
    (2, T.IPV4, "203.0.113.7", {"valid_until": 5_000}),  # shares the value, expired at NOW
    (3, T.CIDR, "198.51.100.0/24", {}),
    (4, T.CIDR, "198.51.0.0/16", {}),  # 3 nested in 4
    (5, T.CIDR, "198.51.100.128/25", {"valid_until": 20_000}),
    (6, T.CIDR, "0.0.0.0/8", {}),  # from the first address
    (7, T.CIDR, "255.255.255.0/24", {}),  # to the last one
    (8, T.CIDR, "2001:db8::/32", {}),
    (9, T.IPV6, "2001:db8::1", {}),
    (10, T.DOMAIN, "evil.example", {}),
    (11, T.DOMAIN, "example", {}),  # a one-label parent
    (12, T.DOMAIN, "a.b.c.deep.example", {}),
    (13, T.DOMAIN, "exact.example", {"exact": True}),
    (14, T.DOMAIN, "evil.example", {"valid_until": 5_000}),
    (15, T.URL, normalize_url("HTTP://Bad.Example:80/path?q=1#frag"), {}),
    (16, T.URL, normalize_url("https://cdn.example/x"), {}),
    (17, T.SHA256, "a" * 64, {}),
    (18, T.MD5, "b" * 32, {"valid_until": 20_000}),
    (19, T.SHA1, "c" * 40, {}),
    (20, T.FILE_NAME, "payload.exe", {}),
    (21, T.EMAIL, "bad@evil.example", {}),
    (22, T.CVE, "CVE-2024-3094", {}),
]

OBSERVABLES: list[tuple[str, str]] = [
    ("ipv4", "203.0.113.7"),
    ("ipv4", "198.51.100.9"),
    ("ipv4", "198.51.100.200"),
    ("ipv4", "198.51.7.1"),
    ("ipv4", "198.52.0.1"),
    ("ipv4", "0.0.0.0"),
    ("ipv4", "255.255.255.255"),
    ("ipv4", "10"),  # inet_aton reads it as 0.0.0.10
    ("ipv4", "0x7f.1"),
    ("ipv4", "1.2.3.4 junk"),
    ("ipv4", "300.1.1.1"),
    ("ipv4", "not-an-ip"),
    ("ipv4", ""),
    ("ipv4", "1.2.3.4\x00"),
    ("ipv4", "::ffff:198.51.100.9"),  # IPv6 given as ipv4
    ("ipv4", "2001:DB8::1"),
    ("ipv6", "2001:db8::5"),
    ("ipv6", "2001:db9::1"),
    ("ipv6", "nonsense"),
    ("domain", "evil.example"),
    ("domain", "a.b.EVIL.example."),
    ("domain", "notevil.example"),
    ("domain", "example"),
    ("domain", "example."),
    ("domain", "x.a.b.c.deep.example"),
    ("domain", "b.c.deep.example"),
    ("domain", "exact.example"),
    ("domain", "sub.exact.example"),
    ("domain", "a.."),
    ("domain", ""),
    ("domain", "."),
    ("domain", "with\nnewline.example"),
    ("host", "EXACT.EXAMPLE."),
    ("url", "http://bad.example/path?q=1"),
    ("url", "HTTP://BAD.EXAMPLE:80/path?q=1#other"),
    ("url", "http://bad.example/PATH?q=1"),
    ("url", "https://user@cdn.example/x"),
    ("url", "no scheme"),
    ("sha256", "A" * 64),
    ("md5", "b" * 32),
    ("sha1", "C" * 40),
    ("sha256", "d" * 64),
    ("file_path", "C:\\Temp\\PAYLOAD.EXE"),
    ("email", "Bad@Evil.Example"),
    ("cve", "cve-2024-3094"),
    ("registry_key", "HKLM\\x"),
]


def build() -> Matcher:
    m = Matcher()
    for ident, kind, value, options in INDICATORS:
        m.add(ident, kind, value, **options)  # type: ignore[arg-type]
    return m


def batches(obs: list[tuple[str, str]], size: int) -> list[list[tuple[str, str]]]:
    return [obs[i : i + size] for i in range(0, len(obs), size)]


def assert_agree(m: Matcher, obs: list[tuple[str, str]]) -> None:
    for now in (None, NOW):
        expected = [m.match(t, v, now) for t, v in obs]
        for size in (1, 3, 10, 15, 16, 17, 40, _SMALL_BATCH - 1, _SMALL_BATCH, _SMALL_BATCH + 1, len(obs)):
            got = [ids for batch in batches(obs, size) for ids in m.match_many(batch, now)]
            assert got == expected, size
        assert m.match_many(iter(obs), now) == expected  # any iterable


def stream(seed: int, n: int) -> list[tuple[str, str]]:
    """The edge cases shuffled among random misses, so every batch mixes types."""
    rng = random.Random(seed)
    out = list(OBSERVABLES)
    for _ in range(n):
        out.append(
            rng.choice(
                [
                    ("ipv4", str(ipaddress.IPv4Address(rng.getrandbits(32)))),
                    ("ipv4", f"198.51.{rng.randrange(256)}.{rng.randrange(256)}"),
                    ("domain", f"h{rng.randrange(99)}.{rng.choice(['evil', 'deep', 'c.deep', 'x'])}.example"),
                    ("url", f"https://cdn.example/{rng.choice(['x', 'y'])}"),
                    ("sha256", f"{rng.getrandbits(256):064x}"),
                ]
            )
        )
    rng.shuffle(out)
    return out


def test_match_many_agrees_with_match_over_a_mixed_stream() -> None:
    m = build()
    assert_agree(m, stream(1, 300))


def test_match_many_agrees_after_changes_without_a_lookup_in_between() -> None:
    m = build()
    obs = stream(2, 200)
    assert_agree(m, obs)
    m.add(30, T.CIDR, "198.51.100.0/26")  # the ranges are rebuilt by the next batch
    m.add(31, T.DOMAIN, "q.r.s.t.u.example")  # a label count no domain had
    m.remove(4, T.CIDR, "198.51.0.0/16")
    m.remove(11, T.DOMAIN, "example")  # the last one-label domain
    many = m.match_many(obs)
    assert many == [m.match(t, v) for t, v in obs]
    assert many[obs.index(("ipv4", "198.51.100.9"))] == [23, 3, 30]
    assert many[obs.index(("domain", "example"))] == []
    m.add(32, T.CIDR, "198.51.100.0/28")
    assert m.match_many([("ipv4", "198.51.100.1")] * BIG)[0] == [3, 30, 32]
    m.remove(32, T.CIDR, "198.51.100.0/28")
    assert m.match_many(obs) == [m.match(t, v) for t, v in obs]
    assert_agree(m, [*obs, ("domain", "v.q.r.s.t.u.example")])


def test_match_many_without_ranges_or_with_regexes() -> None:
    m = Matcher()
    m.add(1, T.IPV6, "2001:db8::1")
    m.add(2, T.DOMAIN, "evil.example")
    obs = stream(3, 50)
    assert m.match("ipv4", "2001:DB8::1") == [1]  # the same reading with or without IPv4 ranges
    m.add(4, T.DOMAIN, "x.y[z.example", pattern=True)  # not a regular expression: a plain domain
    obs.append(("domain", "w.x.y[z.example"))
    assert m.match_many(obs)[-1] == [4]
    assert_agree(m, obs)
    m.add(3, T.DOMAIN, r"^h\d+\.evil\.example$", pattern=True)
    assert_agree(m, obs)


def reference(t: str, v: str, now: int | None) -> list[int]:
    """The indicators matching one observable, read straight off ``INDICATORS``."""
    found: list[int] = []
    lowered = v.lower()
    name = lowered[:-1] if lowered.endswith(".") else lowered
    for ident, kind, value, options in INDICATORS:
        if t in ("ipv4", "ipv6"):
            hit = kind in (T.IPV4, T.IPV6) and value == v
            if ":" in v:
                try:
                    addr: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipaddress.ip_address(v)
                except ValueError:
                    addr = None
            else:
                try:
                    addr = ipaddress.IPv4Address(socket.inet_aton(v))
                except (OSError, ValueError):
                    addr = None
            if addr is not None:
                hit = hit or (kind in (T.IPV4, T.IPV6) and value == str(addr))
                hit = hit or (kind is T.CIDR and addr in ipaddress.ip_network(value))
        elif t in ("domain", "host"):
            if options.get("exact"):
                hit = kind is T.DOMAIN and value == name
            else:
                hit = kind is T.DOMAIN and (value == name or name.endswith("." + value))
        elif t == "url":
            hit = kind is T.URL and value == canonical_url(v)
        elif t in ("md5", "sha1", "sha256"):
            hit = kind in (T.MD5, T.SHA1, T.SHA256) and value == lowered
        else:
            continue
        valid_until = options.get("valid_until")
        if hit and (now is None or not isinstance(valid_until, int) or valid_until >= now):
            found.append(ident)
    return sorted(found)


def test_matches_are_those_a_brute_force_reading_finds() -> None:
    m = build()
    obs = [
        (t, v) for t, v in stream(4, 300) if t in ("ipv4", "ipv6", "domain", "host", "url", "md5", "sha256")
    ]
    for now in (None, NOW):
        assert [sorted(ids) for ids in m.match_many(obs, now)] == [reference(t, v, now) for t, v in obs]


# URLs that are canonical already (kept as they are, in C) and URLs that need the long way: upper case in
# the scheme, host or path, no path, no scheme, a slash before "://", default and other ports, a trailing
# dot, user-info, escapes, fragments, a line break, non-ASCII upper case, spaces, a query before any slash.
URLS = [
    "http://bad.example/path?q=1",
    "https://cdn.example/x",
    "https://cdn.example/x/y/z.php?id=7&b=c",
    "HTTP://BAD.EXAMPLE/path?q=1",
    "http://Bad.Example/path?q=1",
    "http://bad.example/PATH?q=1",
    "http://bad.example",
    "HTTP://bad.example",
    "http://bad.example?q=1",
    "http://bad.example?q/1",
    "bad.example/path",
    "no scheme",
    "",
    "://",
    ":///",
    "a/b://c",
    "a/b://c/d",
    "http://bad.example:80/path?q=1",
    "https://cdn.example:443/x",
    "ftp://files.example:80/x",
    "http://bad.example:8080/path",
    "http://bad.example./path?q=1",
    "http://bad.example/a./b",
    "http://user@bad.example/path?q=1",
    "http://bad.example/%70ath?q=1",
    "http://bad.example/path?q=1#frag",
    "http://bad#example/path",
    "http://bad.example/pa\nth",
    "http://İ.example/x",
    " http://bad.example/path?q=1",
    "http://bad.example/path?q=1 ",
    "hxxp://bad.example/path",
    "custom-scheme://bad.example",
    "custom-scheme://bad.example/x",
]


def test_canonical_urls_of_a_batch_are_those_of_each_url() -> None:
    assert canonical_urls(list(URLS)) == [canonical_url(u) for u in URLS]
    rng = random.Random(5)
    for _ in range(300):
        batch = rng.choices(URLS, k=rng.randrange(1, 40))
        assert canonical_urls(batch) == [canonical_url(u) for u in batch], batch
    plain = ["https://cdn.example/x", "http://bad.example/path?q=1"] * 10
    assert canonical_urls(plain) is plain  # all canonical already: the batch itself


def test_url_batches_taking_and_refusing_the_fast_path_match_as_one_by_one() -> None:
    m = build()
    m.add(40, T.URL, normalize_url("http://bad.example"))
    obs = [("url", u) for u in URLS]
    assert_agree(m, obs + [("url", "https://cdn.example/x")] * BIG)
    assert_agree(m, [("url", "https://cdn.example/x"), ("url", "http://bad.example/path?q=1")] * BIG)
    odd_and_plain = ["HTTP://BAD.EXAMPLE:80/path?q=1#x", "http://bad.example"] * BIG
    hits = m.match_many([("url", u) for u in odd_and_plain])
    assert hits[:2] == [[15], [40]]


def test_ipv4_batches_with_and_without_an_address_in_a_range() -> None:
    m = build()
    outside = [("ipv4", f"203.0.114.{i}") for i in range(BIG)]
    assert m.match_many(outside) == [[]] * BIG
    assert_agree(m, outside)
    inside = [*outside, ("ipv4", "198.51.100.200"), ("ipv4", "203.0.113.7")]
    found = m.match_many(inside)[-2:]
    assert [sorted(ids) for ids in found] == [[3, 4, 5], [1, 2]]
    assert found == [m.match("ipv4", "198.51.100.200"), m.match("ipv4", "203.0.113.7")]
    assert_agree(m, inside)


def test_domain_batches_of_one_level_and_of_several() -> None:
    m = build()
    same = [("domain", f"h{i}.evil.example") for i in range(BIG)] + [("host", "x.deep.example")]
    assert all(sorted(ids) == [10, 11, 14] for ids in m.match_many(same)[:BIG])  # evil.example twice, example
    assert_agree(m, same)
    assert_agree(m, [("domain", f"n{i}") for i in range(BIG)])  # no dot: below every level but one
    assert_agree(m, [("domain", f"z.y.x.w.v.{i}.example") for i in range(BIG)])  # above every level
    assert_agree(m, [*same, ("domain", "a.b.c.deep.example"), ("domain", "EXAMPLE.")])


def test_expired_matches_are_dropped_for_every_kind_of_batch() -> None:
    m = build()
    m.add(50, T.EMAIL, "gone@evil.example", valid_until=5_000)
    m.add(51, T.CVE, "CVE-2020-0001", valid_until=5_000)
    m.add(52, T.CVE, "CVE-2020-0001")
    obs = [("email", "gone@evil.example"), ("cve", "CVE-2020-0001"), *stream(6, 40)]
    assert_agree(m, obs)
    assert m.match_many(obs, NOW)[:2] == [[], [52]]
    assert m.match_many(obs)[:2] == [[50], [51, 52]]


def test_exact_tables_hold_only_what_was_added() -> None:
    m = Matcher()
    assert all(not table for table in m._exact.values()) and not m._domain_exact
    m.add(1, T.DOMAIN, "evil.example")
    m.remove(1, T.DOMAIN, "evil.example")
    assert not m._exact["domain"] and None not in m._exact["domain"]


FRESH: list[tuple[int, T, str, dict[str, object]]] = [
    (60, T.IPV4, "192.0.2.77", {}),
    (61, T.DOMAIN, "fresh.test", {}),
    (62, T.SHA256, "d" * 64, {}),
    (63, T.URL, normalize_url("http://new.example/p"), {}),
    (64, T.DOMAIN, "only.test", {"exact": True}),
]
FRESH_OBS = [
    ("ipv4", "192.0.2.77"),
    ("domain", "www.fresh.test"),
    ("sha256", "D" * 64),
    ("url", "HTTP://NEW.EXAMPLE/p"),
    ("host", "only.test"),
]


def test_batches_find_what_was_added_after_the_filter_was_built_and_not_what_was_removed() -> None:
    m = build()
    misses = [("ipv4", f"203.0.114.{i}") for i in range(BIG)]
    obs = [*misses, *FRESH_OBS]
    assert m.match_many(obs) == [[]] * len(obs)  # builds the filter, without the keys to come
    assert m._filter is not None
    for ident, kind, value, options in FRESH:
        m.add(ident, kind, value, **options)  # type: ignore[arg-type]
    assert m.match_many(obs)[-5:] == [[60], [61], [62], [63], [64]]
    assert_agree(m, obs)
    for ident, kind, value, options in FRESH:
        m.remove(ident, kind, value, exact=bool(options.get("exact")))
    assert m.match_many(obs) == [[]] * len(obs)  # their bits stay set: the dicts decide
    assert_agree(m, obs)


def test_the_filter_is_built_again_when_keys_outgrow_it() -> None:
    m = build()
    m.prepare()
    first = m._filter
    assert first is not None
    many = [f"{i:064x}" for i in range(first.capacity + 1)]
    for ident, value in enumerate(many, 1000):
        m.add(ident, T.SHA256, value)
    obs = [("sha256", v) for v in many[:: len(many) // BIG]] + [("sha256", "e" * 64)]
    assert m.match_many(obs) == [[1000 + many.index(v)] for _, v in obs[:-1]] + [[]]
    assert m._filter is not first and m._filter is not None and m._filter.capacity > first.capacity
    assert_agree(m, obs)


def test_the_filter_lets_every_key_through_and_few_others() -> None:
    keys = [f"key-{i}" for i in range(20_000)]
    others = [f"other-{i}" for i in range(20_000)]
    flt = KeyFilter(len(keys))
    flt.add(np.fromiter(map(hash, keys), np.int64, len(keys)))
    assert flt.candidates(np.fromiter(map(hash, keys), np.int64, len(keys))) == list(range(len(keys)))
    assert len(flt.candidates(np.fromiter(map(hash, others), np.int64, len(others)))) < len(others) // 100


def test_the_filter_hash_of_text_spreads_keys_like_similar_texts_apart() -> None:
    """Keys that differ in one character, in length only, or in where a label starts (as domain parents
    do): every key passes its filter, and under 1% of the near misses do (0.2% expected)."""
    keys = [f"h{i}.example.com" for i in range(30_000)] + [f"{i:064x}" for i in range(30_000)]
    others = [f"h{i}.example.con" for i in range(30_000)] + [f"{i:063x}" for i in range(1, 30_001)]
    others += [f"{i}.example.com" for i in range(30_000)] + ["x" * n for n in range(1, 200)]
    hashes = keyfilter.str_hashes(keys)
    assert len(set(hashes.tolist())) == len(keys)
    flt = KeyFilter(len(keys))
    flt.add(hashes)
    assert flt.candidates(keyfilter.str_hashes(keys)) == list(range(len(keys)))
    assert len(flt.candidates(keyfilter.str_hashes(others))) < len(others) // 100
    wide = ["é.example", "中.example", "\U0001f600.example", "e.example"]  # each width of str
    assert len(set(keyfilter.str_hashes(wide).tolist())) == len(wide)
    flt = KeyFilter(len(wide))
    flt.add(keyfilter.str_hashes(wide))
    assert flt.candidates(keyfilter.str_hashes([w[:1] + w[1:] for w in wide])) == [0, 1, 2, 3]


def test_a_batch_finds_an_address_added_after_the_filter_was_built() -> None:
    m = build()
    obs = [("ipv4", f"203.0.114.{i}") for i in range(BIG)] + [("ipv4", "192.0.2.99")]
    assert m.match_many(obs)[-1] == []
    m.add(70, T.IPV4, "192.0.2.99")  # the only key queued: an address, checked apart
    assert m.match_many(obs)[-1] == [70]


def test_keys_added_while_batches_run_in_another_thread_are_all_found() -> None:
    m = build()
    m.prepare()
    added = [f"{i:064x}" for i in range(1, 3001)]
    obs = [("sha256", v) for v in added[::20]] + [("ipv4", f"203.0.114.{i}") for i in range(BIG)]
    done = threading.Event()

    def add_all() -> None:
        for ident, value in enumerate(added, 5000):
            m.add(ident, T.SHA256, value)
            m.add(ident + 10_000, T.IPV4, f"10.{ident >> 8 & 255}.{ident & 255}.1")
        done.set()

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible
    try:
        adder = threading.Thread(target=add_all)
        adder.start()
        while not done.is_set():
            m.match_many(obs)
        adder.join()
    finally:
        sys.setswitchinterval(interval)
    assert all(m.match_many(obs)[: len(obs) - BIG])
    ips = [("ipv4", f"10.{i >> 8 & 255}.{i & 255}.1") for i in range(5000, 8000)]
    assert all(m.match_many(ips))


class _Text(str):
    """A str subclass, as an enum's value or a caller's own type may be."""


def _odd_variants(rng: random.Random, t: str, v: str) -> list[tuple[str, str]]:
    """The same observable written in the ways a batch must read as ``match`` does, or hand back."""
    upper = "".join(c.upper() if rng.random() < 0.5 else c for c in v)
    out = [(t, v), (t, upper), (t, v + "."), (t, " " + v), (t, v + "\x00"), (t, v + "é"), ("İ" + v, v)]
    if t == "ipv4":
        a, b, c, d = [*v.split("."), "1", "2", "3", "4"][:4]
        writings = [f"0{a}.{b}.{c}.{d}", f"{a}.{b}.{c}", f"{a}.{b}.{c}.{d}0", f"{a}..{c}.{d}"]
        writings += [f"{a}.{b}.{c}.256", f"{a}.{b}.{c}.{d}/24", f"{a}.{b}.{c}.{d}.5", "1234.1.1.1"]
        out += [(t, w) for w in writings]
    if t in ("domain", "host"):
        out += [(t, "x." * 200 + v), (t, v.replace(".", "..")), (t, "." + v), (t, v + "..")]
    if t == "url":
        writings = [v + "#f", v.replace("://", "://U@"), v.replace("/", "/%41", 3), v + ":80", "x" + v]
        writings += [v.replace(".example", ".example:443"), v.replace(".example", ".example.")]
        out += [(t, w) for w in writings]
    return out


def test_odd_writings_of_every_type_match_as_one_by_one() -> None:
    """Case, trailing dots, NUL, non-ASCII, malformed addresses, deep names, odd URLs, str subclasses,
    lists instead of tuples: each batch path reads them as ``match`` does (or leaves them to it)."""
    m = build()
    rng = random.Random(9)
    base = [(t, v) for t, v in OBSERVABLES if t in ("ipv4", "domain", "host", "url", "md5", "sha1", "sha256")]
    obs: list[tuple[str, str]] = []
    for t, v in base:
        obs += _odd_variants(rng, t, v)
    obs += [(_Text(t), _Text(v)) for t, v in base]
    obs += [("sha256", "A" * 64), ("SHA256", "a" * 64), ("ipv4", "198.51.100.9"), ("host", "Exact.Example")]
    rng.shuffle(obs)
    assert_agree(m, obs)
    as_lists = [[t, v] for t, v in obs]
    assert m.match_many(as_lists) == [m.match(t, v) for t, v in obs]  # type: ignore[arg-type]
