"""SLA checks: find open cases past their tenant's acknowledge/contain/resolve targets, escalate them
one tier, tell the people the policy names, and let workflows react.

Why it is shaped this way:

* Each kind of breach happens once per case (``cases.sla_breaches`` records it), so a check can run as
  often as wanted, from ``bastion up``'s schedule and ``bastion sla check`` at the same time: the
  escalation is written in one transaction per tenant under the tenant lock, after re-reading the cases.
* The notification goes out only after that transaction has committed and is never retried by the
  check: a mail server being down costs the mail (audited as ``case.notify_failed``), never a second
  escalation. It is sent through the action registry, the same way a workflow step calls an action, so
  any notification action (``notify.email``, ``notify.webhook``, a chat connector) can be configured.
* ``case`` hooks get one ``{"event": "sla_breach", ...}`` payload per breach, so workflows can react.
"""

from __future__ import annotations

import asyncio
import logging
import traceback
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Connection, select, update

from bastion.config import Settings
from bastion.model import CaseStatus, Severity
from bastion.store import Database, TenantRepository, TenantScope
from bastion.store._util import now_ms
from bastion.store.tables import cases
from bastion.store.workflows import lock_tenant
from bastion.triage.policy import TriagePolicy, load_policy

__all__ = ["KINDS", "check_slas", "check_tenant"]

log = logging.getLogger(__name__)

ACTOR = "sla"
NOTIFY_CONCURRENCY = 8
KINDS = ("acknowledge", "contain", "resolve")  # in the order a case should reach them
_DONE = (CaseStatus.RESOLVED.value, CaseStatus.CLOSED.value)
_STAMP = {"acknowledge": "acknowledged", "contain": "contained", "resolve": "resolved"}
_COLUMNS = (
    cases.c.id,
    cases.c.number,
    cases.c.title,
    cases.c.severity_id,
    cases.c.status,
    cases.c.created,
    cases.c.acknowledged,
    cases.c.contained,
    cases.c.resolved,
    cases.c.queue,
    cases.c.tier,
    cases.c.escalations,
    cases.c.sla_breaches,
)


@dataclass
class _Breach:
    case_id: str
    number: int
    title: str
    severity: str
    status: str
    kind: str
    target_s: int
    overdue_s: int
    from_queue: str | None
    to_queue: str
    from_tier: int
    to_tier: int
    escalations: int
    notified: bool | None = None
    notify_error: str | None = None

    def hook_payload(self) -> dict[str, Any]:
        return {
            "event": "sla_breach",
            "case_id": self.case_id,
            "number": self.number,
            "title": self.title,
            "severity": self.severity,
            "status": self.status,
            "kind": self.kind,
            "target_s": self.target_s,
            "overdue_s": self.overdue_s,
            "from_queue": self.from_queue,
            "to_queue": self.to_queue,
            "tier": self.to_tier,
            "escalations": self.escalations,
        }


def _severity_name(severity_id: int) -> str:
    try:
        return Severity(severity_id).name.lower()
    except ValueError:
        return ""


