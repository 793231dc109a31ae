"""The `bastion intel`, `bastion attack` and inventory commands, run as the real CLI."""

from __future__ import annotations

from pathlib import Path

import orjson

from tests.conftest import ROOT, cli_json, run_cli, sqlite_url


def _tenant(url: str) -> None:
    cli_json("tenant", "create", "acme", db_url=url)


def test_load_and_lookup_contract(tmp_path: Path, shared_data: Path) -> None:
    url = sqlite_url(tmp_path)
    _tenant(url)
    apt1 = shared_data / "stix21" / "examples" / "threat-reports" / "apt1.json"
    loaded = cli_json("intel", "load", str(apt1), "--format", "stix", "--tenant", "acme", db_url=url)
    assert loaded == {"loaded": 12, "merged": 0, "rejected": 0}
    again = cli_json("intel", "load", str(apt1), "--format", "stix", "--tenant", "acme", db_url=url)
    assert (again["loaded"], again["merged"]) == (0, 12)

    hit = cli_json("intel", "lookup", "www.msnhome.org", "--tenant", "acme", db_url=url)
    assert hit["value"] == "www.msnhome.org" and hit["type"] == "domain"
    assert [m["indicator"] for m in hit["matches"]] == ["msnhome.org"]
    m = hit["matches"][0]
    assert set(m) >= {"indicator", "source", "confidence", "tags"}
    assert isinstance(m["tags"], list) and isinstance(m["confidence"], int)
    assert hit["warninglists"] == []

    # A public DNS resolver is on a MISP warning list: marked known-benign.
    dns = cli_json("intel", "lookup", "8.8.8.8", "--tenant", "acme", db_url=url)
    assert dns["matches"] == []
    assert "public-dns-v4" in [w["name"] for w in dns["warninglists"]]
    assert dns["known_benign"] is True


def test_other_formats_and_rejections(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path)
    _tenant(url)
    lst = tmp_path / "iocs.txt"
    lst.write_text("# bad things\n198.51.100.23\nbad.example.net\nnot a value at all\n" + "e" * 64 + "\n")
    proc = run_cli("intel", "load", str(lst), "--format", "list", "--tenant", "acme", "--json", db_url=url)
    assert proc.returncode == 0, proc.stderr
    assert orjson.loads(proc.stdout) == {"loaded": 3, "merged": 0, "rejected": 1}
    assert "rejected: line 4" in proc.stderr

    csv_file = tmp_path / "mapped.csv"
    csv_file.write_text("ioc,kind,labels\n203.0.113.77,ipv4,scanner\nnot-an-ip,ipv4,x\n")
    res = cli_json(
        "intel", "load", str(csv_file), "--format", "csv", "--map", "value=ioc", "--map", "type=kind",
        "--map", "tags=labels", "--tenant", "acme", db_url=url,
    )  # fmt: skip
    assert (res["loaded"], res["rejected"]) == (1, 1)

    proc = run_cli("intel", "load", str(lst), "--format", "nonsense", "--tenant", "acme", db_url=url)
    assert proc.returncode == 2 and "unknown feed format 'nonsense'" in proc.stderr
    proc = run_cli("intel", "load", str(tmp_path / "missing.json"), "--tenant", "acme", db_url=url)
    assert proc.returncode == 2 and "no such file" in proc.stderr
    proc = run_cli("intel", "lookup", "1.2.3.4", "--tenant", "nobody", db_url=url)
    assert proc.returncode == 2 and "no tenant named 'nobody'" in proc.stderr


def test_attack_show(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path)
    doc = cli_json("attack", "show", "T1059.001", db_url=url)
    assert doc["name"] == "PowerShell" and doc["kind"] == "technique"
    assert doc["tactics"] == ["execution"]
    assert doc["parent"]["id"] == "T1059"
    assert any(u["kind"] == "group" for u in doc["used_by"])
    proc = run_cli("attack", "show", "T9999", db_url=url)
    assert proc.returncode == 2 and "no ATT&CK object" in proc.stderr
    proc = run_cli("attack", "show", "powershell", db_url=url)
    assert proc.returncode == 2 and "not an ATT&CK id" in proc.stderr

    # A bundle cut short, or JSON that is no bundle, at BASTION_ATTACK_PATH: one line naming the file.
    bundle = ROOT.parent / "shared" / "data" / "attack" / "enterprise-attack.json.gz"
    cut = tmp_path / "cut.json.gz"
    cut.write_bytes(bundle.read_bytes()[:100_000])
    listed = tmp_path / "list.json"
    listed.write_text("[1, 2]")
    for bad in (cut, listed):
        proc = run_cli("attack", "show", "T1059", db_url=url, env={"BASTION_ATTACK_PATH": str(bad)})
        assert proc.returncode == 2, proc.stderr
        assert f"{bad} is not an ATT&CK STIX bundle" in proc.stderr and "Traceback" not in proc.stderr


