"""Who is using the console: password sign-in, sessions, roles and CSRF protection.

A session is a random cookie value; only its SHA-256 is stored (``web_sessions``), so a leaked database
does not hand out live sessions. Every state-changing request (any method but GET/HEAD/OPTIONS) must
carry the session's CSRF token, in the form field ``csrf`` or the header ``X-CSRF-Token``. Failed
sign-ins are counted per account and per client address in ``web_login_failures`` (shared by every
process on the same store), and lock further attempts for a growing time. Roles are checked with the
same ranks as the API's ``require_role``. Sign-in, sign-out and refusals are audited.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy import Connection, delete, select, update
from sqlalchemy.exc import IntegrityError
from starlette.concurrency import run_in_threadpool

from bastion.model import ROLE_RANK, Role
from bastion.store import Database, TenantRepository, TenantScope
from bastion.store.tables import tenants, users
from bastion.store.web import web_login_failures, web_sessions
from bastion.tenancy.keys import verify_password
from bastion.tenancy.service import Principal

__all__ = [
    "CSRF_FIELD",
    "CSRF_HEADER",
    "SESSION_COOKIE",
    "AdminUser",
    "AnalystUser",
    "CurrentUser",
    "EngineerUser",
    "Forbidden",
    "NotSignedIn",
    "SignInRefused",
    "SignedIn",
    "Throttled",
    "check_csrf",
    "end_session",
    "has_role",
    "require_role",
    "sign_in",
    "signed_in",
]

SESSION_COOKIE = "bastion_session"
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"
SESSION_TTL_MS = 12 * 3600 * 1000  # absolute lifetime of a session
IDLE_TTL_MS = 2 * 3600 * 1000  # a session unused this long is over
_TOUCH_EVERY_MS = 60 * 1000  # last_seen is written at most once a minute per session

# Throttling: after ACCOUNT_LIMIT failures for one tenant/user (or IP_LIMIT from one address) within
# WINDOW_MS, sign-in is locked for LOCK_BASE_MS, doubling with each further failure up to LOCK_MAX_MS.
ACCOUNT_LIMIT = 5
IP_LIMIT = 30
WINDOW_MS = 15 * 60 * 1000
LOCK_BASE_MS = 60 * 1000
LOCK_MAX_MS = 15 * 60 * 1000

_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class NotSignedIn(Exception):
    """No valid session: pages redirect to the sign-in page, other requests get 401."""


class Forbidden(Exception):
    """Signed in, but the role (or the CSRF token) does not allow this request: 403 with the reason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class SignInRefused(Exception):
    """Wrong tenant, user or password (the message never says which)."""


class Throttled(SignInRefused):
    def __init__(self, retry_after_s: int) -> None:
        super().__init__(f"too many failed sign-ins; try again in {retry_after_s} s")
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class SignedIn:
    """The signed-in user of a request."""

    tenant_id: str
    tenant_name: str
    user_id: str
    user_name: str
    role: Role
    csrf: str
    session_hash: str

    @property
    def actor(self) -> str:
        """How this user is named in the audit log (the same as an API key acting as the user)."""
        return f"user:{self.user_name}"

    @property
    def principal(self) -> Principal:
        """The same caller as the API's ``Principal``, for services that take one."""
        return Principal(
            tenant_id=self.tenant_id, tenant_name=self.tenant_name, role=self.role, user=self.user_name
        )

    def can(self, minimum: Role | str) -> bool:
        return has_role(self.role, Role(minimum))


def has_role(role: Role, minimum: Role) -> bool:
    """The API's rule: a role ranking at least ``minimum`` may (admin always ranks highest)."""
    return ROLE_RANK[role] >= ROLE_RANK[minimum]


def _now() -> int:
    return int(time.time() * 1000)


