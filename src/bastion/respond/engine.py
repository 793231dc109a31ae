"""The engine: a run is one durable DBOS workflow, and each action call is one durable step.

The workflow function interprets the validated definition the run recorded (so a new version never
changes a running run). Everything it decides (``if``, ``for_each`` items, the output of each step) is
computed from checkpointed values, so a recovered run replays to the same place and never runs a
completed step again. Each call gets the idempotency key ``<run>:<step>[:<iteration>]`` which
connectors pass on. Retries are separate steps with a durable ``DBOS.sleep`` between them. A top-level
run stops at a pending approval and is continued by a new workflow when it resolves (respond.parking);
inside child workflows an approval is a durable ``DBOS.recv`` on its topic. ``for_each`` with
``concurrency > 1`` and ``parallel`` branches run as child workflows with deterministic ids.

Secrets are read and expressions in ``with`` rendered inside the step, so secret values never enter
DBOS's checkpoints; recorded inputs and outputs are masked.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import threading
import time
import traceback
from typing import Any

from dbos import DBOS, SetWorkflowID

from bastion.connectors.policy import approval_for, get_policy, invoke, mask
from bastion.connectors.registry import ActionContext, ActionError, check_inputs, get_action
from bastion.respond.expr import ExpressionError, render
from bastion.respond.model import Step, Workflow
from bastion.respond.validate import parse_stored
from bastion.store import Database, TenantScope
from bastion.store.workflows import WorkflowRepository, lock_tenant, now_ms
from bastion.tenancy.connections import get_connection, workflow_tenant
from bastion.tenancy.secrets import SecretError, SecretsVault, load_key

__all__ = ["StepFailed", "configure", "execute_run", "run_block"]


_loops = threading.local()


def _loop() -> asyncio.AbstractEventLoop:
    """One event loop per executor thread, reused by every action call on it."""
    loop: asyncio.AbstractEventLoop | None = getattr(_loops, "loop", None)
    if loop is None or loop.is_closed():
        loop = asyncio.new_event_loop()
        _loops.loop = loop
    return loop


class _State:
    db: Database | None = None
    vault: SecretsVault | None = None


def configure(db: Database) -> None:
    """Give the engine its store (each executor process calls this before launching DBOS)."""
    _State.db = db
    _State.vault = SecretsVault(load_key(db))


def _db() -> Database:
    if _State.db is None:
        raise RuntimeError("the engine is not configured: call bastion.respond.engine.configure(db)")
    return _State.db


def configured_store() -> Database:
    """The store the engine was configured with: actions that write Bastion's own data (cases.*) use
    it. Raises RuntimeError when the engine is not configured."""
    return _db()


class _Parked(Exception):
    """The run stopped at a pending approval; a continuation carries it on (respond.parking)."""


class StepFailed(Exception):
    """A step failed and its on_error says to fail the run."""

    def __init__(self, step_id: str, message: str) -> None:
        super().__init__(f"step {step_id}: {message}")
        self.step_id = step_id


# ---------------------------------------------------------------------------------------- steps


def _read_plan(tenant_id: str, run_id: str, *, snapshot_only: bool) -> dict[str, Any] | None:
    """What a run executes: its definition, inputs, trigger and ``tenant``. With ``snapshot_only``, None
    for a run created without its tenant context recorded (before migration 0012)."""
    with _db().read() as conn:
        repo = WorkflowRepository(conn, tenant_id)
        tenant = repo.run_tenant_context(run_id)
        if tenant is None and snapshot_only:
            return None
        run = repo.get_run(run_id)
        if run is None:
            raise RuntimeError(f"run {run_id} has no record")
        definition = repo.definition(run["workflow_id"], run["version"])
        if tenant is None:
            tenant = workflow_tenant(conn, tenant_id)
    if definition is None:
        raise RuntimeError(f"workflow {run['workflow_id']} v{run['version']} is missing")
    return {
        "source": definition["source"],
        "inputs": run["inputs"],
        "trigger": run["trigger"],
        "tenant": tenant,
        "run": {"id": run_id, "workflow_id": run["workflow_id"], "version": run["version"]},
        "status": run["status"],
        "parent_run_id": run["parent_run_id"],
    }


@DBOS.step(name="bastion.load_run")
def _load_run(tenant_id: str, run_id: str) -> dict[str, Any]:
    """The plan as a checkpoint: for a continuation (its ``status`` decides whether to go on) and for a
    run created before runs recorded their tenant context."""
    plan = _read_plan(tenant_id, run_id, snapshot_only=False)
    assert plan is not None
    return plan


def _plan(tenant_id: str, run_id: str) -> dict[str, Any]:
    """The plan of a run, without a checkpoint when every part of it is fixed at the run's creation (the
    definition version, inputs, trigger and recorded tenant context): a replay reads the same."""
    plan = _read_plan(tenant_id, run_id, snapshot_only=True)
    return plan if plan is not None else _load_run(tenant_id, run_id)


@DBOS.step(name="bastion.recorded_outcomes")
def _recorded_outcomes(tenant_id: str, run_id: str) -> dict[str, dict[str, Any]]:
    """The finished steps of a parked run, by key: what its continuation replays instead of running."""
    with _db().read() as conn:
        steps = WorkflowRepository(conn, tenant_id).steps(run_id)
    return {
        s["key"]: {"status": s["status"], "output": s["output"], "error": s["error"]}
        for s in steps
        if s["status"] in ("succeeded", "failed", "denied")
    }


# Writes to the store are retried a few times (a busy SQLite file, a PostgreSQL failover); what still
# fails ends the run as failed with the reason (see execute_run), never leaves it "running".
_STORE_RETRY: dict[str, Any] = {
    "retries_allowed": True,
    "max_attempts": 4,
    "interval_seconds": 0.2,
    "backoff_rate": 3.0,
}


@DBOS.step(name="bastion.record", **_STORE_RETRY)
def _record(tenant_id: str, run_id: str, key: str, values: dict[str, Any]) -> None:
    with _db().write() as conn:
        WorkflowRepository(conn, tenant_id).record_step(run_id, key, **values)


def _write_status(
    tenant_id: str,
    run_id: str,
    status: str,
    outputs: Any = None,
    error: str | None = None,
    waiting: str | None = None,
) -> None:
    with _db().write() as conn:
        changed = WorkflowRepository(conn, tenant_id).set_run_status(
            run_id, status, outputs=outputs, error=error, waiting_step=waiting
        )
        if changed and status in ("succeeded", "failed"):
            TenantScope(conn, tenant_id).audit.append(
                "engine", f"run.{status}", "run", run_id, {"error": error} if error else {}
            )


_set_status = DBOS.step(name="bastion.run_status", **_STORE_RETRY)(_write_status)


def _finish(tenant_id: str, run_id: str, status: str, outputs: Any = None, error: str | None = None) -> None:
    """The run's final status, written without a checkpoint: it is the workflow's last act, and writing
    it again on a replay changes nothing (only an active run changes status, and only a change is
    audited). Retried like a store step."""
    delay = _STORE_RETRY["interval_seconds"]
    for attempt in range(1, _STORE_RETRY["max_attempts"] + 1):
        try:
            _write_status(tenant_id, run_id, status, outputs, error)
            return
        except Exception:
            if attempt == _STORE_RETRY["max_attempts"]:
                raise
            time.sleep(delay)
            delay *= _STORE_RETRY["backoff_rate"]


@DBOS.step(name="bastion.action")
def _action_step(
    tenant_id: str,
    run_id: str,
    key: str,
    step_id: str,
    iteration: int | None,
    attempt: int,
    action_id: str,
    with_: dict[str, Any],
    context: dict[str, Any],
    timeout_s: float | None,
    connection_name: str | None,
    approval_check: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Render, call and record one attempt of one action. Errors come back as values (checkpointed).

    With ``approval_check`` (``{"step": <the step's approval block or None>}``, first attempt only) the
    step first asks the tenant policy whether the call needs an approval; if so it returns
    ``{"needs_approval": spec}`` without calling, and the workflow waits and calls again.
    """
    db = _db()
    assert _State.vault is not None
    defn = get_action(action_id)
    started = now_ms()
    t0 = time.perf_counter()
    secret_values: list[str] = []
    inputs: Any = None
    logs: list[str] = []
    try:
        if defn is None:
            raise ActionError(f"unknown action {action_id!r}")
        with db.read() as conn:
            if approval_check is not None:
                spec = approval_for(get_policy(conn, tenant_id), defn, approval_check.get("step"), context)
                if spec is not None:
                    return {"ok": False, "needs_approval": spec}
            scope = TenantScope(conn, tenant_id)
            secrets = _State.vault.get_many(scope)
            conn_name = connection_name or defn.connection
            connection = get_connection(conn, tenant_id, conn_name) if conn_name else None
        if conn_name and connection is None and connection_name:
            raise ActionError(f"no connection {conn_name!r} for this tenant (`bastion connection set`)")
        connection = {**(connection or {}), "name": conn_name} if conn_name else {}
        secret_values = list(secrets.values())
        inputs = render(with_, {**context, "secrets": secrets})
        problems = check_inputs(defn, inputs)
        if problems:
            raise ActionError("; ".join(m for _, m in problems))
        wanted = set(defn.secrets) | set(connection.get("secrets", []))
        missing = sorted(wanted - set(secrets))
        if missing:
            raise SecretError(f"{action_id} needs secret(s) {', '.join(missing)} (`bastion secret set`)")
        ctx = ActionContext(
            tenant_id=tenant_id,
            run_id=run_id,
            step_id=step_id,
            idempotency_key=f"{run_id}:{key}",
            secrets={k: secrets[k] for k in wanted},
            connection=connection,
            logs=logs,
        )
        output = _loop().run_until_complete(invoke(defn, inputs, ctx, timeout_s=timeout_s))
        result: dict[str, Any] = {"ok": True, "output": mask(output, secret_values)}
    except (ActionError, ExpressionError, SecretError, ValueError, TypeError, KeyError, OSError) as exc:
        result = {
            "ok": False,
            "error": f"{type(exc).__name__}: {exc}" if not isinstance(exc, ActionError) else str(exc),
        }
    except Exception as exc:
        result = {
            "ok": False,
            "error": f"{type(exc).__name__}: {exc}",
            "trace": traceback.format_exc(limit=5),
        }
    duration = int((time.perf_counter() - t0) * 1000)
    masked_inputs = mask(inputs if inputs is not None else with_, secret_values)
    error = mask(result.get("error"), secret_values)
    if error is not None:
        result["error"] = error
    with db.write() as conn:
        lock_tenant(conn, tenant_id)
        WorkflowRepository(conn, tenant_id).record_step(
            run_id,
            key,
            step_id=step_id,
            iteration=iteration,
            action=action_id,
            status="succeeded" if result["ok"] else "failed",
            attempts=attempt,
            inputs=masked_inputs,
            output=result.get("output"),
            error=error,
            logs=mask(logs, secret_values),
            started=started,
            finished=now_ms(),
            duration_ms=duration,
        )
        TenantScope(conn, tenant_id).audit.append(
            "engine",
            "action.call",
            "run",
            run_id,
            {
                "step": key,
                "action": action_id,
                "attempt": attempt,
                "ok": result["ok"],
                "inputs": masked_inputs,
                **({"error": error} if error else {}),
            },
        )
    result.pop("trace", None)
    return result


