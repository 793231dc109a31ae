"""``bastion alerts list|ack|close|reopen`` through the real command (a subprocess)."""

from __future__ import annotations

import orjson

from bastion.store import Database, TenantScope
from bastion.tenancy.service import create_tenant
from tests.conftest import cli_json, run_cli
from tests.triage.test_alert_ops import get, insert, make_alert


def test_alerts_commands(db: Database) -> None:
    tenant = create_tenant(db, "acme")[0].id
    auto, aid, other = insert(
        db, tenant, make_alert(1, auto_closed=True, score=4), make_alert(2), make_alert(3, host="WS02")
    )
    url = db.url
    listed = cli_json("alerts", "list", "--tenant", "acme", "--auto-closed", db_url=url)
    assert [a["id"] for a in listed] == [auto] and listed[0]["close_reason"].startswith("auto-closed")
    listed = cli_json("alerts", "list", "-t", "acme", "--not-auto-closed", "--status", "new", db_url=url)
    assert [a["id"] for a in listed] == [other, aid]

    reopened = cli_json("alerts", "reopen", auto, "-t", "acme", "--reason", "critical server", db_url=url)
    assert reopened["status"] == "new" and reopened["auto_closed"] is False
    acked = cli_json("alerts", "ack", aid, "-t", "acme", db_url=url)
    assert acked["status"] == "acknowledged" and acked["acknowledged"]
    done = cli_json(
        "alerts", "close", aid, "-t", "acme", "--verdict", "false_positive", "--reason", "backup agent",
        "--suppress-similar", "--for", "7d", db_url=url,
    )  # fmt: skip
    assert done["alert"]["verdict"] == "false_positive"
    s = done["suppression"]
    assert s["owner"] == "cli" and s["entity"] == {"type": "host", "value": "WS01"} and s["rule_id"] == "r-1"
    assert s["expires"] - s["created"] == 7 * 86_400_000
    closed = cli_json("alerts", "list", "-t", "acme", "--verdict", "false_positive", db_url=url)
    assert [a["id"] for a in closed] == [aid]
    assert get(db, tenant, aid).close_reason == "backup agent"

    proc = run_cli("alerts", "list", "-t", "acme", db_url=url, env={"COLUMNS": "200"})  # the table
    assert proc.returncode == 0 and "Suspicious PowerShell" in proc.stdout
    with db.read() as conn:
        actors = {e.actor for e in TenantScope(conn, tenant).audit.entries() if e.action.startswith("alert.")}
    assert actors == {"cli"}


def test_alerts_command_mistakes_are_one_line(db: Database) -> None:
    tenant = create_tenant(db, "acme")[0].id
    (aid,) = insert(db, tenant, make_alert(1))
    url = db.url
    cases = [
        (("alerts", "close", aid, "-t", "acme", "--verdict", "dunno"), "unknown verdict"),
        (("alerts", "close", "nope", "-t", "acme", "--verdict", "true_positive"), "no alert nope"),
        (("alerts", "reopen", aid, "-t", "acme", "--reason", "x"), "not closed"),
        (("alerts", "list", "-t", "acme", "--status", "odd"), "unknown status"),
        (
            ("alerts", "close", aid, "-t", "acme", "--verdict", "true_positive", "--suppress-similar"),
            "false_positive",
        ),
        (("alerts", "ack", aid, "-t", "nobody"), "no tenant named"),
    ]
    for args, message in cases:
        proc = run_cli(*args, db_url=url)
        assert proc.returncode == 2, (args, proc.stderr)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], (args, proc.stderr)
    # nothing changed by the refused commands
    listed = orjson.loads(run_cli("alerts", "list", "-t", "acme", "--json", db_url=url).stdout)
    assert [(a["id"], a["status"]) for a in listed] == [(aid, "new")]