def _hash(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def _db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


# ---------------------------------------------------------------- sessions


def _lookup(db: Database, token: str) -> SignedIn | None:
    now = _now()
    digest = _hash(token)
    with db.read() as conn:
        row = conn.execute(
            select(
                web_sessions.c.tenant_id,
                web_sessions.c.user_id,
                web_sessions.c.csrf,
                web_sessions.c.last_seen,
                web_sessions.c.expires,
                users.c.name,
                users.c.role,
                users.c.disabled,
                tenants.c.name.label("tenant_name"),
            )
            .join(users, users.c.id == web_sessions.c.user_id)
            .join(tenants, tenants.c.id == web_sessions.c.tenant_id)
            .where(web_sessions.c.id_hash == digest, users.c.tenant_id == web_sessions.c.tenant_id)
        ).first()
    if row is None or row.disabled or row.expires <= now or row.last_seen + IDLE_TTL_MS <= now:
        return None
    if now - row.last_seen > _TOUCH_EVERY_MS:
        with db.write() as conn:
            conn.execute(update(web_sessions).where(web_sessions.c.id_hash == digest).values(last_seen=now))
    return SignedIn(
        tenant_id=row.tenant_id,
        tenant_name=row.tenant_name,
        user_id=row.user_id,
        user_name=row.name,
        role=Role(row.role),
        csrf=row.csrf,
        session_hash=digest,
    )


def signed_in(request: Request) -> SignedIn:
    """The dependency behind ``CurrentUser``: the session's user, or :class:`NotSignedIn`."""
    cached = getattr(request.state, "signed_in", None)
    if isinstance(cached, SignedIn):
        return cached
    token = request.cookies.get(SESSION_COOKIE)
    user = _lookup(_db(request), token) if token else None
    if user is None:
        raise NotSignedIn()
    request.state.signed_in = user
    return user


def optional_user(request: Request) -> SignedIn | None:
    try:
        return signed_in(request)
    except NotSignedIn:
        return None


CurrentUser = Annotated[SignedIn, Depends(signed_in)]


def require_role(minimum: Role) -> Callable[[SignedIn], SignedIn]:
    """A dependency that lets through users whose role ranks at least ``minimum``, else 403."""

    def check(user: CurrentUser) -> SignedIn:
        if not has_role(user.role, minimum):
            raise Forbidden(f"role {user.role.value!r} may not do this; it needs {minimum.value} or higher")
        return user

    return check


AnalystUser = Annotated[SignedIn, Depends(require_role(Role.ANALYST))]
EngineerUser = Annotated[SignedIn, Depends(require_role(Role.ENGINEER))]
AdminUser = Annotated[SignedIn, Depends(require_role(Role.ADMIN))]


async def check_csrf(request: Request) -> None:
    """Router-wide dependency: a state-changing request must carry the session's CSRF token."""
    if request.method in _SAFE_METHODS:
        return
    user = await run_in_threadpool(signed_in, request)  # a store read: not on the event loop
    token = request.headers.get(CSRF_HEADER)
    if not token:
        ctype = request.headers.get("content-type", "")
        if ctype.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            form = await request.form()
            value = form.get(CSRF_FIELD)
            token = value if isinstance(value, str) else None
    if not token or not hmac.compare_digest(token, user.csrf):
        raise Forbidden("missing or wrong CSRF token: reload the page and try again")


# ---------------------------------------------------------------- sign-in and throttling


def _failure_keys(tenant_name: str, user_name: str, client: str) -> list[tuple[str, int]]:
    return [
        (f"user:{tenant_name.lower()}/{user_name.lower()}"[:300], ACCOUNT_LIMIT),
        (f"ip:{client}", IP_LIMIT),
    ]


def _locked_for(conn: Connection, keys: list[tuple[str, int]], now: int) -> int:
    rows = conn.execute(
        select(web_login_failures.c.locked_until).where(web_login_failures.c.key.in_([k for k, _ in keys]))
    ).all()
    until = max((r.locked_until or 0 for r in rows), default=0)
    return max(0, (until - now + 999) // 1000)


def _record_failure(conn: Connection, keys: list[tuple[str, int]], now: int) -> None:
    for key, limit in keys:
        row = conn.execute(select(web_login_failures).where(web_login_failures.c.key == key)).first()
        if row is None or (row.first_failed + WINDOW_MS <= now and (row.locked_until or 0) <= now):
            failures, first = 1, now
        else:
            failures, first = row.failures + 1, row.first_failed
        locked = None
        if failures >= limit:
            locked = now + min(LOCK_MAX_MS, LOCK_BASE_MS * 2 ** (failures - limit))
        values = {"failures": failures, "first_failed": first, "locked_until": locked}
        if row is None:
            try:
                with conn.begin_nested():
                    conn.execute(web_login_failures.insert().values(key=key, **values))
                continue
            except IntegrityError:
                pass  # another process recorded the first failure at the same time
        conn.execute(update(web_login_failures).where(web_login_failures.c.key == key).values(**values))


_DUMMY: list[str] = []


def _dummy_hash() -> str:
    if not _DUMMY:
        from bastion.tenancy.keys import hash_password

        _DUMMY.append(hash_password(secrets.token_urlsafe(16)))
    return _DUMMY[0]


def sign_in(
    db: Database, tenant_name: str, user_name: str, password: str, client: str
) -> tuple[str, SignedIn]:
    """Check a password and open a session. Returns the cookie value (shown once) and the user.

    Raises :class:`Throttled` while the account or the address is locked (even for the right password),
    else :class:`SignInRefused` for a wrong tenant, user or password; each failure is counted.
    """
    now = _now()
    keys = _failure_keys(tenant_name, user_name, client)
    with db.read() as conn:
        wait = _locked_for(conn, keys, now)
        tenant = TenantRepository(conn).by_name(tenant_name) if tenant_name else None
        user = TenantScope(conn, tenant.id).users.by_name(user_name) if tenant else None
        stored = TenantScope(conn, tenant.id).users.password_hash(user_name) if tenant and user else None
    if wait:
        raise Throttled(wait)
    # An unknown user costs the same argon2 check as a known one: the time taken tells nothing.
    ok = verify_password(stored or _dummy_hash(), password) and stored is not None
    if not ok or tenant is None or user is None:
        with db.write() as conn:
            _record_failure(conn, keys, now)
            if tenant is not None:
                TenantScope(conn, tenant.id).audit.append(
                    f"web:{client}",
                    "web.signin_failed",
                    "user",
                    user.id if user else None,
                    {"user": user_name},
                )
        raise SignInRefused("wrong tenant, user or password")
    token = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    digest = _hash(token)
    with db.write() as conn:
        conn.execute(delete(web_login_failures).where(web_login_failures.c.key == keys[0][0]))
        conn.execute(delete(web_sessions).where(web_sessions.c.expires <= now))
        conn.execute(
            web_sessions.insert().values(
                id_hash=digest,
                tenant_id=tenant.id,
                user_id=user.id,
                csrf=csrf,
                created=now,
                last_seen=now,
                expires=now + SESSION_TTL_MS,
            )
        )
        TenantScope(conn, tenant.id).audit.append(
            f"user:{user.name}", "web.signin", "user", user.id, {"client": client}
        )
    return token, SignedIn(
        tenant_id=tenant.id,
        tenant_name=tenant.name,
        user_id=user.id,
        user_name=user.name,
        role=user.role,
        csrf=csrf,
        session_hash=digest,
    )


def end_session(db: Database, user: SignedIn) -> None:
    """Sign out: the session row is deleted, so the cookie stops working everywhere at once."""
    with db.write() as conn:
        conn.execute(delete(web_sessions).where(web_sessions.c.id_hash == user.session_hash))
        TenantScope(conn, user.tenant_id).audit.append(user.actor, "web.signout", "user", user.user_id, {})


def only_tenant(db: Database) -> str | None:
    """The tenant's name when the store has exactly one (the sign-in form then needs no tenant)."""
    with db.read() as conn:
        found = TenantRepository(conn).list()
    return found[0].name if len(found) == 1 else None


def cookie_args(request: Request) -> dict[str, Any]:
    """Attributes of the console's cookies: Secure when the console is served over https."""
    return {"httponly": True, "samesite": "lax", "secure": request.url.scheme == "https", "path": "/"}


DEMO_USER = "demo"


def demo_user(db: Database, tenant_name: str, user_name: str = DEMO_USER) -> tuple[str, str]:
    """For ``bastion up --demo``: make sure the demo tenant has a console user (admin) and give it a new
    random password, returned once to be printed (a rerun replaces the last one, and ends the sessions
    signed in with it). Audited."""
    from bastion.tenancy.service import add_user, set_user_disabled, set_user_password

    password = secrets.token_urlsafe(12)
    with db.read() as conn:
        tenant = TenantRepository(conn).by_name(tenant_name)
        if tenant is None:
            raise ValueError(f"no tenant {tenant_name!r}")
        existing = TenantScope(conn, tenant.id).users.by_name(user_name)
    if existing is None:
        add_user(db, tenant_name, user_name, Role.ADMIN, password=password, actor="demo")
        return user_name, password
    set_user_password(db, tenant.id, user_name, password, actor="demo")
    set_user_disabled(db, tenant.id, user_name, False, actor="demo")
    with db.write() as conn:
        conn.execute(delete(web_sessions).where(web_sessions.c.user_id == existing.id))
    return user_name, password
