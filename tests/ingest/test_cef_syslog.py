"""CEF and syslog: parsing (spec examples, escapes, RFC 5424 / 3164 samples, errors) and the normalizers."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bastion.ingest.cef import CefError, find_cef, parse_cef
from bastion.ingest.normalize import NormalizeError, detect_format, normalize
from bastion.ingest.normalize.cef import cef_class, cef_severity, cef_time
from bastion.ingest.syslog import SyslogError, bsd_datetime, parse_syslog
from bastion.model import ActionId, EventClass, Severity


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp() * 1000)


# ------------------------------------------------------------------------------------------ CEF parsing


def test_cef_spec_example_with_syslog_prefix() -> None:
    line = (
        "Sep 19 08:26:10 host CEF:0|Security|threatmanager|1.0|100|worm successfully stopped|10|"
        "src=10.0.0.1 dst=2.1.2.2 spt=1232"
    )
    assert parse_cef(line) == {
        "version": 0,
        "device_vendor": "Security",
        "device_product": "threatmanager",
        "device_version": "1.0",
        "signature_id": "100",
        "name": "worm successfully stopped",
        "severity": "10",
        "extension": {"src": "10.0.0.1", "dst": "2.1.2.2", "spt": "1232"},
        "prefix": "Sep 19 08:26:10 host",
    }


@pytest.mark.parametrize(
    ("line", "name", "act"),
    [
        # A pipe is escaped in the header, and need not be in the extension.
        (r"CEF:0|security|threatmanager|1.0|100|detected a \| in message|10|src=10.0.0.1 act=blocked a | "
         r"dst=1.1.1.1", "detected a | in message", "blocked a |"),
        # A backslash is escaped everywhere.
        (r"CEF:0|security|threatmanager|1.0|100|detected a \\ in packet|10|src=10.0.0.1 act=blocked a \\ "
         r"dst=1.1.1.1", "detected a \\ in packet", "blocked a \\"),
        # An equals sign is escaped in the extension, and need not be in the header.
        (r"CEF:0|security|threatmanager|1.0|100|detected a = in message|10|src=10.0.0.1 act=blocked a \= "
         r"dst=1.1.1.1", "detected a = in message", "blocked a ="),
    ],
)  # fmt: skip
def test_cef_spec_escapes(line: str, name: str, act: str) -> None:
    cef = parse_cef(line)
    assert cef["name"] == name
    assert cef["extension"] == {"src": "10.0.0.1", "act": act, "dst": "1.1.1.1"}


def test_cef_extension_values_with_spaces_newlines_and_backslashes() -> None:
    line = (
        r"<14>Apr  3 14:29:47 PA-VM CEF:0|Palo Alto Networks|PAN-OS|8.0.0|end|TRAFFIC|1|"
        r"rt=Apr 03 2018 14:29:47 GMT deviceExternalId=007200001234 src=10.0.0.5 dst=52.1.1.1 "
        r"cs1Label=Rule cs1=allow out to web suser=corp\\jdoe duser= cs3Label=Virtual System cs3=vsys1 "
        r"spt=51234 dpt=443 proto=TCP act=allow msg=first line\nsecond line\r "
        r"filePath=C:\\Program Files\\App\\app.exe request=https://example.org/a?b\=1&c\=2 "
        r"ad.vendor_field=kept  "
    )
    cef = parse_cef(line)
    assert cef["prefix"] == "<14>Apr  3 14:29:47 PA-VM"
    assert (cef["device_vendor"], cef["signature_id"], cef["name"]) == (
        "Palo Alto Networks",
        "end",
        "TRAFFIC",
    )
    ext = cef["extension"]
    assert ext["rt"] == "Apr 03 2018 14:29:47 GMT"
    assert ext["cs1"] == "allow out to web"
    assert ext["cs3Label"] == "Virtual System"
    assert ext["suser"] == "corp\\jdoe"
    assert ext["duser"] == ""
    assert ext["msg"] == "first line\nsecond line\r"
    assert ext["filePath"] == "C:\\Program Files\\App\\app.exe"
    assert ext["request"] == "https://example.org/a?b=1&c=2"
    assert ext["ad.vendor_field"] == "kept"  # trailing spaces are separators, not part of the value
    assert list(ext)[:4] == ["rt", "deviceExternalId", "src", "dst"]


def test_cef_header_edge_cases() -> None:
    # A backslash right before a separating pipe, CEF version 1, no extension and no trailing pipe.
    cef = parse_cef(r"CEF:1|Vendor\\|Product|2.0|sig-1|Name|High")
    assert cef["version"] == 1
    assert (cef["device_vendor"], cef["device_product"]) == ("Vendor\\", "Product")
    assert (cef["severity"], cef["extension"]) == ("High", {})
    # An unescaped "=" inside a URL (common in practice) stays in its value: no space precedes it.
    assert parse_cef("CEF:0|V|P|1|s|n|3|request=http://x/?a=b&c=d src=1.2.3.4")["extension"] == {
        "request": "http://x/?a=b&c=d",
        "src": "1.2.3.4",
    }
    assert find_cef("<13>Jan  1 00:00:00 host CEF:0|a|b|c|d|e|1|") == 25
    assert find_cef("no CEF here, just XCEF:0") == -1


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("Sep 19 08:26:10 host something else", "no 'CEF:'"),
        ("CEF:0|Vendor|Product|1.0|100", "has 5 of its 7"),
        ("CEF:x|Vendor|Product|1.0|100|Name|5|", "version must be a number"),
        ("CEF:0|Vendor|Product|1.0|100|Name|5|just free text", "not key=value"),
        ("CEF:0|Vendor|Product|1.0|100|Name|5|junk src=1.2.3.4", "text before its first key=value"),
    ],
)
def test_cef_errors_say_what_is_wrong(line: str, message: str) -> None:
    with pytest.raises(CefError, match=message):
        parse_cef(line)


# ------------------------------------------------------------------------------------------ CEF events


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("allow", ActionId.ALLOWED),
        ("Accept", ActionId.ALLOWED),
        ("drop", ActionId.DENIED),
        ("Blocked", ActionId.DENIED),
        ("alert", ActionId.OTHER),
        ("", ActionId.UNKNOWN),
    ],
)
def test_cef_act_becomes_the_ocsf_action(word: str, expected: ActionId) -> None:
    line = f"CEF:0|PAN|PAN-OS|10|end|TRAFFIC|1|src=10.0.0.1 dst=10.0.0.2 act={word}"
    event = normalize(line)
    assert event.action_id == expected
    assert event.action == (word or None)


def test_cef_normalized_event() -> None:
    line = (
        r"<134>1 2024-05-01T10:00:00.000Z fw01.example.com CEF - - - "
        r"CEF:0|Trellix|Endpoint Security|10.7|1092|Threat detected and blocked|8|"
        r"rt=1714557600123 src=192.0.2.10 spt=51234 shost=ws-17 dst=198.51.100.20 dpt=445 "
        r"suser=jdoe suid=S-1-5-21-1 sntdom=CORP duser=administrator act=blocked "
        r"fname=invoice scan.exe filePath=C:\\Users\\jdoe\\Downloads\\invoice scan.exe "
        r"fileHash=E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855 "
        r"sproc=outlook.exe spid=4412 dproc=invoice scan.exe dpid=5120 externalId=evt-77 "
        r"request=https://files.example.net/dl/invoice.exe msg=Trojan.Generic blocked on access"
    )
    assert detect_format(line) == "cef"
    event = normalize(line)
    assert event.format == "cef"
    assert event.raw == line
    assert event.class_uid == EventClass.SECURITY_FINDING  # "threat" in the name
    assert event.severity_id == Severity.HIGH
    assert event.time == 1714557600123
    assert event.message == "Trojan.Generic blocked on access"
    assert (event.action, event.action_id) == ("blocked", ActionId.DENIED)
    assert event.metadata is not None
    assert (event.metadata.vendor, event.metadata.product, event.metadata.event_code) == (
        "Trellix",
        "Endpoint Security",
        "1092",
    )
    assert event.metadata.uid == "evt-77"
    assert event.device is not None and event.device.hostname == "fw01.example.com"
    assert event.src_endpoint is not None
    assert (event.src_endpoint.ip, event.src_endpoint.port, event.src_endpoint.hostname) == (
        "192.0.2.10",
        51234,
        "ws-17",
    )
    assert event.dst_endpoint is not None
    assert (event.dst_endpoint.ip, event.dst_endpoint.port) == ("198.51.100.20", 445)
    assert event.actor is not None and event.actor.user is not None and event.actor.process is not None
    assert (event.actor.user.name, event.actor.user.uid, event.actor.user.domain) == (
        "jdoe",
        "S-1-5-21-1",
        "CORP",
    )
    assert (event.actor.process.name, event.actor.process.pid) == ("outlook.exe", 4412)
    assert event.process is not None and (event.process.name, event.process.pid) == ("invoice scan.exe", 5120)
    assert event.file is not None
    assert event.file.name == "invoice scan.exe"
    assert event.file.path == "C:\\Users\\jdoe\\Downloads\\invoice scan.exe"
    assert event.file.hashes == {"sha256": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"}
    assert event.url is not None
    assert (event.url.hostname, event.url.path) == ("files.example.net", "/dl/invoice.exe")


def test_cef_event_falls_back_to_syslog_time_and_host_and_to_duser() -> None:
    line = (
        "<38>Oct 11 22:14:15 dc01 CEF:0|Microsoft|Windows|10|4625|An account failed to log on|Medium|"
        "duser=alice dntdom=CORP src=10.9.8.7 cat=Logon"
    )
    event = normalize(line)
    assert event.class_uid == EventClass.AUTHENTICATION
    assert event.severity_id == Severity.MEDIUM
    assert event.device is not None and event.device.hostname == "dc01"
    assert event.metadata is not None and event.metadata.original_time == "Oct 11 22:14:15"
    assert datetime.fromtimestamp(event.time / 1000, UTC).strftime("%m-%d %H:%M:%S") == "10-11 22:14:15"
    assert event.actor is not None and event.actor.user is not None
    assert (event.actor.user.name, event.actor.user.domain) == ("alice", "CORP")
    assert event.message == "An account failed to log on"


def test_cef_dns_event_and_hostname_in_address_field() -> None:
    event = normalize(
        "CEF:0|Infoblox|NIOS|8.6|dns-query|DNS query|2|src=ws-9.corp.example dst=10.0.0.53 "
        "destinationDnsDomain=evil.example.com start=2024-03-01T10:00:00.5+01:00"
    )
    assert event.class_uid == EventClass.DNS_ACTIVITY
    assert event.query == "evil.example.com"
    assert event.severity_id == Severity.LOW
    assert event.time == ms("2024-03-01T09:00:00.500+00:00")
    assert event.src_endpoint is not None
    assert (event.src_endpoint.ip, event.src_endpoint.hostname) == (None, "ws-9.corp.example")


@pytest.mark.parametrize(
    ("value", "expected"),
    [("0", Severity.LOW), ("3", Severity.LOW), ("4", Severity.MEDIUM), ("6", Severity.MEDIUM),
     ("7", Severity.HIGH), ("8", Severity.HIGH), ("9", Severity.CRITICAL), ("10", Severity.CRITICAL),
     ("11", Severity.UNKNOWN), ("Low", Severity.LOW), ("MEDIUM", Severity.MEDIUM), ("High", Severity.HIGH),
     ("Very-High", Severity.CRITICAL), ("Unknown", Severity.UNKNOWN), ("whatever", Severity.UNKNOWN)],
)  # fmt: skip
def test_cef_severity(value: str, expected: Severity) -> None:
    assert cef_severity(value) == expected


def test_cef_times() -> None:
    assert cef_time("1714557600123") == 1714557600123
    assert cef_time("1714557600") == 1714557600000
    assert cef_time("Apr 03 2018 14:29:47 GMT") == ms("2018-04-03T14:29:47+00:00")
    assert cef_time("Apr 03 2018 14:29:47.250") == ms("2018-04-03T14:29:47.250+00:00")
    assert cef_time("Apr 03 2018 14:29:47.250 +0200") == ms("2018-04-03T12:29:47.250+00:00")
    assert cef_time("Jul 03 2018 14:29:47 Europe/Berlin") == ms("2018-07-03T12:29:47+00:00")
    assert cef_time("Jan 02 03:04:05 PST", now=datetime(2024, 6, 1, tzinfo=UTC)) == ms(
        "2024-01-02T11:04:05+00:00"
    )
    for bad in ("yesterday", "Foo 03 2018 14:29:47", "Apr 03 2018 14:29:47 Mars/Olympus"):
        with pytest.raises(ValueError):
            cef_time(bad)


def test_cef_class_keywords() -> None:
    assert cef_class("", "Malware quarantined") == EventClass.SECURITY_FINDING
    assert cef_class("/Authentication/Verify", "Logon success") == EventClass.AUTHENTICATION
    assert cef_class("", "User account created") == EventClass.ACCOUNT_CHANGE
    assert cef_class("traffic", "end") == EventClass.NETWORK_ACTIVITY
    assert cef_class("", "URL filtering") == EventClass.HTTP_ACTIVITY
    assert cef_class("", "File written") == EventClass.FILE_ACTIVITY
    assert cef_class("", "Process started") == EventClass.PROCESS_ACTIVITY
    assert cef_class("", "Something happened") == EventClass.SECURITY_FINDING


def test_cef_normalizer_errors() -> None:
    with pytest.raises(NormalizeError, match="has 3 of its 7"):
        normalize("CEF:0|Vendor|Product")
    with pytest.raises(NormalizeError, match="text lines"):
        normalize({"CEF": 0}, "cef")


# ------------------------------------------------------------------------------------------ syslog parsing

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def test_rfc5424_examples() -> None:
    """The four examples of RFC 5424 section 6.5 (BOM as U+FEFF)."""
    one = parse_syslog(
        "<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - "
        "\ufeff'su root' failed for lonvick on /dev/pts/8"
    )
    assert one == {
        "format": "rfc5424", "pri": 34, "facility": 4, "severity": 2, "facility_name": "auth",
        "severity_name": "crit", "version": 1, "timestamp": "2003-10-11T22:14:15.003Z",
        "time": ms("2003-10-11T22:14:15.003+00:00"), "hostname": "mymachine.example.com", "app_name": "su",
        "procid": None, "msgid": "ID47", "structured_data": {},
        "message": "'su root' failed for lonvick on /dev/pts/8",
    }  # fmt: skip
    two = parse_syslog(
        "<165>1 2003-08-24T05:14:15.000003-07:00 192.0.2.1 myproc 8710 - - %% It's time to make the do-nuts."
    )
    assert two["time"] == ms("2003-08-24T12:14:15+00:00")
    assert (two["hostname"], two["app_name"], two["procid"], two["msgid"]) == (
        "192.0.2.1",
        "myproc",
        "8710",
        None,
    )
    assert (two["facility_name"], two["severity_name"]) == ("local4", "notice")
    assert two["message"] == "%% It's time to make the do-nuts."
    three = parse_syslog(
        '<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3" '
        'eventSource="Application" eventID="1011"] \ufeffAn application event log entry...'
    )
    assert three["structured_data"] == {
        "exampleSDID@32473": {"iut": "3", "eventSource": "Application", "eventID": "1011"}
    }
    assert three["message"] == "An application event log entry..."
    four = parse_syslog(
        '<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3" '
        'eventSource="Application" eventID="1011"][examplePriority@32473 class="high"]'
    )
    assert four["structured_data"] == {
        "exampleSDID@32473": {"iut": "3", "eventSource": "Application", "eventID": "1011"},
        "examplePriority@32473": {"class": "high"},
    }
    assert four["message"] == ""


def test_rfc5424_structured_data_escapes_and_nil_values() -> None:
    msg = parse_syslog(
        r'<14>1 - - - - - [origin@48577 ip="10.0.0.1" note="say \"hi\" [x\] c:\\temp \n"][meta x=""] body'
    )
    assert msg["time"] is None and msg["hostname"] is None and msg["app_name"] is None
    assert msg["structured_data"] == {
        "origin@48577": {"ip": "10.0.0.1", "note": 'say "hi" [x] c:\\temp \\n'},
        "meta": {"x": ""},
    }
    assert msg["message"] == "body"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("", "empty"),
        ("<192>Oct 11 22:14:15 host app: x", "out of range"),
        ("<ab>Oct 11 22:14:15 host app: x", "PRI must be"),
        ("<34>1 2003-10-11 22:14:15Z host su - ID47 - x", "RFC 5424"),
        ("<34>1 2003-10-11T22:14:15.003 host su - ID47 - x", "time zone"),
        ("<34>1 2003-10-11T22:14:15.003Z host su", "needs TIMESTAMP HOSTNAME"),
        ('<34>1 2003-10-11T22:14:15.003Z host su - ID47 [id a="1" b=2] x', "malformed at column"),
        ("<34>1 2003-10-11T22:14:15.003Z host su - ID47 x y", "STRUCTURED-DATA must be"),
        ("just some text", "no <PRI> and no timestamp"),
    ],
)
def test_syslog_errors_say_what_is_wrong(line: str, message: str) -> None:
    with pytest.raises(SyslogError, match=message):
        parse_syslog(line, NOW)


def test_rfc3164_examples() -> None:
    one = parse_syslog("<34>Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick on /dev/pts/8", NOW)
    assert one["format"] == "rfc3164"
    assert (one["pri"], one["facility_name"], one["severity_name"]) == (34, "auth", "crit")
    assert one["time"] == ms("2025-10-11T22:14:15+00:00")  # October is still ahead in June: last year
    assert (one["hostname"], one["app_name"], one["procid"]) == ("mymachine", "su", None)
    assert one["message"] == "'su root' failed for lonvick on /dev/pts/8"

    relayed = parse_syslog("<13>Feb  5 17:32:18 10.0.0.99 Use the BFG!", NOW)
    assert relayed["time"] == ms("2026-02-05T17:32:18+00:00")
    assert (relayed["hostname"], relayed["app_name"], relayed["message"]) == (
        "10.0.0.99",
        None,
        "Use the BFG!",
    )

    tagged = parse_syslog(
        "<0>Oct 22 10:52:12 scapegoat 1990 Oct 22 10:52:01 TZ-6 scapegoat.dmz.example.org 10.1.2.3 "
        'sched[0]: That\'s "sys"',
        NOW,
    )
    assert (tagged["hostname"], tagged["severity_name"]) == ("scapegoat", "emerg")
    assert tagged["message"].startswith("1990 Oct 22 10:52:01 TZ-6")

    # Without a valid TIMESTAMP the whole rest is the message.
    bare = parse_syslog('<0>1990 Oct 22 10:52:01 TZ-6 scapegoat.dmz.example.org sched[0]: That\'s "sys"', NOW)
    assert (bare["time"], bare["hostname"]) == (None, None)


def test_bsd_lines_from_files_and_common_variants() -> None:
    line = "Mar  7 09:15:02 web01 sshd[2211]: Accepted publickey for deploy from 203.0.113.5 port 50022 ssh2"
    msg = parse_syslog(line, NOW)
    assert (msg["pri"], msg["hostname"], msg["app_name"], msg["procid"]) == (None, "web01", "sshd", "2211")
    assert msg["message"].startswith("Accepted publickey")
    no_host = parse_syslog("<38>Mar  7 09:15:02 postfix/smtpd[99]: connect from unknown[192.0.2.1]", NOW)
    assert (no_host["hostname"], no_host["app_name"], no_host["procid"]) == (None, "postfix/smtpd", "99")
    iso = parse_syslog("<30>2024-03-01T10:00:00.123456+01:00 host1 systemd[1]: Started foo.", NOW)
    assert iso["time"] == ms("2024-03-01T09:00:00.123+00:00")
    assert (iso["hostname"], iso["app_name"], iso["message"]) == ("host1", "systemd", "Started foo.")
    frac = parse_syslog("<30>Mar  7 09:15:02.250 host1 kernel: x", NOW)
    assert frac["time"] == ms("2026-03-07T09:15:02.250+00:00")


def test_year_inference() -> None:
    new_year = datetime(2027, 1, 1, 0, 5, tzinfo=UTC)
    assert bsd_datetime(12, 31, 23, 59, 0, 0, new_year).year == 2026
    assert bsd_datetime(1, 1, 0, 4, 0, 0, new_year).year == 2027
    assert bsd_datetime(1, 1, 12, 0, 0, 0, new_year).year == 2027  # hours ahead: clock skew, same year
    assert bsd_datetime(2, 29, 12, 0, 0, 0, datetime(2027, 3, 1, tzinfo=UTC)).year == 2024


# ------------------------------------------------------------------------------------------ syslog events


def test_syslog_normalized_event() -> None:
    line = "<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - \ufeff'su root' failed"
    assert detect_format(line) == "syslog"
    event = normalize(line)
    assert event.format == "syslog"
    assert event.raw == line
    assert event.class_uid == EventClass.BASE
    assert event.severity_id == Severity.CRITICAL
    assert event.time == ms("2003-10-11T22:14:15.003+00:00")
    assert event.message == "'su root' failed"
    assert event.device is not None and event.device.hostname == "mymachine.example.com"
    assert event.metadata is not None
    assert (event.metadata.product, event.metadata.log_name, event.metadata.event_code) == (
        "su",
        "auth",
        "ID47",
    )
    assert event.actor is not None and event.actor.process is not None and event.actor.process.name == "su"

    relayed = normalize("<13>Feb  5 17:32:18 10.0.0.99 Use the BFG!")
    assert relayed.device is not None and (relayed.device.ip, relayed.device.hostname) == ("10.0.0.99", None)
    assert relayed.severity_id == Severity.LOW
    assert relayed.actor is None


@pytest.mark.parametrize(
    ("message", "user", "ip", "port"),
    [
        ("Accepted publickey for deploy from 203.0.113.5 port 50022 ssh2", "deploy", "203.0.113.5", 50022),
        (
            "Failed password for invalid user admin from 198.51.100.7 port 2222 ssh2",
            "admin",
            "198.51.100.7",
            2222,
        ),
        ("Failed password for root from 2001:db8::1 port 41000 ssh2", "root", "2001:db8::1", 41000),
        ("Invalid user oracle from 192.0.2.44 port 51515", "oracle", "192.0.2.44", 51515),
    ],
)
def test_sshd_logins_become_authentication(message: str, user: str, ip: str, port: int) -> None:
    event = normalize(f"<38>Mar  7 09:15:02 web01 sshd[2211]: {message}", "syslog")
    assert event.class_uid == EventClass.AUTHENTICATION
    assert event.severity_id == Severity.INFORMATIONAL
    assert event.actor is not None and event.actor.user is not None and event.actor.user.name == user
    assert event.actor.process is not None and event.actor.process.pid == 2211
    assert event.src_endpoint is not None and (event.src_endpoint.ip, event.src_endpoint.port) == (ip, port)


def test_headerless_file_line_by_name_and_errors() -> None:
    event = normalize("Mar  7 09:15:02 web01 cron[5]: (root) CMD (run-parts /etc/cron.hourly)", "syslog")
    assert event.severity_id == Severity.UNKNOWN
    assert event.device is not None and event.device.hostname == "web01"
    with pytest.raises(NormalizeError, match="no <PRI> and no timestamp"):
        normalize("\tat com.example.Foo.bar(Foo.java:42)", "syslog")
    with pytest.raises(NormalizeError, match="out of range"):
        normalize("<999>Mar  7 09:15:02 web01 x: y")