@DBOS.step(name="bastion.request_approval")
def _request_approval(
    tenant_id: str,
    run_id: str,
    key: str,
    step_id: str,
    action_id: str,
    spec: dict[str, Any],
    summary: str,
    target: dict[str, Any],
    requested_by: str | None,
    parks: bool = False,
) -> dict[str, Any]:
    """Store (idempotently) and announce the request; the run is ``waiting_approval`` on this step. A run
    that ``parks`` is continued on the decision; otherwise this workflow waits for a message."""
    from bastion.respond.approvals import ApprovalSpec, request_approval

    approval = request_approval(
        _db(),
        tenant_id,
        approval_id=f"{run_id}:{key}",
        run_id=run_id,
        step_id=step_id,
        action=action_id,
        summary=summary,
        target=target,
        reason=spec.get("reason", ""),
        requested_by=requested_by,
        waiter=None if parks else DBOS.workflow_id,
        spec=ApprovalSpec.from_block(spec),
    )
    with _db().write() as conn:
        repo = WorkflowRepository(conn, tenant_id)
        repo.set_run_status(run_id, "waiting_approval", waiting_step=key)
        repo.record_step(
            run_id, key, step_id=step_id, action=action_id, status="waiting_approval", approval_id=approval.id
        )
    return _brief(approval)