def test_feeds_add_list_and_bad_input(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path)
    _tenant(url)
    added = cli_json(
        "intel", "feeds", "add", "urlhaus", "--url", "http://127.0.0.1:9/csv.txt", "--format", "urlhaus",
        "--interval", "600", "--allow-private", "--tenant", "acme", db_url=url,
    )  # fmt: skip
    assert added["feed"]["name"] == "urlhaus" and added["feed"]["status"] == "new"
    assert added["feed"]["config"] == {"allow_private": True}
    listed = cli_json("intel", "feeds", "list", "--tenant", "acme", db_url=url)
    assert [f["name"] for f in listed["feeds"]] == ["urlhaus"]
    proc = run_cli(
        "intel", "feeds", "add", "x", "--url", "ftp://a", "--format", "stix", "--tenant", "acme", db_url=url
    )
    assert proc.returncode == 2 and "must be http" in proc.stderr
    # Polling a feed whose server is down records the error as the feed's health.
    polled = cli_json("intel", "feeds", "poll", "urlhaus", "--tenant", "acme", db_url=url, expect_code=1)
    assert polled["polled"][0]["status"] == "error"
    listed = cli_json("intel", "feeds", "list", "--tenant", "acme", db_url=url)
    assert listed["feeds"][0]["status"] == "error" and listed["feeds"][0]["last_error"]
    assert "SSRF" not in listed["feeds"][0]["last_error"]  # allowed through the guard: the server is down


def test_inventory_import(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path)
    _tenant(url)
    assets = tmp_path / "assets.csv"
    assets.write_text(
        "hostname,ips,owner,business_unit,criticality,tags,software\n"
        "web01,10.0.0.5;10.0.0.6,alice,shop,critical,prod,openssl@3.0.1;nginx@1.24\n"
        ",10.0.0.9,bob,,low,,\n"
    )
    res = cli_json("assets", "import", str(assets), "--tenant", "acme", db_url=url)
    assert (res["imported"], res["rejected"]) == (1, 1)
    people = tmp_path / "people.json"
    people.write_text(
        '[{"username": "Alice", "email": "alice@example.com", "privileged": true, "groups": ["admins"]}]'
    )
    res = cli_json("identities", "import", str(people), "--tenant", "acme", db_url=url)
    assert res["imported"] == 1


def test_a_polled_leak_feed_starts_the_workflow_bound_to_its_intel_trigger(tmp_path: Path) -> None:
    """`intel feeds poll` starts bound workflows as `intel load` does; before, the trigger was claimed
    (never to fire again) with nobody listening to start its run."""
    from tests.intel.servers import http_server

    url = sqlite_url(tmp_path)
    _tenant(url)
    people = tmp_path / "people.json"
    people.write_text('[{"username": "carol", "email": "carol@example.com"}]')
    cli_json("identities", "import", str(people), "--tenant", "acme", db_url=url)
    flow = tmp_path / "leak.yml"
    flow.write_text(
        "id: leak-response\ntrigger:\n  intel: {type: credential-leak}\ninputs:\n  email: {type: string}\n"
        'steps:\n  - {id: note, action: core.log, with: {message: "${{ inputs.email }}"}}\n'
    )
    cli_json("workflow", "add", str(flow), "--tenant", "acme", db_url=url)
    leak = b'[{"email": "carol@example.com", "source": "breachA", "breach_date": "2026-11-01"}]'

    def serve(
        method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        return 200, {"Content-Type": "application/json"}, leak

    with http_server(serve) as (base, _):
        cli_json(
            "intel", "feeds", "add", "leaks", "--url", f"{base}/leaks.json", "--format", "credential-leak",
            "--allow-private", "--tenant", "acme", db_url=url,
        )  # fmt: skip
        polled = cli_json("intel", "feeds", "poll", "leaks", "--tenant", "acme", db_url=url)
    assert polled["polled"][0]["status"] == "ok" and polled["polled"][0]["loaded"] == 1
    runs = cli_json("runs", "list", "--tenant", "acme", db_url=url)["runs"]
    started = [(r["workflow_id"], r["inputs"]) for r in runs]
    assert started == [("leak-response", {"email": "carol@example.com"})]


def test_profile_sets_a_decay_policy_per_source(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path)
    _tenant(url)
    args = ("intel", "profile", "--tenant", "acme")
    set_ = cli_json(*args, "--decay", "urlhaus=7", "--decay", "default=90", db_url=url)
    assert set_["profile"]["decay"] == {"urlhaus": 7.0, "default": 90.0}
    more = cli_json(*args, "--decay", "urlhaus=3", db_url=url)  # one source changed, the rest kept
    assert more["profile"]["decay"] == {"urlhaus": 3.0, "default": 90.0}
    for bad, says in (("urlhaus", "use SOURCE=DAYS"), ("urlhaus=soon", "must be a number of days")):
        proc = run_cli(*args, "--decay", bad, db_url=url)
        assert proc.returncode == 2 and says in proc.stderr and "Traceback" not in proc.stderr


def test_inventory_remove(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path)
    _tenant(url)
    people = tmp_path / "people.json"
    people.write_text('[{"username": "erin", "email": "erin@example.com"}]')
    cli_json("identities", "import", str(people), "--tenant", "acme", db_url=url)
    assert cli_json("identities", "remove", "ERIN", "--tenant", "acme", db_url=url) == {"removed": "erin"}
    proc = run_cli("identities", "remove", "erin", "--tenant", "acme", db_url=url)
    assert proc.returncode == 2 and "no identity 'erin'" in proc.stderr
    proc = run_cli("assets", "remove", "nohost", "--tenant", "acme", db_url=url)
    assert proc.returncode == 2 and "no asset 'nohost'" in proc.stderr
