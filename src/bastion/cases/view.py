"""A case as people see it (API and CLI): the case with its full timeline, its alerts summarised with the
reason each joined, its score components and its attachments' metadata, as plain JSON-ready data."""

from __future__ import annotations

from typing import Any

import msgspec

from bastion.cases.timeline import case_timeline
from bastion.model import Case
from bastion.store import TenantScope

__all__ = ["case_document"]


def case_document(scope: TenantScope, case: Case) -> dict[str, Any]:
    """The case as the API shows it: the full timeline, alert summaries and attachment metadata."""
    assert case.id is not None
    doc: dict[str, Any] = msgspec.to_builtins(case)
    for field in msgspec.structs.fields(Case):  # the struct omits defaults; a document shows every field
        if field.name not in doc:
            doc[field.name] = msgspec.to_builtins(getattr(case, field.name))
    doc["severity"] = case.severity.name.lower()
    doc["severity_id"] = int(case.severity)
    doc["score_components"] = msgspec.to_builtins(case.score_components)
    doc["attachments"] = msgspec.to_builtins(case.attachments)
    doc["custom_fields"] = case.custom_fields
    doc["timeline"] = msgspec.to_builtins(case_timeline(scope.conn, scope.tenant_id, case.id))
    alerts = []
    for link in scope.cases.alert_links(case.id):
        alert = scope.alerts.get(link["alert_id"])
        if alert is None:
            continue
        alerts.append(
            {
                "id": alert.id,
                "title": alert.title,
                "severity": alert.severity.name.lower(),
                "status": alert.status.value,
                "score": alert.score,
                "time": alert.time,
                "source": alert.source,
                "rule_id": alert.rule_id,
                "techniques": alert.techniques,
                "verdict": alert.verdict.value if alert.verdict else None,
                "reason": link["reason"],
                "added": link["added"],
            }
        )
    doc["alerts"] = alerts
    return doc
