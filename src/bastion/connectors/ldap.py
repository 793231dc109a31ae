"""LDAP / Active Directory response actions: find a user, disable and enable an account, force a password
reset, remove from and add to a group, list a group's members (``ldap3``, connection ``ldap``).

How an account is disabled, per directory (``settings.flavor``):

* ``ad``: the ACCOUNTDISABLE bit (0x2) of ``userAccountControl`` is set; enable clears it.
* ``openldap`` has no account-disabled flag, so ``settings.lock`` picks one of two schemes
  (``auto``, the default, uses ``ppolicy`` when the server's schema has ``pwdAccountLockedTime``):

  - ``ppolicy``: ``pwdAccountLockedTime: 000001010000Z``, the password-policy overlay's "locked until an
    administrator unlocks" value. The overlay must be active on the database with ``pwdLockout: TRUE`` in
    the applicable policy, or slapd ignores the attribute. Enable deletes ``pwdAccountLockedTime``.
  - ``password``: every ``userPassword`` value gets the prefix ``{BASTION-LOCKED}``, which matches no
    hash scheme and no typed password, so binds fail; enable strips it. The hash itself is kept, so the
    user's password works again afterwards. Moving the entry to another OU is deliberately not used:
    it changes the DN that groups and applications refer to.

Disable and remove-from-group record the prior state with :func:`record_change` and name their undo
(``ldap.enable_user``, ``ldap.add_to_group``). A password reset has no undo: the old password is gone.
"""

from __future__ import annotations

import asyncio
import secrets as secrets_mod
import string
from collections.abc import Callable
from typing import Any, TypeVar

from bastion.connectors.changes import record_change
from bastion.connectors.ldap_client import Directory, Entry, check_address, config_from, entry_username
from bastion.connectors.registry import ActionContext, ActionError, action
from bastion.connectors.undo import earlier_change, step_key

__all__ = [
    "add_to_group",
    "disable_user",
    "enable_user",
    "find_user",
    "list_group_members",
    "remove_from_group",
    "reset_password",
]

SECRETS = ("ldap_bind_dn", "ldap_bind_password")
LOCKED_FOREVER = b"000001010000Z"  # ppolicy: locked until an administrator unlocks
MARKER = b"{BASTION-LOCKED}"
ACCOUNTDISABLE = 0x2
MAX_RESOLVED = 200  # members looked up one by one to find their user name

T = TypeVar("T")


async def _run(ctx: ActionContext, work: Callable[[Directory], T]) -> T:
    """Bind with the step's connection and run ``work`` in a thread (ldap3 blocks)."""
    cfg = config_from(ctx)
    await check_address(cfg)

    def call() -> T:
        with Directory(cfg) as d:
            return work(d)

    return await asyncio.to_thread(call)


def _need_store() -> None:
    """Fail before touching the directory when the change could not be recorded afterwards."""
    from bastion.respond.engine import configured_store

    try:
        configured_store()
    except RuntimeError as exc:
        raise ActionError(str(exc)) from None


def _lock_scheme(d: Directory) -> str:
    if d.cfg.flavor == "ad":
        return "userAccountControl"
    has_ppolicy = d.knows("pwdAccountLockedTime")
    if d.cfg.lock == "ppolicy" and not has_ppolicy:
        raise ActionError("ldap: settings.lock is ppolicy but the server has no ppolicy overlay schema")
    return "ppolicy" if d.cfg.lock == "ppolicy" or (d.cfg.lock == "auto" and has_ppolicy) else "password"


def _passwords(user: Entry) -> list[bytes]:
    return [v for k, vals in user.raw.items() if k.lower() == "userpassword" for v in vals]


def _uac(user: Entry) -> int:
    raw = user.first_raw("userAccountControl")
    return int(raw) if raw else 0


def _status(d: Directory, user: Entry) -> str:
    """``disabled`` (by any scheme above), ``locked`` (a ppolicy lockout after failed binds) or ``active``."""
    if d.cfg.flavor == "ad":
        return "disabled" if _uac(user) & ACCOUNTDISABLE else "active"
    pw = _passwords(user)
    if user.first_raw("pwdAccountLockedTime") == LOCKED_FOREVER or (
        pw and all(v.startswith(MARKER) for v in pw)
    ):
        return "disabled"
    return "locked" if user.first_raw("pwdAccountLockedTime") else "active"


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return value if isinstance(value, str | int | float | bool) or value is None else str(value)


