"""Blocklists that Bastion serves to firewalls as External Dynamic Lists, and the ``edl.*`` actions.

A tenant's list is served at ``GET /edl/{tenant}/{list}.txt``: one entry per line, unexpired entries only,
sorted, ``text/plain`` - the format Palo Alto (External Dynamic List), Fortinet (External threat feed)
and Check Point (Custom Intelligence Feed / Network Feed) poll. A list holds IP addresses, CIDRs,
domains and URLs together and serves all of them; the firewall's list object picks one kind with
``?type=ip`` (addresses and CIDRs), ``?type=domain`` or ``?type=url`` (served without the scheme, as
PAN-OS URL lists expect), because each firewall object accepts one kind only.

The list's token is made when the list is created, shown once, and stored as its SHA-256; a poll sends
it as ``?token=``, ``Authorization: Bearer`` or as the password of HTTP Basic auth (what PAN-OS and
FortiGate offer), and it is compared in constant time. ``edl.add`` is a containment action: it records
a change whose undo is ``edl.remove`` and whose expiry (``expires_in``) removes the entry on time; an
entry with an expiry also simply stops being served once it passes.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import ipaddress
import re
import secrets
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy import Connection, delete, select, update

from bastion.connectors.changes import record_change
from bastion.connectors.registry import ActionContext, ActionError, action
from bastion.connectors.undo import find_step_change, step_key
from bastion.store import Database
from bastion.store._util import now_ms
from bastion.store.audit import AuditRepository
from bastion.store.connectors import blocklist_entries, blocklists

__all__ = [
    "BlocklistError",
    "Kind",
    "add",
    "add_entry",
    "create_list",
    "expires_at",
    "get_list",
    "list_entries",
    "list_lists",
    "normalise_domain",
    "normalise_value",
    "remove",
    "remove_entry",
    "render",
    "rotate_token",
    "serve_list",
    "show",
]

Kind = Literal["ip", "cidr", "domain", "url"]
_LIST_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,99}$")
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_SERVE_KINDS: dict[str, tuple[str, ...]] = {
    "ip": ("ip", "cidr"),
    "domain": ("domain",),
    "url": ("url",),
    "all": ("ip", "cidr", "domain", "url"),
}


class BlocklistError(ActionError):
    """A blocklist request that cannot be done (unknown list, invalid value); the message says why."""


# ------------------------------------------------------------------------------------- values


def normalise_domain(value: str) -> str:
    """``Evil.Example.`` -> ``evil.example``; internationalised names become their ``xn--`` form.
    Raises BlocklistError for anything that is not a host name with at least two labels."""
    text = value.strip().rstrip(".").lower()
    if text.startswith("*."):
        text = text[2:]  # a wildcard blocks the domain and below, as every entry here does
    try:
        text = text.encode("idna").decode("ascii")
    except UnicodeError:
        raise BlocklistError(f"invalid domain {value!r}") from None
    labels = text.split(".")
    if len(text) > 253 or len(labels) < 2 or not all(_LABEL.match(label) for label in labels):
        raise BlocklistError(f"invalid domain {value!r}: give a host name such as evil.example")
    if labels[-1].isdigit():
        raise BlocklistError(f"invalid domain {value!r}: looks like an IP address")
    return text


def _looks_like_network(text: str) -> bool:
    """``ADDRESS/PREFIX`` (digits, or a dotted netmask): meant as a network, never a URL path."""
    address, _, prefix = text.partition("/")
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return False
    return bool(prefix) and all(c.isdigit() or c == "." for c in prefix)


def _network(text: str, value: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """The network a new entry names, exactly: a prefix longer than the address allows, host bits set
    (``10.1.2.3/8``: which network was meant?) or a /0 (every address) is refused."""
    try:
        net = ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise BlocklistError(
            f"invalid network {value!r}: the prefix must be a length (0-32 for IPv4, 0-128 for IPv6) "
            "or a netmask"
        ) from None
    if net.prefixlen == 0:
        raise BlocklistError(
            f"refusing {value!r}: a /0 network is every address, and a firewall would block everything"
        )
    if ipaddress.ip_address(text.partition("/")[0]) != net.network_address:
        raise BlocklistError(f"invalid network {value!r}: host bits are set; the network is {net.compressed}")
    return net


def normalise_value(value: str, *, strict: bool = True) -> tuple[Kind, str]:
    """(kind, canonical form) of an IP, CIDR, domain or http(s) URL; BlocklistError otherwise.

    A CIDR must name its network exactly (not ``10.1.2.3/8``) and not be a /0; a /32 (or /128) is an
    IP. URLs lose the scheme and fragment and keep host (lower case), port, path and query; a value with
    a path and no scheme (``bad.example/x``) is a URL too, but ``ADDRESS/DIGITS`` is always a network.
    ``strict=False`` (removing) reads a value as it was read when entries were stored before these checks
    (host bits dropped, a /0 kept, a bad prefix a URL), so that such entries can still be removed."""
    text = str(value).strip()
    if not text:
        raise BlocklistError("empty value: give an IP, CIDR, domain or URL")
    if any(c.isspace() for c in text):
        raise BlocklistError(f"invalid value {value!r}: no spaces allowed")
    try:
        return "ip", ipaddress.ip_address(text).compressed
    except ValueError:
        pass
    if "/" in text and "://" not in text:
        net = None
        if strict and _looks_like_network(text):
            net = _network(text, value)
        elif not strict:
            with contextlib.suppress(ValueError):
                net = ipaddress.ip_network(text, strict=False)
        if net is not None:
            if net.prefixlen == net.max_prefixlen:
                return "ip", net.network_address.compressed
            return "cidr", net.compressed
        text = "http://" + text  # a URL without its scheme, as URL lists write them
    if "://" in text:
        parts = urlsplit(text)
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            raise BlocklistError(f"invalid URL {value!r}: only http(s) URLs with a host")
        try:
            host = ipaddress.ip_address(parts.hostname).compressed
        except ValueError:
            host = normalise_domain(parts.hostname)
        netloc = f"{host}:{parts.port}" if parts.port else host
        rest = urlunsplit(("", "", parts.path or "/", parts.query, ""))
        return "url", (netloc + rest) if rest != "/" else netloc + "/"
    return "domain", normalise_domain(text)


def expires_at(expires_in: str | int | float | None, *, now: int | None = None) -> int | None:
    """Epoch milliseconds ``expires_in`` (``"24h"``, ``"30m"``, seconds) from now; None for none."""
    from bastion.respond.model import parse_duration

    if expires_in is None or expires_in == "":
        return None
    try:
        seconds = parse_duration(expires_in)
    except ValueError as exc:
        raise BlocklistError(str(exc)) from None
    if seconds <= 0:
        raise BlocklistError(f"expires_in must be positive, not {expires_in!r}")
    return (now if now is not None else now_ms()) + int(seconds * 1000)


# ---------------------------------------------------------------------------------- repository


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _check_name(name: str) -> str:
    if not _LIST_NAME.match(name):
        raise BlocklistError(
            f"invalid list name {name!r}: lower-case letters, digits, '-' and '_' (at most 100)"
        )
    return name


def get_list(conn: Connection, tenant_id: str, name: str) -> dict[str, Any] | None:
    row = conn.execute(
        select(blocklists).where(blocklists.c.tenant_id == tenant_id, blocklists.c.name == name)
    ).first()
    return {"name": row.name, "created": row.created} if row else None


def _require_list(conn: Connection, tenant_id: str, name: str) -> None:
    if get_list(conn, tenant_id, name) is None:
        raise BlocklistError(f"no blocklist {name!r} in this tenant (`bastion blocklist create {name}`)")


def create_list(db: Database, tenant_id: str, name: str, *, actor: str) -> str:
    """Create the list and return its token (shown once; only its hash is kept)."""
    _check_name(name)
    token = secrets.token_urlsafe(32)
    with db.write() as conn:
        if get_list(conn, tenant_id, name) is not None:
            raise BlocklistError(
                f"blocklist {name!r} already exists (`bastion blocklist token` renews its token)"
            )
        conn.execute(
            blocklists.insert().values(
                tenant_id=tenant_id, name=name, token_hash=_hash(token), created=now_ms()
            )
        )
        AuditRepository(conn, tenant_id).append(actor, "blocklist.create", "blocklist", name)
    return token


def rotate_token(db: Database, tenant_id: str, name: str, *, actor: str) -> str:
    """A new token for the list; the old one stops working at once."""
    token = secrets.token_urlsafe(32)
    with db.write() as conn:
        _require_list(conn, tenant_id, name)
        conn.execute(
            update(blocklists)
            .where(blocklists.c.tenant_id == tenant_id, blocklists.c.name == name)
            .values(token_hash=_hash(token))
        )
        AuditRepository(conn, tenant_id).append(actor, "blocklist.token", "blocklist", name)
    return token


def list_lists(conn: Connection, tenant_id: str, *, now: int | None = None) -> list[dict[str, Any]]:
    """The tenant's lists with how many entries each serves now."""
    t = now if now is not None else now_ms()
    out = []
    for row in conn.execute(
        select(blocklists.c.name, blocklists.c.created)
        .where(blocklists.c.tenant_id == tenant_id)
        .order_by(blocklists.c.name)
    ):
        served = len(list_entries(conn, tenant_id, row.name, now=t))
        out.append({"name": row.name, "created": row.created, "entries": served})
    return out


