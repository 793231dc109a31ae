"""Response operations the CLI, the API and other stages call: add workflows, start, wait for, cancel
and retry runs, fire hooks (``alert``/``case``/``intel`` triggers) and webhooks. Each state change is
audited.

Runs are started through DBOS's queue (``bastion_runs``, partitioned by tenant for per-tenant
concurrency) with the run id as workflow id, so a start is idempotent and any worker may take it; a
caller with no worker alive can run it inline (:func:`run_inline`).
"""

from __future__ import annotations

import hashlib
import secrets as pysecrets
import time
from pathlib import Path
from typing import Any

from sqlalchemy import select

from bastion.respond.expr import ExpressionError, render
from bastion.respond.model import Workflow
from bastion.respond.runtime import APP_VERSION, RUN_QUEUE, dbos_location
from bastion.respond.validate import Resolver, WorkflowInvalid, bind_inputs, parse_stored, parse_workflow
from bastion.store import Database, TenantScope
from bastion.store._util import INT64_MAX
from bastion.store.workflows import WorkflowRepository, lock_tenant, workflow_webhooks
from bastion.tenancy.connections import workflow_tenant

__all__ = [
    "RunError",
    "RunStateError",
    "add_workflow",
    "cancel_run",
    "fire_hooks",
    "fire_hooks_for",
    "load_workflow_ref",
    "resolver_for",
    "retry_run",
    "run_detail",
    "start_run",
    "stop_workflow",
    "trigger_webhook",
    "wait_run",
]

ACTIVE = ("running",)


class RunError(ValueError):
    """A user's mistake about a run or workflow; the message says what to do."""


class RunStateError(RunError):
    """The run exists but is in a state that does not allow the operation."""


def resolver_for(db: Database, tenant_id: str) -> Resolver:
    def resolve(workflow_id: str, version: int | None) -> Workflow | None:
        with db.read() as conn:
            d = WorkflowRepository(conn, tenant_id).definition(workflow_id, version)
        if d is None:
            return None
        try:
            return parse_workflow(d["source"])
        except WorkflowInvalid:
            return None

    return resolve


def add_workflow(db: Database, tenant_id: str, text: str, *, actor: str) -> dict[str, Any]:
    """Validate and store a new version. Returns id, version, created, and a webhook token when new."""
    workflow = parse_workflow(text, resolver=resolver_for(db, tenant_id))
    token = None
    with db.write() as conn:
        lock_tenant(conn, tenant_id)
        repo = WorkflowRepository(conn, tenant_id)
        version, created = repo.add_definition(
            workflow.id, workflow.title, [t.kind for t in workflow.triggers], text, actor
        )
        if workflow.trigger("webhook") and not repo.has_webhook_token(workflow.id):
            token = "bwh_" + pysecrets.token_urlsafe(32)
            repo.set_webhook_token(workflow.id, hashlib.sha256(token.encode()).hexdigest())
        if created:
            TenantScope(conn, tenant_id).audit.append(
                actor, "workflow.add", "workflow", workflow.id, {"version": version}
            )
    out: dict[str, Any] = {"workflow_id": workflow.id, "version": version, "created": created}
    if token:
        out["webhook_token"] = token
    return out


def load_workflow_ref(db: Database, tenant_id: str, ref: str, *, actor: str) -> tuple[str, int]:
    """A stored workflow id (``id`` or ``id@N``) or a file path (stored first): (workflow id, version)."""
    path = Path(ref)
    if ref.endswith((".yaml", ".yml")) or path.is_file():
        if not path.is_file():
            raise RunError(f"no such file: {ref}")
        added = add_workflow(db, tenant_id, path.read_text(), actor=actor)
        return added["workflow_id"], added["version"]
    wid, at, ver = ref.partition("@")
    version = None
    if at:  # "id@N": a version the store can hold, never quietly the latest instead
        if not (ver.isascii() and ver.isdigit() and 1 <= int(ver) <= INT64_MAX):
            raise RunError(f"workflow version {ver!r} in {ref!r}: give a whole number from 1, like {wid}@2")
        version = int(ver)
    with db.read() as conn:
        d = WorkflowRepository(conn, tenant_id).definition(wid, version)
    if d is None:
        raise RunError(f"no workflow {ref!r} in this tenant (`bastion workflow list`, or pass a file)")
    return d["workflow_id"], d["version"]


