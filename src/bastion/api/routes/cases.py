"""Cases: list (filters, pagination), get (with the full timeline), open, change, close, reopen, comment,
tasks, observables, attachments, merge, split and move an alert. Reading needs viewer, changing analyst.

A case is named by its 32-hex id or its number (``12``, or ``%2312`` for ``#12``). Unknown ids are 404,
bad input 400, a change the case's state does not allow (moving a closed case) 409.
"""

from __future__ import annotations

import email.parser
import email.policy
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any, TypeVar
from urllib.parse import quote

import msgspec
import orjson
from fastapi import APIRouter, Depends, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from bastion.api.deps import CurrentPrincipal, read_limited_body, require_role
from bastion.api.errors import ApiError
from bastion.api.responses import JSON
from bastion.cases import attachments as att_service
from bastion.cases import lifecycle, merge
from bastion.cases import service as cases
from bastion.cases.errors import CaseNotFound, TransitionError
from bastion.cases.view import case_document
from bastion.model import Case, CaseStatus, Observable, ObservableType, Role, Severity
from bastion.store import TenantScope
from bastion.store._util import INT64_MAX
from bastion.tenancy.service import Principal

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["cases"])
Writer = Annotated[Principal, Depends(require_role(Role.ANALYST))]
T = TypeVar("T")


@contextmanager
def _errors() -> Iterator[None]:
    """Turn the case service's errors into 404/409/413/400 with its message."""
    try:
        yield
    except CaseNotFound as exc:
        raise ApiError(404, str(exc)) from None
    except TransitionError as exc:
        raise ApiError(409, str(exc)) from None
    except att_service.AttachmentTooLarge as exc:
        raise ApiError(413, str(exc), limit=att_service.MAX_ATTACHMENT_BYTES) from None
    except ValueError as exc:  # CaseError, PolicyError, the triage's AlertError, bad enum values
        raise ApiError(400, str(exc)) from None


def _write(request: Request, principal: Principal, fn: Callable[[TenantScope], T]) -> T:
    with _errors(), request.app.state.db.write() as conn:
        return fn(TenantScope(conn, principal.tenant_id))


async def _body(request: Request) -> dict[str, Any]:
    raw = await read_limited_body(request, request.app.state.settings.max_body_bytes)
    if not raw.strip():
        return {}
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, f"body is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise ApiError(400, "body must be a JSON object")
    return doc


def _str(doc: dict[str, Any], key: str, *, required: bool = False) -> str | None:
    value = doc.get(key)
    if value is None:
        if required:
            raise ApiError(400, f"{key}: required")
        return None
    if not isinstance(value, str):
        raise ApiError(400, f"{key}: must be a string")
    return value


def _severity(value: Any) -> Severity:
    try:
        return Severity.parse(value)
    except ValueError as exc:
        raise ApiError(400, f"severity: {exc}") from None


def _str_list(doc: dict[str, Any], key: str) -> list[str]:
    value = doc.get(key)
    if not isinstance(value, list) or not value or not all(isinstance(v, str | int) for v in value):
        raise ApiError(400, f"{key}: must be a non-empty list of ids")
    return [str(v) for v in value]


def _doc_after(request: Request, principal: Principal, fn: Callable[[TenantScope], Case]) -> dict[str, Any]:
    def run(scope: TenantScope) -> dict[str, Any]:
        return case_document(scope, fn(scope))

    return _write(request, principal, run)


# ------------------------------------------------------------------------------------ reading


@router.get("/cases", summary="List cases (filters and pagination)")
def list_cases(
    request: Request,
    principal: CurrentPrincipal,
    status: Annotated[str | None, Query(description="a status, or several separated by commas")] = None,
    severity: Annotated[
        str | None, Query(description="minimum severity: low, medium, high, critical")
    ] = None,
    assignee: str | None = None,
    queue: str | None = None,
    q: Annotated[str | None, Query(description="a substring of the title")] = None,
    min_score: Annotated[int | None, Query(ge=0, le=100)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=INT64_MAX)] = 0,
) -> JSON:
    if q is not None and any(ord(c) < 32 for c in q):
        raise ApiError(400, f"q: {q!r} contains control characters; search for text of a title")
    statuses: list[CaseStatus] | None = None
    with _errors():
        if status:
            statuses = [lifecycle.parse_status(s) for s in status.split(",") if s.strip()]
    min_sev = _severity(severity) if severity is not None else None
    with request.app.state.db.read() as conn:
        found, total = TenantScope(conn, principal.tenant_id).cases.page(
            status=statuses,
            min_severity=min_sev,
            assignee=assignee,
            queue=queue,
            q=q,
            min_score=min_score,
            limit=limit,
            offset=offset,
        )
    return JSON({"cases": found, "total": total, "limit": limit, "offset": offset})


