"""Blocklists served as External Dynamic Lists: values are validated and normalised, ``edl.add`` records
an undoable change with an expiry, and the real API server (uvicorn on a free port) serves
``/edl/{tenant}/{list}.txt`` to holders of the list token only - by query, Bearer or Basic auth, as
PAN-OS, FortiGate and Check Point poll it - one sorted entry per line, unexpired only, without an API key.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import uvicorn

import bastion.connectors.edl  # noqa: F401  (registers the edl.* actions in this process)
from bastion.connectors.edl import (
    BlocklistError,
    add_entry,
    create_list,
    normalise_value,
    rotate_token,
)
from bastion.connectors.registry import ActionContext, ActionError, get_action
from bastion.respond.engine import configure
from bastion.store import Database
from bastion.store._util import now_ms
from bastion.store.connectors import blocklist_entries
from bastion.tenancy.service import create_tenant
from tests.conftest import free_port


def edl_store(tmp_path: Path) -> tuple[Database, str, str]:
    """A migrated SQLite store the engine uses, tenant ``acme`` (id, admin API key)."""
    db = Database(f"sqlite:///{tmp_path / 'bastion.db'}")
    db.migrate()
    configure(db)
    tenant, key = create_tenant(db, "acme", actor="test")
    return db, tenant.id, key


def run_action(action_id: str, tenant_id: str, key: str = "", run_id: str = "", **inputs: Any) -> Any:
    """Call a registered action as a workflow step would (no mock: the action's own function)."""
    defn = get_action(action_id)
    assert defn is not None, action_id
    ctx = ActionContext(tenant_id=tenant_id, run_id=run_id, step_id=run_id and "step", idempotency_key=key)
    return asyncio.run(defn.fn(**inputs, ctx=ctx))


def edl_server(db: Database) -> tuple[str, Any]:
    """The real API app on a free port; includes the EDL and changes routers if app.py does not yet."""
    from bastion.api.app import create_app
    from bastion.api.routes import changes, edl
    from bastion.config import Settings
    from bastion.ingest.queue import IngestQueue

    port = free_port()
    settings = Settings(database_url=db.url, port=port)
    queue = IngestQueue(db, capacity=settings.ingest_queue_size, batch_size=settings.ingest_batch_size)
    app = create_app(settings, db, queue)
    paths = {getattr(r, "path", "") for r in app.routes}
    if "/edl/{tenant}/{name}.txt" not in paths:
        app.include_router(edl.router)
    if "/api/v1/changes" not in paths:
        app.include_router(changes.router)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(400):
        if server.started:
            break
        time.sleep(0.02)
    assert server.started, "the API server did not start"

    def stop() -> None:
        server.should_exit = True
        thread.join(10)
        queue.close()

    return f"http://127.0.0.1:{port}", stop


def bastion_cli(db: Database, *args: str) -> Any:
    """The ``bastion`` command in this process (its Typer app, with the blocklist and changes commands
    loaded: cli/__init__ may not import them yet); exit code and stdout like the real command."""
    from typer.testing import CliRunner

    import bastion.cli.connectors  # noqa: F401  (registers the commands)
    from bastion.cli import app

    return CliRunner().invoke(app, ["--database-url", db.url, *args])


def bastion_subprocess(db: Database, *args: str) -> subprocess.CompletedProcess[str]:
    """The real ``bastion`` command in a subprocess (for what main() adds: one-line errors, exit 2)."""
    code = "import sys, bastion.cli.connectors; from bastion.cli import main; sys.argv[0] = 'bastion'; main()"
    env = {**os.environ, "BASTION_DATABASE_URL": db.url}
    env.pop("BASTION_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, timeout=120
    )


@pytest.fixture
def env(tmp_path: Path) -> Iterator[dict[str, Any]]:
    db, tenant_id, key = edl_store(tmp_path)
    url, stop = edl_server(db)
    yield {"db": db, "tenant": tenant_id, "key": key, "url": url}
    stop()
    db.dispose()


@pytest.mark.parametrize(
    ("raw", "kind", "value"),
    [
        ("198.51.100.7", "ip", "198.51.100.7"),
        (" 2001:DB8:0:0::1 ", "ip", "2001:db8::1"),
        ("10.0.0.0/8", "cidr", "10.0.0.0/8"),
        ("10.0.0.0/255.0.0.0", "cidr", "10.0.0.0/8"),
        ("203.0.113.9/32", "ip", "203.0.113.9"),
        ("2001:db8::/32", "cidr", "2001:db8::/32"),
        ("Evil.Example.", "domain", "evil.example"),
        ("*.evil.example", "domain", "evil.example"),
        ("bücher.example", "domain", "xn--bcher-kva.example"),
        ("HTTPS://Bad.Example/Path?q=1#frag", "url", "bad.example/Path?q=1"),
        ("http://bad.example", "url", "bad.example/"),
        ("Bad.Example/Login", "url", "bad.example/Login"),
        ("http://192.0.2.5:8080/x", "url", "192.0.2.5:8080/x"),
    ],
)
def test_values_are_validated_and_normalised(raw: str, kind: str, value: str) -> None:
    assert normalise_value(raw) == (kind, value)


@pytest.mark.parametrize(
    "raw", ["", "evil", "bad..example", "-bad.example", "1.2.3.4.5", "ftp://x.example/", "a b.c"]
)
def test_invalid_values_are_refused(raw: str) -> None:
    with pytest.raises(BlocklistError):
        normalise_value(raw)


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        ("0.0.0.0/0", "every address"),  # a firewall polling the list would block everything
        ("::/0", "every address"),
        ("10.0.0.0/33", "invalid network"),  # was stored as the URL 10.0.0.0/33
        ("2001:db8::/129", "invalid network"),
        ("10.1.2.3/8", "host bits are set; the network is 10.0.0.0/8"),  # was widened without a word
        ("2001:db8::1/32", "host bits are set; the network is 2001:db8::/32"),
    ],
)
def test_networks_must_be_exact_and_not_everything(raw: str, says: str) -> None:
    with pytest.raises(BlocklistError, match=re.escape(says)):
        normalise_value(raw)


