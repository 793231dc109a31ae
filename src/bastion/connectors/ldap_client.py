"""The directory session the ``ldap.*`` actions share: connection settings, bind, user and group lookup,
and turning ldap3's results into ActionErrors that name the server's answer.

Everything here is synchronous (ldap3 is); the actions run it in a thread. Settings come from the
tenant's connection (``base_url`` ``ldap://host:port`` or ``ldaps://``, ``verify_tls``, ``allow_private``,
``settings``: ``base_dn``, ``user_attr``, ``group_base``, ``flavor`` ``openldap``/``ad``, ``lock``,
``start_tls``) and the secrets ``ldap_bind_dn`` and ``ldap_bind_password``.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import Any

from ldap3 import ALL_ATTRIBUTES, ALL_OPERATIONAL_ATTRIBUTES, BASE, SCHEMA, SUBTREE, Connection, Server, Tls
from ldap3.core.exceptions import LDAPException
from ldap3.utils.conv import escape_filter_chars
from ldap3.utils.dn import parse_dn

from bastion.connectors.core import SSRFError, check_url
from bastion.connectors.registry import ActionContext, ActionError

__all__ = ["Directory", "DirectoryConfig", "Entry", "check_address", "config_from", "entry_username"]

GROUP_CLASSES = ("groupOfNames", "groupOfUniqueNames", "group", "posixGroup")


@dataclass(frozen=True)
class Entry:
    """A directory entry: ``attrs`` as ldap3 formats them, ``raw`` as the server sent them (bytes)."""

    dn: str
    attrs: dict[str, Any]
    raw: dict[str, list[bytes]]

    def first_raw(self, name: str) -> bytes | None:
        for key, values in self.raw.items():
            if key.lower() == name.lower() and values:
                return values[0]
        return None

    def values(self, name: str) -> list[Any]:
        for key, values in self.attrs.items():
            if key.lower() == name.lower():
                return list(values)
        return []


@dataclass(frozen=True)
class DirectoryConfig:
    url: str
    bind_dn: str
    password: str
    base_dn: str
    user_attr: str
    group_base: str
    flavor: str
    lock: str  # "auto", "ppolicy" or "password" (OpenLDAP only)
    verify_tls: bool
    start_tls: bool
    allow_private: bool


def config_from(ctx: ActionContext) -> DirectoryConfig:
    """The directory settings of the step's connection; an ActionError names what is missing."""
    conn = ctx.connection
    settings: dict[str, Any] = dict(conn.get("settings") or {})
    url = str(conn.get("base_url") or "")
    if not url.startswith(("ldap://", "ldaps://")):
        raise ActionError(
            f"ldap: the connection's base_url must be ldap://host:port or ldaps://, not {url!r}"
        )
    missing = [n for n in ("ldap_bind_dn", "ldap_bind_password") if not ctx.secrets.get(n)]
    if missing:
        raise ActionError(f"ldap: missing secret(s) {', '.join(missing)} (`bastion secret set`)")
    base_dn = str(settings.get("base_dn") or "")
    if not base_dn:
        raise ActionError("ldap: the connection needs settings.base_dn (where users live)")
    flavor = str(settings.get("flavor") or "openldap").lower()
    if flavor not in ("openldap", "ad"):
        raise ActionError(f"ldap: settings.flavor must be openldap or ad, not {flavor!r}")
    lock = str(settings.get("lock") or "auto").lower()
    if lock not in ("auto", "ppolicy", "password"):
        raise ActionError(f"ldap: settings.lock must be auto, ppolicy or password, not {lock!r}")
    return DirectoryConfig(
        url=url,
        bind_dn=ctx.secrets["ldap_bind_dn"],
        password=ctx.secrets["ldap_bind_password"],
        base_dn=base_dn,
        user_attr=str(settings.get("user_attr") or ("sAMAccountName" if flavor == "ad" else "uid")),
        group_base=str(settings.get("group_base") or base_dn),
        flavor=flavor,
        lock=lock,
        verify_tls=bool(conn.get("verify_tls", True)),
        start_tls=bool(settings.get("start_tls", False)),
        allow_private=bool(conn.get("allow_private", False)),
    )


async def check_address(cfg: DirectoryConfig) -> None:
    """The same address guard as core.http_request: internal directories need ``allow_private``."""
    as_http = "https" + cfg.url[len("ldaps") :] if cfg.url.startswith("ldaps") else "http" + cfg.url[4:]
    try:
        await check_url(as_http, allow_private=cfg.allow_private)
    except SSRFError as exc:
        raise SSRFError(str(exc).replace(as_http, cfg.url)) from None


def _why(conn: Connection) -> str:
    r = conn.result or {}
    message = str(r.get("message") or "").strip()
    return f"{r.get('description', 'error')} ({r.get('result', '?')})" + (f": {message}" if message else "")


def entry_username(dn: str, user_attr: str) -> str | None:
    """The user name a member DN carries in its first RDN (``uid=bob,...`` -> ``bob``), if it does."""
    try:
        attr, value, _ = parse_dn(dn)[0]
    except (LDAPException, IndexError):
        return None
    return value if attr.lower() == user_attr.lower() else None


