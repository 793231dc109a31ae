"""Stored approvals: requests, the decisions on them, single-use link tokens, and Slack user mappings.

Every table carries ``tenant_id`` and every query of :class:`ApprovalRepository` filters on it, so one
tenant can neither see nor decide another's approvals. Status changes are conditional updates
(``... WHERE status = 'pending'``) whose row count tells the caller whether *it* made the change: that is
how a resolution is announced exactly once even when two channels decide at the same moment.
"""

from __future__ import annotations

import builtins
from typing import Any

import orjson
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    Float,
    ForeignKey,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from bastion.store._util import chunks
from bastion.store.tables import ID, metadata, users

__all__ = [
    "ApprovalRepository",
    "approval_decisions",
    "approval_link_tokens",
    "approval_settings",
    "approval_slack_users",
    "approvals",
]

approvals = Table(
    "approvals",
    metadata,
    Column("tenant_id", String(ID), ForeignKey("tenants.id"), nullable=False),
    # Chosen by the engine (deterministic per run and step), so a repeated request finds the same row.
    Column("id", String(200), nullable=False),
    Column("run_id", String(200), nullable=False),
    Column("step_id", String(200), nullable=False),
    Column("action", String(200), nullable=False),
    Column("summary", Text, nullable=False),
    Column("target", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("requested_by", String(200), nullable=True),
    Column("status", String(20), nullable=False),
    Column("roles", Text, nullable=False),
    Column("quorum", Integer, nullable=False),
    Column("allow_requester", Boolean, nullable=False),
    Column("timeout_s", Float, nullable=True),
    Column("on_timeout", String(20), nullable=False),
    Column("escalate_to", Text, nullable=False),
    Column("channels", Text, nullable=False),
    Column("escalated", Boolean, nullable=False),
    Column("requested_at", BigInteger, nullable=False),
    Column("deadline", BigInteger, nullable=True),
    Column("resolved_at", BigInteger, nullable=True),
    # Where the request was delivered (Slack channel and message ts, e-mail recipients, errors).
    Column("delivery", Text, nullable=False),
    # The child workflow (a ``for_each`` item or ``parallel`` branch) that waits in place for the
    # decision message; null when the run itself asked (it parks and is continued: respond.parking).
    Column("waiter", String(200), nullable=True),
    PrimaryKeyConstraint("tenant_id", "id"),
    Index(None, "tenant_id", "status", "requested_at"),
    Index(None, "status", "deadline"),  # the workers' sweep for requests past their deadline
)

approval_decisions = Table(
    "approval_decisions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("tenant_id", String(ID), ForeignKey("tenants.id"), nullable=False),
    Column("approval_id", String(200), nullable=False),
    Column("user", String(200), nullable=False),
    Column("decision", String(10), nullable=False),
    Column("channel", String(20), nullable=False),
    Column("comment", Text, nullable=True),
    Column("time", BigInteger, nullable=False),
    # One vote per user and approval, enforced by the database as well as by the service.
    UniqueConstraint("tenant_id", "approval_id", "user"),
)

approval_link_tokens = Table(
    "approval_link_tokens",
    metadata,
    Column("tenant_id", String(ID), ForeignKey("tenants.id"), nullable=False),
    Column("nonce", String(64), nullable=False),
    Column("approval_id", String(200), nullable=False),
    Column("user", String(200), nullable=False),
    Column("decision", String(10), nullable=False),
    Column("expires", BigInteger, nullable=False),
    Column("used_at", BigInteger, nullable=True),
    PrimaryKeyConstraint("tenant_id", "nonce"),
)

approval_slack_users = Table(
    "approval_slack_users",
    metadata,
    Column("tenant_id", String(ID), ForeignKey("tenants.id"), nullable=False),
    Column("slack_user_id", String(64), nullable=False),
    Column("user", String(200), nullable=False),
    PrimaryKeyConstraint("tenant_id", "slack_user_id"),
)

# Per-tenant channel settings (an MSSP posts each client's requests to that client's Slack channel).
approval_settings = Table(
    "approval_settings",
    metadata,
    Column("tenant_id", String(ID), ForeignKey("tenants.id"), primary_key=True),
    Column("slack_channel", String(100), nullable=True),
    Column("updated", BigInteger, nullable=False),
)


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def _row_dict(row: Any) -> dict[str, Any]:
    d = dict(row._mapping)
    for key in ("target", "roles", "escalate_to", "channels", "delivery"):
        d[key] = orjson.loads(d[key])
    return d


class ApprovalRepository:
    """Approvals of one tenant, as plain dicts (the service turns them into ``Approval`` objects)."""

    def __init__(self, conn: Connection, tenant_id: str) -> None:
        self.conn = conn
        self.tenant_id = tenant_id

    # ------------------------------------------------------------ requests

    def insert(self, values: dict[str, Any]) -> bool:
        """Store a new request; False when one with this id already exists (nothing is changed)."""
        row = dict(values)
        for key in ("target", "roles", "escalate_to", "channels", "delivery"):
            row[key] = _dumps(row[key])
        try:
            with self.conn.begin_nested():
                self.conn.execute(approvals.insert().values(tenant_id=self.tenant_id, **row))
        except IntegrityError:
            return False
        return True

    def get(self, approval_id: str, *, for_update: bool = False) -> dict[str, Any] | None:
        q = select(approvals).where(approvals.c.tenant_id == self.tenant_id, approvals.c.id == approval_id)
        if for_update:
            q = q.with_for_update()
        row = self.conn.execute(q).first()
        return _row_dict(row) if row is not None else None

    def get_many(self, approval_ids: builtins.list[str]) -> dict[str, dict[str, Any]]:
        """The requests of ``approval_ids`` that exist in this tenant, by id (one query per 500)."""
        found: dict[str, dict[str, Any]] = {}
        for part in chunks(approval_ids):
            q = select(approvals).where(approvals.c.tenant_id == self.tenant_id, approvals.c.id.in_(part))
            found.update((r.id, _row_dict(r)) for r in self.conn.execute(q))
        return found

    def ids_for_run(self, run_id: str) -> builtins.list[str]:
        """The ids of every request a run (or agent run) made, decided or not."""
        mine = approvals.c.tenant_id == self.tenant_id
        q = select(approvals.c.id).where(mine, approvals.c.run_id == run_id)
        return builtins.list(self.conn.execute(q).scalars())

    def list(self, *, status: str | None = None, limit: int = 100) -> builtins.list[dict[str, Any]]:
        q = select(approvals).where(approvals.c.tenant_id == self.tenant_id)
        if status is not None:
            q = q.where(approvals.c.status == status)
        q = q.order_by(approvals.c.requested_at.desc(), approvals.c.id).limit(limit)
        return [_row_dict(r) for r in self.conn.execute(q)]

    def transition(self, approval_id: str, *, to: str, at: int) -> bool:
        """Move a pending request to ``to``; True only for the caller that made the change."""
        result = self.conn.execute(
            update(approvals)
            .where(
                approvals.c.tenant_id == self.tenant_id,
                approvals.c.id == approval_id,
                approvals.c.status == "pending",
            )
            .values(status=to, resolved_at=at)
        )
        return result.rowcount == 1

    def escalate(self, approval_id: str, *, roles: builtins.list[str], deadline: int | None) -> bool:
        result = self.conn.execute(
            update(approvals)
            .where(
                approvals.c.tenant_id == self.tenant_id,
                approvals.c.id == approval_id,
                approvals.c.status == "pending",
                approvals.c.escalated.is_(False),
            )
            .values(roles=_dumps(roles), deadline=deadline, escalated=True)
        )
        return result.rowcount == 1

    def set_delivery(self, approval_id: str, delivery: dict[str, Any]) -> None:
        self.conn.execute(
            update(approvals)
            .where(approvals.c.tenant_id == self.tenant_id, approvals.c.id == approval_id)
            .values(delivery=_dumps(delivery))
        )

    # ------------------------------------------------------------ decisions

    def add_decision(
        self, approval_id: str, *, user: str, decision: str, channel: str, comment: str | None, at: int
    ) -> bool:
        """Record a vote; False if this user already voted on this approval."""
        try:
            with self.conn.begin_nested():
                self.conn.execute(
                    approval_decisions.insert().values(
                        tenant_id=self.tenant_id,
                        approval_id=approval_id,
                        user=user,
                        decision=decision,
                        channel=channel,
                        comment=comment,
                        time=at,
                    )
                )
        except IntegrityError:
            return False
        return True

    def decisions(self, approval_ids: builtins.list[str]) -> dict[str, builtins.list[dict[str, Any]]]:
        found: dict[str, builtins.list[dict[str, Any]]] = {a: [] for a in approval_ids}
        if not approval_ids:
            return found
        rows: builtins.list[Any] = []
        for part in chunks(approval_ids):
            q = select(approval_decisions).where(
                approval_decisions.c.tenant_id == self.tenant_id, approval_decisions.c.approval_id.in_(part)
            )
            rows.extend(self.conn.execute(q))
        for r in sorted(rows, key=lambda r: r.id):
            found[r.approval_id].append(
                {
                    "user": r.user,
                    "decision": r.decision,
                    "time": r.time,
                    "channel": r.channel,
                    "comment": r.comment,
                }
            )
        return found

    # ------------------------------------------------------------ users

    def user(self, name: str) -> dict[str, Any] | None:
        """An enabled user of this tenant: name, role, e-mail."""
        row = self.conn.execute(
            select(users.c.name, users.c.role, users.c.email).where(
                users.c.tenant_id == self.tenant_id, users.c.name == name, users.c.disabled.is_(False)
            )
        ).first()
        return dict(row._mapping) if row is not None else None

    def users_with_roles(self, roles: builtins.list[str]) -> builtins.list[dict[str, Any]]:
        q = (
            select(users.c.name, users.c.role, users.c.email)
            .where(
                users.c.tenant_id == self.tenant_id,
                users.c.role.in_(roles),
                users.c.disabled.is_(False),
            )
            .order_by(users.c.name)
        )
        return [dict(r._mapping) for r in self.conn.execute(q)]

    def user_by_email(self, email: str) -> str | None:
        return self.conn.execute(
            select(users.c.name).where(
                users.c.tenant_id == self.tenant_id,
                users.c.email == email,
                users.c.disabled.is_(False),
            )
        ).scalar()

    # ------------------------------------------------------------ link tokens

    def add_token(self, *, nonce: str, approval_id: str, user: str, decision: str, expires: int) -> None:
        self.conn.execute(
            approval_link_tokens.insert().values(
                tenant_id=self.tenant_id,
                nonce=nonce,
                approval_id=approval_id,
                user=user,
                decision=decision,
                expires=expires,
                used_at=None,
            )
        )

    def token(self, nonce: str) -> dict[str, Any] | None:
        row = self.conn.execute(
            select(approval_link_tokens).where(
                approval_link_tokens.c.tenant_id == self.tenant_id, approval_link_tokens.c.nonce == nonce
            )
        ).first()
        return dict(row._mapping) if row is not None else None

    def use_token(self, nonce: str, at: int) -> bool:
        """Spend a token; True only for the first caller."""
        result = self.conn.execute(
            update(approval_link_tokens)
            .where(
                approval_link_tokens.c.tenant_id == self.tenant_id,
                approval_link_tokens.c.nonce == nonce,
                approval_link_tokens.c.used_at.is_(None),
            )
            .values(used_at=at)
        )
        return result.rowcount == 1

    # ------------------------------------------------------------ tenant settings

    def slack_channel(self) -> str | None:
        return self.conn.execute(
            select(approval_settings.c.slack_channel).where(approval_settings.c.tenant_id == self.tenant_id)
        ).scalar()

    def set_slack_channel(self, channel: str | None, at: int) -> None:
        self.conn.execute(approval_settings.delete().where(approval_settings.c.tenant_id == self.tenant_id))
        self.conn.execute(
            approval_settings.insert().values(tenant_id=self.tenant_id, slack_channel=channel, updated=at)
        )

    # ------------------------------------------------------------ Slack users

    def map_slack_user(self, slack_user_id: str, user: str) -> None:
        self.conn.execute(
            approval_slack_users.delete().where(
                approval_slack_users.c.tenant_id == self.tenant_id,
                approval_slack_users.c.slack_user_id == slack_user_id,
            )
        )
        self.conn.execute(
            approval_slack_users.insert().values(
                tenant_id=self.tenant_id, slack_user_id=slack_user_id, user=user
            )
        )

    def slack_user(self, slack_user_id: str) -> str | None:
        return self.conn.execute(
            select(approval_slack_users.c.user).where(
                approval_slack_users.c.tenant_id == self.tenant_id,
                approval_slack_users.c.slack_user_id == slack_user_id,
            )
        ).scalar()