def _brief(approval: Any) -> dict[str, Any]:
    """What the waiting step keeps of an approval (a DBOS step result must be plain data)."""
    return {
        "id": approval.id,
        "status": approval.status,
        "deadline_ms": approval.deadline_ms,
        "topic": approval.topic,
    }


@DBOS.step(name="bastion.approval_state")
def _approval_state(tenant_id: str, approval_id: str) -> dict[str, Any]:
    from bastion.respond.approvals import get_approval

    approval = get_approval(_db(), tenant_id, approval_id)
    return _brief(approval)


@DBOS.step(name="bastion.approval_timeout")
def _approval_timeout(tenant_id: str, approval_id: str) -> dict[str, Any]:
    from bastion.respond.approvals import resolve_on_timeout

    approval = resolve_on_timeout(_db(), tenant_id, approval_id)
    return _brief(approval)


# ---------------------------------------------------------------------------------------- interpreter


class _Run:
    def __init__(
        self,
        tenant_id: str,
        run_id: str,
        plan: dict[str, Any],
        prior: dict[str, Any],
        *,
        recorded: dict[str, dict[str, Any]] | None = None,
        can_park: bool = False,
    ) -> None:
        self.tenant_id = tenant_id
        self.run_id = run_id
        self.workflow: Workflow = parse_stored(plan["source"])
        self.prior = prior
        # A continuation's record of the steps that finished before the run parked (replayed, not run).
        self.recorded = recorded or {}
        # Only the top-level workflow of a run without a parent parks; children wait in their workflow.
        self.can_park = can_park
        self.requested_by = (plan.get("trigger") or {}).get("requested_by")
        self.context: dict[str, Any] = {
            "inputs": plan["inputs"],
            "trigger": plan["trigger"],
            "tenant": plan["tenant"],
            "vars": self.workflow.vars,
            "run": plan["run"],
            "steps": {},
        }

    def find(self, path: list[int]) -> Step:
        steps = self.workflow.steps
        step = steps[path[0]]
        rest = path[1:]
        while rest:
            branch, idx = rest[0], rest[1]
            step = step.parallel[branch][idx]
            rest = rest[2:]
        return step


