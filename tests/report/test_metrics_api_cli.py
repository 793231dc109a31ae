"""GET /api/v1/metrics through the real server, and `bastion metrics` / `bastion report` through the real
command line."""

from __future__ import annotations

from pathlib import Path

import orjson

from bastion.model import Role
from bastion.store import Database
from bastion.tenancy.service import create_api_key, create_tenant
from bastion.web.pages.dashboard import dashboard_data
from tests.conftest import RunningServer, cli_json, run_cli
from tests.report.history import EXPECTED, build_history
from tests.report.pages import first_page_ink

CONTRACT = (
    "alerts",
    "deduplicated",
    "auto_closed",
    "escalated",
    "cases",
    "mttd_s",
    "mtta_s",
    "mttc_s",
    "mttr_s",
    "analyst_hours_saved",
    "incidents_prevented",
)


def test_metrics_api(server: RunningServer) -> None:
    h = build_history(server.db)
    with server.client(h.key) as c:
        r = c.get("/api/v1/metrics", params={"start": str(h.start), "end": str(h.end)})
        assert r.status_code == 200, r.text
        body = r.json()
        for key, value in EXPECTED.items():
            assert body[key] == value, key
        assert body["period"] == {**body["period"], "start": h.start, "end": h.end}
        assert len(body["series"]) == 7
        # The default period is the last 30 days: it holds the same history (the old alert is older).
        assert {k: v for k, v in c.get("/api/v1/metrics").json().items() if k in CONTRACT} == {
            k: EXPECTED[k] for k in CONTRACT
        }
        high = c.get("/api/v1/metrics", params={"period": "30d", "severity": "high"}).json()
        assert high["alerts"] == 1 and high["filters"]["severity"] == "high"
        assert c.get("/api/v1/metrics", params={"period": "30d", "source": "edr"}).json()["alerts"] == 1
        for params, reason in (
            ({"period": "month"}, "not a duration"),
            ({"period": "7d", "start": "2026-01-01"}, "either a period or a start"),
            ({"start": "whenever"}, "start:"),
            ({"end": "2026-01-01", "start": "2026-02-01"}, "before its end"),
            ({"severity": "dire"}, "severity"),
        ):
            r = c.get("/api/v1/metrics", params=params)
            assert r.status_code == 400, params
            assert reason in r.json()["error"], r.json()
    viewer = create_api_key(server.db, "acme", role=Role.VIEWER, name="ro")
    with server.client(viewer) as c:
        assert c.get("/api/v1/metrics", params={"period": "30d"}).json()["mttd_s"] == 120.0
    other = create_api_key(server.db, "acme-other", name="other")
    with server.client(other) as c:
        theirs = c.get("/api/v1/metrics", params={"period": "30d"}).json()
        assert theirs["alerts"] == 1 and theirs["deduplicated"] == 8 and theirs["cases"] == 0
        assert theirs["mttd_s"] == 5.0 and theirs["incidents_prevented"] == 1
    with server.client() as c:
        assert c.get("/api/v1/metrics").status_code == 401


def test_metrics_cli(sqlite_db: Database) -> None:
    h = build_history(sqlite_db)
    url = sqlite_db.url
    m = cli_json("metrics", "--tenant", "acme", "--period", "30d", db_url=url)
    for key in CONTRACT:
        assert m[key] == EXPECTED[key], key
    exact = cli_json("metrics", "--tenant", "acme", "--start", str(h.start), "--end", str(h.end), db_url=url)
    assert exact["series"][0]["alerts"] == 3 and exact["analyst_touches_per_case"] == 2.0
    assert cli_json("metrics", "--tenant", "acme", "--severity", "low", db_url=url)["alerts"] == 1
    table = run_cli("metrics", "--tenant", "acme", db_url=url, check=True).stdout
    assert "MTTD" in table and "2m 0s" in table and "incidents prevented" in table and "1 of 2" in table
    for args, reason in (
        (("--period", "3x"), "not a duration"),
        (("--severity", "dire"), "--severity"),
        (("--start", "2026-02-01", "--end", "2026-01-01"), "before its end"),
    ):
        proc = run_cli("metrics", "--tenant", "acme", *args, db_url=url)
        assert proc.returncode == 2 and reason in proc.stderr, proc.stderr
        assert proc.stderr.startswith("error:") and len(proc.stderr.strip().splitlines()) == 1
    proc = run_cli("metrics", "--tenant", "nobody", db_url=url)
    assert proc.returncode == 2 and "no tenant named 'nobody'" in proc.stderr


def test_metrics_times_no_date_can_show_are_400_naming_the_parameter(server: RunningServer) -> None:
    """These reached the date formatting of the period and answered 500 (year out of range)."""
    tenant, key = create_tenant(server.db, "acme")
    with server.client(key) as c:
        for params, reason in (
            ({"end": "99999999999999999999999"}, "end: '99999999999999999999999' is out of range"),
            ({"start": "-99999999999d"}, "start: '-99999999999d' is out of range"),
            ({"end": "0001-01-02T00:00:00Z"}, "start: the period would begin before the year 1"),
            # computed day by day, 0001-9999 took 12 s of one request
            ({"start": "0001-01-01T00:00:00Z", "end": "9999-12-31T00:00:00Z"}, "the period from start"),
        ):
            r = c.get("/api/v1/metrics", params=params)
            assert r.status_code == 400, r.text
            assert r.json()["error"].startswith(reason), r.json()
        edge = c.get(
            "/api/v1/metrics", params={"start": "0001-01-01T00:00:00Z", "end": "0001-01-02T00:00:00Z"}
        )
        assert edge.status_code == 200 and edge.json()["period"]["days"] == 1.0
    # the console's dashboard reads its window the same way: it shows the reason (it raised before)
    shown = dashboard_data(server.db, tenant.id, period=None, end="0001-01-02T00:00:00Z")
    assert shown["error"].startswith("start: the period would begin before the year 1")
    proc = run_cli("metrics", "--tenant", "acme", "--end", "0001-01-02T00:00:00Z", db_url=server.db.url)
    assert proc.returncode == 2 and proc.stderr.startswith("error: start: the period would begin"), (
        proc.stderr
    )


def test_report_cli_html_pdf_md(sqlite_db: Database, tmp_path: Path) -> None:
    build_history(sqlite_db)
    url = sqlite_db.url
    for fmt in ("html", "pdf", "md"):
        out = tmp_path / f"report.{fmt}"
        proc = run_cli(
            "report",
            "--tenant",
            "acme",
            "--period",
            "30d",
            "--format",
            fmt,
            "--out",
            str(out),
            "--json",
            db_url=url,
        )
        assert proc.returncode == 0, proc.stderr
        written = orjson.loads(proc.stdout)
        assert written == {"format": fmt, "out": str(out), "bytes": out.stat().st_size, "alerts": 3}
    assert (tmp_path / "report.html").read_text().count("<svg") == 5
    assert "| Alerts stored | 3 |" in (tmp_path / "report.md").read_text()
    assert first_page_ink(tmp_path / "report.pdf") > 0.01
    proc = run_cli("report", "--tenant", "acme", "--format", "docx", "--out", str(tmp_path / "x"), db_url=url)
    assert proc.returncode == 2 and "unknown report format 'docx'" in proc.stderr
    proc = run_cli("report", "--tenant", "acme", db_url=url)
    assert proc.returncode == 2 and "--out FILE is required" in proc.stderr
    assert not (tmp_path / "x").exists()
