"""The console's workflow pages: the list with versions, a workflow drawn as a graph, the YAML editor
with validation problems shown at their line, the "Run" form generated from the typed inputs, and the
drafts the construction agent wrote, which wait for an approval before they are published.

Every change goes through the response service, exactly as the API's ``POST /api/v1/workflows`` and
``POST /api/v1/workflows/{id}/runs`` do (``add_workflow`` validates and stores a new version, audited;
``start_run`` records the run, audited, and queues it), with the same roles: engineers edit, analysts
run, everyone signed in reads. Validation while typing is a POST returning the problems as JSON, so
the editor marks the line the validator reports without saving anything.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import Connection, func, select
from starlette.concurrency import run_in_threadpool

from bastion.agents import drafts
from bastion.respond.model import Workflow
from bastion.respond.service import RunError, add_workflow, resolver_for, start_run
from bastion.respond.validate import WorkflowInvalid, parse_workflow, validate_text
from bastion.store import Database
from bastion.store.workflows import WorkflowRepository, workflow_defs
from bastion.web.forms import form_fields, parse_form, render_fields
from bastion.web.graph import workflow_svg
from bastion.web.render import NavItem, flash_redirect, render
from bastion.web.session import AnalystUser, CurrentUser, EngineerUser, SignedIn

__all__ = ["nav", "router"]

router = APIRouter()
nav = [NavItem("Workflows", "/workflows", order=40), NavItem("Runs", "/runs", order=45)]

_MAX_SOURCE = 512 * 1024
NEW_TEMPLATE = """\
id: my-workflow
title: My workflow
version: 1
trigger: {manual: true}
inputs:
  message: {type: string, description: "what to log"}
steps:
  - id: say
    action: core.log
    with: {message: "${{ inputs.message }}"}