_SHOWN = (
    "cn",
    "displayName",
    "mail",
    "sn",
    "givenName",
    "title",
    "department",
    "manager",
    "memberOf",
    "employeeType",
    "userPrincipalName",
    "pwdChangedTime",
    "pwdReset",
    "pwdLastSet",
)


def _describe(d: Directory, user: Entry) -> dict[str, Any]:
    attrs: dict[str, Any] = {}
    for name in _SHOWN:
        values = [_plain(v) for v in user.values(name)]
        if values:
            attrs[name] = values if name == "memberOf" else values[0]
    out: dict[str, Any] = {
        "dn": user.dn,
        "username": _plain((user.values(d.cfg.user_attr) or [None])[0]),
        "status": _status(d, user),
        "attributes": attrs,
        "object_classes": [str(c) for c in user.values("objectClass")],
    }
    if d.cfg.flavor == "ad":
        out["user_account_control"] = _uac(user)
    return out


@action("ldap.find_user", impact="read", secrets=SECRETS, connection="ldap")
async def find_user(username: str, *, ctx: ActionContext) -> dict[str, Any]:
    """Look a user up by name (``uid`` or ``sAMAccountName``): DN, status and main attributes. Passwords
    are never returned.

    Args:
        username: the user's login name (the connection's settings.user_attr)
    """
    return await _run(ctx, lambda d: _describe(d, d.user(username)))


@action("ldap.disable_user", impact="high", secrets=SECRETS, idempotent=True, connection="ldap")
async def disable_user(username: str, *, ctx: ActionContext) -> dict[str, Any]:
    """Disable an account so it can no longer bind (see the module docs for the scheme per directory). The
    prior state is recorded and ``ldap.enable_user`` undoes it; an account already disabled is left
    alone and nothing new is recorded (``changed: false``; ``change_id`` is the change an earlier attempt
    with the same idempotency key recorded, else null).

    Args:
        username: the user's login name (the connection's settings.user_attr)
    """
    _need_store()

    def work(d: Directory) -> dict[str, Any]:
        user = d.user(username)
        scheme = _lock_scheme(d)
        prior: dict[str, Any] = {"status": _status(d, user), "scheme": scheme}
        out = {"username": username, "dn": user.dn, "disabled": True, "scheme": scheme, "changed": False}
        if scheme == "userAccountControl":
            uac = _uac(user)
            prior["userAccountControl"] = uac
            if not uac & ACCOUNTDISABLE:
                d.modify(
                    user.dn,
                    {"userAccountControl": [("MODIFY_REPLACE", [str(uac | ACCOUNTDISABLE)])]},
                    "disable",
                )
                out["changed"] = True
        elif scheme == "ppolicy":
            locked = user.first_raw("pwdAccountLockedTime")
            prior["pwdAccountLockedTime"] = locked.decode() if locked else None
            if locked != LOCKED_FOREVER:
                d.modify(
                    user.dn,
                    {"pwdAccountLockedTime": [("MODIFY_REPLACE", [LOCKED_FOREVER.decode()])]},
                    "disable",
                )
                out["changed"] = True
        else:
            values = _passwords(user)
            if not values:
                raise ActionError(f"ldap: {username} has no userPassword to lock; load the ppolicy overlay")
            if not all(v.startswith(MARKER) for v in values):
                locked_values = [v if v.startswith(MARKER) else MARKER + v for v in values]
                d.modify(user.dn, {"userPassword": [("MODIFY_REPLACE", locked_values)]}, "disable")
                out["changed"] = True
        out["prior"] = prior
        return out

    out = await _run(ctx, work)
    out["change_id"] = earlier_change(ctx, "ldap.disable_user", out["dn"])
    if out["changed"]:
        out["change_id"] = record_change(
            ctx,
            action="ldap.disable_user",
            target=out["dn"],
            prior=out["prior"],
            change={
                "disabled": True,
                "scheme": out["scheme"],
                **step_key(ctx),
            },
            undo_action="ldap.enable_user",
            undo_inputs={"username": username},
        )
    return out


