"""Safe fixes an agent may apply without an approval (impact ``low``): retry a failed workflow run, and
poll an intel feed now.

Neither changes anything outside Bastion that a person had not already decided: a retry re-runs the
same workflow version with the same inputs (through :func:`bastion.respond.service.retry_run`, which
reuses the outputs of the steps that succeeded, so nothing done is done twice), and a steps' approval
gates apply again to the new run. Retries back off: each retry in a chain waits twice as long after
the previous failure as the one before (1 s, 2 s, 4 s ... capped), and a chain stops after
:data:`MAX_RETRIES`. Every fix is audited as ``agent.fix.*`` with the agent run it came from.
"""

from __future__ import annotations

import time
from typing import Any

from bastion.agents.spec import AgentDeps, agent_tool
from bastion.store import TenantScope

__all__ = ["MAX_RETRIES", "backoff_s", "requeue_feed", "retry_run"]

MAX_RETRIES = 5
_BASE_S = 1.0
_CAP_S = 60.0
_MAX_SLEEP_S = 30.0  # a longer wait is reported back (retry_after_s) instead of slept


def backoff_s(previous_retries: int, *, base: float = _BASE_S) -> float:
    """The wait after a failure before retry number ``previous_retries + 1`` of a chain."""
    return float(min(base * 2**previous_retries, _CAP_S))


def _chain(repo: Any, run: dict[str, Any]) -> int:
    """How many retries came before ``run`` (following ``retry_of`` back to the first run)."""
    n = 0
    cur = run
    while cur.get("retry_of") and n < 100:
        prev = repo.get_run(cur["retry_of"])
        if prev is None:
            break
        n += 1
        cur = prev
    return n


@agent_tool("retry_run", impact="low")
def retry_run(deps: AgentDeps, run_id: str, min_wait_s: float = 0.0) -> dict[str, Any]:
    """Retry a failed or cancelled workflow run: a new run of the same version and inputs that reuses
    the outputs of the steps that succeeded. Backs off exponentially along a chain of retries
    (``min_wait_s`` raises the wait, e.g. what a rate limit asked for) and refuses after 5 retries."""
    from bastion.respond.service import RunError
    from bastion.respond.service import retry_run as service_retry
    from bastion.store._util import now_ms
    from bastion.store.workflows import WorkflowRepository

    rid = run_id.strip()
    with deps.db.read() as conn:
        repo = WorkflowRepository(conn, deps.tenant_id)
        run = repo.get_run(rid)
        if run is None:
            raise ValueError(f"no run {rid} in this tenant")
        if run["status"] not in ("failed", "cancelled"):
            raise ValueError(f"run {rid} is {run['status']}; only failed or cancelled runs can be retried")
        done = [
            r["run_id"]
            for r in repo.list_runs(workflow_id=run["workflow_id"], limit=500)
            if r["retry_of"] == rid
        ]
        previous = _chain(repo, run)
    if done:
        return {"retried": False, "run_id": rid, "new_run_id": done[0], "reason": "already retried"}
    if previous >= MAX_RETRIES:
        raise ValueError(f"run {rid} is retry {previous} of its chain; giving up after {MAX_RETRIES} retries")
    wait = max(backoff_s(previous), float(min_wait_s))
    ready_at = (run.get("finished") or run["updated"]) + int(wait * 1000)
    remaining = max(0.0, (ready_at - now_ms()) / 1000)
    if remaining > _MAX_SLEEP_S:
        return {
            "retried": False,
            "run_id": rid,
            "retry_after_s": round(remaining, 1),
            "reason": "backing off",
        }
    if remaining > 0:
        time.sleep(remaining)
    try:
        new_id = service_retry(deps.db, deps.tenant_id, rid, actor=deps.actor)
    except RunError as exc:
        raise ValueError(str(exc)) from None
    with deps.db.write() as conn:
        TenantScope(conn, deps.tenant_id).audit.append(
            deps.actor,
            "agent.fix.retry_run",
            "run",
            rid,
            {"new_run_id": new_id, "agent_run": deps.run_id, "backoff_s": wait, "retry_number": previous + 1},
        )
    return {
        "retried": True,
        "run_id": rid,
        "new_run_id": new_id,
        "waited_s": round(remaining, 2),
        "backoff_s": wait,
        "retry_number": previous + 1,
    }


@agent_tool("requeue_feed", impact="low")
def requeue_feed(deps: AgentDeps, feed: str) -> dict[str, Any]:
    """Poll an intel feed now, whatever its schedule (its next scheduled poll counts from this one),
    and report the outcome: ok, not-modified or error with the error."""
    from bastion.intel.polling import poll_feed
    from bastion.store.intel import IntelRepository

    with deps.db.read() as conn:
        row = IntelRepository(conn, deps.tenant_id).feed(feed.strip())
    if row is None:
        raise ValueError(f"no feed named {feed!r} in this tenant")
    with deps.db.write() as conn:
        TenantScope(conn, deps.tenant_id).audit.append(
            deps.actor,
            "agent.fix.requeue_feed",
            "intel_feed",
            row.id,
            {"name": row.name, "agent_run": deps.run_id},
        )
    result = poll_feed(deps.db, deps.tenant_id, row, actor=deps.actor)
    return {
        "feed": result.feed,
        "status": result.status,
        "loaded": result.loaded,
        "merged": result.merged,
        "rejected": result.rejected,
        "error": result.error,
    }
