"""DNS blocking against a REAL unbound: the test starts ``unbound -d`` on a free port with its own config
(local data for the test names, so no internet is needed), lets ``dns.block_domain`` write the include
file and reload unbound through ``unbound-control`` (unix socket), and asks unbound with ``dig``: the
blocked domain (and the names below it) no longer resolves while others still do, and an undo or an
expiry restores it. A second unbound loads the RPZ zone file variant and is reloaded with SIGHUP.

Needs the Debian packages ``unbound`` and ``bind9-dnsutils`` (``dig``); scripts/test-services.sh
installs them. The tests never touch a system unbound.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

import bastion.connectors.dns  # noqa: F401  (registers the dns.* actions in this process)
from bastion.config import Settings
from bastion.connectors.call import call_action
from bastion.connectors.registry import ActionError
from bastion.connectors.settings import using_settings
from bastion.connectors.undo import expire_changes, get_change, undo_change
from bastion.respond.engine import configure
from bastion.store import Database
from bastion.store._util import now_ms
from bastion.store.tables import audit_log
from bastion.tenancy.connections import set_connection
from bastion.tenancy.service import create_tenant
from tests.conftest import free_port

LOCAL_DATA = {
    "evil.example.": "192.0.2.66",
    "www.evil.example.": "192.0.2.67",
    "good.example.": "192.0.2.10",
    "other.example.": "192.0.2.20",
    "rpz-evil.example.": "192.0.2.70",
}


def _exe(name: str, package: str) -> str:
    found = shutil.which(name) or (f"/usr/sbin/{name}" if Path(f"/usr/sbin/{name}").exists() else None)
    if not found:
        pytest.fail(f"{name} is required: apt-get install -y {package} (scripts/test-services.sh does it)")
    return found


def _config(folder: Path, port: int, extra: list[str], *, local_data: bool) -> Path:
    conf = folder / "unbound.conf"
    lines = [
        "server:",
        "  interface: 127.0.0.1",
        f"  port: {port}",
        "  do-ip6: no",
        '  username: ""',
        '  chroot: ""',
        f'  directory: "{folder}"',
        f'  pidfile: "{folder}/unbound.pid"',
        "  use-syslog: no",
        '  logfile: ""',
        "  verbosity: 0",
        "  access-control: 127.0.0.0/8 allow",
        *(
            ['  local-zone: "example." static']
            + [f'  local-data: "{name} 60 IN A {ip}"' for name, ip in LOCAL_DATA.items()]
            if local_data
            else []
        ),
        *extra,
    ]
    conf.write_text("\n".join(lines) + "\n")
    return conf


def dig(port: int, name: str) -> tuple[str, list[str]]:
    """(rcode, A records) of unbound's answer for ``name``."""
    proc = subprocess.run(
        [
            _exe("dig", "bind9-dnsutils"),
            "@127.0.0.1",
            "-p",
            str(port),
            "+tries=1",
            "+time=2",
            "+noall",
            "+comments",
            "+answer",
            name,
            "A",
        ],
        capture_output=True,
        text=True,
        timeout=20,
    )
    status = ""
    for line in proc.stdout.splitlines():
        if "status:" in line:
            status = line.split("status:")[1].split(",")[0].strip()
    answers = [ln.split()[-1] for ln in proc.stdout.splitlines() if ln and not ln.startswith(";")]
    return status, answers


def settle(port: int, name: str, wanted: str) -> tuple[str, list[str]]:
    """Ask until unbound answers ``wanted`` (a reload is applied just after unbound-control returns),
    at most ~10 s; the caller asserts on what it returns."""
    answer = dig(port, name)
    for _ in range(100):
        if answer[0] == wanted:
            break
        time.sleep(0.1)
        answer = dig(port, name)
    return answer


@contextmanager
def unbound(extra: list[str], files: dict[str, str], *, local_data: bool = True) -> Iterator[dict[str, Any]]:
    """A real unbound on a free port in a short temporary folder (unix socket paths are limited)."""
    folder = Path(tempfile.mkdtemp(prefix="ub-"))
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    port = free_port()
    conf = _config(
        folder, port, [line.replace("{dir}", str(folder)) for line in extra], local_data=local_data
    )
    with open(folder / "unbound.log", "wb") as log:  # a file, not a pipe: a full pipe would stall it
        proc = subprocess.Popen([_exe("unbound", "unbound"), "-d", "-c", str(conf)], stdout=log, stderr=log)
    try:
        status, _ = settle(port, "good.example", "NOERROR")
        if status != "NOERROR":
            proc.kill()
            proc.wait(10)
            output = (folder / "unbound.log").read_text(errors="replace")
            pytest.fail(f"unbound did not start on port {port}: {output[-2000:]}")
        yield {"port": port, "folder": folder, "conf": conf, "pid": proc.pid}
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def local_zone_unbound() -> Iterator[dict[str, Any]]:
    from bastion.connectors.dns import render_local_zones

    extra = [
        '  include: "{dir}/blocks/*.local-zone.conf"',  # every tenant's file, as an operator sets it up
        '  module-config: "iterator"',
        "remote-control:",
        "  control-enable: yes",
        '  control-interface: "{dir}/unbound.ctl"',
        "  control-use-cert: no",
    ]
    with unbound(extra, {"blocks/none.local-zone.conf": render_local_zones([])}) as running:
        yield running