@action("ldap.enable_user", impact="high", secrets=SECRETS, idempotent=True, connection="ldap")
async def enable_user(username: str, *, ctx: ActionContext) -> dict[str, Any]:
    """Enable an account again (the undo of ``ldap.disable_user``): clear the AD disabled bit, or on
    OpenLDAP delete the ppolicy lock (also a lockout after failed binds) and strip the password marker.

    Args:
        username: the user's login name (the connection's settings.user_attr)
    """

    def work(d: Directory) -> dict[str, Any]:
        user = d.user(username)
        before = _status(d, user)
        changed = False
        if d.cfg.flavor == "ad":
            uac = _uac(user)
            if uac & ACCOUNTDISABLE:
                d.modify(
                    user.dn,
                    {"userAccountControl": [("MODIFY_REPLACE", [str(uac & ~ACCOUNTDISABLE)])]},
                    "enable",
                )
                changed = True
        else:
            if user.first_raw("pwdAccountLockedTime"):
                d.modify(user.dn, {"pwdAccountLockedTime": [("MODIFY_DELETE", [])]}, "enable")
                changed = True
            values = _passwords(user)
            if any(v.startswith(MARKER) for v in values):
                plain = [v[len(MARKER) :] if v.startswith(MARKER) else v for v in values]
                d.modify(user.dn, {"userPassword": [("MODIFY_REPLACE", plain)]}, "enable")
                changed = True
        return {
            "username": username,
            "dn": user.dn,
            "enabled": True,
            "changed": changed,
            "prior_status": before,
        }

    return await _run(ctx, work)


def _new_password(length: int = 24) -> str:
    """Random, with every character class, so AD's complexity rule accepts it."""
    classes = [string.ascii_lowercase, string.ascii_uppercase, string.digits, "!#%+-=?@^_~"]
    chars = [secrets_mod.choice(c) for c in classes]
    chars += [secrets_mod.choice("".join(classes)) for _ in range(length - len(chars))]
    secrets_mod.SystemRandom().shuffle(chars)
    return "".join(chars)


@action("ldap.reset_password", impact="high", secrets=SECRETS, connection="ldap")
async def reset_password(
    username: str, must_change: bool = True, return_password: bool = False, *, ctx: ActionContext
) -> dict[str, Any]:
    """Force a password reset: set a random password (the old one stops working) and make the user change
    it at next logon (``pwdReset: TRUE`` with ppolicy, ``pwdLastSet=0`` on AD). This cannot be undone
    (the old password is gone), so no change is recorded. On OpenLDAP the password is set with the
    Password Modify operation (the server hashes it); on AD ``unicodePwd`` is replaced, which AD accepts
    only over ldaps:// or StartTLS. A disabled account stays disabled.

    Args:
        username: the user's login name (the connection's settings.user_attr)
        must_change: require a change at next logon (ppolicy pwdReset, AD pwdLastSet=0)
        return_password: put the new password in the output (field ``password``); off by default so it
            never reaches logs or the run record
    """
    password = _new_password()

    def work(d: Directory) -> dict[str, Any]:
        user = d.user(username)
        forced = False
        if d.cfg.flavor == "ad":
            changes: dict[str, Any] = {
                "unicodePwd": [("MODIFY_REPLACE", [f'"{password}"'.encode("utf-16-le")])]
            }
            if must_change:
                changes["pwdLastSet"] = [("MODIFY_REPLACE", ["0"])]
                forced = True
            d.modify(user.dn, changes, "password reset")
        else:
            marked = any(v.startswith(MARKER) for v in _passwords(user))
            d.set_password(user.dn, password)
            if marked:  # keep a password-marker lock in place
                fresh = d.user(username)
                d.modify(
                    fresh.dn,
                    {"userPassword": [("MODIFY_REPLACE", [MARKER + v for v in _passwords(fresh)])]},
                    "keep disabled",
                )
            if must_change and d.knows("pwdReset"):
                d.modify(user.dn, {"pwdReset": [("MODIFY_REPLACE", ["TRUE"])]}, "force password change")
                forced = True
        return {"username": username, "dn": user.dn, "reset": True, "must_change": forced}

    out = await _run(ctx, work)
    out["undoable"] = False
    out["note"] = "a password reset cannot be undone: the previous password is gone"
    if return_password:
        out["password"] = password
    ctx.log(f"reset the password of {out['dn']}")
    return out


