"""TheHive 5 (API v1): ``thehive.create_alert`` (``POST /api/v1/alert``) and ``thehive.create_case``
(``POST /api/v1/case``).

Authentication is ``Authorization: Bearer <API key>`` (a secret). TheHive's errors are ``{"type":
"AuthenticationError", "message": "..."}``-shaped. Severity is 1 (low) to 4 (critical); TLP and PAP are
0 (clear/white) to 3 or 4 (red). An alert's (type, source, sourceRef) must be unique: when no sourceRef
is given, one is derived from the step's idempotency key, so a retried step cannot create two alerts;
when TheHive answers that the alert exists (400 ``CreateError``), the existing alert is looked up with
the query API (``POST /api/v1/query``) and returned with ``created: false``.
The connection's base_url is TheHive's root (http://thehive.example.org:9000).
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

from bastion.connectors.registry import ActionContext, ActionError, action
from bastion.connectors.vendor_http import VendorError, VendorResponse, base_url, bearer, request, secret

__all__ = ["create_alert", "create_case"]

EXAMPLE = "http://thehive.example.org:9000"
_SEVERITY = {"low": 1, "medium": 2, "high": 3, "critical": 4}


def _describe(status: int, doc: Any, text: str) -> tuple[str, str]:
    if isinstance(doc, dict) and "message" in doc:
        kind = doc.get("type")
        return "", f"{kind}: {doc['message']}" if kind else str(doc["message"])
    return "", ""


def _severity(value: int | str) -> int:
    if isinstance(value, str):
        found = _SEVERITY.get(value.strip().lower())
        if found is None and value.strip().isdigit():
            found = int(value)
    else:
        found = value
    if found not in (1, 2, 3, 4):
        raise ActionError(f"thehive: severity must be 1-4 or low, medium, high, critical, not {value!r}")
    return int(found)


def _level(name: str, value: int, top: int) -> int:
    if not 0 <= value <= top:
        raise ActionError(f"thehive: {name} must be between 0 and {top}")
    return value


async def _post(
    ctx: ActionContext, path: str, doc: dict[str, Any], params: dict[str, Any] | None = None
) -> VendorResponse:
    url = base_url(ctx, "thehive", EXAMPLE) + path
    headers = bearer(secret(ctx, "thehive", "thehive_api_key"))
    return await request(
        ctx, "thehive", "POST", url, headers=headers, json=doc, params=params, describe=_describe
    )


async def _create(ctx: ActionContext, path: str, doc: dict[str, Any]) -> dict[str, Any]:
    answer = await _post(ctx, path, doc)
    out = answer.json if isinstance(answer.json, dict) else {}
    if not out.get("_id"):
        raise ActionError(f"thehive: {answer.status} but the answer names no _id")
    return out


def _already_exists(exc: VendorError) -> bool:
    body = exc.body
    return exc.status == 400 and isinstance(body, dict) and body.get("type") == "CreateError"


async def _find_alert(ctx: ActionContext, kind: str, source: str, source_ref: str) -> dict[str, Any] | None:
    match = [
        {"_field": f, "_value": v} for f, v in (("type", kind), ("source", source), ("sourceRef", source_ref))
    ]
    query = [
        {"_name": "listAlert"},
        {"_name": "filter", "_and": match},
        {"_name": "page", "from": 0, "to": 1},
    ]
    answer = await _post(ctx, "/api/v1/query", {"query": query}, params={"name": "alerts"})
    found = answer.json if isinstance(answer.json, list) else []
    return found[0] if found and isinstance(found[0], dict) and found[0].get("_id") else None


@action(
    "thehive.create_alert", impact="low", secrets=("thehive_api_key",), idempotent=True, connection="thehive"
)
async def create_alert(
    title: str,
    description: str,
    type: str = "bastion",
    source: str = "bastion",
    source_ref: str | None = None,
    severity: int | str = 2,
    tlp: int = 2,
    pap: int = 2,
    tags: list[str] | None = None,
    observables: list[dict[str, Any]] | None = None,
    *,
    ctx: ActionContext,
) -> dict[str, Any]:
    """Raise an alert in TheHive for its analysts to triage (and promote to a case).

    Args:
        title: the alert's title
        description: what happened (TheHive renders Markdown)
        type: the alert type (e.g. bastion, phishing)
        source: the alert's source system
        source_ref: the source's own id of this alert, unique per type and source (default: one per step)
        severity: 1 (low) to 4 (critical), or low, medium, high, critical
        tlp: traffic light protocol, 0 (clear) to 4 (red)
        pap: permissible actions protocol, 0 (clear) to 3 (red)
        tags: tags
        observables: observables as TheHive expects them, e.g. [{"dataType": "ip", "data": "203.0.113.9"}]
    """
    if source_ref is None:
        seed = f"{ctx.tenant_id}:{ctx.idempotency_key}" if ctx.idempotency_key else uuid.uuid4().hex
        source_ref = "bastion-" + hashlib.sha256(seed.encode()).hexdigest()[:16]
    doc: dict[str, Any] = {
        "type": type,
        "source": source,
        "sourceRef": source_ref,
        "title": title,
        "description": description,
        "severity": _severity(severity),
        "tlp": _level("tlp", tlp, 4),
        "pap": _level("pap", pap, 3),
        "tags": list(tags or []),
    }
    if observables:
        doc["observables"] = observables
    try:
        out = await _create(ctx, "/api/v1/alert", doc)
    except VendorError as exc:
        existing = await _find_alert(ctx, type, source, source_ref) if _already_exists(exc) else None
        if existing is None:
            raise
        ctx.log(f"TheHive alert {existing['_id']} already existed")
        return {
            "id": existing["_id"],
            "source_ref": source_ref,
            "status": existing.get("status"),
            "created": False,
        }
    ctx.log(f"raised TheHive alert {out['_id']}")
    return {"id": out["_id"], "source_ref": source_ref, "status": out.get("status"), "created": True}


@action("thehive.create_case", impact="low", secrets=("thehive_api_key",), connection="thehive")
async def create_case(
    title: str,
    description: str,
    severity: int | str = 2,
    tlp: int = 2,
    pap: int = 2,
    tags: list[str] | None = None,
    assignee: str | None = None,
    tasks: list[str] | None = None,
    *,
    ctx: ActionContext,
) -> dict[str, Any]:
    """Open a case in TheHive.

    Args:
        title: the case's title
        description: what the case is about (Markdown)
        severity: 1 (low) to 4 (critical), or low, medium, high, critical
        tlp: traffic light protocol, 0 (clear) to 4 (red)
        pap: permissible actions protocol, 0 (clear) to 3 (red)
        tags: tags
        assignee: the login of the user to assign (user@org)
        tasks: titles of tasks to create with the case
    """
    doc: dict[str, Any] = {
        "title": title,
        "description": description,
        "severity": _severity(severity),
        "tlp": _level("tlp", tlp, 4),
        "pap": _level("pap", pap, 3),
        "tags": list(tags or []),
    }
    if assignee:
        doc["assignee"] = assignee
    if tasks:
        doc["tasks"] = [{"title": t} for t in tasks]
    out = await _create(ctx, "/api/v1/case", doc)
    ctx.log(f"opened TheHive case #{out.get('number')}")
    return {"id": out["_id"], "number": out.get("number"), "status": out.get("status")}