def test_entries_stored_before_the_network_checks_can_still_be_removed(env: dict[str, Any]) -> None:
    db, tid = env["db"], env["tenant"]
    create_list(db, tid, "old", actor="test")
    with db.write() as conn:  # rows as the earlier, lenient reading stored them
        for value, kind in (("0.0.0.0/0", "cidr"), ("10.0.0.0/8", "cidr"), ("10.0.0.0/33", "url")):
            conn.execute(
                blocklist_entries.insert().values(
                    tenant_id=tid, list="old", value=value, kind=kind, added_by="test", created=now_ms()
                )
            )
    for value in ("0.0.0.0/0", "10.1.2.3/8", "10.0.0.0/33"):
        assert run_action("edl.remove", tid, list="old", value=value)["removed"] is True, value
    assert run_action("edl.list", tid, list="old")["entries"] == []


def test_the_edl_serves_unexpired_entries_sorted_to_the_token_holder_only(env: dict[str, Any]) -> None:
    db, tid = env["db"], env["tenant"]
    token = create_list(db, tid, "c2", actor="test")
    with pytest.raises(BlocklistError, match="already exists"):
        create_list(db, tid, "c2", actor="test")
    first = run_action(
        "edl.add", tid, key="k1", list="c2", value="198.51.100.7", reason="C2", expires_in="24h"
    )
    assert first["added"] and first["change_id"] and first["kind"] == "ip"
    assert first["expires"] > now_ms() + 23 * 3600 * 1000
    for value in ("Evil.Example.", "10.0.0.0/8", "https://bad.example/payload"):
        assert run_action("edl.add", tid, list="c2", value=value)["change_id"]
    with db.write() as conn:  # an entry whose expiry has passed is kept but no longer served
        add_entry(conn, tid, "c2", "203.0.113.99", added_by="test", expires=now_ms() - 1000)

    base = f"{env['url']}/edl/acme/c2.txt"
    with httpx.Client(timeout=30) as http:  # no API key anywhere: the list token is the credential
        missing = http.get(base)
        assert missing.status_code == 401 and "Bearer" in missing.headers["www-authenticate"]
        assert http.get(base, params={"token": token + "x"}).status_code == 401
        assert http.get(base, headers={"Authorization": f"Bearer {env['key']}"}).status_code == 401

        ok = http.get(base, params={"token": token})
        assert ok.status_code == 200, ok.text
        assert ok.headers["content-type"].startswith("text/plain")
        assert ok.headers["cache-control"] == "no-store"
        assert ok.text == "10.0.0.0/8\n198.51.100.7\nbad.example/payload\nevil.example\n"
        assert http.get(base, headers={"Authorization": f"Bearer {token}"}).text == ok.text
        assert http.get(base, auth=("paloalto", token)).text == ok.text  # Basic: the token is the password
        assert http.get(base, params={"token": token, "type": "ip"}).text == "10.0.0.0/8\n198.51.100.7\n"
        assert http.get(base, params={"token": token, "type": "domain"}).text == "evil.example\n"
        assert http.get(base, params={"token": token, "type": "url"}).text == "bad.example/payload\n"

        assert http.get(f"{env['url']}/edl/acme/nope.txt", params={"token": token}).status_code == 404
        assert http.get(f"{env['url']}/edl/globex/c2.txt", params={"token": token}).status_code == 404

        other, _ = create_tenant(db, "globex", actor="test")  # same list name, its own token
        other_token = create_list(db, other.id, "c2", actor="test")
        assert http.get(f"{env['url']}/edl/globex/c2.txt", params={"token": token}).status_code == 401
        assert http.get(f"{env['url']}/edl/globex/c2.txt", params={"token": other_token}).text == ""

        renewed = rotate_token(db, tid, "c2", actor="test")
        assert http.get(base, params={"token": token}).status_code == 401
        assert http.get(base, params={"token": renewed}).text == ok.text

        removed = run_action("edl.remove", tid, list="c2", value="EVIL.example")
        assert removed == {"list": "c2", "value": "evil.example", "removed": True}
        assert "evil.example" not in http.get(base, params={"token": renewed}).text


