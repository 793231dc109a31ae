"""The in-memory matcher: exact values, CIDR ranges (nested too), domain parents, URLs, hashes, expiry."""

from __future__ import annotations

import ipaddress

import pytest

from bastion.intel.ipranges import ip_range
from bastion.intel.matcher import Matcher
from bastion.intel.normalize import InvalidIndicator, classify, normalize, normalize_url
from bastion.model.intel import IndicatorType as T


def build() -> Matcher:
    m = Matcher()
    m.add(1, T.IPV4, "203.0.113.7")
    m.add(2, T.CIDR, "198.51.100.0/24")
    m.add(3, T.CIDR, "198.51.0.0/16")
    m.add(4, T.DOMAIN, "evil.example")
    m.add(5, T.DOMAIN, "exact.example", exact=True)
    m.add(6, T.URL, normalize_url("HTTP://Bad.Example:80/path?q=1#frag"))
    m.add(7, T.SHA256, "a" * 64)
    m.add(8, T.CIDR, "2001:db8::/32")
    m.add(9, T.MD5, "b" * 32, valid_until=1_000)
    m.add(10, T.FILE_NAME, "payload.exe")
    return m


def test_exact_ip_and_nested_cidrs() -> None:
    m = build()
    assert m.match("ipv4", "203.0.113.7") == [1]
    assert sorted(m.match("ipv4", "198.51.100.9")) == [2, 3]
    assert m.match("ipv4", "198.51.7.1") == [3]
    assert m.match("ipv4", "198.52.0.1") == []
    assert m.match("ipv6", "2001:db8::1") == [8]
    assert m.match("ipv6", "2001:db9::1") == []


def test_domain_parents_and_exact_domains() -> None:
    m = build()
    assert m.match("domain", "evil.example") == [4]
    assert m.match("domain", "a.b.EVIL.example.") == [4]
    assert m.match("domain", "notevil.example") == []
    assert m.match("domain", "exact.example") == [5]
    assert m.match("domain", "sub.exact.example") == []


def test_urls_are_compared_normalized() -> None:
    m = build()
    assert m.match("url", "http://bad.example/path?q=1") == [6]
    assert m.match("url", "HTTP://BAD.EXAMPLE:80/path?q=1#other") == [6]
    assert m.match("url", "http://bad.example/PATH?q=1") == []


def test_hashes_file_names_and_expiry() -> None:
    m = build()
    assert m.match("sha256", "A" * 64) == [7]
    assert m.match("md5", "b" * 32, now=500) == [9]
    assert m.match("md5", "b" * 32, now=5_000) == []
    assert m.match("file_path", "C:\\Temp\\PAYLOAD.EXE") == [10]


def test_incremental_remove_and_shared_values() -> None:
    m = build()
    m.add(11, T.IPV4, "203.0.113.7")
    assert sorted(m.match("ipv4", "203.0.113.7")) == [1, 11]
    m.remove(1, T.IPV4, "203.0.113.7")
    assert m.match("ipv4", "203.0.113.7") == [11]
    m.remove(2, T.CIDR, "198.51.100.0/24")
    assert m.match("ipv4", "198.51.100.9") == [3]


def test_normalize_and_classify() -> None:
    assert normalize(T.CIDR, "10.1.2.3/32") == (T.IPV4, "10.1.2.3")
    assert normalize(T.IPV4, "10.0.0.0/8") == (T.CIDR, "10.0.0.0/8")
    assert normalize(T.DOMAIN, "WWW.Example.COM.") == (T.DOMAIN, "www.example.com")
    assert normalize(T.MD5, "A" * 64) == (T.SHA256, "a" * 64)
    assert normalize(T.CVE, "cve-2024-3094") == (T.CVE, "CVE-2024-3094")
    assert classify("8.8.8.8") is T.IPV4
    assert classify("2001:db8::/32") is T.CIDR
    assert classify("http://x.example/") is T.URL
    assert classify("d41d8cd98f00b204e9800998ecf8427e") is T.MD5
    assert classify("user@example.com") is T.EMAIL
    # A file extension that is no TLD makes a file name; a TLD that is also one stays a domain.
    assert classify("evil.exe") is T.FILE_NAME and classify("Invoice.DOCM") is T.FILE_NAME
    assert classify("evil.com") is T.DOMAIN and classify("invoice.zip") is T.DOMAIN
    assert classify("dc01.corp.local") is T.DOMAIN
    with pytest.raises(InvalidIndicator, match="not a domain"):
        normalize(T.DOMAIN, "domain autuo.xicp.net")
    with pytest.raises(InvalidIndicator, match="IP address"):
        normalize(T.IPV4, "300.1.1.1")


def test_match_many_agrees_with_match() -> None:
    m = build()
    m.add(12, T.DOMAIN, "example")  # a one-label parent, matched as a suffix
    m.add(13, T.DOMAIN, "evil.example")  # two ids on one value
    obs = [
        ("ipv4", "203.0.113.7"),
        ("ipv4", "198.51.100.9"),
        ("ipv4", "not-an-ip"),
        ("ipv4", "::ffff:198.51.100.9"),
        ("ipv6", "2001:db8::5"),
        ("domain", "a.evil.example."),
        ("host", "EXACT.example"),
        ("url", "HTTP://bad.example:80/path?q=1"),
        ("sha256", "A" * 64),
        ("md5", "b" * 32),
        ("file_path", "/tmp/payload.exe"),
        ("email", "nobody@example.org"),
        ("registry_key", "HKLM\\x"),
    ]
    for now in (None, 500, 5_000):
        many = [sorted(x) for x in m.match_many(obs, now)]
        assert many == [sorted(m.match(t, v, now)) for t, v in obs]
    assert sorted(m.match_many([("domain", "a.evil.example")])[0]) == [4, 12, 13]
    m.add(14, T.FILE_NAME, r"^pay.*\.exe$", pattern=True)
    assert 14 in m.match_many([("file_path", "C:\\payload.exe")])[0]


@pytest.mark.parametrize(
    "text",
    [
        "1.2.3.4",
        "1.2.3.4/24",
        "0.0.0.0/0",
        "255.255.255.255/32",
        "10.1.2.3/08",
        "2001:db8::/32",
        "::1",
        # what ipaddress refuses, the fast IPv4 reader refuses too
        "010.1.1.1",
        "1.2.3",
        "1.2.3.256",
        "1.2.3.4/33",
        "1.2.3.4/",
        "1.2.3.4/+8",
        "\u0661.2.3.4",
        " 1.2.3.4",
        "1.2.3.4\n",
        "example.org",
    ],
)
def test_ip_range_reads_exactly_what_ipaddress_reads(text: str) -> None:
    try:
        net = ipaddress.ip_network(text, strict=False)
        expected: tuple[int, int, int] | None = (
            net.version,
            int(net.network_address),
            int(net.broadcast_address),
        )
    except ValueError:
        expected = None
    assert ip_range(text) == expected