def _store(tmp_path: Path) -> tuple[Database, str]:
    db = Database(f"sqlite:///{tmp_path / 'bastion.db'}")
    db.migrate()
    configure(db)
    tenant, _ = create_tenant(db, "acme", actor="test")
    set_connection(db, tenant.id, "dns", {"settings": {"response": "always_nxdomain"}}, actor="test")
    return db, tenant.id


def _operator(**kw: Any) -> Settings:
    """The operator's resolver integration (Settings, not the tenant's connection: it reaches the host)."""
    return Settings(database_url="sqlite://", **kw)


@pytest.fixture
def store(tmp_path: Path, local_zone_unbound: dict[str, Any]) -> Iterator[tuple[Database, str]]:
    reload = [_exe("unbound-control", "unbound"), "-c", str(local_zone_unbound["conf"]), "reload"]
    operator = _operator(
        dns_blocks_dir=str(local_zone_unbound["folder"] / "blocks"), dns_reload_command=reload
    )
    db, tenant_id = _store(tmp_path)
    with using_settings(operator):
        yield db, tenant_id
    db.dispose()


def _call(db: Database, tenant_id: str, action_id: str, inputs: dict[str, Any], key: str = "") -> Any:
    import asyncio

    key = key or uuid.uuid4().hex  # a new logical call each time unless the test repeats one
    return asyncio.run(call_action(db, tenant_id, action_id, inputs, caller="test", key=key))


def _serial(zone: str) -> int:
    return int(zone.split("SOA", 1)[1].split("(", 1)[1].split()[0])


def _audit_actions(db: Database, tenant_id: str) -> list[str]:
    with db.read() as conn:
        return [r.action for r in conn.execute(select(audit_log).where(audit_log.c.tenant_id == tenant_id))]


def test_a_blocked_domain_stops_resolving_while_others_still_do_and_undo_restores_it(
    store: tuple[Database, str], local_zone_unbound: dict[str, Any]
) -> None:
    import asyncio

    db, tenant_id = store
    port = local_zone_unbound["port"]
    assert dig(port, "evil.example") == ("NOERROR", ["192.0.2.66"])

    out = _call(db, tenant_id, "dns.block_domain", {"domain": "Evil.Example.", "reason": "C2"}, key="step-1")
    assert out["domain"] == "evil.example" and out["changed"] and out["reload"] == "control"
    assert out["change_id"]
    text = (local_zone_unbound["folder"] / "blocks" / f"{tenant_id}.local-zone.conf").read_text()
    assert 'local-zone: "evil.example." always_nxdomain' in text

    assert settle(port, "evil.example", "NXDOMAIN") == ("NXDOMAIN", [])
    assert dig(port, "www.evil.example")[0] == "NXDOMAIN"  # the names below it too
    assert dig(port, "good.example") == ("NOERROR", ["192.0.2.10"])

    again = _call(db, tenant_id, "dns.block_domain", {"domain": "evil.example"})
    assert again["changed"] is False and again["change_id"] is None  # nothing new to undo
    retried = _call(db, tenant_id, "dns.block_domain", {"domain": "evil.example"}, key="step-1")
    assert retried["change_id"] == out["change_id"]  # a retried step gets the change its first try made
    listed = _call(db, tenant_id, "dns.list_blocks", {})
    assert listed["domains"] == ["evil.example"]

    result = asyncio.run(undo_change(db, tenant_id, out["change_id"], actor="user:alice"))
    assert result["undone"] is True, result
    assert settle(port, "evil.example", "NOERROR") == ("NOERROR", ["192.0.2.66"])
    assert dig(port, "www.evil.example") == ("NOERROR", ["192.0.2.67"])
    with db.read() as conn:
        change = get_change(conn, tenant_id, out["change_id"])
    assert change is not None and change["undone_by"] == "user:alice" and change["undo_error"] is None
    assert "change.undo" in _audit_actions(db, tenant_id)


