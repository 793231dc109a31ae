"""The timeline of everything that happened in a case, in time order: what the case recorded itself
(alerts joining with their reasons and enrichment, comments, status changes, tasks, attachments,
merges) merged with the workflow runs that acted on the case or on one of its alerts: their steps
(action, status, times) and approvals (requested, decided, by whom)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection

from bastion.model import TimelineEntry
from bastion.store import TenantScope
from bastion.store.case_runs import linked_runs

__all__ = ["case_timeline", "run_entries"]

_DECIDED = {"approve": "approved", "deny": "denied", "approved": "approved", "denied": "denied"}


def run_entries(runs: list[dict[str, Any]]) -> list[TimelineEntry]:
    """Timeline entries for runs as returned by :func:`bastion.store.case_runs.linked_runs`."""
    out: list[TimelineEntry] = []
    for run in runs:
        base = {"run_id": run["run_id"], "workflow_id": run["workflow_id"]}
        out.append(
            TimelineEntry(
                time=run["created"],
                kind="run.started",
                summary=f"Workflow {run['workflow_id']} started ({run['status']})",
                actor=run["requested_by"],
                data={
                    **base,
                    "status": run["status"],
                    "alert_id": run["alert_id"],
                    "case_id": run["case_id"],
                },
            )
        )
        for step in run["steps"]:
            took = ""
            if step["finished"] is not None:
                took = f" in {max(0, step['finished'] - step['started'])} ms"
            out.append(
                TimelineEntry(
                    time=step["started"],
                    kind="run.step",
                    summary=f"{run['workflow_id']} step {step['step_id']}"
                    + (f" ({step['action']})" if step["action"] else "")
                    + f": {step['status']}{took}",
                    actor=f"workflow:{run['run_id']}",
                    data={
                        **base,
                        **{k: step[k] for k in ("step_id", "action", "status", "started", "finished")},
                        "error": step["error"],
                    },
                )
            )
        for appr in run["approvals"]:
            adata = {**base, "approval_id": appr["id"], "step_id": appr["step_id"], "action": appr["action"]}
            out.append(
                TimelineEntry(
                    time=appr["requested_at"],
                    kind="approval.requested",
                    summary=f"Approval requested for {appr['action']}: {appr['summary']}",
                    actor=appr["requested_by"],
                    data={**adata, "status": appr["status"]},
                )
            )
            for d in appr["decisions"]:
                out.append(
                    TimelineEntry(
                        time=d["time"],
                        kind="approval.decided",
                        summary=f"{d['user']} {_DECIDED.get(d['decision'], d['decision'])} {appr['action']}"
                        + f" (via {d['channel']})"
                        + (f": {d['comment']}" if d["comment"] else ""),
                        actor=d["user"],
                        data={**adata, "decision": d["decision"], "channel": d["channel"]},
                    )
                )
    return out


def case_timeline(conn: Connection, tenant_id: str, case_id: str) -> list[TimelineEntry]:
    """Everything about the case, oldest first (entries at the same time keep their recorded order)."""
    repo = TenantScope(conn, tenant_id).cases
    entries = repo.timeline(case_id) + run_entries(linked_runs(repo.conn, repo.tenant_id, case_id))
    return sorted(entries, key=lambda e: e.time)