def _eval(expr_text: str, context: dict[str, Any], step_id: str) -> Any:
    try:
        return render(expr_text, context)
    except ExpressionError as exc:
        raise StepFailed(step_id, str(exc)) from None


def _call(run: _Run, step: Step, context: dict[str, Any], key: str, iteration: int | None) -> Any:
    """One action call with its approval, retries and timeout; returns the output or raises StepFailed."""
    assert step.action is not None
    outcome = run.recorded.get(key)
    if outcome is not None:
        if outcome["status"] == "succeeded":
            return outcome["output"]
        raise StepFailed(step.id, str(outcome["error"] or f"step {key} {outcome['status']}"))
    if key in run.prior:
        _record(
            run.tenant_id,
            run.run_id,
            key,
            {
                "step_id": step.id,
                "iteration": iteration,
                "action": step.action,
                "status": "succeeded",
                "output": run.prior[key],
                "attempts": 0,
                "logs": ["output reused from the run this one retries"],
            },
        )
        return run.prior[key]
    public = {k: v for k, v in context.items() if k != "secrets"}
    if step.action == "core.sleep":
        seconds = _eval(str(step.with_.get("seconds", 0)), public, step.id)
        _record(
            run.tenant_id,
            run.run_id,
            key,
            {
                "step_id": step.id,
                "iteration": iteration,
                "action": step.action,
                "status": "sleeping",
                "inputs": {"seconds": seconds},
            },
        )
        DBOS.sleep(float(seconds))
        output = {"slept": float(seconds)}
        _record(
            run.tenant_id,
            run.run_id,
            key,
            {"status": "succeeded", "output": output, "attempts": 1, "finished": now_ms()},
        )
        return output
    check: dict[str, Any] | None = {"step": step.approval}
    attempt = 1
    while attempt <= step.retry.max_attempts:
        result = _action_step(
            run.tenant_id,
            run.run_id,
            key,
            step.id,
            iteration,
            attempt,
            step.action,
            step.with_,
            public,
            step.timeout_s,
            step.connection,
            check,
        )
        check = None
        if "needs_approval" in result:
            _await_approval(run, step, key, result["needs_approval"], public)
            continue
        if result["ok"]:
            return result["output"]
        if attempt < step.retry.max_attempts:
            delay = step.retry.delay(attempt)
            _record(
                run.tenant_id,
                run.run_id,
                key,
                {"status": "retry_wait", "logs": [f"attempt {attempt} failed; next attempt in {delay:g}s"]},
            )
            DBOS.sleep(delay)
        attempt += 1
    raise StepFailed(step.id, str(result.get("error")))


