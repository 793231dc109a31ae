"""The console's run pages: the list of runs, and one run with its steps as they happen: status,
timing, attempts, rendered inputs and outputs (secrets masked), errors and logs, the graph coloured by
step status, and the Cancel and "Retry from the failed step" actions.

Actions go through the response service with the API's roles (analyst): ``cancel_run`` and
``retry_run``, which starts a new run of the same version and inputs that reuses the recorded outputs of
the steps that succeeded, so the work resumes at the step that failed. Step records are masked by the
engine when written; the page masks again with the tenant's current secret values
(:func:`bastion.connectors.policy.mask`), so a secret set after a run, or one passed in as an input, is
not shown either. The page refreshes itself from the ``runs`` event stream.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from bastion.connectors.policy import mask
from bastion.respond.service import RunError, RunStateError, cancel_run, retry_run, run_detail
from bastion.respond.validate import WorkflowInvalid, parse_workflow
from bastion.store import Database, TenantScope
from bastion.store.workflows import RUN_STATUSES, WorkflowRepository, respond_secrets, workflow_runs
from bastion.tenancy.secrets import SecretError, SecretsVault, load_key
from bastion.web.graph import workflow_svg
from bastion.web.pages.workflows import approval_impacts
from bastion.web.render import flash_redirect, render
from bastion.web.session import AnalystUser, CurrentUser, SignedIn

__all__ = ["router", "step_statuses"]

router = APIRouter()
_PAGE = 50
_ACTIVE = ("running", "waiting_approval")
# When one step has several records (for_each items, handlers), the one that matters most wins.
_RANK = {"failed": 6, "waiting_approval": 5, "running": 4, "cancelled": 3, "succeeded": 2, "skipped": 1}


def _db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


def _secret_values(db: Database, tenant_id: str) -> tuple[list[str], bool]:
    """The tenant's secret values (to mask what the page shows), and whether they could be read."""
    with db.read() as conn:
        has_any = conn.execute(
            select(respond_secrets.c.name).where(respond_secrets.c.tenant_id == tenant_id).limit(1)
        ).first()
        if has_any is None:
            return [], True
        try:
            vault = SecretsVault(load_key(db))
            return list(vault.get_many(TenantScope(conn, tenant_id)).values()), True
        except SecretError:
            return [], False


def step_statuses(steps: list[dict[str, Any]]) -> dict[str, str]:
    """Step id -> the status the graph shows (the most telling of its records)."""
    out: dict[str, str] = {}
    for s in steps:
        sid, status = s["step_id"], s["status"]
        if _RANK.get(status, 0) > _RANK.get(out.get(sid, ""), 0):
            out[sid] = status
    return out


def _retries_of(db: Database, tenant_id: str, run_id: str) -> list[dict[str, Any]]:
    """The runs started as retries of this one (the repository has no filter on ``retry_of``)."""
    with db.read() as conn:
        rows = conn.execute(
            select(workflow_runs.c.id, workflow_runs.c.status, workflow_runs.c.created)
            .where(workflow_runs.c.tenant_id == tenant_id, workflow_runs.c.retry_of == run_id)
            .order_by(workflow_runs.c.created)
        )
        return [{"run_id": r.id, "status": r.status, "created": r.created} for r in rows]


def _graph(db: Database, tenant_id: str, run: dict[str, Any]) -> str | None:
    with db.read() as conn:
        d = WorkflowRepository(conn, tenant_id).definition(run["workflow_id"], run["version"])
        impacts = approval_impacts(conn, tenant_id)
    if d is None:
        return None
    try:
        workflow = parse_workflow(d["source"])
    except WorkflowInvalid:
        return None
    return workflow_svg(
        workflow, statuses=step_statuses(run["steps"]), approval_impacts=impacts, version=run["version"]
    )


@router.get("/runs")
def runs_page(
    request: Request,
    user: CurrentUser,
    status: str = "",
    workflow_id: str = "",
    page: Annotated[int, Query(ge=1, le=10_000)] = 1,
) -> Response:
    status_filter = status if status in RUN_STATUSES else None
    with _db(request).read() as conn:
        found = WorkflowRepository(conn, user.tenant_id).list_runs(
            status=status_filter,
            workflow_id=workflow_id or None,
            limit=_PAGE + 1,
            offset=(page - 1) * _PAGE,
        )
    return render(
        request,
        "runs.html",
        title="Runs",
        runs=found[:_PAGE],
        more=len(found) > _PAGE,
        page=page,
        status=status_filter or "",
        workflow_id=workflow_id,
        statuses=RUN_STATUSES,
    )


def _view(db: Database, user: SignedIn, run_id: str) -> dict[str, Any]:
    run = run_detail(db, user.tenant_id, run_id)
    secrets, readable = _secret_values(db, user.tenant_id)
    run = mask(run, secrets)
    total = 0
    for s in run["steps"]:
        total += s["duration_ms"] or 0
    finished = run["finished"] or None
    run["elapsed_ms"] = (finished - run["created"]) if finished else None
    run["step_ms"] = total
    run["secrets_readable"] = readable
    run["retries"] = _retries_of(db, user.tenant_id, run_id)
    run["graph"] = _graph(db, user.tenant_id, run)
    run["failed_step"] = next((s["key"] for s in run["steps"] if s["status"] == "failed"), None)
    return run


@router.get("/runs/{run_id}")
def run_page(request: Request, user: CurrentUser, run_id: str) -> Response:
    try:
        run = _view(_db(request), user, run_id)
    except RunError as exc:
        return render(request, "error.html", status_code=404, title="Not found", message=str(exc))
    return render(
        request,
        "runs_show.html",
        title=f"Run {run_id[:8]}",
        run=run,
        active=run["status"] in _ACTIVE,
        retryable=run["status"] in ("failed", "cancelled"),
    )


@router.post("/runs/{run_id}/cancel")
async def cancel(request: Request, user: AnalystUser, run_id: str) -> Response:
    try:
        await run_in_threadpool(cancel_run, _db(request), user.tenant_id, run_id, actor=user.actor)
    except RunStateError as exc:
        return flash_redirect(request, f"/runs/{run_id}", str(exc), error=True)
    except RunError as exc:
        return render(request, "error.html", status_code=404, title="Not found", message=str(exc))
    return flash_redirect(request, f"/runs/{run_id}", "Run cancelled.")


@router.post("/runs/{run_id}/retry")
async def retry(request: Request, user: AnalystUser, run_id: str) -> Response:
    try:
        new_id = await run_in_threadpool(retry_run, _db(request), user.tenant_id, run_id, actor=user.actor)
    except RunStateError as exc:
        return flash_redirect(request, f"/runs/{run_id}", str(exc), error=True)
    except RunError as exc:
        return render(request, "error.html", status_code=404, title="Not found", message=str(exc))
    return flash_redirect(
        request,
        f"/runs/{new_id}",
        f"Retrying run {run_id[:8]}: steps that succeeded are reused, the run resumes at the failed step.",
    )
