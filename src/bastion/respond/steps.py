"""The durable steps of a run: everything the engine reads from or writes to the store.

Each is a DBOS step (checkpointed: a replay gets the recorded result without running it again), except
two that are deliberately not: :func:`plan_of` reads only what is fixed when the run is created, and
:func:`finish` writes the final status, which a replay writes again without changing anything. The
interpreter that calls them is :mod:`bastion.respond.engine`.

Secrets are read and expressions in ``with`` rendered inside :func:`action_step`, so secret values never
enter DBOS's checkpoints; recorded inputs and outputs are masked.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
import traceback
from typing import Any

from dbos import DBOS

from bastion.connectors.policy import approval_for, get_policy, invoke, mask
from bastion.connectors.ratelimit import RateLimits
from bastion.connectors.registry import ActionContext, ActionError, check_inputs, get_action
from bastion.respond.expr import ExpressionError, render
from bastion.respond.validate import parse_stored
from bastion.store import Database, TenantScope
from bastion.store.workflows import WorkflowRepository, lock_tenant, now_ms
from bastion.tenancy.connections import get_connection, workflow_tenant
from bastion.tenancy.secrets import SecretError, SecretsVault, load_key

__all__ = [
    "action_step",
    "approval_state",
    "approval_timeout",
    "ask_approval",
    "configure",
    "configured_store",
    "create_child",
    "finish",
    "load_run",
    "plan_of",
    "record",
    "recorded_outcomes",
    "set_status",
]

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


def read_plan(tenant_id: str, run_id: str, *, snapshot_only: bool) -> dict[str, Any] | None:
    """What a run executes: its definition, inputs, trigger and ``tenant``. With ``snapshot_only``, None
    for a run created without its tenant context recorded (before migration 0012)."""
    with _db().read() as conn:
        repo = WorkflowRepository(conn, tenant_id)
        found = repo.get_run_and_tenant(run_id)
        if found is None:
            raise RuntimeError(f"run {run_id} has no record")
        run, tenant = found
        if tenant is None:
            if snapshot_only:
                return None
            tenant = workflow_tenant(conn, tenant_id)
        definition = repo.definition(run["workflow_id"], run["version"])
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
def load_run(tenant_id: str, run_id: str) -> dict[str, Any]:
    """The plan as a checkpoint: for a continuation (its ``status`` decides whether to go on) and for a
    run created before runs recorded their tenant context."""
    plan = read_plan(tenant_id, run_id, snapshot_only=False)
    assert plan is not None
    return plan


def plan_of(tenant_id: str, run_id: str) -> dict[str, Any]:
    """The plan of a run, without a checkpoint when every part of it is fixed at the run's creation (the
    definition version, inputs, trigger and recorded tenant context): a replay reads the same."""
    plan = read_plan(tenant_id, run_id, snapshot_only=True)
    return plan if plan is not None else load_run(tenant_id, run_id)


@DBOS.step(name="bastion.recorded_outcomes")
def recorded_outcomes(tenant_id: str, run_id: str) -> dict[str, dict[str, Any]]:
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
def record(tenant_id: str, run_id: str, key: str, values: dict[str, Any]) -> None:
    with _db().write() as conn:
        WorkflowRepository(conn, tenant_id).record_step(run_id, key, **values)


def write_status(
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


set_status = DBOS.step(name="bastion.run_status", **_STORE_RETRY)(write_status)


def finish(tenant_id: str, run_id: str, status: str, outputs: Any = None, error: str | None = None) -> None:
    """The run's final status, written without a checkpoint: it is the workflow's last act, and writing
    it again on a replay changes nothing (only an active run changes status, and only a change is
    audited). Retried like a store step."""
    delay = _STORE_RETRY["interval_seconds"]
    for attempt in range(1, _STORE_RETRY["max_attempts"] + 1):
        try:
            write_status(tenant_id, run_id, status, outputs, error)
            return
        except Exception:
            if attempt == _STORE_RETRY["max_attempts"]:
                raise
            time.sleep(delay)
            delay *= _STORE_RETRY["backoff_rate"]


def _mentions_secrets(value: Any) -> bool:
    """Whether an expression in these step inputs can read ``secrets`` (the sandbox reaches a context
    name only by naming it)."""
    if isinstance(value, str):
        return "secrets" in value
    if isinstance(value, dict):
        return any(_mentions_secrets(k) or _mentions_secrets(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_mentions_secrets(v) for v in value)
    return False


@DBOS.step(name="bastion.action")
def action_step(
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
        conn_name = connection_name or defn.connection
        connection = None
        secrets: dict[str, str] = {}
        names_secrets = bool(defn.secrets) or _mentions_secrets(with_)
        if approval_check is not None or conn_name or names_secrets:
            with db.read() as conn:
                if approval_check is not None:
                    policy = get_policy(conn, tenant_id)
                    spec = approval_for(policy, defn, approval_check.get("step"), context)
                    if spec is not None:
                        return {"ok": False, "needs_approval": spec}
                connection = get_connection(conn, tenant_id, conn_name) if conn_name else None
                # The tenant's secrets are read and decrypted only for a step that can use them: the
                # action's or its connection's, or its inputs' ``secrets``. A step given none has none of
                # their values to record, so masking them (below) concerns only steps that read them.
                if names_secrets or (connection or {}).get("secrets"):
                    secrets = _State.vault.get_many(TenantScope(conn, tenant_id))
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
        call = invoke(defn, inputs, ctx, limits=RateLimits(db), timeout_s=timeout_s)
        output = _loop().run_until_complete(call)
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
def ask_approval(
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
def approval_state(tenant_id: str, approval_id: str) -> dict[str, Any]:
    from bastion.respond.approvals import get_approval

    approval = get_approval(_db(), tenant_id, approval_id)
    return _brief(approval)


@DBOS.step(name="bastion.approval_timeout")
def approval_timeout(tenant_id: str, approval_id: str) -> dict[str, Any]:
    from bastion.respond.approvals import resolve_on_timeout

    approval = resolve_on_timeout(_db(), tenant_id, approval_id)
    return _brief(approval)


@DBOS.step(name="bastion.child_run")
def create_child(
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