def dbos_client(db: Database) -> Any:
    """A DBOS client on the system database that belongs to ``db`` (destroy it after use)."""
    from dbos import DBOSClient

    loc = dbos_location(db)
    client = DBOSClient(system_database_url=loc.url, dbos_system_schema=loc.schema or "dbos")
    if loc.url not in _MIGRATED:
        # The client never creates DBOS's tables; a run may be queued before any worker ever started.
        client._sys_db.run_migrations()
        _MIGRATED.add(loc.url)
    return client


_MIGRATED: set[str] = set()


def _case_of(scope: TenantScope, inputs: dict[str, Any], trigger: dict[str, Any]) -> str | None:
    """The case a run acts on: its inputs' (else trigger payload's) ``case_id``, given as the case's id or
    number (``12``, ``#12``); ``None`` when it names no case of this tenant."""
    payload = trigger.get("payload")
    for source in (inputs, trigger, payload if isinstance(payload, dict) else {}):
        ref = source.get("case_id")
        if isinstance(ref, str | int) and not isinstance(ref, bool) and str(ref).strip():
            return scope.cases.resolve(str(ref))
    return None


def start_run(
    db: Database,
    tenant_id: str,
    workflow_id: str,
    version: int | None,
    inputs: dict[str, Any],
    *,
    trigger: dict[str, Any],
    actor: str,
    enqueue: bool = True,
    prior: dict[str, Any] | None = None,
    retry_of: str | None = None,
    run_id: str | None = None,
) -> str:
    """Create the run record (audited) and hand the run to DBOS's queue. Returns the run id.

    A given ``run_id`` makes the start idempotent across processes: a second start with the same id
    fails on the record's primary key (``sqlalchemy.exc.IntegrityError``) before anything is queued.
    """
    with db.write() as conn:
        lock_tenant(conn, tenant_id)
        repo = WorkflowRepository(conn, tenant_id)
        d = repo.definition(workflow_id, version)
        if d is None:
            if version is not None and (latest := repo.latest_version(workflow_id)):
                raise RunError(f"workflow {workflow_id!r} has no version {version}; the latest is {latest}")
            raise RunError(f"no workflow {workflow_id!r} in this tenant")
        bound = bind_inputs(parse_stored(d["source"]), inputs)
        scope = TenantScope(conn, tenant_id)
        run_id = repo.create_run(
            workflow_id,
            d["version"],
            inputs=bound,
            trigger={**trigger, "requested_by": actor},
            requested_by=actor,
            retry_of=retry_of,
            run_id=run_id,
            case_id=_case_of(scope, bound, trigger),
            tenant_context=workflow_tenant(conn, tenant_id),
        )
        scope.audit.append(
            actor,
            "run.start",
            "run",
            run_id,
            {
                "workflow": workflow_id,
                "version": d["version"],
                "trigger": trigger.get("type"),
                **({"retry_of": retry_of} if retry_of else {}),
            },
        )
    if enqueue:
        client = dbos_client(db)
        try:
            client.enqueue(
                {
                    "workflow_name": "bastion.run",
                    "queue_name": RUN_QUEUE,
                    "workflow_id": run_id,
                    "app_version": APP_VERSION,
                    "queue_partition_key": tenant_id,
                },
                tenant_id,
                run_id,
                prior or {},
            )
        finally:
            client.destroy()
    return run_id


def run_inline(tenant_id: str, run_id: str, prior: dict[str, Any] | None = None) -> Any:
    """Start a run in this process (an :class:`~bastion.respond.runtime.Executor` must be launched).

    Returns the DBOS workflow handle (``.get_result()`` waits without polling).
    """
    from dbos import DBOS, SetWorkflowID

    from bastion.respond.engine import execute_run

    with SetWorkflowID(run_id):
        return DBOS.start_workflow(execute_run, tenant_id, run_id, prior or {})


