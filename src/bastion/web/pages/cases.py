"""Cases in the console: the list, and the case page where an investigation happens.

The case page shows the timeline (alerts joining, enrichments, workflow steps, approvals, comments),
the score explanation, the observables with their intel matches, the affected assets and identities,
tasks, comments and attachments; and offers the actions people take on a case: assign, change status,
close with a verdict, reopen, merge and split, run a workflow on the case, and ask an agent. Every
change goes through the case services (``bastion.cases``), which audit it and write the timeline; the
roles are the API's (reading: any user; changing: analyst or higher; running a workflow: analyst).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from bastion.cases import attachments as att_service
from bastion.cases.errors import CaseError, CaseNotFound
from bastion.cases.lifecycle import change_status, close_case, reopen_case
from bastion.cases.merge import merge_cases, split_case
from bastion.cases.service import add_comment, add_task, assign, get_case, set_task_status
from bastion.cases.timeline import case_timeline
from bastion.model import ROLE_RANK, Case, CaseStatus, Role, Severity, Verdict
from bastion.store import Database, TenantScope
from bastion.store.assets import InventoryRepository
from bastion.web.render import NavItem, flash_redirect, has_route, render
from bastion.web.session import AnalystUser, CurrentUser, SignedIn

__all__ = ["nav", "router"]

router = APIRouter()
nav = [NavItem("Cases", "/cases", order=20)]

_STATUSES = [s.value for s in CaseStatus]
# Timeline kinds grouped for the page's labels and filters.
_GROUPS = (
    ("alert", ("alert.", "case.opened", "merged", "split")),
    ("enrichment", ("enrich", "intel")),
    ("step", ("run.",)),
    ("approval", ("approval.",)),
    ("comment", ("comment",)),
    ("agent", ("agent.",)),
)


def timeline_group(kind: str) -> str:
    for group, prefixes in _GROUPS:
        if any(kind.startswith(p) or p in kind for p in prefixes):
            return group
    return "change"


def _db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


def _sev(value: Severity | int) -> str:
    try:
        return Severity(int(value)).name.lower()
    except ValueError:
        return "unknown"


# ---------------------------------------------------------------- the list


@router.get("/cases")
def cases_page(
    request: Request,
    user: CurrentUser,
    status: Annotated[str, Query(max_length=20)] = "open",
    q: Annotated[str, Query(max_length=200)] = "",
) -> Response:
    statuses: list[CaseStatus] | None
    if status == "open":
        statuses = [s for s in CaseStatus if s != CaseStatus.CLOSED]
    elif status in _STATUSES:
        statuses = [CaseStatus(status)]
    else:
        statuses = None
    with _db(request).read() as conn:
        found, total = TenantScope(conn, user.tenant_id).cases.page(
            status=statuses, q=q.strip() or None, limit=200, offset=0
        )
    return render(
        request,
        "cases.html",
        title="Cases",
        cases=found,
        total=total,
        status=status,
        q=q,
        statuses=["open", *_STATUSES, "all"],
    )


# ---------------------------------------------------------------- one case


def _intel(db: Database, tenant_id: str, case: Case) -> dict[tuple[str, str], list[dict[str, Any]]]:
    from bastion.intel.store import match_observables

    pairs = [(o.type.value, o.value) for o in case.observables][:500]
    if not pairs:
        return {}
    out: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for pair, hits in zip(pairs, match_observables(db, tenant_id, pairs), strict=True):
        if hits:
            out[pair] = [
                {"value": i.value, "source": i.source, "confidence": i.confidence, "tags": i.tags[:5]}
                for i in hits[:5]
            ]
    return out


def _workflows(conn: Any, tenant_id: str) -> list[dict[str, Any]]:
    from bastion.respond.validate import WorkflowInvalid, parse_workflow
    from bastion.store.workflows import WorkflowRepository

    out = []
    repo = WorkflowRepository(conn, tenant_id)
    for w in repo.list_definitions():
        d = repo.definition(w["workflow_id"])
        inputs: dict[str, Any] = {}
        if d is not None:
            try:
                inputs = dict(parse_workflow(d["source"]).inputs)
            except WorkflowInvalid:  # a stored definition that no longer parses is simply not offered
                continue
        out.append(
            {
                "id": w["workflow_id"],
                "title": w.get("title") or w["workflow_id"],
                "case_input": "case_id" in inputs,
            }
        )
    return out


def _case_view(db: Database, user: SignedIn, ref: str) -> dict[str, Any]:
    with db.read() as conn:
        scope = TenantScope(conn, user.tenant_id)
        case = get_case(scope, ref)
        assert case.id is not None
        timeline = case_timeline(conn, user.tenant_id, case.id)
        links = scope.cases.alert_links(case.id)
        alerts = []
        for link in links:
            alert = scope.alerts.get(link["alert_id"])
            if alert is not None:
                alerts.append({"alert": alert, "sev": _sev(alert.severity), "reason": link["reason"]})
        inventory = InventoryRepository(conn, user.tenant_id)
        hosts = sorted({o.value for o in case.observables if o.type.value == "host"})
        people = sorted({o.value for o in case.observables if o.type.value == "user"})
        assets = [(h, inventory.asset(h)) for h in hosts]
        identities = [(u, inventory.identity(u)) for u in people]
        users = [u.name for u in scope.users.list() if ROLE_RANK[u.role] >= ROLE_RANK[Role.ANALYST]]
        workflows = _workflows(conn, user.tenant_id) if user.can(Role.ANALYST) else []
    return {
        "case": case,
        "sev": _sev(case.severity),
        "timeline": [{"e": e, "group": timeline_group(e.kind)} for e in timeline],
        "alerts": alerts,
        "intel": _intel(db, user.tenant_id, case),
        "assets": assets,
        "identities": identities,
        "people": users,
        "workflows": workflows,
    }


@router.get("/cases/{ref}")
def case_page(request: Request, user: CurrentUser, ref: str) -> Response:
    try:
        view = _case_view(_db(request), user, ref)
    except CaseNotFound as exc:
        return render(
            request, "error.html", status_code=404, title="No such case", message=str(exc), back="/cases"
        )
    has_agents = has_route(request, "/agents/runs")
    return render(
        request,
        "case.html",
        title=f"Case #{view['case'].number}",
        statuses=_STATUSES,
        verdicts=[v.value for v in Verdict],
        has_agents=has_agents,
        **view,
    )


@router.get("/cases/{ref}/attachments/{attachment_id}")
def download(request: Request, user: CurrentUser, ref: str, attachment_id: str) -> Response:
    try:
        with _db(request).read() as conn:
            att, data = att_service.get_attachment(TenantScope(conn, user.tenant_id), ref, attachment_id)
    except CaseError as exc:
        return render(request, "error.html", status_code=404, title="Not found", message=str(exc))
    safe = re.sub(r"[^A-Za-z0-9._ -]", "_", att.name)[:200] or "attachment"
    return Response(
        data,
        media_type="application/octet-stream",  # never rendered by the browser as the console's origin
        headers={"Content-Disposition": f'attachment; filename="{safe}"', "X-Content-SHA256": att.sha256},
    )


# ---------------------------------------------------------------- changes (analyst or higher)


def _change(
    request: Request, user: SignedIn, ref: str, fn: Callable[[TenantScope], str], *, back: str | None = None
) -> Response:
    """Run ``fn`` in one write transaction; redirect back to the case with its message or the error."""
    target = back or f"/cases/{ref}"
    try:
        with _db(request).write() as conn:
            message = fn(TenantScope(conn, user.tenant_id))
    except CaseError as exc:
        return flash_redirect(request, target, str(exc), error=True)
    return flash_redirect(request, target, message)


@router.post("/cases/{ref}/assign")
def post_assign(
    request: Request, user: AnalystUser, ref: str, assignee: Annotated[str, Form(max_length=200)] = ""
) -> Response:
    def go(scope: TenantScope) -> str:
        case = assign(scope, user.actor, ref, assignee or None)
        return f"Assigned to {case.assignee}." if case.assignee else "Unassigned."

    return _change(request, user, ref, go)


@router.post("/cases/{ref}/status")
def post_status(
    request: Request,
    user: AnalystUser,
    ref: str,
    status: Annotated[str, Form(max_length=20)],
    reason: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    def go(scope: TenantScope) -> str:
        case = change_status(scope, user.actor, ref, status, reason=reason.strip() or None)
        return f"Status is now {case.status.value}."

    return _change(request, user, ref, go)


@router.post("/cases/{ref}/close")
def post_close(
    request: Request,
    user: AnalystUser,
    ref: str,
    verdict: Annotated[str, Form(max_length=40)] = "",
    reason: Annotated[str, Form(max_length=4000)] = "",
) -> Response:
    def go(scope: TenantScope) -> str:
        case = close_case(scope, user.actor, ref, verdict or None, reason=reason.strip() or None)
        return f"Case closed ({case.verdict.value if case.verdict else 'no verdict'})."

    return _change(request, user, ref, go)


@router.post("/cases/{ref}/reopen")
def post_reopen(
    request: Request, user: AnalystUser, ref: str, reason: Annotated[str, Form(max_length=4000)] = ""
) -> Response:
    def go(scope: TenantScope) -> str:
        case = reopen_case(scope, user.actor, ref, reason)
        return f"Case reopened ({case.status.value})."

    return _change(request, user, ref, go)


@router.post("/cases/{ref}/comments")
def post_comment(
    request: Request, user: AnalystUser, ref: str, body: Annotated[str, Form(max_length=20000)] = ""
) -> Response:
    def go(scope: TenantScope) -> str:
        add_comment(scope, user.actor, ref, body)
        return "Comment added."

    return _change(request, user, ref, go)


@router.post("/cases/{ref}/tasks")
def post_task(
    request: Request,
    user: AnalystUser,
    ref: str,
    title: Annotated[str, Form(max_length=500)] = "",
    assignee: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    def go(scope: TenantScope) -> str:
        task = add_task(scope, user.actor, ref, title, assignee.strip() or None)
        return f"Task added: {task.title}"

    return _change(request, user, ref, go)


@router.post("/cases/{ref}/tasks/{task_id}")
def post_task_status(
    request: Request, user: AnalystUser, ref: str, task_id: str, status: Annotated[str, Form(max_length=20)]
) -> Response:
    def go(scope: TenantScope) -> str:
        task = set_task_status(scope, user.actor, ref, task_id, status)
        return f"Task {task.title!r} is {task.status.value}."

    return _change(request, user, ref, go)


@router.post("/cases/{ref}/merge")
def post_merge(
    request: Request,
    user: AnalystUser,
    ref: str,
    others: Annotated[str, Form(max_length=1000)] = "",
    reason: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    sources = [s.strip() for s in re.split(r"[,\s]+", others) if s.strip()]

    def go(scope: TenantScope) -> str:
        if not sources:
            raise CaseError("name the cases to merge into this one (numbers like 12, 14 or #12)")
        merge_cases(scope, user.actor, ref, sources, reason.strip() or None)
        return f"Merged {len(sources)} case(s) into this one."

    return _change(request, user, ref, go)


@router.post("/cases/{ref}/split")
async def post_split(request: Request, user: AnalystUser, ref: str) -> Response:
    form = await request.form()
    ids = [str(v) for v in form.getlist("alert_ids") if isinstance(v, str) and v]
    title = str(form.get("title") or "").strip()[:500]
    reason = str(form.get("reason") or "").strip()[:2000] or None

    def go(scope: TenantScope) -> str:
        if not ids:
            raise CaseError("tick the alerts to split off into a new case")
        new = split_case(scope, user.actor, ref, ids, title or f"Split from case {ref}", reason)
        return f"Split {len(ids)} alert(s) into case #{new.number}."

    return await run_in_threadpool(_change, request, user, ref, go)


@router.post("/cases/{ref}/attachments")
async def post_attachment(request: Request, user: AnalystUser, ref: str) -> Response:
    declared = int(request.headers.get("content-length") or 0)
    if declared > att_service.MAX_ATTACHMENT_BYTES + 256 * 1024:
        return flash_redirect(request, f"/cases/{ref}", "The file is over the 20 MB limit.", error=True)
    form = await request.form()
    upload = form.get("file")
    if upload is None or isinstance(upload, str) or not upload.filename:
        return flash_redirect(request, f"/cases/{ref}", "Choose a file to attach.", error=True)
    data = await upload.read()
    name, ctype = upload.filename, upload.content_type

    def go(scope: TenantScope) -> str:
        att = att_service.add_attachment(scope, user.actor, ref, name, data, content_type=ctype)
        return f"Attached {att.name} ({att.size} bytes)."

    return await run_in_threadpool(_change, request, user, ref, go)


@router.post("/cases/{ref}/run")
def post_run(
    request: Request, user: AnalystUser, ref: str, workflow_id: Annotated[str, Form(max_length=100)] = ""
) -> Response:
    """Start a workflow on this case, as ``POST /api/v1/workflows/{id}/runs`` does (analyst), with the
    case's id as its ``case_id`` input when the workflow takes one (else in the trigger), so the run and
    its steps and approvals appear on this case's timeline."""
    from bastion.respond.service import RunError, start_run
    from bastion.respond.validate import parse_workflow
    from bastion.store.workflows import WorkflowRepository

    db = _db(request)
    try:
        with db.read() as conn:
            case_id = TenantScope(conn, user.tenant_id).cases.resolve(ref)
            if case_id is None:
                raise CaseNotFound(f"no case {ref} in this tenant")
            d = WorkflowRepository(conn, user.tenant_id).definition(workflow_id)
        if d is None:
            raise RunError(f"no workflow {workflow_id!r} in this tenant")
        takes_case = "case_id" in parse_workflow(d["source"]).inputs
        run_id = start_run(
            db,
            user.tenant_id,
            workflow_id,
            None,
            {"case_id": case_id} if takes_case else {},
            trigger={"type": "manual", "case_id": case_id, "source": "console"},
            actor=user.actor,
        )
    except (CaseError, ValueError) as exc:  # RunError and input binding errors are ValueErrors
        return flash_redirect(request, f"/cases/{ref}", str(exc), error=True)
    has_runs_page = has_route(request, "/runs/{run_id}")
    return flash_redirect(
        request,
        f"/runs/{run_id}" if has_runs_page else f"/cases/{ref}",
        f"Workflow {workflow_id} started (run {run_id}).",
    )
