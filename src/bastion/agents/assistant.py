"""The triage assistant at work: every new case gets a proposed verdict from the "triage" agent, shown to
the analyst on the case timeline (``agent.proposal``) and over the API; it is applied only when the
tenant opted in.

Why a sweep and not a hook inside ingest: cases are opened inside the ingest transaction, at thousands
of alerts a second; an agent run (reads, maybe an LLM call) has no place there. ``bastion up`` runs
:func:`run_forever`, which every few seconds picks the tenant's open cases that have no proposal yet and
runs the agent for each, after (and outside) the transaction that opened them. ``bastion agent triage
--tenant T`` runs one sweep by hand (and ``--case`` proposes for one case).

The opt-in setting is the ``assistant`` section of the tenant's triage policy (``enabled``,
``auto_apply``, ``min_confidence``; validated and audited with the rest of the policy, e.g. ``bastion
triage policy set``). Defaults: enabled, ``auto_apply`` false, ``min_confidence`` 90.
When applied, malicious moves the case to ``in_progress``, suspicious to ``triaged``, and benign closes
it as a false positive; each with the proposal as the reason, audited as the agent.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from sqlalchemy import select

from bastion.store import Database, TenantRepository, TenantScope
from bastion.store._util import now_ms
from bastion.triage.policy import AssistantPolicy, load_policy

__all__ = [
    "ACTOR",
    "assistant_settings",
    "cases_without_proposal",
    "latest_proposal",
    "propose",
    "run_forever",
    "sweep",
]

log = logging.getLogger(__name__)

ACTOR = "agent:triage"
MAX_UNTRUSTED = 20  # alerts whose text the model is shown (fenced) per case
RECENT_DAYS = 7  # cases older than this are not proposed for by the sweep (only on request)
_APPLY = {"malicious": "in_progress", "suspicious": "triaged"}


def assistant_settings(db: Database, tenant_id: str) -> AssistantPolicy:
    """The tenant's assistant settings (the triage policy's ``assistant`` section)."""
    with db.read() as conn:
        return load_policy(conn, tenant_id).assistant


def cases_without_proposal(db: Database, tenant_id: str, *, limit: int = 20) -> list[str]:
    """Ids of the tenant's new (untouched) cases of the last days that no triage run looked at."""
    from bastion.store.agents import agent_runs
    from bastion.store.tables import cases

    since = now_ms() - RECENT_DAYS * 86_400_000
    proposed = select(agent_runs.c.case_id).where(
        agent_runs.c.tenant_id == tenant_id, agent_runs.c.agent == "triage", agent_runs.c.case_id.is_not(None)
    )
    q = (
        select(cases.c.id)
        .where(
            cases.c.tenant_id == tenant_id,
            cases.c.status == "new",
            cases.c.created >= since,
            cases.c.id.not_in(proposed),
        )
        .order_by(cases.c.created)
        .limit(limit)
    )
    with db.read() as conn:
        return [str(r) for r in conn.execute(q).scalars()]


def _alert_text(alert: Any) -> str:
    if alert is None:
        return ""
    return f"{alert.title}\n{alert.description or ''}".strip()[:1000]


def propose(
    db: Database, tenant_id: str, case_ref: str, *, actor: str = ACTOR, wait_s: float = 120.0
) -> dict[str, Any]:
    """Run the triage agent on one case, record its proposal on the case timeline, and apply it when the
    tenant's settings allow. Returns :func:`latest_proposal`'s view of it."""
    from bastion.agents.runtime import run_agent
    from bastion.agents.spec import Task
    from bastion.cases.service import get_case

    with db.read() as conn:
        scope = TenantScope(conn, tenant_id)
        case = get_case(scope, case_ref)
        # What the alerts say came from outside (attackers write process names and e-mail subjects): a
        # model gets it fenced as data, never as instructions.
        said = [_alert_text(scope.alerts.get(aid)) for aid in case.alert_ids[:MAX_UNTRUSTED]]
    assert case.id is not None
    task = Task(
        agent="triage",
        objective=f"Propose a triage verdict for case #{case.number}",
        input={"case_id": case.id},
        tenant_id=tenant_id,
        case_id=case.id,
        untrusted=tuple(t for t in said if t),
    )
    result = run_agent(db, tenant_id, "triage", task, actor=actor, wait_s=wait_s)
    proposal = result.output if result.status == "succeeded" else None
    applied = None
    with db.write() as conn:
        scope = TenantScope(conn, tenant_id)
        if proposal is not None:
            from bastion.cases.service import record

            record(
                scope,
                ACTOR,
                case.id,
                "agent.proposal",
                f"Triage assistant proposes {proposal['verdict']} (confidence {proposal['confidence']}): "
                + "; ".join(proposal.get("reasons", [])[:3]),
                {"run_id": result.run_id, "model": result.model, **proposal},
                audit="agent.proposal",
            )
        elif result.status != "running":  # a run still going (a busy worker) is shown when it ends
            scope.audit.append(
                ACTOR,
                "agent.proposal.failed",
                "case",
                case.id,
                {"run_id": result.run_id, "status": result.status, "error": result.error},
            )
    if proposal is not None:
        applied = _maybe_apply(db, tenant_id, case.id, result.run_id, proposal)
    view = latest_proposal(db, tenant_id, case.id) or {"run_id": result.run_id, "status": result.status}
    view["applied"] = applied
    return view


