"""The approval types the engine and every channel share: what is asked (``ApprovalSpec``), the request
and its votes (``Approval``, ``Decision``), and the errors a decider can cause.

The errors are distinct types so the API and CLI can map them to status codes and messages without
reading message text.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from bastion.model import Role

__all__ = [
    "AlreadyDecided",
    "Approval",
    "ApprovalClosed",
    "ApprovalError",
    "ApprovalExpired",
    "ApprovalNotFound",
    "ApprovalSpec",
    "Decision",
    "LinkError",
    "NotAllowed",
]

ROLE_NAMES = frozenset(r.value for r in Role)
CHANNELS = frozenset({"web", "slack", "email"})


class ApprovalError(ValueError):
    """A decision or request that cannot be accepted; the message says why. ``status`` is the HTTP
    status the API and the console answer it with."""

    status = 400


class ApprovalNotFound(ApprovalError):
    status = 404


class NotAllowed(ApprovalError):
    """The user may not decide this approval (role, four-eyes, unknown user)."""

    status = 403


class AlreadyDecided(ApprovalError):
    """This user already voted on this approval."""

    status = 409


class ApprovalClosed(ApprovalError):
    """The approval is no longer pending."""

    status = 409


class ApprovalExpired(ApprovalError):
    """The approval's deadline has passed; it waits for its timeout handling."""

    status = 410


class LinkError(ApprovalError):
    """A signed link that is malformed, altered, expired or already used."""

    status = 403


class ApprovalSpec(msgspec.Struct, kw_only=True):
    """Who may decide and what happens if nobody does (a workflow step's ``approval`` block)."""

    roles: list[str]
    quorum: int = 1
    allow_requester: bool = False
    timeout_s: float | None = None
    on_timeout: Literal["deny", "approve", "escalate"] = "deny"
    escalate_to: list[str] = msgspec.field(default_factory=list)
    channels: list[str] = msgspec.field(default_factory=lambda: ["web"])

    def __post_init__(self) -> None:
        problems = self.problems()
        if problems:
            raise ApprovalError("invalid approval: " + "; ".join(problems))

    @classmethod
    def from_block(cls, block: dict[str, Any]) -> ApprovalSpec:
        """The spec an approval block describes (a step's ``approval``, or the policy's default for an
        action), with the defaults for what it leaves out."""
        return cls(
            roles=list(block.get("roles", ["approver"])),
            quorum=int(block.get("quorum", 1)),
            allow_requester=bool(block.get("allow_requester", False)),
            timeout_s=block.get("timeout_s"),
            on_timeout=block.get("on_timeout", "deny"),
            escalate_to=list(block.get("escalate_to", [])),
            channels=list(block.get("channels", ["web"])),
        )

    def problems(self) -> list[str]:
        """Everything wrong with this spec (empty when valid)."""
        found: list[str] = []
        if not self.roles:
            found.append("roles must name at least one role")
        for role in [*self.roles, *self.escalate_to]:
            if role not in ROLE_NAMES:
                found.append(f"unknown role {role!r} (use {', '.join(sorted(ROLE_NAMES))})")
        if isinstance(self.quorum, bool) or self.quorum < 1:
            found.append("quorum must be 1 or more")
        if self.timeout_s is not None and self.timeout_s <= 0:
            found.append("timeout must be positive")
        if self.on_timeout not in ("deny", "approve", "escalate"):
            found.append(f"on_timeout must be deny, approve or escalate, not {self.on_timeout!r}")
        if self.on_timeout == "escalate" and not self.escalate_to:
            found.append("on_timeout: escalate needs escalate_to roles")
        for channel in self.channels:
            if channel not in CHANNELS:
                found.append(f"unknown channel {channel!r} (use {', '.join(sorted(CHANNELS))})")
        return found


class Decision(msgspec.Struct):
    """One vote: who, what, when (epoch ms), from where, and why."""

    user: str
    decision: Literal["approve", "deny"]
    time: int
    channel: str
    comment: str | None = None


class Approval(msgspec.Struct, kw_only=True):
    """A request for a human decision on one step of one run, with the votes so far.

    ``status`` is ``pending`` until a deny, a quorum of approvals, or the timeout resolves it:
    ``approved``, ``denied``, or ``expired`` (an escalated request that again got no answer in time).
    """

    id: str
    tenant_id: str
    run_id: str
    step_id: str
    action: str
    summary: str
    target: dict[str, Any]
    reason: str
    requested_by: str | None
    status: Literal["pending", "approved", "denied", "expired"]
    roles: list[str]
    quorum: int
    allow_requester: bool
    timeout_s: float | None
    on_timeout: str
    escalate_to: list[str]
    channels: list[str]
    escalated: bool
    requested_at_ms: int
    deadline_ms: int | None
    resolved_at_ms: int | None
    decisions: list[Decision]
    delivery: dict[str, Any] = msgspec.field(default_factory=dict)
    waiter: str | None = None  # the child workflow waiting in place for it (None: the run asked)

    @property
    def wake(self) -> str:
        """The workflow id a decision (or a cancellation) is sent to."""
        return self.waiter or self.run_id

    @property
    def topic(self) -> str:
        """The DBOS message topic the engine waits on for this approval."""
        return f"approval:{self.id}"

    @property
    def approvals(self) -> int:
        return sum(1 for d in self.decisions if d.decision == "approve")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form for the API and CLI (delivery details stay internal)."""
        doc: dict[str, Any] = msgspec.to_builtins(self)
        doc.pop("delivery", None)
        doc["topic"] = self.topic
        return doc