class Directory:
    """One bound connection; a context manager that unbinds."""

    def __init__(self, cfg: DirectoryConfig) -> None:
        self.cfg = cfg
        tls = Tls(validate=ssl.CERT_REQUIRED if cfg.verify_tls else ssl.CERT_NONE)
        server = Server(cfg.url, get_info=SCHEMA, connect_timeout=10, tls=tls)
        self.conn = Connection(
            server, user=cfg.bind_dn, password=cfg.password, receive_timeout=30, raise_exceptions=False
        )
        try:
            self.conn.open()
            if cfg.start_tls and not self.conn.start_tls():
                raise ActionError(f"ldap: StartTLS with {cfg.url} failed: {_why(self.conn)}")
            if not self.conn.bind():
                raise ActionError(f"ldap: bind as {cfg.bind_dn} to {cfg.url} failed: {_why(self.conn)}")
        except LDAPException as exc:
            self.conn.unbind()
            raise ActionError(f"ldap: cannot reach {cfg.url}: {type(exc).__name__}: {exc}") from None
        except ActionError:
            self.conn.unbind()
            raise
        if self.conn.server.schema is None:  # read after the bind: some servers hide it from anonymous
            self.conn.refresh_server_info()

    def __enter__(self) -> Directory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.conn.unbind()

    def knows(self, attribute: str) -> bool:
        """Whether the server's schema has ``attribute`` (the ppolicy overlay adds pwdAccountLockedTime)."""
        schema = self.conn.server.schema
        return bool(schema and attribute in schema.attribute_types)

    def _entries(self) -> list[Entry]:
        return [
            Entry(str(e.entry_dn), e.entry_attributes_as_dict, dict(e.entry_raw_attributes))
            for e in self.conn.entries
        ]

    def user(self, username: str) -> Entry:
        """The one user called ``username`` (attributes including operational ones)."""
        flt = f"({self.cfg.user_attr}={escape_filter_chars(username)})"
        self._search(self.cfg.base_dn, flt, SUBTREE)
        found = self._entries()
        if not found:
            raise ActionError(f"ldap: no user {username!r} ({self.cfg.user_attr}) under {self.cfg.base_dn}")
        if len(found) > 1:
            raise ActionError(f"ldap: {len(found)} entries match user {username!r}: refusing to guess")
        return found[0]

    def entry(self, dn: str) -> Entry | None:
        self._search(dn, "(objectClass=*)", BASE, missing_ok=True)
        found = self._entries()
        return found[0] if found else None

    def group(self, group: str) -> Entry:
        """A group given by its cn under group_base, or by its full DN."""
        # Only classes the server knows: ldap3 refuses a filter naming an unknown one.
        schema = self.conn.server.schema
        known = [c for c in GROUP_CLASSES if schema is None or c in schema.object_classes]
        classes = "".join(f"(objectClass={c})" for c in known)
        if "=" in group:
            self._search(group, f"(|{classes})", BASE, missing_ok=True)
        else:
            flt = f"(&(cn={escape_filter_chars(group)})(|{classes}))"
            self._search(self.cfg.group_base, flt, SUBTREE)
        found = self._entries()
        if not found:
            raise ActionError(f"ldap: no group {group!r} under {self.cfg.group_base}")
        if len(found) > 1:
            raise ActionError(f"ldap: {len(found)} groups are called {group!r}: give the group's DN")
        return found[0]

    def modify(self, dn: str, changes: dict[str, Any], what: str) -> None:
        try:
            ok = self.conn.modify(dn, changes)
        except LDAPException as exc:
            raise ActionError(f"ldap: {what} on {dn} failed: {type(exc).__name__}: {exc}") from None
        if not ok:
            raise ActionError(f"ldap: {what} on {dn} failed: {_why(self.conn)}")

    def set_password(self, dn: str, password: str) -> None:
        """RFC 3062 Password Modify, so the server hashes the password with its own scheme."""
        try:
            ok = self.conn.extend.standard.modify_password(dn, new_password=password)
        except LDAPException as exc:
            raise ActionError(f"ldap: password change on {dn} failed: {type(exc).__name__}: {exc}") from None
        if not ok:
            raise ActionError(f"ldap: password change on {dn} failed: {_why(self.conn)}")

    def _search(self, base: str, flt: str, scope: str, *, missing_ok: bool = False) -> None:
        try:
            self.conn.search(
                base, flt, search_scope=scope, attributes=[ALL_ATTRIBUTES, ALL_OPERATIONAL_ATTRIBUTES]
            )
        except LDAPException as exc:
            raise ActionError(f"ldap: search under {base} failed: {type(exc).__name__}: {exc}") from None
        code = (self.conn.result or {}).get("result", 0)
        if code == 32 and missing_ok:  # noSuchObject
            return
        if code not in (0, 32):
            raise ActionError(f"ldap: search under {base} failed: {_why(self.conn)}")
