"""Jira Cloud (REST API v3): ``jira.create_issue``, ``jira.update_issue`` and ``jira.comment_issue``.

Authentication is basic auth with an account's e-mail and an API token (both secrets). API v3 takes
rich text only in Atlassian Document Format (ADF), so plain text from a workflow is turned into ADF
paragraphs here. Jira's errors look like ``{"errorMessages": [...], "errors": {"field": "message"}}``;
a 429 carries Retry-After and is retried. The connection's base_url is the site
(https://your-domain.atlassian.net).
"""

from __future__ import annotations

from typing import Any

from bastion.connectors.registry import ActionContext, ActionError, action
from bastion.connectors.vendor_http import VendorResponse, base_url, basic_auth, request, secret, segment

__all__ = ["adf", "comment_issue", "create_issue", "update_issue"]

EXAMPLE = "https://your-domain.atlassian.net"
SECRETS = ("jira_email", "jira_api_token")


def adf(text: str) -> dict[str, Any]:
    """Plain text as an ADF document: blank lines separate paragraphs, single newlines become breaks."""
    paragraphs: list[dict[str, Any]] = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        lines = block.split("\n")
        if not any(line.strip() for line in lines):
            continue
        content: list[dict[str, Any]] = []
        for i, line in enumerate(lines):
            if i:
                content.append({"type": "hardBreak"})
            if line:
                content.append({"type": "text", "text": line})
        paragraphs.append({"type": "paragraph", "content": content})
    return {"type": "doc", "version": 1, "content": paragraphs}


def _describe(status: int, doc: Any, text: str) -> tuple[str, str]:
    if isinstance(doc, dict) and ("errorMessages" in doc or "errors" in doc):
        parts = [str(m) for m in doc.get("errorMessages") or []]
        parts += [f"{k}: {v}" for k, v in (doc.get("errors") or {}).items()]
        return "", "; ".join(parts)
    return "", ""


async def _call(
    ctx: ActionContext, method: str, path: str, *, json: Any = None, params: dict[str, Any] | None = None
) -> VendorResponse:
    headers = basic_auth(secret(ctx, "jira", "jira_email"), secret(ctx, "jira", "jira_api_token"))
    url = base_url(ctx, "jira", EXAMPLE) + path
    return await request(
        ctx, "jira", method, url, headers=headers, json=json, params=params, describe=_describe
    )


def _fields(
    summary: str | None,
    description: str | None,
    labels: list[str] | None,
    priority: str | None,
    extra: dict[str, Any] | None,
) -> dict[str, Any]:
    fields: dict[str, Any] = dict(extra or {})
    if summary is not None:
        fields["summary"] = " ".join(summary.split())[:255]
    if description is not None:
        fields["description"] = adf(description)
    if labels is not None:
        fields["labels"] = [label.replace(" ", "-") for label in labels]
    if priority is not None:
        fields["priority"] = {"name": priority}
    return fields


@action("jira.create_issue", impact="low", secrets=SECRETS, connection="jira")
async def create_issue(
    project: str,
    summary: str,
    description: str | None = None,
    issue_type: str = "Task",
    labels: list[str] | None = None,
    priority: str | None = None,
    fields: dict[str, Any] | None = None,
    *,
    ctx: ActionContext,
) -> dict[str, Any]:
    """Create a Jira issue (POST /rest/api/3/issue).

    Args:
        project: the project key (SEC)
        summary: the issue's one-line summary
        description: plain text; blank lines separate paragraphs
        issue_type: the issue type's name (Task, Bug, Incident, ...)
        labels: labels to set (spaces become dashes, Jira allows none)
        priority: the priority's name (Highest, High, Medium, Low, Lowest)
        fields: other fields as Jira expects them, e.g. {"customfield_10010": "x"}
    """
    body = _fields(summary, description, labels, priority, fields)
    body["project"] = {"key": project}
    body["issuetype"] = {"name": issue_type}
    answer = await _call(ctx, "POST", "/rest/api/3/issue", json={"fields": body})
    doc = answer.json if isinstance(answer.json, dict) else {}
    key = doc.get("key")
    if not key:
        raise ActionError(f"jira: {answer.status} created, but the answer names no issue key")
    site = base_url(ctx, "jira", EXAMPLE)
    ctx.log(f"created Jira issue {key}")
    return {"id": doc.get("id"), "key": key, "self": doc.get("self"), "url": f"{site}/browse/{key}"}


@action("jira.update_issue", impact="low", secrets=SECRETS, idempotent=True, connection="jira")
async def update_issue(
    key: str,
    summary: str | None = None,
    description: str | None = None,
    labels: list[str] | None = None,
    priority: str | None = None,
    fields: dict[str, Any] | None = None,
    notify_users: bool = True,
    *,
    ctx: ActionContext,
) -> dict[str, Any]:
    """Change fields of a Jira issue (PUT /rest/api/3/issue/{key}); only the given fields change.

    Args:
        key: the issue key (SEC-12) or id
        summary: a new summary
        description: a new description in plain text
        labels: the labels, replacing the current ones
        priority: the priority's name
        fields: other fields as Jira expects them
        notify_users: whether Jira e-mails the watchers about the change
    """
    body = _fields(summary, description, labels, priority, fields)
    if not body:
        raise ActionError("jira: nothing to update: give at least one field")
    await _call(
        ctx,
        "PUT",
        f"/rest/api/3/issue/{segment('jira', key, 'key')}",
        json={"fields": body},
        params=None if notify_users else {"notifyUsers": "false"},
    )
    return {"key": key, "updated": sorted(body)}


@action("jira.comment_issue", impact="low", secrets=SECRETS, connection="jira")
async def comment_issue(key: str, body: str, *, ctx: ActionContext) -> dict[str, Any]:
    """Add a comment to a Jira issue (POST /rest/api/3/issue/{key}/comment).

    Args:
        key: the issue key (SEC-12) or id
        body: the comment in plain text; blank lines separate paragraphs
    """
    if not body.strip():
        raise ActionError("jira: a comment needs text")
    answer = await _call(
        ctx, "POST", f"/rest/api/3/issue/{segment('jira', key, 'key')}/comment", json={"body": adf(body)}
    )
    doc = answer.json if isinstance(answer.json, dict) else {}
    return {"key": key, "comment_id": doc.get("id"), "self": doc.get("self")}