def _await_approval(run: _Run, step: Step, key: str, spec: dict[str, Any], context: dict[str, Any]) -> None:
    try:
        target = render(step.with_, context)
    except ExpressionError:
        target = step.with_
    summary = f"{step.action} in {run.workflow.title} (step {step.id})"
    approval = _request_approval(
        run.tenant_id,
        run.run_id,
        key,
        step.id,
        str(step.action),
        spec,
        summary,
        target,
        run.requested_by,
        run.can_park,
    )
    if approval["status"] == "pending" and run.can_park:
        raise _Parked(approval["id"])
    recheck = float(os.environ.get("BASTION_APPROVAL_RECHECK_S", "300"))
    while approval["status"] == "pending":
        deadline = approval.get("deadline_ms")
        remaining = max(0.0, (deadline - now_ms()) / 1000) if deadline else float("inf")
        # The decision normally arrives as a message; re-reading the request now and then is the
        # backstop for a decision whose message was lost (made where no engine could be reached).
        message = DBOS.recv(approval["topic"], timeout_seconds=min(remaining, recheck))
        if message is None:
            if remaining <= recheck:
                approval = _approval_timeout(run.tenant_id, approval["id"])
            else:
                approval = _approval_state(run.tenant_id, approval["id"])
        else:
            approval = {**approval, "status": message.get("status", "pending")}
    if approval["status"] != "approved":
        _record(
            run.tenant_id,
            run.run_id,
            key,
            {"status": "denied", "error": f"approval {approval['status']}", "finished": now_ms()},
        )
        _set_status(run.tenant_id, run.run_id, "running")
        raise StepFailed(step.id, f"approval {approval['id']} was {approval['status']}")
    _set_status(run.tenant_id, run.run_id, "running")


def _exec_step(run: _Run, step: Step, context: dict[str, Any], path: list[int]) -> None:
    """Run one step (any kind) and put its output in ``context['steps']``."""
    public = {k: v for k, v in context.items() if k != "secrets"}
    if step.if_ is not None and not _eval(step.if_, public, step.id):
        _record(
            run.tenant_id,
            run.run_id,
            step.id,
            {"step_id": step.id, "action": step.action, "status": "skipped", "finished": now_ms()},
        )
        context["steps"][step.id] = {"output": None, "skipped": True}
        return
    try:
        output = _exec_body(run, step, context, path)
    except StepFailed as exc:
        if step.on_error == "continue":
            context["steps"][step.id] = {"output": None, "error": str(exc)}
            return
        if step.on_error != "fail":
            handler = run.workflow.handlers[step.on_error]
            context["steps"][step.id] = {"output": None, "error": str(exc)}
            _exec_step(run, handler, context, path)
            return
        raise
    context["steps"][step.id] = {"output": output}