def _due(row: Any, policy: TriagePolicy, now: int) -> list[tuple[str, int, int]]:
    """(kind, target seconds, overdue seconds) of the breaches ``row`` has that are not recorded yet."""
    target = policy.sla.targets.get(_severity_name(row.severity_id))
    if target is None:
        return []
    recorded = set(orjson.loads(row.sla_breaches or "[]"))
    age_ms = now - int(row.created)
    found = []
    for kind in KINDS:
        limit_s = int(getattr(target, f"{kind}_s"))
        if kind in recorded or getattr(row, _STAMP[kind]) is not None:
            continue
        if age_ms > limit_s * 1000:
            found.append((kind, limit_s, (age_ms - limit_s * 1000) // 1000))
    return found


def _open_cases(
    conn: Connection, tenant_id: str, policy: TriagePolicy, now: int, ids: list[str] | None
) -> Any:
    """Open cases old enough to breach something (one query)."""
    shortest = min(
        (min(t.acknowledge_s, t.contain_s, t.resolve_s) for t in policy.sla.targets.values()), default=None
    )
    q = select(*_COLUMNS).where(cases.c.tenant_id == tenant_id, cases.c.status.not_in(_DONE))
    if shortest is not None:
        q = q.where(cases.c.created < now - shortest * 1000)
    if ids is not None:
        q = q.where(cases.c.id.in_(ids))
    return conn.execute(q).all()


def _escalate(conn: Connection, tenant_id: str, policy: TriagePolicy, rows: Any, now: int) -> list[_Breach]:
    """Record each new breach and move the case one tier up, with a timeline and an audit entry."""
    scope = TenantScope(conn, tenant_id)
    tiers = policy.routing.tiers
    found: list[_Breach] = []
    for row in rows:
        due = _due(row, policy, now)
        if not due:
            continue
        recorded: list[str] = list(orjson.loads(row.sla_breaches or "[]"))
        tier = min(max(int(row.tier or 1), 1), len(tiers))
        queue: str | None = row.queue
        escalations = int(row.escalations or 0)
        for kind, target_s, overdue_s in due:
            to_tier = min(tier + 1, len(tiers))
            to_queue = tiers[to_tier - 1]
            escalations += 1
            recorded.append(kind)
            breach = _Breach(
                case_id=row.id,
                number=int(row.number),
                title=row.title,
                severity=_severity_name(row.severity_id),
                status=row.status,
                kind=kind,
                target_s=target_s,
                overdue_s=overdue_s,
                from_queue=queue,
                to_queue=to_queue,
                from_tier=tier,
                to_tier=to_tier,
                escalations=escalations,
            )
            data = {
                "kind": kind,
                "target_s": target_s,
                "overdue_s": overdue_s,
                "from_queue": queue,
                "to_queue": to_queue,
                "from_tier": tier,
                "to_tier": to_tier,
            }
            scope.cases.add_timeline(
                row.id,
                "case.escalated",
                f"SLA breach ({kind} within {target_s}s, {overdue_s}s over): escalated to {to_queue}",
                actor=ACTOR,
                data=data,
            )
            scope.audit.append(ACTOR, "case.escalated", "case", row.id, data)
            found.append(breach)
            tier, queue = to_tier, to_queue
        conn.execute(
            update(cases)
            .where(cases.c.tenant_id == tenant_id, cases.c.id == row.id)
            .values(
                tier=tier,
                queue=queue,
                escalations=escalations,
                sla_breaches=orjson.dumps(recorded).decode(),
                updated=now_ms(),
            )
        )
    return found


def _message(breaches: list[_Breach], tenant_name: str, settings: Settings) -> tuple[str, str]:
    first = breaches[0]
    kinds = ", ".join(b.kind for b in breaches)
    subject = f"[Bastion] SLA breach ({kinds}): case #{first.number} {first.title}"
    lines = [
        f"Case #{first.number} of tenant {tenant_name} breached its SLA and was escalated.",
        "",
        f"Case:     #{first.number} {first.title}",
        f"Id:       {first.case_id}",
        f"Severity: {first.severity}",
        f"Status:   {first.status}",
        "",
    ]
    for b in breaches:
        lines.append(
            f"- {b.kind}: target {b.target_s}s, {b.overdue_s}s overdue; "
            f"queue {b.from_queue or '-'} -> {b.to_queue} (tier {b.to_tier})"
        )
    lines += [
        "",
        f"API:  {settings.public_url.rstrip('/')}/api/v1/cases/{first.case_id}",
        f"CLI:  bastion cases show {first.case_id} --tenant {tenant_name}",
    ]
    return subject, "\n".join(lines)


def _inputs(
    schema: dict[str, Any], recipients: list[str], subject: str, body: str, payload: dict[str, Any]
) -> list[dict[str, Any]]:
    """Inputs for the notification action: one call with ``to`` for mail-like actions, one call per
    recipient URL for webhook-like ones (an ``url`` input)."""
    names = set(schema.get("properties", {}))
    offered: dict[str, Any] = {
        "subject": subject,
        "body": body,
        "text": f"{subject}\n\n{body}",
        "payload": payload,
    }
    common = {k: v for k, v in offered.items() if k in names}
    if "url" in names:
        return [{**common, "url": r} for r in recipients]
    if "to" in names:
        return [{**common, "to": recipients}]
    return [common]


async def _call_action(
    db: Database, tenant_id: str, action_id: str, calls: list[dict[str, Any]], key: str
) -> None:
    """Call the notification action once per message, as a workflow step would. Raises on failure."""
    from bastion.connectors.call import call_action

    for i, inputs in enumerate(calls):
        await call_action(db, tenant_id, action_id, inputs, caller=ACTOR, key=f"{key}:{i}")


def _notify(
    db: Database,
    settings: Settings,
    tenant_id: str,
    tenant_name: str,
    policy: TriagePolicy,
    found: list[_Breach],
) -> None:
    """Tell ``policy.sla.notify`` about each escalated case (one message per case and check), then
    audit the outcome. Failures are recorded, not raised."""
    from bastion.connectors.settings import using_settings

    by_case: dict[str, list[_Breach]] = {}
    for b in found:
        by_case.setdefault(b.case_id, []).append(b)
    action_id = policy.sla.notify_action
    recipients = list(policy.sla.notify)

    async def send_all() -> list[tuple[str, str | None]]:
        from bastion.connectors.registry import ActionError, get_action

        defn = get_action(action_id)
        schema = defn.schema if defn is not None else {}
        gate = asyncio.Semaphore(NOTIFY_CONCURRENCY)  # a slow mail server must not hold the check per case

        async def one(case_id: str, group: list[_Breach]) -> tuple[str, str | None]:
            subject, body = _message(group, tenant_name, settings)
            payload = {"tenant": tenant_name, "breaches": [b.hook_payload() for b in group]}
            key = f"sla:{case_id}:{'+'.join(b.kind for b in group)}"
            async with gate:
                try:
                    calls = _inputs(schema, recipients, subject, body, payload)
                    await _call_action(db, tenant_id, action_id, calls, key)
                    return case_id, None
                except ActionError as exc:
                    return case_id, str(exc)
                except Exception as exc:  # any failure is the notification's, never the escalation's
                    log.debug("SLA notification failed: %s", traceback.format_exc(limit=3))
                    return case_id, f"{type(exc).__name__}: {exc}"

        return list(await asyncio.gather(*(one(cid, group) for cid, group in by_case.items())))

    with using_settings(settings):
        outcomes = asyncio.run(send_all())
    with db.write() as conn:
        lock_tenant(conn, tenant_id)
        scope = TenantScope(conn, tenant_id)
        for case_id, error in outcomes:
            kinds = [b.kind for b in by_case[case_id]]
            data: dict[str, Any] = {"action": action_id, "to": recipients, "kinds": kinds}
            if error is None:
                scope.audit.append(ACTOR, "case.notified", "case", case_id, data)
                summary = f"SLA breach notification sent to {', '.join(recipients)}"
                scope.cases.add_timeline(case_id, "case.notified", summary, actor=ACTOR, data=data)
            else:
                data["error"] = error
                scope.audit.append(ACTOR, "case.notify_failed", "case", case_id, data)
                scope.cases.add_timeline(
                    case_id,
                    "case.notify_failed",
                    f"SLA breach notification failed: {error}"[:500],
                    actor=ACTOR,
                    data=data,
                )
            for b in by_case[case_id]:
                b.notified, b.notify_error = error is None, error


def _fire_hooks(db: Database, tenant_id: str, found: list[_Breach]) -> None:
    """Start the workflows whose ``case`` trigger matches a breach, when ``db`` is connected to respond
    (as new alerts do: :func:`bastion.pipeline.connect_response`)."""
    from bastion.pipeline import is_responding

    if not is_responding(db):
        return
    from bastion.respond.service import fire_hooks_for

    try:
        fire_hooks_for(db, tenant_id, "case", [b.hook_payload() for b in found], actor=ACTOR)
    except Exception:  # the escalation stands whatever the response side does
        log.exception("starting case-triggered workflows failed for tenant %s", tenant_id)


def check_tenant(
    db: Database, settings: Settings, tenant_id: str, *, now: int | None = None
) -> list[dict[str, Any]]:
    """:func:`check_slas` for one tenant."""
    when = now if now is not None else now_ms()
    with db.read() as conn:
        tenant = TenantRepository(conn).get(tenant_id)
        if tenant is None:
            raise ValueError(f"no tenant {tenant_id}")
        policy = load_policy(conn, tenant_id)
        candidates = [
            row.id for row in _open_cases(conn, tenant_id, policy, when, None) if _due(row, policy, when)
        ]
    if not candidates:
        return []
    with db.write() as conn:
        lock_tenant(conn, tenant_id)
        policy = load_policy(conn, tenant_id)
        # Re-read under the lock: another checker may have recorded these breaches meanwhile.
        found = _escalate(
            conn, tenant_id, policy, _open_cases(conn, tenant_id, policy, when, candidates), when
        )
    if not found:
        return []
    if policy.sla.notify:
        _notify(db, settings, tenant_id, tenant.name, policy, found)
    _fire_hooks(db, tenant_id, found)
    return [
        {
            "tenant": tenant.name,
            "tenant_id": tenant_id,
            "case_id": b.case_id,
            "number": b.number,
            "kind": b.kind,
            "target_s": b.target_s,
            "overdue_s": b.overdue_s,
            "from_queue": b.from_queue,
            "to_queue": b.to_queue,
            "tier": b.to_tier,
            "notified": b.notified,
            **({"notify_error": b.notify_error} if b.notify_error else {}),
        }
        for b in found
    ]


def check_slas(
    db: Database, settings: Settings, *, now: int | None = None, tenant_id: str | None = None
) -> list[dict[str, Any]]:
    """Escalate every open case (of every tenant, or of ``tenant_id``) past an SLA target it has not
    breached before, notify, and fire ``case`` hooks. Returns the new breaches.

    Call it from a thread with no running event loop (``bastion up`` uses ``asyncio.to_thread``): the
    notification action runs on a loop of its own. One tenant's failure does not stop the others; it is
    raised after they are checked.
    """
    when = now if now is not None else now_ms()
    if tenant_id is None:
        with db.read() as conn:
            tenant_ids = [t.id for t in TenantRepository(conn).list() if t.id is not None]
    else:
        tenant_ids = [tenant_id]
    breaches: list[dict[str, Any]] = []
    failed: Exception | None = None
    for tid in tenant_ids:
        try:
            breaches.extend(check_tenant(db, settings, tid, now=when))
        except Exception as exc:
            log.exception("SLA check failed for tenant %s", tid)
            failed = failed or exc
    if failed is not None:
        raise failed
    return breaches