def test_a_block_with_an_expiry_is_lifted_when_it_expires(
    store: tuple[Database, str], local_zone_unbound: dict[str, Any]
) -> None:
    import asyncio

    db, tenant_id = store
    port = local_zone_unbound["port"]
    out = _call(db, tenant_id, "dns.block_domain", {"domain": "other.example", "expires_in": "2h"})
    assert out["expires"] is not None and out["expires"] > now_ms() + 7_000_000
    assert settle(port, "other.example", "NXDOMAIN")[0] == "NXDOMAIN"

    assert asyncio.run(expire_changes(db, now=now_ms())) == []  # not due yet: still blocked
    assert dig(port, "other.example")[0] == "NXDOMAIN"

    done = asyncio.run(expire_changes(db, now=out["expires"] + 1))
    assert [(d["id"], d["undone"]) for d in done] == [(out["change_id"], True)]
    assert settle(port, "other.example", "NOERROR") == ("NOERROR", ["192.0.2.20"])
    assert "change.expired" in _audit_actions(db, tenant_id)
    assert asyncio.run(expire_changes(db, now=out["expires"] + 1)) == []  # done once only


def test_a_failing_reload_reports_unbound_controls_error(
    tmp_path: Path, local_zone_unbound: dict[str, Any]
) -> None:
    reload = [
        _exe("unbound-control", "unbound"),
        *("-c", str(local_zone_unbound["conf"]), "-s", str(tmp_path / "no.ctl"), "reload"),
    ]
    db, tenant_id = _store(tmp_path)
    try:
        with using_settings(_operator(dns_blocks_dir=str(tmp_path / "blocks"), dns_reload_command=reload)):
            with pytest.raises(ActionError, match=r"dns: reload command exited 1: .*no\.ctl"):
                _call(db, tenant_id, "dns.block_domain", {"domain": "bad.example"})
            written = (tmp_path / "blocks" / f"{tenant_id}.local-zone.conf").read_text()
            assert "bad.example" not in written  # put back: a retry redoes it
            with pytest.raises(ActionError, match="invalid domain"):
                _call(db, tenant_id, "dns.block_domain", {"domain": "not a domain"})
        with pytest.raises(ActionError, match="not set up on this Bastion"):  # no resolver integration
            _call(db, tenant_id, "dns.block_domain", {"domain": "evil.example"})
    finally:
        db.dispose()


def test_the_rpz_zone_file_blocks_in_a_real_unbound_reloaded_by_sighup(tmp_path: Path) -> None:
    from bastion.connectors.dns import render_rpz

    extra = [
        '  module-config: "respip iterator"',
        "rpz:",
        "  name: rpz.bastion.",
        '  zonefile: "{dir}/bastion.rpz"',
    ]
    # RPZ applies to recursion and auth zones, not to local-data (answered first), so the test names
    # come from an auth zone here.
    extra += [
        "auth-zone:",
        '  name: "example."',
        '  zonefile: "{dir}/example.zone"',
        "  for-downstream: yes",
        "  fallback-enabled: no",
    ]
    zone = "$ORIGIN example.\n$TTL 60\n@ IN SOA ns.example. hostmaster.example. (1 3600 600 86400 60)\n"
    zone += "@ IN NS ns.example.\nns IN A 192.0.2.1\n"
    zone += "".join(f"{name.removesuffix('.example.')} IN A {ip}\n" for name, ip in LOCAL_DATA.items())
    db, tenant_id = _store(tmp_path)
    rpz = f"blocks/{tenant_id}.rpz"
    extra = [line.replace("{dir}/bastion.rpz", "{dir}/" + rpz) for line in extra]
    files = {rpz: render_rpz([]), "example.zone": zone}
    with unbound(extra, files, local_data=False) as running:
        folder, port = running["folder"], running["port"]
        operator = _operator(
            dns_blocks_dir=str(folder / "blocks"), dns_format="rpz", dns_pid_file=str(folder / "unbound.pid")
        )
        try:
            with using_settings(operator):
                assert dig(port, "rpz-evil.example") == ("NOERROR", ["192.0.2.70"])
                out = _call(db, tenant_id, "dns.block_domain", {"domain": "rpz-evil.example"})
                assert out["reload"] == "sighup" and out["change_id"]
                assert "rpz-evil.example CNAME ." in (folder / rpz).read_text()
                assert settle(port, "rpz-evil.example", "NXDOMAIN")[0] == "NXDOMAIN"
                assert dig(port, "good.example") == ("NOERROR", ["192.0.2.10"])
                blocked_zone = (folder / rpz).read_text()
                _call(db, tenant_id, "dns.unblock_domain", {"domain": "rpz-evil.example"})
                assert _serial(blocked_zone) < _serial((folder / rpz).read_text())
                assert settle(port, "rpz-evil.example", "NOERROR") == ("NOERROR", ["192.0.2.70"])
        finally:
            db.dispose()