def _exec_body(run: _Run, step: Step, context: dict[str, Any], path: list[int]) -> Any:
    public = {k: v for k, v in context.items() if k != "secrets"}
    if step.for_each is not None:
        items = step.for_each if isinstance(step.for_each, list) else _eval(step.for_each, public, step.id)
        if not isinstance(items, list | tuple):
            raise StepFailed(step.id, f"for_each gave {type(items).__name__}, not a list")
        outputs: list[Any] = []
        if step.concurrency <= 1:
            for i, item in enumerate(items):
                outputs.append(
                    _single(run, step, {**context, "item": item, "index": i}, f"{step.id}[{i}]", i)
                )
            return outputs
        for start in range(0, len(items), step.concurrency):
            handles = []
            for i in range(start, min(start + step.concurrency, len(items))):
                with SetWorkflowID(f"{run.run_id}:{step.id}[{i}]"):
                    handles.append(
                        DBOS.start_workflow(
                            run_block,
                            run.tenant_id,
                            run.run_id,
                            path,
                            public,
                            {"item": items[i], "index": i},
                            run.prior,
                        )
                    )
            for h in handles:
                result = h.get_result()
                if not result["ok"]:
                    raise StepFailed(step.id, result["error"])
                outputs.append(result["output"])
        return outputs
    if step.parallel:
        handles = []
        for b in range(len(step.parallel)):
            with SetWorkflowID(f"{run.run_id}:{step.id}/{b}"):
                handles.append(
                    DBOS.start_workflow(
                        run_block, run.tenant_id, run.run_id, [*path, b], public, None, run.prior
                    )
                )
        branch_outputs = []
        for h in handles:
            result = h.get_result()
            if not result["ok"]:
                raise StepFailed(step.id, result["error"])
            context["steps"].update(result["steps"])
            branch_outputs.append({k: v.get("output") for k, v in result["steps"].items()})
        return branch_outputs
    return _single(run, step, context, step.id, None)


def _single(run: _Run, step: Step, context: dict[str, Any], key: str, iteration: int | None) -> Any:
    if step.uses is not None:
        return _sub_workflow(run, step, context, key)
    return _call(run, step, context, key, iteration)


@DBOS.step(name="bastion.child_run")
def _create_child(
    tenant_id: str,
    parent_id: str,
    key: str,
    workflow_id: str,
    version: int | None,
    inputs: dict[str, Any],
    tenant_context: dict[str, Any] | None = None,
) -> dict[str, Any]:
    from bastion.respond.validate import bind_inputs

    with _db().write() as conn:
        repo = WorkflowRepository(conn, tenant_id)
        definition = repo.definition(workflow_id, version)
        if definition is None:
            return {"error": f"workflow {workflow_id} (version {version or 'latest'}) is not stored"}
        try:
            bound = bind_inputs(parse_stored(definition["source"]), inputs)
        except ValueError as exc:
            return {"error": str(exc)}
        child_id = hashlib.sha256(f"{parent_id}:{key}".encode()).hexdigest()[:32]
        if repo.get_run(child_id) is None:
            repo.create_run(
                workflow_id,
                definition["version"],
                inputs=bound,
                trigger={"type": "workflow", "parent_run_id": parent_id},
                requested_by=None,
                parent_run_id=parent_id,
                run_id=child_id,
                tenant_context=tenant_context,
            )
    return {"run_id": child_id}


