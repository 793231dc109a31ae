"""ServiceNow Table API: ``servicenow.create_incident`` (``POST /api/now/table/incident``) and
``servicenow.update_incident`` (``PATCH /api/now/table/incident/{sys_id}``).

Basic auth with an integration user's name and password (both secrets). Answers are ``{"result":
{...}}``; errors are ``{"error": {"message", "detail"}, "status": "failure"}``; a rate-limit rule answers
429 with Retry-After, which is retried. The connection's base_url is the instance
(https://your-instance.service-now.com).
"""

from __future__ import annotations

from typing import Any

from bastion.connectors.registry import ActionContext, ActionError, action
from bastion.connectors.vendor_http import base_url, basic_auth, request, secret, segment

__all__ = ["create_incident", "update_incident"]

EXAMPLE = "https://your-instance.service-now.com"
SECRETS = ("servicenow_username", "servicenow_password")
TABLE = "/api/now/table/incident"


def _describe(status: int, doc: Any, text: str) -> tuple[str, str]:
    if isinstance(doc, dict) and isinstance(doc.get("error"), dict):
        err = doc["error"]
        message, detail = str(err.get("message") or ""), err.get("detail")
        return "", f"{message}: {detail}" if detail else message
    return "", ""


async def _call(ctx: ActionContext, method: str, path: str, record: dict[str, Any]) -> dict[str, Any]:
    headers = basic_auth(
        secret(ctx, "servicenow", "servicenow_username"), secret(ctx, "servicenow", "servicenow_password")
    )
    url = base_url(ctx, "servicenow", EXAMPLE) + path
    answer = await request(
        ctx,
        "servicenow",
        method,
        url,
        headers=headers,
        json=record,
        params={"sysparm_exclude_reference_link": "true"},
        describe=_describe,
    )
    result = answer.json.get("result") if isinstance(answer.json, dict) else None
    if not isinstance(result, dict) or not result.get("sys_id"):
        raise ActionError(f"servicenow: {answer.status} but the answer holds no record")
    return result


def _record(values: dict[str, Any], extra: dict[str, Any] | None) -> dict[str, Any]:
    record = dict(extra or {})
    record.update({k: (str(v) if isinstance(v, int) else v) for k, v in values.items() if v is not None})
    return record


def _out(ctx: ActionContext, result: dict[str, Any]) -> dict[str, Any]:
    site = base_url(ctx, "servicenow", EXAMPLE)
    sys_id = str(result["sys_id"])
    return {
        "sys_id": sys_id,
        "number": result.get("number"),
        "state": result.get("state"),
        "url": f"{site}/nav_to.do?uri=incident.do?sys_id={sys_id}",
    }


@action("servicenow.create_incident", impact="low", secrets=SECRETS, connection="servicenow")
async def create_incident(
    short_description: str,
    description: str | None = None,
    urgency: int | None = None,
    impact: int | None = None,
    category: str | None = None,
    assignment_group: str | None = None,
    caller_id: str | None = None,
    fields: dict[str, Any] | None = None,
    *,
    ctx: ActionContext,
) -> dict[str, Any]:
    """Open a ServiceNow incident.

    Args:
        short_description: the incident's one-line title
        description: the details
        urgency: 1 (high), 2 (medium) or 3 (low)
        impact: 1 (high), 2 (medium) or 3 (low)
        category: the incident category (e.g. security)
        assignment_group: the group's sys_id or name
        caller_id: the caller's sys_id or user name
        fields: other incident fields by column name (u_custom, ...)
    """
    for name, value in (("urgency", urgency), ("impact", impact)):
        if value is not None and value not in (1, 2, 3):
            raise ActionError(f"servicenow: {name} must be 1, 2 or 3")
    record = _record(
        {
            "short_description": short_description,
            "description": description,
            "urgency": urgency,
            "impact": impact,
            "category": category,
            "assignment_group": assignment_group,
            "caller_id": caller_id,
        },
        fields,
    )
    result = await _call(ctx, "POST", TABLE, record)
    ctx.log(f"opened ServiceNow incident {result.get('number')}")
    return _out(ctx, result)


@action("servicenow.update_incident", impact="low", secrets=SECRETS, idempotent=True, connection="servicenow")
async def update_incident(
    sys_id: str,
    state: int | None = None,
    work_notes: str | None = None,
    comments: str | None = None,
    close_code: str | None = None,
    close_notes: str | None = None,
    fields: dict[str, Any] | None = None,
    *,
    ctx: ActionContext,
) -> dict[str, Any]:
    """Change a ServiceNow incident; only the given fields change.

    Args:
        sys_id: the incident's sys_id (create_incident returns it)
        state: the state number (1 New, 2 In Progress, 3 On Hold, 6 Resolved, 7 Closed)
        work_notes: a work note (visible to the fulfillers)
        comments: an additional comment (visible to the caller)
        close_code: the resolution code, needed to resolve on most instances
        close_notes: the resolution notes
        fields: other incident fields by column name
    """
    record = _record(
        {
            "state": state,
            "work_notes": work_notes,
            "comments": comments,
            "close_code": close_code,
            "close_notes": close_notes,
        },
        fields,
    )
    if not record:
        raise ActionError("servicenow: nothing to update: give at least one field")
    result = await _call(ctx, "PATCH", f"{TABLE}/{segment('servicenow', sys_id, 'sys_id')}", record)
    return {**_out(ctx, result), "updated": sorted(record)}