def _entry(row: Any) -> dict[str, Any]:
    return {
        "value": row.value,
        "kind": row.kind,
        "reason": row.reason,
        "added_by": row.added_by,
        "created": row.created,
        "expires": row.expires,
    }


def _live(t: int) -> Any:
    return (blocklist_entries.c.expires.is_(None)) | (blocklist_entries.c.expires > t)


def list_entries(
    conn: Connection, tenant_id: str, name: str, *, now: int | None = None, include_expired: bool = False
) -> list[dict[str, Any]]:
    """The list's entries sorted by value; unexpired ones only unless ``include_expired``."""
    query = select(blocklist_entries).where(
        blocklist_entries.c.tenant_id == tenant_id, blocklist_entries.c.list == name
    )
    if not include_expired:
        query = query.where(_live(now if now is not None else now_ms()))
    return [_entry(r) for r in conn.execute(query.order_by(blocklist_entries.c.value))]


def add_entry(
    conn: Connection,
    tenant_id: str,
    name: str,
    value: str,
    *,
    added_by: str,
    reason: str | None = None,
    expires: int | None = None,
    now: int | None = None,
) -> dict[str, Any]:
    """Add ``value`` (normalised) to the list. A live entry already there is left as it is
    (``added: False``); an expired one is replaced."""
    _require_list(conn, tenant_id, name)
    kind, canonical = normalise_value(value)
    t = now if now is not None else now_ms()
    where = (
        blocklist_entries.c.tenant_id == tenant_id,
        blocklist_entries.c.list == name,
        blocklist_entries.c.value == canonical,
    )
    found = conn.execute(select(blocklist_entries).where(*where)).first()
    if found is not None and (found.expires is None or found.expires > t):
        return {**_entry(found), "added": False}
    if found is not None:
        conn.execute(delete(blocklist_entries).where(*where))
    row = {
        "tenant_id": tenant_id,
        "list": name,
        "value": canonical,
        "kind": kind,
        "reason": reason or None,
        "added_by": added_by,
        "created": t,
        "expires": expires,
    }
    conn.execute(blocklist_entries.insert().values(**row))
    return {
        "value": canonical,
        "kind": kind,
        "reason": row["reason"],
        "added_by": added_by,
        "created": t,
        "expires": expires,
        "added": True,
    }