def _sub_workflow(run: _Run, step: Step, context: dict[str, Any], key: str) -> Any:
    public = {k: v for k, v in context.items() if k != "secrets"}
    inputs = _eval_with(step, public)
    assert step.uses is not None
    created = _create_child(
        run.tenant_id, run.run_id, key, step.uses, step.uses_version, inputs, run.context["tenant"]
    )
    if "error" in created:
        raise StepFailed(step.id, created["error"])
    with SetWorkflowID(created["run_id"]):
        handle = DBOS.start_workflow(execute_run, run.tenant_id, created["run_id"], {})
    result = handle.get_result()
    if result["status"] != "succeeded":
        raise StepFailed(
            step.id,
            f"sub-workflow {step.uses} run {created['run_id']} {result['status']}: {result.get('error')}",
        )
    return result["outputs"]


def _eval_with(step: Step, public: dict[str, Any]) -> dict[str, Any]:
    try:
        value = render(step.with_, public)
    except ExpressionError as exc:
        raise StepFailed(step.id, str(exc)) from None
    return value if isinstance(value, dict) else {}


@DBOS.workflow(name="bastion.run_block")
def run_block(
    tenant_id: str,
    run_id: str,
    path: list[int],
    context: dict[str, Any],
    loop: dict[str, Any] | None,
    prior: dict[str, Any],
) -> dict[str, Any]:
    """A child of a run: one ``for_each`` item, or one ``parallel`` branch (``path`` ends in its index)."""
    plan = _plan(tenant_id, run_id)
    run = _Run(tenant_id, run_id, plan, prior)
    ctx = {**context, "steps": dict(context.get("steps", {}))}
    try:
        if loop is not None:
            step = run.find(path)
            key = f"{step.id}[{loop['index']}]"
            output = _single(run, step, {**ctx, **loop}, key, int(loop["index"]))
            return {"ok": True, "output": output}
        parent = run.find(path[:-1])
        branch = parent.parallel[path[-1]]
        before = set(ctx["steps"])
        for i, step in enumerate(branch):
            _exec_step(run, step, ctx, [*path, i])
        return {"ok": True, "steps": {k: v for k, v in ctx["steps"].items() if k not in before}}
    except StepFailed as exc:
        return {"ok": False, "error": str(exc)}


@DBOS.workflow(name="bastion.run")
def execute_run(tenant_id: str, run_id: str, prior: dict[str, Any], resume: bool = False) -> dict[str, Any]:
    """The durable run of one workflow version (the run record was created by the caller). With
    ``resume`` it is the continuation of a parked run: finished steps are replayed from their records."""
    plan = _load_run(tenant_id, run_id) if resume else _plan(tenant_id, run_id)
    # .get: a run recovered from before runs parked has a checkpointed plan without these two keys
    if resume and plan.get("status") not in ("waiting_approval", "running"):
        return {"status": plan.get("status"), "outputs": None, "error": None}  # cancelled meanwhile
    run = _Run(
        tenant_id,
        run_id,
        plan,
        prior,
        recorded=_recorded_outcomes(tenant_id, run_id) if resume else None,
        can_park=plan.get("parent_run_id") is None,
    )
    try:
        for i, step in enumerate(run.workflow.steps):
            _exec_step(run, step, run.context, [i])
        try:
            outputs = render(run.workflow.outputs, run.context)
        except ExpressionError as exc:
            raise StepFailed("outputs", str(exc)) from None
    except _Parked:
        return {"status": "waiting_approval", "outputs": None, "error": None}
    except StepFailed as exc:
        _finish(tenant_id, run_id, "failed", error=str(exc))
        return {"status": "failed", "error": str(exc), "outputs": None}
    except Exception as exc:  # the engine or the store failed, not a step: say so, and end the run
        error = f"internal error: {type(exc).__name__}: {exc}"
        _finish(tenant_id, run_id, "failed", error=error)
        return {"status": "failed", "error": error, "outputs": None}
    _finish(tenant_id, run_id, "succeeded", outputs=outputs)
    return {"status": "succeeded", "outputs": outputs, "error": None}
