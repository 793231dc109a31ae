"""A real OpenLDAP ``slapd`` on a free port in a temporary folder, seeded through ldap3."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ldap3 import Connection, Server

from bastion.demo.slapd import running_slapd

SUFFIX = "dc=example,dc=org"
ADMIN = f"cn=admin,{SUFFIX}"
ADMIN_PASSWORD = "admin-secret"  # a throwaway test directory


@contextmanager
def slapd(tmp_path: Path) -> Iterator[str]:
    """Start slapd; yield its ldap:// URL."""
    with running_slapd(
        tmp_path / "slapd", suffix=SUFFIX, admin_dn=ADMIN, admin_password=ADMIN_PASSWORD
    ) as url:
        yield url


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