def remove_entry(conn: Connection, tenant_id: str, name: str, value: str) -> bool:
    """Remove ``value`` (normalised) from the list; False when it was not there."""
    _require_list(conn, tenant_id, name)
    _, canonical = normalise_value(value, strict=False)
    gone = conn.execute(
        delete(blocklist_entries).where(
            blocklist_entries.c.tenant_id == tenant_id,
            blocklist_entries.c.list == name,
            blocklist_entries.c.value == canonical,
        )
    )
    return bool(gone.rowcount)


def render(values: list[str]) -> str:
    """The EDL body: one entry per line, newline-terminated (empty list: empty body)."""
    return "".join(f"{v}\n" for v in values)


def serve_list(
    conn: Connection,
    tenant_id: str,
    name: str,
    token: str | None,
    *,
    kind: str = "all",
    now: int | None = None,
) -> str | None:
    """The EDL body of the list for a poll with ``token``; None when the token is wrong or missing.
    Raises BlocklistError when the list does not exist or ``kind`` is unknown."""
    if kind not in _SERVE_KINDS:
        raise BlocklistError(f"unknown type {kind!r}: use ip, domain, url or all")
    row = conn.execute(
        select(blocklists.c.token_hash).where(blocklists.c.tenant_id == tenant_id, blocklists.c.name == name)
    ).first()
    if row is None:
        raise BlocklistError(f"no blocklist {name!r}")
    if not hmac.compare_digest(_hash(token or ""), row.token_hash) or not token:
        return None
    kinds = _SERVE_KINDS[kind]
    return render([e["value"] for e in list_entries(conn, tenant_id, name, now=now) if e["kind"] in kinds])