@router.get("/cases/{case_ref}", summary="Get one case with its timeline, alerts and attachments")
def get_case(request: Request, principal: CurrentPrincipal, case_ref: str) -> JSON:
    with _errors(), request.app.state.db.read() as conn:
        scope = TenantScope(conn, principal.tenant_id)
        return JSON(case_document(scope, cases.get_case(scope, case_ref)))


@router.get("/cases/{case_ref}/attachments/{attachment_id}", summary="Download an attachment")
def download_attachment(
    request: Request, principal: CurrentPrincipal, case_ref: str, attachment_id: str
) -> Response:
    with _errors(), request.app.state.db.read() as conn:
        att, data = att_service.get_attachment(
            TenantScope(conn, principal.tenant_id), case_ref, attachment_id
        )
    return Response(
        data,
        media_type="application/octet-stream",  # never the declared type: a browser would render it inline
        headers={
            "Content-Disposition": _disposition(att.name),
            "X-Content-SHA256": att.sha256,
            "X-Content-Type-Options": "nosniff",
        },
    )


def _disposition(name: str) -> str:
    """``attachment`` with a plain-ASCII ``filename`` (as the console sends) and, when that is not the
    name, the name itself as RFC 6266/5987 ``filename*``: a header takes neither non-Latin-1 text nor
    control characters."""
    safe = re.sub(r"[^A-Za-z0-9._ -]", "_", name)[:200] or "attachment"
    if safe == name:
        return f'attachment; filename="{safe}"'
    return f"attachment; filename=\"{safe}\"; filename*=UTF-8''{quote(name, safe='')}"


# ------------------------------------------------------------------------------------ changing


@router.post("/cases", summary="Open a case", status_code=201)
async def create_case(request: Request, principal: Writer) -> JSON:
    doc = await _body(request)
    title = _str(doc, "title", required=True) or ""
    severity = _severity(doc.get("severity", "medium"))
    alert_ids = _str_list(doc, "alert_ids") if doc.get("alert_ids") else []

    def run(scope: TenantScope) -> Case:
        case = cases.open_case(
            scope,
            principal.actor,
            title,
            severity,
            description=_str(doc, "description"),
            alert_ids=alert_ids,
            reason=_str(doc, "reason"),
            assignee=_str(doc, "assignee"),
            queue=_str(doc, "queue"),
            template=_str(doc, "template"),
        )
        for key, value in (doc.get("custom_fields") or {}).items():
            case = cases.set_custom_field(scope, principal.actor, case.id or "", str(key), value)
        return case

    if not isinstance(doc.get("custom_fields") or {}, dict):
        raise ApiError(400, "custom_fields: must be an object")
    return JSON(await run_in_threadpool(_doc_after, request, principal, run), status_code=201)


