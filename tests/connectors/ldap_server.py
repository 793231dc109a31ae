"""A real ``slapd`` for the LDAP connector tests: the enrich fixture's directory, plus what response needs.

:func:`tests.enrich.slapd.slapd` (reused as is) is a plain directory without the password-policy
overlay: the connector locks accounts there with a password marker. :func:`ppolicy_slapd` starts the
same directory with the ``ppolicy`` overlay (``pwdLockout: TRUE`` in the default policy, so
``pwdAccountLockedTime`` locks an account) and a small schema with Active Directory's ``user`` class and
the attributes the connector uses (``sAMAccountName``, ``userAccountControl``, ``pwdLastSet``,
``unicodePwd``): the stand-in for AD, which cannot run here.
:func:`seed_people` gives the enrich fixture's people passwords and adds AD-style users.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ldap3 import Connection, Server

from bastion.demo.slapd import running_slapd
from tests.enrich.slapd import ADMIN, ADMIN_PASSWORD, SUFFIX, seed

__all__ = ["ADMIN", "ADMIN_PASSWORD", "PASSWORDS", "SUFFIX", "can_bind", "ppolicy_slapd", "seed_people"]

PASSWORDS = {"alice": "alice-pw-1", "bob": "bob-pw-1", "carol": "carol-pw-1"}  # throwaway test accounts
POLICY = f"cn=default,ou=policies,{SUFFIX}"

# The Active Directory attributes the connector touches, under AD's own OIDs, with the equality rules AD
# applies (the msuser.schema shipped with OpenLDAP has none, so a filter on sAMAccountName never matches).
AD_SCHEMA = """
attributetype ( 1.2.840.113556.1.4.221 NAME 'sAMAccountName'
  EQUALITY caseIgnoreMatch SUBSTR caseIgnoreSubstringsMatch
  SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 SINGLE-VALUE )
attributetype ( 1.2.840.113556.1.4.8 NAME 'userAccountControl'
  EQUALITY integerMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.27 SINGLE-VALUE )
attributetype ( 1.2.840.113556.1.4.96 NAME 'pwdLastSet'
  EQUALITY integerMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.27 SINGLE-VALUE )
attributetype ( 1.2.840.113556.1.4.90 NAME 'unicodePwd'
  EQUALITY octetStringMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.40 SINGLE-VALUE )
objectclass ( 1.2.840.113556.1.5.9 NAME 'user' SUP organizationalPerson STRUCTURAL
  MAY ( sAMAccountName $ userAccountControl $ pwdLastSet $ unicodePwd $ displayName $ mail ) )
"""


@contextmanager
def ppolicy_slapd(tmp_path: Path) -> Iterator[str]:
    """slapd with the ppolicy overlay and the AD attributes; yield its ldap:// URL."""
    folder = tmp_path / "slapd-ppolicy"
    folder.mkdir(parents=True)
    (folder / "ad.schema").write_text(AD_SCHEMA)
    with running_slapd(
        folder,
        suffix=SUFFIX,
        admin_dn=ADMIN,
        admin_password=ADMIN_PASSWORD,
        includes=[str(folder / "ad.schema")],
        modules=["ppolicy"],
        database_lines=["overlay ppolicy", f'ppolicy_default "{POLICY}"'],
    ) as url:
        yield url


def seed_people(url: str, *, ppolicy: bool) -> None:
    """The enrich fixture's alice, bob and admins group; passwords for them; with ``ppolicy``, the default
    policy (lockout on) and carol, an AD-style ``user`` with ``sAMAccountName`` in the admins group too."""
    seed(url)
    conn = Connection(Server(url), user=ADMIN, password=ADMIN_PASSWORD, auto_bind=True)
    try:
        for uid in ("alice", "bob"):
            dn = f"uid={uid},ou=people,{SUFFIX}"
            assert conn.extend.standard.modify_password(dn, new_password=PASSWORDS[uid]), conn.result
        if not ppolicy:
            return
        assert conn.add(f"ou=policies,{SUFFIX}", ["organizationalUnit"], {"ou": "policies"}), conn.result
        assert conn.add(
            POLICY,
            ["device", "pwdPolicy"],
            {"cn": "default", "pwdAttribute": "userPassword", "pwdLockout": "TRUE", "pwdMaxFailure": 0},
        ), conn.result
        carol = f"cn=Carol Cole,ou=people,{SUFFIX}"
        assert conn.add(
            carol,
            ["user"],
            {"cn": "Carol Cole", "sn": "Cole", "sAMAccountName": "carol", "userAccountControl": 512},
        ), conn.result
        assert conn.extend.standard.modify_password(carol, new_password=PASSWORDS["carol"]), conn.result
        assert conn.modify(f"cn=admins,ou=groups,{SUFFIX}", {"member": [("MODIFY_ADD", [carol])]}), (
            conn.result
        )
    finally:
        conn.unbind()


def can_bind(url: str, dn: str, password: str) -> bool:
    """Whether ``dn`` binds with ``password`` (what a locked account can no longer do)."""
    conn = Connection(Server(url), user=dn, password=password)
    try:
        return bool(conn.bind())
    finally:
        conn.unbind()