# ------------------------------------------------------------------------------------- actions


def _db() -> Database:
    from bastion.respond.engine import configured_store

    try:
        return configured_store()
    except RuntimeError as exc:
        raise ActionError(str(exc)) from None


def _actor(ctx: ActionContext) -> str:
    return f"workflow:{ctx.run_id}" if ctx.run_id else "workflow"


@action("edl.add", impact="high", idempotent=True)
async def add(
    list: str, value: str, reason: str = "", expires_in: str | None = None, *, ctx: ActionContext
) -> dict[str, Any]:
    """Block an IP, CIDR, domain or URL by adding it to a blocklist that firewalls poll as an EDL.

    Records a change whose undo is edl.remove; with expires_in the block is removed when it expires.
    A value already live on the list is left alone and no change is recorded (change_id is null).

    Args:
        list: the blocklist's name (created with `bastion blocklist create`)
        value: an IP address, CIDR, domain or http(s) URL; normalised before it is stored
        reason: why it is blocked (shown to people, not served)
        expires_in: how long the block lasts, e.g. "24h", "30m", "7d"; empty for no expiry
    """
    expires = expires_at(expires_in)
    db = _db()
    kind, canonical = normalise_value(value)
    target = f"{list}:{canonical}"
    with db.write() as conn:
        earlier = find_step_change(conn, ctx, "edl.add", target)
        entry = add_entry(
            conn, ctx.tenant_id, list, canonical, added_by=_actor(ctx), reason=reason, expires=expires
        )
    if earlier is not None:
        return {**entry, "list": list, "added": True, "change_id": earlier}
    change_id = None
    if entry["added"]:
        change_id = record_change(
            ctx,
            action="edl.add",
            target=target,
            prior={"present": False},
            change={
                "list": list,
                "value": canonical,
                "kind": kind,
                "expires": expires,
                **step_key(ctx),
            },
            undo_action="edl.remove",
            undo_inputs={"list": list, "value": canonical},
            expires=expires,
        )
    ctx.log(f"edl: {canonical} {'added to' if entry['added'] else 'already on'} {list}")
    return {**entry, "list": list, "change_id": change_id}


@action("edl.remove", impact="low", idempotent=True)
async def remove(list: str, value: str, *, ctx: ActionContext) -> dict[str, Any]:
    """Remove a value from a blocklist (the undo of edl.add); removing an absent value is not an error.

    Args:
        list: the blocklist's name
        value: the IP address, CIDR, domain or URL to remove (normalised like edl.add)
    """
    _, canonical = normalise_value(value, strict=False)
    with _db().write() as conn:
        removed = remove_entry(conn, ctx.tenant_id, list, canonical)
    ctx.log(f"edl: {canonical} {'removed from' if removed else 'was not on'} {list}")
    return {"list": list, "value": canonical, "removed": removed}


@action("edl.list", impact="read", idempotent=True)
async def show(list: str, include_expired: bool = False, *, ctx: ActionContext) -> dict[str, Any]:
    """The entries of a blocklist, as served to firewalls (unexpired only by default).

    Args:
        list: the blocklist's name
        include_expired: also return entries whose expiry has passed
    """
    with _db().read() as conn:
        _require_list(conn, ctx.tenant_id, list)
        entries = list_entries(conn, ctx.tenant_id, list, include_expired=include_expired)
    return {"list": list, "count": len(entries), "entries": entries}