@router.patch("/cases/{case_ref}", summary="Change status, assignee, severity, title or custom fields")
async def patch_case(request: Request, principal: Writer, case_ref: str) -> JSON:
    """``custom_fields`` sets each key to its value (``null`` removes the key); ``assignee: null``
    unassigns; ``status: closed`` needs ``verdict``."""
    doc = await _body(request)
    known = {"status", "verdict", "reason", "assignee", "severity", "title", "description", "custom_fields"}
    unknown = sorted(set(doc) - known)
    if unknown:
        raise ApiError(400, f"unknown field(s) {', '.join(unknown)}: use {', '.join(sorted(known))}")
    if not doc:
        raise ApiError(400, f"nothing to change: send one of {', '.join(sorted(known))}")
    fields = doc.get("custom_fields") or {}
    if not isinstance(fields, dict):
        raise ApiError(400, "custom_fields: must be an object")
    severity = _severity(doc["severity"]) if doc.get("severity") is not None else None

    def run(scope: TenantScope) -> Case:
        actor = principal.actor
        case_id = cases.require_case(scope, case_ref)
        if "title" in doc or "description" in doc or severity is not None:
            cases.update_case(
                scope,
                actor,
                case_id,
                title=_str(doc, "title"),
                severity=severity,
                description=_str(doc, "description"),
            )
        if "assignee" in doc:
            cases.assign(scope, actor, case_id, _str(doc, "assignee"))
        for key, value in fields.items():
            if value is None:
                cases.unset_custom_field(scope, actor, case_id, str(key))
            else:
                cases.set_custom_field(scope, actor, case_id, str(key), value)
        if doc.get("status") is not None:
            lifecycle.change_status(
                scope,
                actor,
                case_id,
                _str(doc, "status") or "",
                reason=_str(doc, "reason"),
                verdict=_str(doc, "verdict"),
            )
        return cases.get_case(scope, case_id)

    return JSON(await run_in_threadpool(_doc_after, request, principal, run))


@router.post("/cases/{case_ref}/close", summary="Close a case with a verdict")
async def close_case(request: Request, principal: Writer, case_ref: str) -> JSON:
    doc = await _body(request)

    def run(scope: TenantScope) -> Case:
        return lifecycle.close_case(
            scope, principal.actor, case_ref, _str(doc, "verdict"), reason=_str(doc, "reason")
        )

    return JSON(await run_in_threadpool(_doc_after, request, principal, run))


@router.post("/cases/{case_ref}/reopen", summary="Reopen a closed case (reason required)")
async def reopen_case(request: Request, principal: Writer, case_ref: str) -> JSON:
    doc = await _body(request)

    def run(scope: TenantScope) -> Case:
        return lifecycle.reopen_case(
            scope,
            principal.actor,
            case_ref,
            _str(doc, "reason") or "",
            status=_str(doc, "status") or CaseStatus.IN_PROGRESS,
        )

    return JSON(await run_in_threadpool(_doc_after, request, principal, run))


@router.post("/cases/{case_ref}/comments", summary="Comment on a case", status_code=201)
async def post_comment(request: Request, principal: Writer, case_ref: str) -> JSON:
    doc = await _body(request)
    body = _str(doc, "body", required=True) or ""

    def run(scope: TenantScope) -> dict[str, Any]:
        return msgspec.to_builtins(cases.add_comment(scope, principal.actor, case_ref, body))

    return JSON(await run_in_threadpool(_write, request, principal, run), status_code=201)


@router.post("/cases/{case_ref}/tasks", summary="Add a task", status_code=201)
async def post_task(request: Request, principal: Writer, case_ref: str) -> JSON:
    doc = await _body(request)
    title = _str(doc, "title", required=True) or ""

    def run(scope: TenantScope) -> dict[str, Any]:
        task = cases.add_task(scope, principal.actor, case_ref, title, _str(doc, "assignee"))
        return msgspec.to_builtins(task)

    return JSON(await run_in_threadpool(_write, request, principal, run), status_code=201)


@router.patch("/cases/{case_ref}/tasks/{task_id}", summary="Complete, cancel or reopen a task")
async def patch_task(request: Request, principal: Writer, case_ref: str, task_id: str) -> JSON:
    doc = await _body(request)
    status = _str(doc, "status", required=True) or ""

    def run(scope: TenantScope) -> dict[str, Any]:
        return msgspec.to_builtins(cases.set_task_status(scope, principal.actor, case_ref, task_id, status))

    return JSON(await run_in_threadpool(_write, request, principal, run))


