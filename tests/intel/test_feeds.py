"""Feed polling against real servers: TAXII 2.1 (medallion), HTTP feeds with ETag/If-Modified-Since,
abuse.ch formats, a MISP feed and a MISP server API double, and per-feed health."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from taxii2client.v21 import Collection

from bastion.connectors.egress import guarded_sync_client
from bastion.intel.feeds import FeedError, parse_bytes
from bastion.intel.polling import add_feed, poll_feed, poll_feeds
from bastion.intel.store import lookup
from bastion.store import Database
from bastion.store.intel import IntelRepository
from tests.intel.servers import COLLECTION, LOCAL, http_server, medallion

DATA = Path(__file__).with_name("data")


def _indicator(value: str) -> dict[str, object]:
    return {
        "type": "indicator",
        "spec_version": "2.1",
        "id": f"indicator--{uuid.uuid4()}",
        "created": "2026-01-01T00:00:00.000Z",
        "modified": "2026-01-01T00:00:00.000Z",
        "pattern": f"[ipv4-addr:value = '{value}']",
        "pattern_type": "stix",
        "valid_from": "2026-01-01T00:00:00Z",
    }


def _bundle(values: list[str]) -> dict[str, object]:
    return {"type": "bundle", "id": f"bundle--{uuid.uuid4()}", "objects": [_indicator(v) for v in values]}


def _feed(db: Database, tenant: str, name: str):  # type: ignore[no-untyped-def]
    with db.read() as conn:
        feed = IntelRepository(conn, tenant).feed(name)
    assert feed is not None
    return feed


@pytest.mark.parametrize("page_size", [100, 2])
def test_taxii_second_poll_loads_only_new(
    sqlite_db: Database, sqlite_tenant: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, page_size: int
) -> None:
    """Also when the server pages its answers (two at a time): the cursor is the newest of every page."""
    monkeypatch.setenv("TAXII_TEST_PASSWORD", "Password0")
    with medallion(tmp_path, max_page_size=page_size) as root:
        coll = Collection(f"{root}collections/{COLLECTION}/", user="admin", password="Password0")
        for ip in ("198.51.100.1", "198.51.100.2", "198.51.100.3"):  # one by one: each its own date_added
            coll.add_objects(json.dumps(_bundle([ip])))
        add_feed(
            sqlite_db, sqlite_tenant, "taxii", url=root, fmt="taxii", interval_s=600,
            config={"collection": COLLECTION, "user": "admin", "password_env": "TAXII_TEST_PASSWORD",
                    "allow_private": True, "page_size": page_size},
            actor="t",
        )  # fmt: skip
        first = poll_feed(sqlite_db, sqlite_tenant, _feed(sqlite_db, sqlite_tenant, "taxii"))
        assert (first.status, first.loaded, first.merged) == ("ok", 3, 0)
        feed = _feed(sqlite_db, sqlite_tenant, "taxii")
        assert feed.cursor is not None

        coll.add_objects(json.dumps(_bundle(["198.51.100.4", "198.51.100.5"])))
        second = poll_feed(sqlite_db, sqlite_tenant, feed)
        # Only the two new objects came back (a full re-read would have merged the first three).
        assert (second.status, second.loaded, second.merged) == ("ok", 2, 0)
        third = poll_feed(sqlite_db, sqlite_tenant, _feed(sqlite_db, sqlite_tenant, "taxii"))
        assert (third.loaded, third.merged) == (0, 0)
    assert lookup(sqlite_db, sqlite_tenant, "198.51.100.5")["matches"]


def test_taxii_connects_where_the_guard_resolved(
    sqlite_db: Database, sqlite_tenant: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """taxii2-client's requests session goes through the guarded client: a name that only the guard's
    resolver knows (``.invalid`` never resolves) reaches the TAXII server, on every request of the poll."""
    monkeypatch.setenv("TAXII_TEST_PASSWORD", "Password0")
    with medallion(tmp_path) as root:
        coll = Collection(f"{root}collections/{COLLECTION}/", user="admin", password="Password0")
        coll.add_objects(json.dumps(_bundle(["198.51.100.9"])))
        named = root.replace("127.0.0.1", "taxii.bastion-test.invalid")
        add_feed(
            sqlite_db, sqlite_tenant, "taxii-named", url=named, fmt="taxii",
            config={"collection": COLLECTION, "user": "admin", "password_env": "TAXII_TEST_PASSWORD",
                    "allow_private": True},
            actor="t",
        )  # fmt: skip
        asked: list[str] = []

        def resolver(host: str, port: int) -> list[str]:
            asked.append(host)
            return ["127.0.0.1"]

        client = guarded_sync_client(timeout=10, allow_private=True, resolver=resolver)
        try:
            polled = poll_feed(
                sqlite_db, sqlite_tenant, _feed(sqlite_db, sqlite_tenant, "taxii-named"), client=client
            )
        finally:
            client.close()
        assert (polled.status, polled.loaded) == ("ok", 1), polled.error
        assert asked and set(asked) == {"taxii.bastion-test.invalid"}

        # Without allow_private the same guard refuses the poll before any request.
        refusing = guarded_sync_client(timeout=10, allow_private=False, resolver=resolver)
        try:
            refused = poll_feed(
                sqlite_db, sqlite_tenant, _feed(sqlite_db, sqlite_tenant, "taxii-named"), client=refusing
            )
        finally:
            refusing.close()
        assert refused.status == "error" and (refused.error or "").startswith("SSRFError: refused")


URLHAUS = (DATA / "urlhaus.csv").read_bytes()


def test_http_feed_etag_and_if_modified_since(sqlite_db: Database, sqlite_tenant: str) -> None:
    etag = '"v1"'
    modified = "Sun, 01 Nov 2026 10:00:00 GMT"

    def handler(
        method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        if headers.get("if-none-match") == etag and headers.get("if-modified-since") == modified:
            return 304, {}, b""
        return 200, {"ETag": etag, "Last-Modified": modified, "Content-Type": "text/csv"}, URLHAUS

    with http_server(handler) as (base, rec):
        add_feed(
            sqlite_db, sqlite_tenant, "urlhaus", url=f"{base}/csv.txt", fmt="urlhaus", config=LOCAL, actor="t"
        )
        first = poll_feeds(sqlite_db, sqlite_tenant, name="urlhaus")[0]
        # The broken record is skipped and reported; the good one loads.
        assert (first.status, first.loaded, first.rejected) == ("partial", 1, 1)
        feed = _feed(sqlite_db, sqlite_tenant, "urlhaus")
        assert (feed.etag, feed.last_modified) == (etag, modified)
        assert "not a url" in (feed.last_error or "")
        second = poll_feeds(sqlite_db, sqlite_tenant, name="urlhaus")[0]
        assert second.status == "not-modified" and second.loaded == 0
        assert rec.requests[1][2]["if-none-match"] == etag
    hit = lookup(sqlite_db, sqlite_tenant, "HTTP://MALWARE.example:80/bin.sh")
    assert hit["matches"][0]["indicator"] == "http://malware.example/bin.sh"
    assert "mirai" in hit["matches"][0]["tags"]


def test_feeds_go_through_the_ssrf_guard(sqlite_db: Database, sqlite_tenant: str) -> None:
    """A feed whose host is a loopback address is refused (and the server never asked) unless the feed
    allows private addresses; HTTP feeds connect to the address the guard checked, whatever a later
    lookup of the name would say: a name only the guard's resolver knows still reaches the server."""

    def handler(
        method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        return 200, {"Content-Type": "text/plain"}, b"203.0.113.77\n"

    with http_server(handler) as (base, rec):
        add_feed(sqlite_db, sqlite_tenant, "inside", url=f"{base}/list.txt", fmt="list", actor="t")
        refused = poll_feeds(sqlite_db, sqlite_tenant, name="inside")[0]
        assert refused.status == "error" and rec.requests == []
        assert refused.error is not None and refused.error.startswith("SSRFError: refused")
        assert "allow_private" in refused.error
        add_feed(
            sqlite_db, sqlite_tenant, "taxii-inside", url=f"{base}/api/", fmt="taxii",
            config={"collection": COLLECTION}, actor="t",
        )  # fmt: skip
        refused = poll_feeds(sqlite_db, sqlite_tenant, name="taxii-inside")[0]
        assert refused.status == "error" and (refused.error or "").startswith("SSRFError: refused")
        assert rec.requests == []

        port = int(base.rsplit(":", 1)[1])
        add_feed(
            sqlite_db, sqlite_tenant, "named", url=f"http://feeds.bastion-test.invalid:{port}/list.txt",
            fmt="list", config=LOCAL, actor="t",
        )  # fmt: skip
        answers: list[str] = []

        def resolver(host: str, port: int) -> list[str]:
            answers.append(host)
            return ["127.0.0.1"]

        client = guarded_sync_client(timeout=10, allow_private=True, resolver=resolver)
        try:
            ok = poll_feed(sqlite_db, sqlite_tenant, _feed(sqlite_db, sqlite_tenant, "named"), client=client)
        finally:
            client.close()
        assert (ok.status, ok.loaded) == ("ok", 1)
        assert answers == ["feeds.bastion-test.invalid"] and len(rec.requests) == 1
        assert rec.requests[0][2]["host"] == f"feeds.bastion-test.invalid:{port}"


def test_due_schedule_and_error_health(sqlite_db: Database, sqlite_tenant: str) -> None:
    def handler(
        method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        return 500, {}, b"boom"

    with http_server(handler) as (base, _rec):
        add_feed(
            sqlite_db,
            sqlite_tenant,
            "broken",
            url=f"{base}/x",
            fmt="list",
            interval_s=3600,
            config=LOCAL,
            actor="t",
        )
        results = poll_feeds(sqlite_db, sqlite_tenant)
        assert [(r.feed, r.status) for r in results] == [("broken", "error")]
        assert "500" in (results[0].error or "")
        # Just polled: not due again for an hour.
        assert poll_feeds(sqlite_db, sqlite_tenant) == []
        assert len(poll_feeds(sqlite_db, sqlite_tenant, force=True)) == 1
    assert _feed(sqlite_db, sqlite_tenant, "broken").status == "error"


THREATFOX = (DATA / "threatfox.csv").read_bytes()
BAZAAR = (DATA / "bazaar.csv").read_bytes()


def test_abusech_parsers() -> None:
    tf = parse_bytes("threatfox", THREATFOX)
    assert sorted((i.type.value, i.value) for i in tf.indicators) == [
        ("domain", "c2.badness.example"),
        ("ipv4", "203.0.113.80"),
    ]
    assert tf.indicators[0].malware in (["Cobalt Strike"], ["QakBot"])
    assert len(tf.rejected) == 1 and "weird_type" in tf.rejected[0]
    mb = parse_bytes("malwarebazaar", BAZAAR)
    assert sorted(i.type.value for i in mb.indicators) == ["md5", "sha1", "sha256"]
    assert all(i.malware == ["AgentTesla"] for i in mb.indicators)


def _misp_event(uid: str, value: str) -> dict[str, object]:
    return {
        "Event": {
            "uuid": uid,
            "info": "Phishing wave",
            "Orgc": {"name": "CIRCL"},
            "Tag": [{"name": "tlp:green"}, {"name": 'misp-galaxy:mitre-attack-pattern="Phishing - T1566"'}],
            "Attribute": [
                {
                    "uuid": str(uuid.uuid4()),
                    "type": "domain",
                    "value": value,
                    "to_ids": True,
                    "category": "Network activity",
                },
                {"uuid": str(uuid.uuid4()), "type": "ip-dst", "value": "bogus", "to_ids": True},
                {"uuid": str(uuid.uuid4()), "type": "comment", "value": "not an indicator"},
            ],
            "Object": [
                {
                    "Attribute": [
                        {
                            "uuid": str(uuid.uuid4()),
                            "type": "filename|sha256",
                            "value": "inv.pdf.exe|" + "d" * 64,
                        }
                    ]
                }
            ],
        }
    }


def test_misp_feed_format_and_server_api(
    sqlite_db: Database, sqlite_tenant: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    e1, e2 = str(uuid.uuid4()), str(uuid.uuid4())
    manifest = {
        e1: {"info": "one", "timestamp": "1764500000"},
        e2: {"info": "two", "timestamp": "1764600000"},
    }
    events = {e1: _misp_event(e1, "login-portal.example"), e2: _misp_event(e2, "update-check.example")}
    monkeypatch.setenv("MISP_TEST_KEY", "secret-key")

    def handler(
        method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        if path == "/feed/manifest.json":
            return 200, {}, json.dumps(manifest).encode()
        if path.startswith("/feed/") and path.endswith(".json"):
            return 200, {}, json.dumps(events[path[6:-5]]).encode()
        if path == "/events/restSearch" and method == "POST":
            if headers.get("authorization") != "secret-key":
                return 403, {}, b'{"message": "Authentication failed."}'
            return 200, {}, json.dumps({"response": [_misp_event(e1, "api-only.example")]}).encode()
        return 404, {}, b""

    with http_server(handler) as (base, rec):
        add_feed(
            sqlite_db, sqlite_tenant, "circl", url=f"{base}/feed/", fmt="misp-feed", config=LOCAL, actor="t"
        )
        r = poll_feeds(sqlite_db, sqlite_tenant, name="circl")[0]
        # 2 events x (domain + sha256 + file name); the bogus ip-dst is rejected, the comment ignored.
        assert (r.loaded, r.rejected) == (4, 2)
        assert _feed(sqlite_db, sqlite_tenant, "circl").cursor == "1764600000"
        add_feed(
            sqlite_db,
            sqlite_tenant,
            "misp",
            url=base,
            fmt="misp-api",
            config={"api_key_env": "MISP_TEST_KEY", **LOCAL},
            actor="t",
        )
        r = poll_feeds(sqlite_db, sqlite_tenant, name="misp")[0]
        assert r.status == "partial" and r.loaded == 1
        search = next(q for q in rec.requests if q[1] == "/events/restSearch")
        assert json.loads(search[3])["returnFormat"] == "json"
    hit = lookup(sqlite_db, sqlite_tenant, "www.login-portal.example")["matches"][0]
    assert hit["source"] == "CIRCL" and hit["tlp"] == "green" and hit["techniques"] == ["T1566"]
    assert lookup(sqlite_db, sqlite_tenant, "api-only.example")["matches"]


def test_stix_bundle_from_a_url(sqlite_db: Database, sqlite_tenant: str, shared_data: Path) -> None:
    from bastion.intel.feeds import FeedError
    from bastion.intel.service import load_url

    bundle = (shared_data / "stix21" / "examples" / "indicator-for-c2-ip-address.json").read_bytes()

    def handler(
        method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        return (200, {}, bundle) if path == "/bundle.json" else (404, {}, b"")

    with http_server(handler) as (base, _rec):
        s = load_url(sqlite_db, sqlite_tenant, f"{base}/bundle.json", "stix", actor="t")
        assert s.load.contract() == {"loaded": 1, "merged": 0, "rejected": 0}
        with pytest.raises(FeedError, match="could not fetch"):
            load_url(sqlite_db, sqlite_tenant, f"{base}/missing.json", "stix", actor="t")
    assert lookup(sqlite_db, sqlite_tenant, "10.0.0.0")["matches"]


def test_a_broken_json_line_is_rejected_and_the_rest_of_the_feed_loads() -> None:
    lines = b'{"email": "a@example.com", "source": "x"}\nnot json at all\n{"email": "b@example.com"}\n'
    parsed = parse_bytes("credential-leak", lines)
    assert sorted(i.value for i in parsed.indicators) == ["a@example.com", "b@example.com"]
    assert len(parsed.rejected) == 1 and parsed.rejected[0].startswith("record 2: line 2: not JSON")
    mapped = parse_bytes("json", b'{"value": "evil.example", "type": "domain"}\n{oops\n')
    assert [i.value for i in mapped.indicators] == ["evil.example"] and len(mapped.rejected) == 1
    with pytest.raises(FeedError, match="not JSON or JSON lines"):
        parse_bytes("credential-leak", b"{oops\n{still not\n")