def test_edl_add_is_idempotent_and_reports_its_change(env: dict[str, Any]) -> None:
    db, tid = env["db"], env["tenant"]
    create_list(db, tid, "ips", actor="test")
    first = run_action("edl.add", tid, key="step-key", run_id="run-1", list="ips", value="192.0.2.1")
    retry = run_action("edl.add", tid, key="step-key", run_id="run-1", list="ips", value="192.0.2.1")
    assert retry["change_id"] == first["change_id"]  # a retried step: same change, not a second one
    again = run_action("edl.add", tid, key="other", list="ips", value="192.0.2.1")
    assert again["added"] is False and again["change_id"] is None  # already blocked: nothing to undo

    listed = run_action("edl.list", tid, list="ips")
    assert [e["value"] for e in listed["entries"]] == ["192.0.2.1"]
    assert listed["entries"][0]["added_by"] == "workflow:run-1"

    with pytest.raises(ActionError, match="no blocklist 'missing'"):
        run_action("edl.add", tid, list="missing", value="192.0.2.1")
    with pytest.raises(ActionError, match="invalid domain"):
        run_action("edl.add", tid, list="ips", value="not_a_host")
    with pytest.raises(ActionError, match="not a duration"):
        run_action("edl.add", tid, list="ips", value="192.0.2.2", expires_in="soon")


def test_the_blocklist_commands(env: dict[str, Any]) -> None:
    db = env["db"]
    made = bastion_cli(db, "blocklist", "create", "web", "-t", "acme", "--json")
    assert made.exit_code == 0, made.output
    created = orjson.loads(made.stdout)
    assert created["path"] == "/edl/acme/web.txt" and len(created["token"]) > 30

    added = bastion_cli(
        db, "blocklist", "add", "web", "Phish.Example", "-t", "acme", "--expires", "1h", "--json"
    )
    assert added.exit_code == 0, added.output
    assert orjson.loads(added.stdout)["value"] == "phish.example"
    bad = bastion_subprocess(db, "blocklist", "add", "web", "not a value", "-t", "acme")
    assert bad.returncode == 2 and "error:" in bad.stderr
    for value, says in [
        ("0.0.0.0/0", "every address"),
        ("::/0", "every address"),
        ("10.0.0.0/33", "invalid network"),
        ("10.1.2.3/8", "host bits are set"),
    ]:
        bad = bastion_subprocess(db, "blocklist", "add", "web", value, "-t", "acme", "--json")
        assert bad.returncode == 2 and bad.stdout == "", bad.stderr
        assert bad.stderr.startswith("error:") and says in bad.stderr and len(bad.stderr.splitlines()) == 1

    with httpx.Client(timeout=30) as http:
        served = http.get(f"{env['url']}{created['path']}", params={"token": created["token"]})
    assert served.text == "phish.example\n"

    lists = orjson.loads(bastion_cli(db, "blocklist", "list", "-t", "acme", "--json").stdout)
    assert lists["lists"][0]["name"] == "web" and lists["lists"][0]["entries"] == 1
    gone = bastion_cli(db, "blocklist", "remove", "web", "phish.example", "-t", "acme", "--json")
    assert orjson.loads(gone.stdout)["removed"] is True
    rotated = orjson.loads(bastion_cli(db, "blocklist", "token", "web", "-t", "acme", "--json").stdout)
    assert rotated["token"] != created["token"]
