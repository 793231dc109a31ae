"""Identity sync from LDAP / Active Directory with ``ldap3``: people under a base DN become identities
(username, e-mail, display name, groups, manager, status, privileged flag).

OpenLDAP (``inetOrgPerson``) uses ``uid``/``mail``/``cn``, group membership from ``groupOfNames``
``member`` (or ``memberOf`` where the overlay is on), and ``employeeType: disabled`` marks a disabled
account, as do the two locks :mod:`bastion.connectors.ldap` applies (``pwdAccountLockedTime:
000001010000Z``, an operational attribute, or every ``userPassword`` prefixed ``{BASTION-LOCKED}``), so a
re-sync after a suspension shows the identity disabled.

Active Directory uses ``sAMAccountName``/``mail``/``displayName``/``memberOf`` and the disabled
bit of ``userAccountControl``. Membership in a group named in ``privileged_groups`` sets ``privileged``.
"""

from __future__ import annotations

from typing import Any

import msgspec
from ldap3 import ALL_ATTRIBUTES, ALL_OPERATIONAL_ATTRIBUTES, SUBTREE, Connection, Server

from bastion.enrich.inventory import ImportResult, remove_inventory, store_identities
from bastion.model.asset import Identity
from bastion.store import Database
from bastion.store.assets import InventoryRepository

__all__ = ["LdapConfig", "fetch_identities", "sync_ldap"]

_LOCKED_FOREVER = "000001010000Z"  # ppolicy "locked until an administrator unlocks" (connectors.ldap)
_MARKER = b"{BASTION-LOCKED}"  # the password-marker lock of connectors.ldap
_DEFAULT_PRIVILEGED = ["admins", "domain admins", "enterprise admins", "administrators"]


class LdapConfig(msgspec.Struct):
    url: str
    base_dn: str
    bind_dn: str | None = None
    password: str | None = None
    active_directory: bool = False
    user_filter: str | None = None
    group_base_dn: str | None = None
    privileged_groups: list[str] = msgspec.field(default_factory=lambda: list(_DEFAULT_PRIVILEGED))
    timeout: int = 10


def _first(entry: dict[str, Any], name: str) -> str | None:
    v = entry.get(name)
    if isinstance(v, list):
        return str(v[0]) if v else None
    return str(v) if v not in (None, "") else None


def _cn(dn: str) -> str:
    head = dn.split(",", 1)[0]
    return head.split("=", 1)[-1]


def _locked(attrs: dict[str, Any]) -> bool:
    """Whether the entry carries one of the account locks ``ldap.disable_user`` sets on OpenLDAP."""
    locked = attrs.get("pwdAccountLockedTime")
    locked = locked[0] if isinstance(locked, list) and locked else locked
    if isinstance(locked, bytes):
        locked = locked.decode(errors="replace")
    # ldap3 decodes the GeneralizedTime when the schema is known: 000001010000Z becomes year 1
    if getattr(locked, "year", None) == 1 or str(locked or "") == _LOCKED_FOREVER:
        return True
    passwords = [v if isinstance(v, bytes) else str(v).encode() for v in attrs.get("userPassword") or []]
    return bool(passwords) and all(v.startswith(_MARKER) for v in passwords)


def fetch_identities(cfg: LdapConfig) -> list[Identity]:
    server = Server(cfg.url, connect_timeout=cfg.timeout)
    conn = Connection(
        server, user=cfg.bind_dn, password=cfg.password, auto_bind=True, receive_timeout=cfg.timeout
    )
    try:
        flt = cfg.user_filter or (
            "(&(objectClass=user)(objectCategory=person))"
            if cfg.active_directory
            else "(objectClass=inetOrgPerson)"
        )
        conn.search(
            cfg.base_dn, flt, search_scope=SUBTREE, attributes=[ALL_ATTRIBUTES, ALL_OPERATIONAL_ATTRIBUTES]
        )
        people = [(str(e.entry_dn), e.entry_attributes_as_dict) for e in conn.entries]
        groups_of: dict[str, list[str]] = {}
        if not cfg.active_directory:
            gbase = cfg.group_base_dn or cfg.base_dn.split(",", 1)[-1]
            conn.search(
                gbase,
                "(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames))",
                search_scope=SUBTREE,
                attributes=["cn", "member", "uniqueMember"],
            )
            for g in conn.entries:
                attrs = g.entry_attributes_as_dict
                name = _first(attrs, "cn") or _cn(str(g.entry_dn))
                for member in [*(attrs.get("member") or []), *(attrs.get("uniqueMember") or [])]:
                    groups_of.setdefault(str(member).lower(), []).append(name)
    finally:
        conn.unbind()
    privileged = {g.lower() for g in cfg.privileged_groups}
    out: list[Identity] = []
    for dn, attrs in people:
        if cfg.active_directory:
            username = _first(attrs, "sAMAccountName")
            groups = [_cn(str(g)) for g in attrs.get("memberOf") or []]
            uac = int(_first(attrs, "userAccountControl") or 0)
            status = "disabled" if uac & 2 else "active"
            display = _first(attrs, "displayName")
        else:
            username = _first(attrs, "uid")
            groups = sorted(
                {*groups_of.get(dn.lower(), []), *(_cn(str(g)) for g in attrs.get("memberOf") or [])}
            )
            disabled = (_first(attrs, "employeeType") or "").lower() == "disabled" or _locked(attrs)
            status = "disabled" if disabled else "active"
            display = _first(attrs, "displayName") or _first(attrs, "cn")
        if not username:
            continue
        manager = _first(attrs, "manager")
        mail = _first(attrs, "mail")
        out.append(
            Identity(
                username=username.lower(),
                id=dn,
                email=mail.lower() if mail else None,
                display_name=display,
                privileged=any(g.lower() in privileged for g in groups),
                groups=groups,
                manager=_cn(manager) if manager else None,
                status=status,
                department=_first(attrs, "departmentNumber") or _first(attrs, "department"),
            )
        )
    return out


def sync_ldap(db: Database, tenant_id: str, cfg: LdapConfig, *, actor: str) -> ImportResult:
    """Fetch every person and store them as identities (one audited import), and forget the identities
    an earlier sync of this subtree brought (their id is a DN under ``base_dn``) that the directory no
    longer holds: a user who left stops counting in enrichment and preemptive matching. A sync that
    finds nobody removes nobody (an empty answer is more likely a wrong filter or a missing right)."""
    try:
        identities = fetch_identities(cfg)
    except Exception as exc:
        raise ValueError(f"LDAP sync from {cfg.url} failed: {type(exc).__name__}: {exc}") from None
    store_identities(db, tenant_id, identities, actor=actor, source=cfg.url)
    gone: list[str] = []
    if identities:
        present = {i.username for i in identities}
        under = "," + cfg.base_dn.lower().replace(" ", "")
        with db.read() as conn:
            stored = InventoryRepository(conn, tenant_id).all_identities()
        gone = [
            i.username
            for i in stored
            if i.id and i.id.lower().replace(" ", "").endswith(under) and i.username not in present
        ]
        for name in gone:
            remove_inventory(db, tenant_id, "identities", name, actor=actor)
    return ImportResult(imported=len(identities), removed=len(gone))