def wait_run(db: Database, tenant_id: str, run_id: str, *, timeout_s: float | None = None) -> dict[str, Any]:
    """Poll the run record until it leaves ``running`` (or ``timeout_s`` passes)."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    delay = 0.02
    while True:
        with db.read() as conn:
            run = WorkflowRepository(conn, tenant_id).get_run(run_id)
        if run is None:
            raise RunError(f"no run {run_id}")
        if run["status"] not in ACTIVE or (deadline is not None and time.monotonic() > deadline):
            return run
        time.sleep(delay)
        delay = min(delay * 1.5, 0.25)


def run_detail(db: Database, tenant_id: str, run_id: str) -> dict[str, Any]:
    """A run with its steps; a step that asked for an approval carries it (``approval``: status, who may
    decide, and every decision: who, when, from which channel, with what comment)."""
    from bastion.store.approvals import ApprovalRepository

    with db.read() as conn:
        repo = WorkflowRepository(conn, tenant_id)
        run = repo.get_run(run_id)
        if run is None:
            raise RunError(f"no run {run_id} in this tenant (`bastion runs list`)")
        run["steps"] = repo.steps(run_id)
        asked = [s["approval_id"] for s in run["steps"] if s.get("approval_id")]
        if asked:
            approvals = ApprovalRepository(conn, tenant_id)
            decisions = approvals.decisions(asked)
            requests = approvals.get_many(asked)
            for step in run["steps"]:
                found = requests.get(step["approval_id"]) if step.get("approval_id") else None
                if found is not None:
                    step["approval"] = {
                        "id": found["id"],
                        "status": found["status"],
                        "roles": found.get("roles"),
                        "quorum": found.get("quorum"),
                        "requested_by": found.get("requested_by"),
                        "requested_at": found.get("requested_at"),
                        "resolved_at": found.get("resolved_at"),
                        "decisions": decisions.get(found["id"], []),
                    }
    return run


def cancel_run(db: Database, tenant_id: str, run_id: str, *, actor: str) -> dict[str, Any]:
    with db.write() as conn:
        repo = WorkflowRepository(conn, tenant_id)
        run = repo.get_run(run_id)
        if run is None:
            raise RunError(f"no run {run_id} in this tenant")
        if run["status"] not in ("running", "waiting_approval"):
            raise RunStateError(
                f"run {run_id} is {run['status']}; only running or waiting runs can be cancelled"
            )
        repo.set_run_status(run_id, "cancelled", error=f"cancelled by {actor}")
        # Its sub-workflow runs stop with it (DBOS cancels their workflows with the parent's).
        children = repo.active_descendants(run_id)
        for child in children:
            repo.set_run_status(child, "cancelled", error=f"cancelled with run {run_id} by {actor}")
        details = {"sub_runs": children} if children else {}
        TenantScope(conn, tenant_id).audit.append(actor, "run.cancel", "run", run_id, details)
    stop_workflow(db, tenant_id, run_id, actor=actor, sub_runs=children)
    return {"run_id": run_id, "status": "cancelled"}


def stop_workflow(
    db: Database, tenant_id: str, workflow_id: str, *, actor: str, sub_runs: list[str] | None = None
) -> None:
    """Cancel a durable run's DBOS workflow with every workflow it started (``for_each`` items,
    ``parallel`` branches, sub-workflow runs; a workflow run or an agent run; the caller has already
    marked its record and those of ``sub_runs``) and close the open approval requests of the run and its
    sub-runs: no one is asked to decide them, and a step parked on one is woken so that it stops waiting
    instead of holding its worker thread until a recheck."""
    from bastion.respond.approvals import close_for_run
    from bastion.respond.parking import continuation_id
    from bastion.store.approvals import ApprovalRepository

    with db.read() as conn:
        gates = ApprovalRepository(conn, tenant_id).ids_for_run(workflow_id)
    # A parked run may be carrying on in a continuation workflow (respond.parking): stop that too.
    continuations = [continuation_id(gate) for gate in gates]
    client = dbos_client(db)
    try:
        for wid in [workflow_id, *continuations]:  # an id never queued, or finished, is left as it is
            client.cancel_workflow(wid, cancel_children=True)
    finally:
        client.destroy()
    for run_id in [workflow_id, *(sub_runs or [])]:
        close_for_run(db, tenant_id, run_id, actor=actor)


def retry_run(db: Database, tenant_id: str, run_id: str, *, actor: str, enqueue: bool = True) -> str:
    """A new run of the same version and inputs that reuses the outputs of the steps that succeeded."""
    with db.read() as conn:
        repo = WorkflowRepository(conn, tenant_id)
        run = repo.get_run(run_id)
        if run is None:
            raise RunError(f"no run {run_id} in this tenant")
        if run["status"] not in ("failed", "cancelled"):
            raise RunStateError(
                f"run {run_id} is {run['status']}; only failed or cancelled runs can be retried"
            )
        prior = {s["key"]: s["output"] for s in repo.steps(run_id) if s["status"] == "succeeded"}
    # The run sees the trigger its original saw (a webhook's payload, the alert), marked as a retry; the
    # one who retries is the requester now (four-eyes).
    return start_run(
        db,
        tenant_id,
        run["workflow_id"],
        run["version"],
        run["inputs"] or {},
        trigger={**(run["trigger"] or {}), "retry_of": run_id},
        actor=actor,
        enqueue=enqueue,
        prior=prior,
        retry_of=run_id,
    )


def trigger_webhook(db: Database, workflow_id: str, token: str, payload: dict[str, Any]) -> tuple[str, str]:
    """Start a run from a webhook call; (tenant id, run id). Raises RunError for a bad token."""
    digest = hashlib.sha256(token.encode()).hexdigest()
    with db.read() as conn:
        row = conn.execute(
            select(workflow_webhooks.c.tenant_id, workflow_webhooks.c.workflow_id).where(
                workflow_webhooks.c.token_hash == digest
            )
        ).first()
    if row is None or row.workflow_id != workflow_id:
        raise PermissionError("invalid webhook token for this workflow")
    inputs = payload.get("inputs", {}) if isinstance(payload.get("inputs"), dict) else {}
    run_id = start_run(
        db,
        row.tenant_id,
        workflow_id,
        None,
        inputs,
        trigger={"type": "webhook", "payload": payload},
        actor="webhook",
    )
    return row.tenant_id, run_id


def _matches(expected: Any, actual: Any) -> bool:
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(_matches(v, actual.get(k)) for k, v in expected.items())
    if isinstance(expected, list):
        return actual in expected
    return bool(expected == actual)


def fire_hooks(
    db: Database, tenant_id: str, kind: str, payload: dict[str, Any], *, actor: str = "hook"
) -> list[str]:
    """Start every stored workflow whose ``kind`` trigger (alert, case, intel) matches ``payload``.

    A trigger matches when each of its fields equals the payload's (a list means any of) and its
    ``condition`` expression, evaluated over ``trigger`` (the payload), is true. The run's inputs are
    the payload's keys that the workflow declares. Returns the started run ids.
    """
    return fire_hooks_for(db, tenant_id, kind, [payload], actor=actor)


def fire_hooks_for(
    db: Database, tenant_id: str, kind: str, payloads: list[dict[str, Any]], *, actor: str = "hook"
) -> list[str]:
    """:func:`fire_hooks` for a batch of payloads: the bound workflows are read and parsed once."""
    if kind not in ("alert", "case", "intel"):
        raise ValueError(f"unknown hook kind {kind!r}: use alert, case or intel")
    if not payloads:
        return []
    with db.read() as conn:
        definitions = WorkflowRepository(conn, tenant_id).with_trigger(kind)
    bound = []
    for d in definitions:
        workflow = parse_stored(d["source"])
        trig = workflow.trigger(kind)
        if trig is not None:
            bound.append((d["version"], workflow, trig))
    started: list[str] = []
    for payload in payloads:
        for version, workflow, trig in bound:
            if not _matches(trig.match, payload):
                continue
            if trig.condition is not None:
                try:
                    if not render(trig.condition, {"trigger": payload, "tenant": {"id": tenant_id}}):
                        continue
                except ExpressionError:
                    continue
            inputs = {k: payload[k] for k in workflow.inputs if k in payload}
            try:
                started.append(
                    start_run(
                        db,
                        tenant_id,
                        workflow.id,
                        version,
                        inputs,
                        trigger={"type": kind, "payload": payload},
                        actor=actor,
                    )
                )
            except ValueError:
                continue
    return started