"""


def _db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


def _versions(conn: Connection, tenant_id: str, workflow_id: str) -> list[dict[str, Any]]:
    """Every stored version of one workflow, newest first (the repository reads one at a time)."""
    rows = conn.execute(
        select(
            workflow_defs.c.version,
            workflow_defs.c.title,
            workflow_defs.c.created,
            workflow_defs.c.created_by,
        )
        .where(workflow_defs.c.tenant_id == tenant_id, workflow_defs.c.workflow_id == workflow_id)
        .order_by(workflow_defs.c.version.desc())
    )
    return [dict(r._mapping) for r in rows]


def _version_counts(conn: Connection, tenant_id: str) -> dict[str, int]:
    rows = conn.execute(
        select(workflow_defs.c.workflow_id, func.count())
        .where(workflow_defs.c.tenant_id == tenant_id)
        .group_by(workflow_defs.c.workflow_id)
    )
    return {r[0]: int(r[1]) for r in rows}


def approval_impacts(conn: Connection, tenant_id: str) -> list[str]:
    """The action impacts the tenant's approval policy sends for approval (for the graph's marks)."""
    from bastion.connectors.policy import get_policy

    try:
        return list(get_policy(conn, tenant_id).get("require_approval", ["high"]))
    except (ValueError, TypeError):
        return ["high"]


def _load(db: Database, user: SignedIn, workflow_id: str, version: int | None) -> dict[str, Any] | None:
    with db.read() as conn:
        d = WorkflowRepository(conn, user.tenant_id).definition(workflow_id, version)
        if d is None:
            return None
        d["versions"] = _versions(conn, user.tenant_id, workflow_id)
        d["impacts"] = approval_impacts(conn, user.tenant_id)
        d["runs"] = WorkflowRepository(conn, user.tenant_id).list_runs(workflow_id=workflow_id, limit=10)
    return d


def _parsed(source: str) -> Workflow | None:
    try:
        return parse_workflow(source)
    except WorkflowInvalid:  # stored before a rule tightened, or an action since removed
        return None


def _not_found(request: Request, what: str) -> Response:
    return render(request, "error.html", status_code=404, title="Not found", message=what)


# ---------------------------------------------------------------- list and page


@router.get("/workflows")
def list_page(request: Request, user: CurrentUser) -> Response:
    db = _db(request)
    with db.read() as conn:
        found = WorkflowRepository(conn, user.tenant_id).list_definitions()
        counts = _version_counts(conn, user.tenant_id)
    for w in found:
        w["versions"] = counts.get(w["workflow_id"], 1)
    listed = drafts.list_drafts(db, user.tenant_id, limit=100)
    return render(request, "workflows.html", title="Workflows", workflows=found, drafts=listed)


@router.get("/workflows/new")
def new_page(request: Request, user: EngineerUser) -> Response:
    return _editor(request, source=NEW_TEMPLATE, workflow_id=None, problems=[], title="New workflow")


@router.get("/workflows/{workflow_id}")
def workflow_page(
    request: Request, user: CurrentUser, workflow_id: str, version: int | None = None
) -> Response:
    d = _load(_db(request), user, workflow_id, version)
    if d is None:
        return _not_found(
            request, f"No workflow {workflow_id!r}" + (f" version {version}" if version else "")
        )
    workflow = _parsed(d["source"])
    graph = workflow_svg(workflow, approval_impacts=d["impacts"], version=d["version"]) if workflow else None
    return render(
        request,
        "workflows_show.html",
        title=d["title"],
        d=d,
        workflow=workflow,
        graph=graph,
        latest=d["versions"][0]["version"] if d["versions"] else d["version"],
    )


# ---------------------------------------------------------------- editor


def _editor(
    request: Request,
    *,
    source: str,
    workflow_id: str | None,
    problems: list[dict[str, Any]],
    title: str,
    base_version: int | None = None,
    status_code: int = 200,
) -> Response:
    """The editor page: line numbers, and each problem marked at its line (clamped to the last line,
    where YAML reports an unexpected end) before any script runs."""
    line_count = source.count("\n") + 1
    marks: dict[int, list[str]] = {}
    for p in problems:
        line = min(max(1, int(p["line"])), line_count)
        marks.setdefault(line, []).append(f"line {p['line']}, column {p['column']}: {p['message']}")
    return render(
        request,
        "workflows_edit.html",
        status_code=status_code,
        title=title,
        source=source,
        workflow_id=workflow_id,
        base_version=base_version,
        problems=problems,
        line_count=line_count,
        marks=marks,
    )


@router.get("/workflows/{workflow_id}/edit")
def edit_page(request: Request, user: EngineerUser, workflow_id: str, version: int | None = None) -> Response:
    with _db(request).read() as conn:
        d = WorkflowRepository(conn, user.tenant_id).definition(workflow_id, version)
    if d is None:
        return _not_found(request, f"No workflow {workflow_id!r}")
    return _editor(
        request,
        source=d["source"],
        workflow_id=workflow_id,
        base_version=d["version"],
        problems=[],
        title=f"Edit {d['title']}",
    )


async def _source(request: Request) -> str:
    form = await request.form(max_part_size=_MAX_SOURCE)
    text = form.get("source")
    return text.replace("\r\n", "\n") if isinstance(text, str) else ""


@router.post("/workflows/validate")
async def validate(request: Request, user: EngineerUser) -> Response:
    """The problems of the posted YAML (``source``) as JSON: ``{"ok", "problems": [{line, column,
    message}], "workflow_id"}``. Saves nothing."""
    if request.headers.get("content-type", "").startswith("application/json"):
        body = await request.body()
        if len(body) > _MAX_SOURCE:
            return JSONResponse({"ok": False, "error": "the workflow is over 512 KiB"}, status_code=413)
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            return JSONResponse({"ok": False, "error": 'send {"source": "<yaml>"}'}, status_code=400)
        text = data.get("source") if isinstance(data, dict) else None
        if not isinstance(text, str):
            return JSONResponse({"ok": False, "error": 'send {"source": "<yaml>"}'}, status_code=400)
    else:
        text = await _source(request)
    db, tenant = _db(request), user.tenant_id
    workflow, problems = await run_in_threadpool(validate_text, text, resolver=resolver_for(db, tenant))
    return JSONResponse(
        {
            "ok": not problems,
            "problems": [p.as_dict() for p in problems],
            "workflow_id": workflow.id if workflow else None,
        }
    )


@router.post("/workflows/save")
async def save(request: Request, user: EngineerUser) -> Response:
    """Store the posted YAML as a new version (the same service as ``POST /api/v1/workflows``)."""
    form = await request.form(max_part_size=_MAX_SOURCE)
    raw = form.get("source")
    text = raw.replace("\r\n", "\n") if isinstance(raw, str) else ""
    editing = form.get("workflow_id")
    editing_id = editing if isinstance(editing, str) and editing else None
    try:
        result = await run_in_threadpool(add_workflow, _db(request), user.tenant_id, text, actor=user.actor)
    except WorkflowInvalid as exc:
        return _editor(
            request,
            source=text,
            workflow_id=editing_id,
            problems=[p.as_dict() for p in exc.problems],
            title="Edit workflow",
            status_code=422,
        )
    wid, version = result["workflow_id"], result["version"]
    message = (
        f"Saved {wid} version {version}."
        if result["created"]
        else f"No change: {wid} is already version {version}."
    )
    if result.get("webhook_token"):
        # Shown once, on this response only (never stored in clear, never in a cookie or URL).
        d = _load(_db(request), user, wid, version)
        assert d is not None
        workflow = _parsed(d["source"])
        return render(
            request,
            "workflows_show.html",
            title=d["title"],
            d=d,
            workflow=workflow,
            graph=workflow_svg(workflow, approval_impacts=d["impacts"], version=d["version"])
            if workflow
            else None,
            latest=version,
            notice=message,
            webhook_token=result["webhook_token"],
        )
    return flash_redirect(request, f"/workflows/{wid}?version={version}", message)


# ---------------------------------------------------------------- run form


def _run_form(
    request: Request,
    d: dict[str, Any],
    workflow: Workflow,
    *,
    values: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    texts: dict[str, str] | None = None,
    problem: str | None = None,
    status_code: int = 200,
) -> Response:
    fields = form_fields(workflow.inputs, values, errors, texts=texts)
    return render(
        request,
        "workflows_run.html",
        status_code=status_code,
        title=f"Run {d['title']}",
        d=d,
        workflow=workflow,
        fields_html=render_fields(fields),
        problem=problem,
        error_count=len(errors or {}),
    )


@router.get("/workflows/{workflow_id}/run")
def run_page(request: Request, user: AnalystUser, workflow_id: str, version: int | None = None) -> Response:
    with _db(request).read() as conn:
        d = WorkflowRepository(conn, user.tenant_id).definition(workflow_id, version)
    workflow = _parsed(d["source"]) if d else None
    if d is None or workflow is None:
        return _not_found(request, f"No runnable workflow {workflow_id!r}")
    # Prefill from the query string (e.g. ``?case_id=12`` from a case page), for declared inputs only.
    values: dict[str, Any] = {}
    texts = {k: v for k, v in request.query_params.items() if k in workflow.inputs}
    return _run_form(request, d, workflow, values=values, texts=texts or None)


@router.post("/workflows/{workflow_id}/run")
async def run_post(request: Request, user: AnalystUser, workflow_id: str) -> Response:
    form = await request.form()
    ver = form.get("version")
    version = int(ver) if isinstance(ver, str) and ver.isdigit() else None
    db = _db(request)
    with db.read() as conn:
        d = WorkflowRepository(conn, user.tenant_id).definition(workflow_id, version)
    workflow = _parsed(d["source"]) if d else None
    if d is None or workflow is None:
        return _not_found(request, f"No runnable workflow {workflow_id!r}")
    values, errors, texts = parse_form(workflow.inputs, form)
    if errors:
        return _run_form(request, d, workflow, values=values, errors=errors, texts=texts, status_code=422)
    try:
        run_id = await run_in_threadpool(
            start_run,
            db,
            user.tenant_id,
            workflow_id,
            d["version"],
            values,
            trigger={"type": "console"},
            actor=user.actor,
        )
    except RunError as exc:
        return _not_found(request, str(exc))
    except ValueError as exc:  # the run service's own input check (bind_inputs)
        return _run_form(request, d, workflow, values=values, texts=texts, problem=str(exc), status_code=422)
    return flash_redirect(
        request, f"/runs/{run_id}", f"Started a run of {workflow_id} version {d['version']}."
    )


# ---------------------------------------------------------------- agent drafts
# Drafts live in the agents' service (``bastion.agents.drafts``): reading settles drafts whose approval
# was decided elsewhere; "Ask to publish" requests the ``draft:<id>`` approval that publishes it.


@router.get("/workflow-drafts/{draft_id}")
def draft_page(request: Request, user: CurrentUser, draft_id: str) -> Response:
    try:
        draft = drafts.get_draft(_db(request), user.tenant_id, draft_id)
    except drafts.DraftError as exc:
        return _not_found(request, str(exc))
    workflow = _parsed(draft["source"])
    with _db(request).read() as conn:
        impacts = approval_impacts(conn, user.tenant_id)
    return render(
        request,
        "workflows_draft.html",
        title=f"Draft {draft['workflow_id']}",
        draft=draft,
        workflow=workflow,
        graph=workflow_svg(workflow, approval_impacts=impacts) if workflow else None,
    )


@router.post("/workflow-drafts/{draft_id}/publish")
async def draft_publish(request: Request, user: EngineerUser, draft_id: str) -> Response:
    try:
        await run_in_threadpool(
            drafts.request_publish, _db(request), user.tenant_id, draft_id, actor=user.actor
        )
    except drafts.DraftError as exc:
        return flash_redirect(request, f"/workflow-drafts/{draft_id}", str(exc), error=True)
    return flash_redirect(
        request, f"/workflow-drafts/{draft_id}", "Publishing asked: it waits for an approver in Approvals."
    )
