"""A real OpenLDAP ``slapd`` on a free port in a temporary folder, seeded through ldap3."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from ldap3 import Connection, Server

from tests.conftest import free_port

SUFFIX = "dc=example,dc=org"
ADMIN = f"cn=admin,{SUFFIX}"
ADMIN_PASSWORD = "admin-secret"  # a throwaway test directory


def _slapd() -> str:
    exe = shutil.which("slapd") or "/usr/sbin/slapd"
    if not Path(exe).exists():
        pytest.fail(
            "slapd is required: apt-get install -y slapd ldap-utils (scripts/test-services.sh does it)"
        )
    return exe


@contextmanager
def slapd(tmp_path: Path) -> Iterator[str]:
    """Start slapd; yield its ldap:// URL."""
    folder = tmp_path / "slapd"
    (folder / "db").mkdir(parents=True)
    conf = folder / "slapd.conf"
    conf.write_text(
        "\n".join(
            [
                "include /etc/ldap/schema/core.schema",
                "include /etc/ldap/schema/cosine.schema",
                "include /etc/ldap/schema/inetorgperson.schema",
                "include /etc/ldap/schema/nis.schema",
                f"pidfile {folder}/slapd.pid",
                "modulepath /usr/lib/ldap",
                "moduleload back_mdb",
                "database mdb",
                f'suffix "{SUFFIX}"',
                f'rootdn "{ADMIN}"',
                f"rootpw {ADMIN_PASSWORD}",
                f"directory {folder}/db",
                "maxsize 10485760",
                "",
            ]
        )
    )
    port = free_port()
    url = f"ldap://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [_slapd(), "-f", str(conf), "-h", f"{url}/", "-d", "0"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if proc.poll() is not None:
                    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
                    pytest.fail(f"slapd exited: {err[-500:]}")
                if time.monotonic() > deadline:
                    pytest.fail("slapd did not start")
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def seed(url: str) -> None:
    """Two people and an admins group."""
    conn = Connection(Server(url), user=ADMIN, password=ADMIN_PASSWORD, auto_bind=True)
    conn.add(SUFFIX, ["dcObject", "organization"], {"o": "Example", "dc": "example"})
    conn.add(f"ou=people,{SUFFIX}", ["organizationalUnit"], {"ou": "people"})
    conn.add(f"ou=groups,{SUFFIX}", ["organizationalUnit"], {"ou": "groups"})
    people = [
        ("alice", "Alice Admin", "alice@example.org", None, None),
        ("bob", "Bob Builder", "bob@example.org", f"uid=alice,ou=people,{SUFFIX}", "disabled"),
    ]
    for uid, cn, mail, manager, etype in people:
        attrs: dict[str, object] = {"uid": uid, "cn": cn, "sn": cn.split()[-1], "mail": mail}
        if manager:
            attrs["manager"] = manager
        if etype:
            attrs["employeeType"] = etype
        assert conn.add(f"uid={uid},ou=people,{SUFFIX}", ["inetOrgPerson"], attrs), conn.result
    assert conn.add(
        f"cn=admins,ou=groups,{SUFFIX}",
        ["groupOfNames"],
        {"cn": "admins", "member": [f"uid=alice,ou=people,{SUFFIX}"]},
    ), conn.result
    conn.unbind()