@router.post("/cases/{case_ref}/observables", summary="Add observables by hand")
async def post_observables(request: Request, principal: Writer, case_ref: str) -> JSON:
    """``{"type": "ipv4", "value": "..."}`` or ``{"observables": [{...}, ...]}``."""
    doc = await _body(request)
    items = doc.get("observables", [doc])
    if not isinstance(items, list) or not items:
        raise ApiError(400, "observables: must be a non-empty list of {type, value}")
    parsed = []
    for i, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("value"), str) or not item["value"].strip():
            raise ApiError(400, f"observables[{i}]: needs a type and a non-empty value")
        try:  # the value is checked by the service, as an alert's is
            parsed.append(Observable(ObservableType(str(item.get("type"))), item["value"].strip()))
        except ValueError:
            kinds = ", ".join(t.value for t in ObservableType)
            raise ApiError(
                400, f"observables[{i}].type: {item.get('type')!r} is not one of {kinds}"
            ) from None

    def run(scope: TenantScope) -> dict[str, Any]:
        return {"added": cases.add_observables(scope, principal.actor, case_ref, parsed)}

    return JSON(await run_in_threadpool(_write, request, principal, run))


def _multipart_file(content_type: str, body: bytes) -> tuple[str, str | None, bytes]:
    """(file name, content type, bytes) of the first file part of a multipart/form-data body."""
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    if not msg.is_multipart():
        raise ApiError(400, "malformed multipart body")
    for part in msg.iter_parts():
        name = part.get_filename()
        if name:
            payload = part.get_payload(decode=True)
            if not isinstance(payload, bytes):
                payload = b""
            return name, part.get_content_type() if part.get("content-type") else None, payload
    raise ApiError(400, "the multipart body has no file part (send it as a form field with a filename)")


@router.post("/cases/{case_ref}/attachments", summary="Attach evidence (multipart, or raw body with ?name=)")
async def post_attachment(
    request: Request, principal: Writer, case_ref: str, name: str | None = None
) -> JSON:
    limit = att_service.MAX_ATTACHMENT_BYTES
    content_type = request.headers.get("content-type", "application/octet-stream")
    raw = await read_limited_body(request, limit + 256 * 1024)
    ctype: str | None
    if content_type.lower().startswith("multipart/form-data"):
        file_name, ctype, data = _multipart_file(content_type, raw)
        file_name = name or file_name
    else:
        if not name:
            raise ApiError(400, "name: required for a raw upload (?name=evidence.pcap), or send multipart")
        file_name, ctype, data = name, content_type.split(";")[0].strip() or None, raw
        if ctype in ("application/x-www-form-urlencoded",):
            ctype = None

    def run(scope: TenantScope) -> dict[str, Any]:
        att = att_service.add_attachment(
            scope, principal.actor, case_ref, file_name, data, content_type=ctype
        )
        return msgspec.to_builtins(att)

    return JSON(await run_in_threadpool(_write, request, principal, run), status_code=201)


@router.post("/cases/{case_ref}/merge", summary="Merge other cases into this one")
async def post_merge(request: Request, principal: Writer, case_ref: str) -> JSON:
    doc = await _body(request)
    sources = _str_list(doc, "sources")

    def run(scope: TenantScope) -> Case:
        return merge.merge_cases(scope, principal.actor, case_ref, sources, _str(doc, "reason"))

    return JSON(await run_in_threadpool(_doc_after, request, principal, run))


@router.post("/cases/{case_ref}/split", summary="Split alerts off into a new case", status_code=201)
async def post_split(request: Request, principal: Writer, case_ref: str) -> JSON:
    doc = await _body(request)
    alert_ids = _str_list(doc, "alert_ids")
    title = _str(doc, "title", required=True) or ""

    def run(scope: TenantScope) -> Case:
        return merge.split_case(scope, principal.actor, case_ref, alert_ids, title, _str(doc, "reason"))

    return JSON(await run_in_threadpool(_doc_after, request, principal, run), status_code=201)


@router.post("/cases/{case_ref}/alerts", summary="Move (or attach) an alert into this case")
async def post_alert(request: Request, principal: Writer, case_ref: str) -> JSON:
    doc = await _body(request)
    alert_id = _str(doc, "alert_id", required=True) or ""

    def run(scope: TenantScope) -> Case:
        return merge.move_alert(scope, principal.actor, alert_id, case_ref, _str(doc, "reason"))

    return JSON(await run_in_threadpool(_doc_after, request, principal, run))