def _maybe_apply(
    db: Database, tenant_id: str, case_id: str, run_id: str, proposal: dict[str, Any]
) -> dict[str, Any] | None:
    """Apply the proposal when the tenant opted in and the confidence is high enough; None otherwise."""
    settings = assistant_settings(db, tenant_id)
    if not settings.auto_apply or int(proposal.get("confidence", 0)) < settings.min_confidence:
        return None
    from bastion.cases.errors import CaseError
    from bastion.cases.lifecycle import change_status, close_case

    verdict = str(proposal["verdict"])
    reason = f"triage assistant ({run_id}): {verdict}, confidence {proposal['confidence']}"
    try:
        with db.write() as conn:
            scope = TenantScope(conn, tenant_id)
            current = scope.cases.get(case_id)
            if current is None or current.status.value != "new":
                return None  # an analyst took the case meanwhile: their decision stands
            if verdict == "benign":
                case = close_case(scope, ACTOR, case_id, "false_positive", reason=reason)
            else:
                case = change_status(scope, ACTOR, case_id, _APPLY[verdict], reason=reason)
            scope.audit.append(
                ACTOR,
                "agent.proposal.apply",
                "case",
                case_id,
                {"run_id": run_id, "verdict": verdict, "status": case.status.value},
            )
    except CaseError as exc:  # the case changed under us: leave it as it is
        log.info("triage proposal %s not applied to case %s: %s", run_id, case_id, exc)
        return None
    return {"status": case.status.value, "verdict": verdict}


def latest_proposal(db: Database, tenant_id: str, case_id: str) -> dict[str, Any] | None:
    """The newest triage run on the case: ``{"run_id", "status", "model", "created", "proposal"}``
    (``proposal`` is the agent's output once it finished)."""
    from bastion.agents.runtime import list_agent_runs

    runs = list_agent_runs(db, tenant_id, agent="triage", case_id=case_id, limit=1)
    if not runs:
        return None
    run = runs[0]
    return {
        "run_id": run["id"],
        "case_id": case_id,
        "status": run["status"],
        "model": run["model"],
        "created": run["created"],
        "proposal": run.get("result"),
        "error": run.get("error"),
    }


def sweep(db: Database, tenant_id: str | None = None, *, limit: int = 20) -> list[dict[str, Any]]:
    """Propose for every new case without a proposal (of one tenant, or of every tenant whose assistant
    is enabled). One case's failure is logged and does not stop the others."""
    if tenant_id is None:
        with db.read() as conn:
            tenant_ids = [t.id for t in TenantRepository(conn).list() if t.id is not None]
    else:
        tenant_ids = [tenant_id]
    done: list[dict[str, Any]] = []
    for tid in tenant_ids:
        if not assistant_settings(db, tid).enabled:
            continue
        for case_id in cases_without_proposal(db, tid, limit=limit):
            try:
                done.append(propose(db, tid, case_id))
            except Exception:
                log.exception("triage proposal failed for case %s of tenant %s", case_id, tid)
    return done


async def run_forever(db: Database, every_s: float = 15.0) -> None:
    """``bastion up``'s background task: sweep every ``every_s`` seconds, in a thread (the agent runs
    are synchronous and durable)."""
    while True:
        await asyncio.sleep(every_s)
        try:
            for p in await asyncio.to_thread(sweep, db):
                log.info(
                    "triage proposal for case %s: %s",
                    p.get("case_id"),
                    (p.get("proposal") or {}).get("verdict"),
                )
        except Exception:
            log.exception("triage assistant sweep failed")