def _membership(d: Directory, group: Entry, user: Entry, username: str) -> tuple[str, bytes | str, bool]:
    """(attribute, value naming the user, whether the user is in the group) for the group's kind."""
    classes = {str(c).lower() for c in group.values("objectClass")}
    if "posixgroup" in classes and "groupofnames" not in classes:
        current = {str(v) for v in group.values("memberUid")}
        return "memberUid", username, username in current
    attr = "uniqueMember" if "groupofuniquenames" in classes else "member"
    current_dns = {str(v).lower() for v in group.values(attr)}
    return attr, user.dn, user.dn.lower() in current_dns


@action("ldap.remove_from_group", impact="high", secrets=SECRETS, idempotent=True, connection="ldap")
async def remove_from_group(username: str, group: str, *, ctx: ActionContext) -> dict[str, Any]:
    """Remove a user from a group (``member``, ``uniqueMember`` or ``memberUid``). The prior membership is
    recorded and ``ldap.add_to_group`` undoes it; a user who is not a member is left alone
    (``changed: false``; ``change_id`` is the change an earlier attempt with the same idempotency key
    recorded, else null).

    Args:
        username: the user's login name (the connection's settings.user_attr)
        group: the group's cn under settings.group_base, or its full DN
    """
    _need_store()

    def work(d: Directory) -> dict[str, Any]:
        user = d.user(username)
        grp = d.group(group)
        attr, value, member = _membership(d, grp, user, username)
        if member:
            d.modify(grp.dn, {attr: [("MODIFY_DELETE", [value])]}, f"removing {username}")
        return {"username": username, "dn": user.dn, "group": grp.dn, "attribute": attr, "changed": member}

    out = await _run(ctx, work)
    out["removed"] = True
    target = f"{out['dn']} in {out['group']}"
    out["change_id"] = earlier_change(ctx, "ldap.remove_from_group", target)
    if out["changed"]:
        out["change_id"] = record_change(
            ctx,
            action="ldap.remove_from_group",
            target=target,
            prior={"member": True, "group": out["group"], "attribute": out["attribute"]},
            change={
                "removed": out["dn"],
                "group": out["group"],
                **step_key(ctx),
            },
            undo_action="ldap.add_to_group",
            undo_inputs={"username": username, "group": out["group"]},
        )
    return out


@action("ldap.add_to_group", impact="low", secrets=SECRETS, idempotent=True, connection="ldap")
async def add_to_group(username: str, group: str, *, ctx: ActionContext) -> dict[str, Any]:
    """Add a user to a group (the undo of ``ldap.remove_from_group``); a member already is left alone.

    Args:
        username: the user's login name (the connection's settings.user_attr)
        group: the group's cn under settings.group_base, or its full DN
    """

    def work(d: Directory) -> dict[str, Any]:
        user = d.user(username)
        grp = d.group(group)
        attr, value, member = _membership(d, grp, user, username)
        if not member:
            d.modify(grp.dn, {attr: [("MODIFY_ADD", [value])]}, f"adding {username}")
        return {"username": username, "dn": user.dn, "group": grp.dn, "added": True, "changed": not member}

    return await _run(ctx, work)


@action("ldap.list_group_members", impact="read", secrets=SECRETS, connection="ldap")
async def list_group_members(group: str, *, ctx: ActionContext) -> dict[str, Any]:
    """List a group's members with their DN and user name (read from the DN, else from the entry, for the
    first 200 members whose DN does not carry it).

    Args:
        group: the group's cn under settings.group_base, or its full DN
    """

    def work(d: Directory) -> dict[str, Any]:
        grp = d.group(group)
        members: list[dict[str, Any]] = []
        looked_up = 0
        for uid in grp.values("memberUid"):
            members.append({"dn": None, "username": str(uid)})
        for attr in ("member", "uniqueMember"):
            for dn in (str(v) for v in grp.values(attr)):
                name = entry_username(dn, d.cfg.user_attr)
                if name is None and looked_up < MAX_RESOLVED:
                    looked_up += 1
                    found = d.entry(dn)
                    name = _plain((found.values(d.cfg.user_attr) or [None])[0]) if found else None
                members.append({"dn": dn, "username": name})
        return {"group": grp.dn, "count": len(members), "members": members}

    return await _run(ctx, work)
