"""Bad input to the intel and inventory paths gets a clear answer naming the record and field, and what
was accepted stays readable: wrong-typed inventory records, times no column can hold, MISP events and
STIX bodies of the wrong shape, a profile of the wrong types, feeds without a usable name or schedule."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import orjson
import pytest

from bastion.intel.feeds import FeedError, parse_bytes
from bastion.intel.feeds.base import parse_time
from bastion.intel.normalize import InvalidIndicator
from bastion.model.asset import Asset, Identity
from bastion.store import Database
from bastion.store.assets import InventoryRepository
from bastion.tenancy.service import create_tenant
from tests.conftest import RunningServer, cli_json, run_cli, sqlite_url

HUGE = "99999999999999999999999"


def test_wrong_typed_inventory_records_are_refused_and_the_rest_stay_readable(server: RunningServer) -> None:
    _, key = create_tenant(server.db, "acme")
    with server.client(key) as c:
        r = c.put(
            "/api/v1/assets",
            json=[
                {"hostname": "wh1", "id": {"a": 1}},
                {"hostname": "wh2", "os": ["linux"]},
                {"hostname": "wh3", "tags": ["prod", True]},
                {"hostname": "wh4", "software": 5},
                {"hostname": "good", "ips": ["10.0.0.7"], "tags": "prod;web", "software": ["nginx@1.24"]},
                # numbers where text is expected are read as their text (a CMDB's numeric ids)
                {
                    "hostname": "num",
                    "id": 42,
                    "owner": 5,
                    "tags": [7],
                    "software": [{"name": "x", "version": 1.5}],
                },
            ],
        )
        assert r.status_code == 200, r.text
        body = r.json()
        assert (body["imported"], body["rejected"]) == (2, 4)
        problems = body["problems"]
        for n, path in enumerate(["$.id", "$.os", "$.tags[1]", "$.software"], 1):
            assert problems[n - 1].startswith(f"record {n}: ") and path in problems[n - 1], problems
        assert c.get("/api/v1/assets/wh1").status_code == 404
        good = c.get("/api/v1/assets/good").json()
        assert good["tags"] == ["prod", "web"] and good["software"] == [{"name": "nginx", "version": "1.24"}]
        num = c.get("/api/v1/assets/num").json()
        assert (num["id"], num["owner"], num["tags"]) == ("42", "5", ["7"])
        assert num["software"] == [{"name": "x", "version": "1.5"}]

        r = c.put(
            "/api/v1/identities",
            json=[
                {"username": "wu1", "id": [1]},
                {"username": "wu2", "privileged": {"yes": True}},
                {"username": "wu3", "groups": [{"cn": "admins"}]},
                {"username": "bob", "email": "bob@acme.example", "privileged": True},
            ],
        )
        body = r.json()
        assert (body["imported"], body["rejected"]) == (1, 3), body
        assert [p.split(" - at ")[-1] for p in body["problems"]] == [
            "`$.id`",
            "`$.privileged`",
            "`$.groups[0]`",
        ]
        assert c.get("/api/v1/identities/wu1").status_code == 404
        assert c.get("/api/v1/identities/bob").json()["privileged"] is True

        # Enrichment of an alert on the hosts still reads the inventory.
        alert = {
            "title": "beacon",
            "severity": "low",
            "source": "edr",
            "observables": [{"type": "host", "value": "wh1"}, {"type": "ipv4", "value": "10.0.0.7"}],
        }
        alert_id = c.post("/api/v1/alerts", json=alert).json()["ids"][0]
        r = c.get(f"/api/v1/alerts/{alert_id}/enrichment")
        assert r.status_code == 200, r.text
        assert [a["hostname"] for a in r.json()["assets"]] == ["good"]

        for path in ("/api/v1/assets", "/api/v1/identities"):
            for content in (b"5", b"", b"  \n", b'"text"', b"name,ip\nx,10.0.0.1\n"):
                r = c.put(path, content=content)
                assert r.status_code == 400, (path, content, r.text)
                assert r.json()["error"]


def test_the_store_refuses_an_inventory_record_it_could_not_read_back(db: Database, tenant_id: str) -> None:
    bad_asset = Asset(hostname="wh1", id={"a": 1})  # type: ignore[arg-type]
    bad_identity = Identity(username="wu1", groups=[1])  # type: ignore[list-item]
    with pytest.raises(ValueError, match=r"wh1: .*\$\.id"), db.write() as conn:
        InventoryRepository(conn, tenant_id).put_assets([Asset(hostname="ok"), bad_asset])
    with pytest.raises(ValueError, match=r"wu1: .*\$\.groups\[0\]"), db.write() as conn:
        InventoryRepository(conn, tenant_id).put_identities([bad_identity])
    with db.read() as conn:
        assert InventoryRepository(conn, tenant_id).counts() == (0, 0)


def test_the_cli_import_reports_wrong_typed_records_and_refuses_an_empty_file(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path)
    cli_json("tenant", "create", "acme", db_url=url)
    people = tmp_path / "people.json"
    people.write_text(json.dumps([{"username": "wu1", "id": [1]}, {"username": "alice"}]))
    res = cli_json("identities", "import", str(people), "--tenant", "acme", db_url=url)
    assert (res["imported"], res["rejected"]) == (1, 1)
    assert res["problems"][0].startswith("record 1: ") and "$.id" in res["problems"][0]
    empty = tmp_path / "assets.csv"
    empty.write_text("")
    proc = run_cli("assets", "import", str(empty), "--tenant", "acme", db_url=url)
    assert proc.returncode != 0 and "nothing to import" in proc.stderr


def test_times_no_column_can_hold_reject_the_record_naming_the_field(server: RunningServer) -> None:
    _, key = create_tenant(server.db, "acme")
    with server.client(key) as c:
        records = [
            {"value": "1.2.3.4", "type": "ipv4", "last_seen": HUGE},
            {"value": "1.2.3.5", "type": "ipv4", "valid_until": 1e300},
            {"value": "1.2.3.6", "type": "ipv4", "last_seen": "2026-01-01T00:00:00Z"},
        ]
        r = c.post("/api/v1/intel/indicators", params={"format": "json"}, json=records)
        assert r.status_code == 200, r.text
        body = r.json()
        assert (body["loaded"], body["rejected"]) == (1, 2)
        assert body["problems"][0].startswith("record 1: last_seen ")
        assert body["problems"][1].startswith("record 2: valid_until ")
        assert c.get("/api/v1/intel/lookup", params={"value": "1.2.3.6"}).json()["matches"]
        assert not c.get("/api/v1/intel/lookup", params={"value": "1.2.3.4"}).json()["matches"]

        event = {
            "Event": {"info": "x", "Attribute": [{"type": "ip-src", "value": "5.6.7.8", "timestamp": HUGE}]}
        }
        r = c.post("/api/v1/intel/indicators", params={"format": "misp-event"}, json=event)
        assert r.status_code == 200, r.text
        assert r.json()["rejected"] == 1 and "timestamp" in r.json()["problems"][0]

        stix = {
            "type": "indicator",
            "id": "indicator--1",
            "pattern": "[ipv4-addr:value = '5.6.7.9']",
            "pattern_type": "stix",
            "valid_from": HUGE,
        }
        r = c.post("/api/v1/intel/indicators", params={"format": "stix"}, json=stix)
        assert r.status_code == 200, r.text
        assert r.json()["problems"] == [
            f"indicator--1: valid_from '{HUGE}' is not a time between the years 1 and 9999"
        ]


def test_parse_time_is_bounded_to_the_years_1_to_9999() -> None:
    assert parse_time("2026-01-01T00:00:00Z") == 1_767_225_600_000
    assert parse_time(1_767_225_600) == parse_time("1767225600000") == 1_767_225_600_000
    assert parse_time("9999-12-31T23:59:59.999Z") == 253_402_300_799_999
    assert parse_time("not a time") is None
    for bad in (HUGE, 1e300, float("nan"), 2**70, "9" * 5000, "9999-12-31T23:59:59-01:00"):
        with pytest.raises(InvalidIndicator, match=r"^modified .* is not a time between"):
            parse_time(bad, "modified")


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        ({"Event": {"Attribute": 5}}, "Attribute is not a list"),
        ({"Event": {"Object": 5}}, "Object is not a list"),
        ({"Event": {"Object": [5]}}, "Object 0 is not an object"),
        ({"Event": {"Object": [{"Attribute": 5}]}}, "Object 0 Attribute is not a list"),
        ({"Event": {"info": "x", "Tag": 5}}, "Tag is not a list"),
        ({"Event": {"info": "x", "Tag": [5]}}, "Tag holds 5, not a tag object"),
        ({"Event": {"Attribute": [{"type": "ip-src", "value": "5.6.7.8", "Tag": 5}]}}, "Tag is not a list"),
    ],
)
def test_misp_events_of_the_wrong_shape_are_rejected_with_the_reason(event: object, reason: str) -> None:
    good = {"Event": {"uuid": "e2", "Attribute": [{"type": "ip-src", "value": "9.9.9.10"}]}}
    parsed = parse_bytes("misp-event", json.dumps([event, good]).encode())
    assert [i.value for i in parsed.indicators] == ["9.9.9.10"]
    assert len(parsed.rejected) == 1 and parsed.rejected[0].endswith(reason), parsed.rejected


def test_misp_shapes_over_http_are_problems_not_errors(server: RunningServer) -> None:
    _, key = create_tenant(server.db, "acme")
    with server.client(key) as c:
        for body in (
            '{"Event":{"Attribute":5}}',
            '{"Event":{"Object":[{"Attribute":5}]}}',
            '{"Event":{"info":"x","Tag":5}}',
        ):
            r = c.post("/api/v1/intel/indicators", params={"format": "misp-event"}, content=body)
            assert r.status_code == 200, r.text
            assert r.json()["rejected"] == 1 and r.json()["problems"], r.text


def test_stix_that_is_not_a_bundle_or_object_is_refused(server: RunningServer) -> None:
    _, key = create_tenant(server.db, "acme")
    with server.client(key) as c:
        for body in (b"[]", b"{}", b"5", b'{"id": "x"}'):
            r = c.post("/api/v1/intel/indicators", params={"format": "stix"}, content=body)
            assert r.status_code == 400 and "not STIX" in r.json()["error"], (body, r.text)
        empty = {"type": "bundle", "id": "bundle--1", "objects": []}
        r = c.post("/api/v1/intel/indicators", params={"format": "stix"}, json=empty)
        assert r.status_code == 200 and r.json()["loaded"] == 0


def test_stix_objects_of_the_wrong_shape_are_rejected_one_by_one() -> None:
    def indicator(n: int, **extra: object) -> dict[str, object]:
        return {
            "type": "indicator",
            "id": f"indicator--{n}",
            "pattern": f"[ipv4-addr:value = '10.9.9.{n}']",
            "pattern_type": "stix",
            **extra,
        }

    objs = [
        7,
        indicator(1, labels=5),
        indicator(2, object_marking_refs=[{}]),
        indicator(3, kill_chain_phases=["c2"]),
        indicator(4, confidence="high"),
        indicator(5, name={"x": 1}, description={"x": 1}),
        {"type": "attack-pattern", "id": "attack-pattern--1", "external_references": 5},
        {"type": "relationship", "id": "relationship--1", "source_ref": "indicator--9", "target_ref": []},
        {
            "type": "relationship",
            "id": "relationship--2",
            "source_ref": "indicator--9",
            "target_ref": "attack-pattern--1",
        },
        indicator(9),
    ]
    parsed = parse_bytes("stix", json.dumps(objs).encode())
    assert [i.value for i in parsed.indicators] == ["10.9.9.9"]
    assert parsed.rejected[0] == "item 1: not a STIX object (a JSON object with a 'type')"
    assert [r.split(":")[0] for r in parsed.rejected[1:]] == [f"indicator--{n}" for n in (1, 2, 3, 4, 5)]
    assert "confidence 'high' is not a number" in parsed.rejected[4]
    assert "is not text" in parsed.rejected[5]
    with pytest.raises(FeedError, match="not STIX"):
        parse_bytes("stix", b"[]")


def test_profile_fields_of_the_wrong_type_are_refused_naming_the_field(server: RunningServer) -> None:
    _, key = create_tenant(server.db, "acme")
    with server.client(key) as c:
        r = c.patch("/api/v1/intel/profile", json={"owned_domains": ["Acme.example."], "retro_days": 30})
        assert r.json()["profile"] == {"owned_domains": ["acme.example"], "retro_days": 30}
        for change, field in [
            ({"owned_domains": "abc"}, "owned_domains"),
            ({"owned_domains": [None, {}]}, "owned_domains"),
            ({"regions": "europe"}, "regions"),
            ({"sector": 5}, "sector"),
            ({"region": ["europe"]}, "region"),
            ({"retro_days": True}, "retro_days"),
            ({"retro_days": "x"}, "retro_days"),
            ({"retro_days": 7.5}, "retro_days"),
            ({"retro_days": 10**30}, "retro_days"),
            ({"decay": {"urlhaus": True}}, "decay for 'urlhaus'"),
            ({"decay": {"urlhaus": [7]}}, "decay for 'urlhaus'"),
        ]:
            r = c.patch("/api/v1/intel/profile", json=change)
            assert r.status_code == 400, (change, r.text)
            assert r.json()["error"].startswith(f"{field} must be"), r.text
        assert c.get("/api/v1/intel/profile").json()["profile"] == {
            "owned_domains": ["acme.example"],
            "retro_days": 30,
        }
        r = c.patch("/api/v1/intel/profile", json={"sector": None, "decay": {"urlhaus": "7"}})
        assert r.status_code == 200 and r.json()["profile"]["decay"] == {"urlhaus": 7.0}
        # owned domains are matched against intel as domains: each must be one (defanged is fine)
        r = c.patch("/api/v1/intel/profile", json={"owned_domains": ["acme.example", "not a domain"]})
        assert r.status_code == 400 and "owned_domains: 'not a domain'" in r.json()["error"], r.text
        r = c.patch("/api/v1/intel/profile", json={"owned_domains": ["Acme[.]example", "corp.example."]})
        assert r.json()["profile"]["owned_domains"] == ["acme.example", "corp.example"]


def test_feeds_need_a_name_and_a_schedule_the_store_can_hold(server: RunningServer) -> None:
    _, key = create_tenant(server.db, "acme")
    with server.client(key) as c:
        base = {"url": "http://127.0.0.1:9/x", "format": "stix"}
        for name in ("", "   ", "\u0000", "a\nb", "x" * 201):
            r = c.post("/api/v1/intel/feeds", json={**base, "name": name})
            assert r.status_code == 400 and "feed name" in r.json()["error"], (name, r.text)
        for interval in (2**63, 2**40, 366 * 86_400, 59, -1):
            r = c.post("/api/v1/intel/feeds", json={**base, "name": "f", "interval_s": interval})
            assert r.status_code == 400 and "interval" in r.json()["error"], (interval, r.text)
        r = c.post("/api/v1/intel/feeds", json={**base, "name": "f", "url": "http://x/\u0000"})
        assert r.status_code == 400 and "URL" in r.json()["error"]
        assert c.get("/api/v1/intel/feeds").json()["feeds"] == []
        r = c.post("/api/v1/intel/feeds", json={**base, "name": "f", "interval_s": 365 * 86_400})
        assert r.status_code == 201, r.text


def test_a_load_or_import_that_takes_nothing_exits_1_and_quotes_long_values_clipped(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path)
    cli_json("tenant", "create", "acme", db_url=url)
    long_line = "x" * 5000 + "?"
    bad = tmp_path / "bad.txt"
    bad.write_text(f"not an indicator ?\n{long_line}\n")
    proc = run_cli("intel", "load", str(bad), "--format", "list", "--tenant", "acme", "--json", db_url=url)
    assert proc.returncode == 1, proc.stderr
    assert orjson.loads(proc.stdout) == {"loaded": 0, "merged": 0, "rejected": 2}
    assert "nothing loaded: all 2 record(s) were rejected" in proc.stderr
    line2 = next(line for line in proc.stderr.splitlines() if "line 2" in line)
    assert len(line2) < 300 and "(5001 characters)" in line2
    assert "Traceback" not in proc.stderr

    # One good value among bad ones: the load took something, so it exits 0 with its counts.
    mixed = tmp_path / "mixed.txt"
    mixed.write_text("evil.example.com\nnot an indicator ?\n")
    res = cli_json("intel", "load", str(mixed), "--format", "list", "--tenant", "acme", db_url=url)
    assert (res["loaded"], res["rejected"]) == (1, 1)

    people = tmp_path / "people.json"
    people.write_text(json.dumps([{"username": "wu1", "id": [1]}]))
    proc = run_cli("identities", "import", str(people), "--tenant", "acme", "--json", db_url=url)
    assert proc.returncode == 1 and "nothing imported: all 1 record(s) were rejected" in proc.stderr
    assert orjson.loads(proc.stdout)["rejected"] == 1


def test_a_plain_list_of_binary_data_makes_no_indicators() -> None:
    """Compressed or binary bytes read as a list: each line with bytes that are no UTF-8 or control
    characters is rejected, not stored as a file name made of its printable fragments."""
    data = gzip.compress(b"evil.example.com\n" * 50 + bytes(range(256)) * 8, mtime=0)
    data += b"\nevil.example.org\nab\x01cd.ef\n1.2.3.4\tcomment\n"
    result = parse_bytes("list", data)
    assert [(i.type.value, i.value) for i in result.indicators] == [("domain", "evil.example.org")]
    assert result.rejected and all("not text" in r for r in result.rejected[:-1])
    assert "cannot tell what kind of indicator '1.2.3.4\\tcomment'" in result.rejected[-1]
