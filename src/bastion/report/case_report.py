"""The report of one incident: what the case is (score explained line by line), what happened and when,
what automation did (workflow steps), who approved what, the evidence (observables, attachments with
their SHA-256) and the alerts behind it. HTML, Markdown, or PDF through the same HTML.

It reads the case as the case service presents it (``scope.cases.get``, the full timeline and the
linked runs), so the report and ``bastion cases show`` never disagree.
"""

from __future__ import annotations

from typing import Any

import msgspec
from sqlalchemy import Connection

from bastion.model import Case
from bastion.report.query import is_containment
from bastion.report.render import ReportError, check_format, html_to_pdf, template_env
from bastion.store import Database, TenantScope
from bastion.store._util import now_ms
from bastion.store.case_runs import linked_runs
from bastion.triage.score import explain

__all__ = ["case_report_data", "render_case_report"]


def _timeline(conn: Connection, tenant_id: str, case: Case) -> list[dict[str, Any]]:
    from bastion.cases.service import case_timeline

    assert case.id is not None
    out = []
    for e in case_timeline(conn, tenant_id, case.id):
        d = msgspec.to_builtins(e)
        out.append(
            {
                "time": d.get("time"),
                "kind": d.get("kind", ""),
                "summary": d.get("summary", ""),
                "actor": d.get("actor"),
            }
        )
    return sorted(out, key=lambda e: e["time"] or 0)


def case_report_data(scope: TenantScope, case_id: str) -> dict[str, Any]:
    """Everything the case report shows, as plain data (also what a JSON export would hold)."""
    found = scope.cases.resolve(str(case_id))  # an id, a number or "#12"
    case = scope.cases.get(found) if found else None
    if case is None or case.id is None:
        raise ReportError(f"no case {case_id} in this tenant")
    number = case.number if case.number is not None else scope.cases.number(case.id)
    alerts: list[dict[str, Any]] = []
    for aid in case.alert_ids:
        a = scope.alerts.get(aid)
        if a is None:
            continue
        alerts.append(
            {
                "id": a.id,
                "title": a.title,
                "severity": a.severity.name.lower(),
                "time": a.time,
                "source": a.source,
                "rule_id": a.rule_id,
                "score": a.score,
                "status": a.status.value,
                "verdict": a.verdict.value if a.verdict else None,
                "count": a.count,
                "auto_closed": a.auto_closed,
                "close_reason": a.close_reason,
                "techniques": a.techniques,
            }
        )
    runs = linked_runs(scope.conn, scope.tenant_id, case.id)
    actions: list[dict[str, Any]] = []
    approvals: list[dict[str, Any]] = []
    for run in runs:
        for step in run.get("steps") or []:
            actions.append(
                {
                    "run_id": run["run_id"],
                    "workflow_id": run["workflow_id"],
                    "step_id": step.get("step_id"),
                    "action": step.get("action"),
                    "status": step.get("status"),
                    "started": step.get("started"),
                    "finished": step.get("finished"),
                    "error": step.get("error"),
                    "containment": is_containment(step.get("action")),
                }
            )
        for appr in run.get("approvals") or []:
            approvals.append({**appr, "workflow_id": run["workflow_id"], "run_id": run["run_id"]})
    first_alert = min((a["time"] for a in alerts), default=None)
    return {
        "case": {
            "id": case.id,
            "number": number,
            "title": case.title,
            "description": case.description,
            "severity": case.severity.name.lower(),
            "status": case.status.value,
            "verdict": case.verdict.value if case.verdict else None,
            "assignee": case.assignee,
            "score": case.score,
            "score_lines": explain(case.score_components),
            "queue": case.queue,
            "tier": case.tier,
            "escalations": case.escalations,
            "sla_breaches": case.sla_breaches,
            "techniques": case.techniques,
            "tactics": case.tactics,
            "custom_fields": case.custom_fields,
        },
        "times": [
            ("First alert fired", first_alert),
            ("Case opened", case.created or None),
            ("Acknowledged", case.acknowledged),
            ("Contained", case.contained),
            ("Resolved", case.resolved),
            ("Closed", case.closed),
        ],
        "timeline": _timeline(scope.conn, scope.tenant_id, case),
        "runs": [{k: v for k, v in r.items() if k not in ("steps", "approvals")} for r in runs],
        "actions": actions,
        "approvals": approvals,
        "observables": [{"type": o.type.value, "value": o.value} for o in case.observables],
        "attachments": [msgspec.to_builtins(a) for a in case.attachments],
        "comments": [msgspec.to_builtins(c) for c in case.comments],
        "tasks": [msgspec.to_builtins(t) for t in case.tasks],
        "alerts": alerts,
    }


def render_case_report(db: Database, tenant_id: str, case_id: str, fmt: str) -> bytes:
    """The report of case ``case_id`` as ``html``, ``md`` or ``pdf`` bytes. Raises ReportError
    (a ValueError) for an unknown case or format."""
    fmt = check_format(fmt)
    with db.read() as conn:
        data = case_report_data(TenantScope(conn, tenant_id), case_id)
    env = template_env()
    context = {**data, "generated": now_ms()}
    if fmt == "md":
        return env.get_template("case.md.j2").render(**context).encode()
    html = env.get_template("case.html.j2").render(**context)
    return html.encode() if fmt == "html" else html_to_pdf(html)
