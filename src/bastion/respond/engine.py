"""The engine: a run is one durable DBOS workflow, and each action call is one durable step.

The workflow function interprets the validated definition the run recorded (so a new version never
changes a running run). Everything it decides (``if``, ``for_each`` items, the output of each step) is
computed from checkpointed values, so a recovered run replays to the same place and never runs a
completed step again. Each call gets the idempotency key ``<run>:<step>[:<iteration>]`` which
connectors pass on. Retries are separate steps with a durable ``DBOS.sleep`` between them. A top-level
run stops at a pending approval and is continued by a new workflow when it resolves (respond.parking);
inside child workflows an approval is a durable ``DBOS.recv`` on its topic. ``for_each`` with
``concurrency > 1`` and ``parallel`` branches run as child workflows with deterministic ids.

The steps it calls, and the store reads and writes behind them, are in :mod:`bastion.respond.steps`.
"""

from __future__ import annotations

import os
from typing import Any

from dbos import DBOS, SetWorkflowID

from bastion.respond import steps
from bastion.respond.expr import ExpressionError, render
from bastion.respond.model import Step, Workflow
from bastion.respond.steps import configure, configured_store
from bastion.respond.validate import parse_stored
from bastion.store.workflows import now_ms

__all__ = ["StepFailed", "configure", "configured_store", "execute_run", "run_block"]


class _Parked(Exception):
    """The run stopped at a pending approval; a continuation carries it on (respond.parking)."""


class StepFailed(Exception):
    """A step failed and its on_error says to fail the run."""

    def __init__(self, step_id: str, message: str) -> None:
        super().__init__(f"step {step_id}: {message}")
        self.step_id = step_id


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

    def find(self, path: list[int | str]) -> Step:
        """The step at ``path``: a top-level step's index, or a handler's id, then (branch, index)
        pairs into ``parallel`` blocks."""
        head = path[0]
        step = self.workflow.handlers[head] if isinstance(head, str) else self.workflow.steps[head]
        rest = [int(p) for p in path[1:]]
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
        steps.record(
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
        steps.record(
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
        steps.record(
            run.tenant_id,
            run.run_id,
            key,
            {"status": "succeeded", "output": output, "attempts": 1, "finished": now_ms()},
        )
        return output
    check: dict[str, Any] | None = {"step": step.approval}
    attempt = 1
    while attempt <= step.retry.max_attempts:
        result = steps.action_step(
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
            steps.record(
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
    what = step.action or f"sub-workflow {step.uses}"
    summary = f"{what} in {run.workflow.title} (step {step.id})"
    approval = steps.ask_approval(
        run.tenant_id,
        run.run_id,
        key,
        step.id,
        str(step.action or f"uses:{step.uses}"),
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
                approval = steps.approval_timeout(run.tenant_id, approval["id"])
            else:
                approval = steps.approval_state(run.tenant_id, approval["id"])
        else:
            approval = {**approval, "status": message.get("status", "pending")}
    if approval["status"] != "approved":
        steps.record(
            run.tenant_id,
            run.run_id,
            key,
            {"status": "denied", "error": f"approval {approval['status']}", "finished": now_ms()},
        )
        steps.set_status(run.tenant_id, run.run_id, "running")
        raise StepFailed(step.id, f"approval {approval['id']} was {approval['status']}")
    steps.set_status(run.tenant_id, run.run_id, "running")


def _exec_step(run: _Run, step: Step, context: dict[str, Any], path: list[int | str]) -> None:
    """Run one step (any kind) and put its output in ``context['steps']``."""
    public = {k: v for k, v in context.items() if k != "secrets"}
    if step.if_ is not None and not _eval(step.if_, public, step.id):
        steps.record(
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
            _exec_step(run, handler, context, [handler.id])  # its own path: its children find it
            return
        raise
    context["steps"][step.id] = {"output": output}


def _exec_body(run: _Run, step: Step, context: dict[str, Any], path: list[int | str]) -> Any:
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
        return _sub_workflow(run, step, context, key, iteration)
    return _call(run, step, context, key, iteration)


def _sub_workflow(run: _Run, step: Step, context: dict[str, Any], key: str, iteration: int | None) -> Any:
    """A ``uses`` step: its own approval first, then the sub-workflow as a child run. It has a step
    record like an action's (``action`` is ``uses:<workflow>``), so that a continuation replays it and
    a retry of the parent reuses its outputs instead of running the sub-workflow again."""
    assert step.uses is not None
    label = f"uses:{step.uses}" + (f"@{step.uses_version}" if step.uses_version is not None else "")
    outcome = run.recorded.get(key)
    if outcome is not None:
        if outcome["status"] == "succeeded":
            return outcome["output"]
        raise StepFailed(step.id, str(outcome["error"] or f"step {key} {outcome['status']}"))
    base = {"step_id": step.id, "iteration": iteration, "action": label}
    if key in run.prior:
        reused = {"status": "succeeded", "output": run.prior[key], "attempts": 0}
        steps.record(
            run.tenant_id,
            run.run_id,
            key,
            {**base, **reused, "logs": ["output reused from the run this one retries"]},
        )
        return run.prior[key]
    public = {k: v for k, v in context.items() if k != "secrets"}
    if step.approval is not None:
        _await_approval(run, step, key, step.approval, public)
    inputs = _eval_with(step, public)
    created = steps.create_child(
        run.tenant_id, run.run_id, key, step.uses, step.uses_version, inputs, run.context["tenant"]
    )
    if "error" in created:
        steps.record(run.tenant_id, run.run_id, key, {**base, "status": "failed", "error": created["error"]})
        raise StepFailed(step.id, created["error"])
    child = created["run_id"]
    steps.record(
        run.tenant_id,
        run.run_id,
        key,
        {**base, "status": "running", "inputs": inputs, "logs": [f"sub-workflow run {child}"]},
    )
    with SetWorkflowID(child):
        handle = DBOS.start_workflow(execute_run, run.tenant_id, child, {})
    result = handle.get_result()
    if result["status"] != "succeeded":
        error = f"sub-workflow {step.uses} run {child} {result['status']}: {result.get('error')}"
        steps.record(
            run.tenant_id, run.run_id, key, {"status": "failed", "error": error, "finished": now_ms()}
        )
        raise StepFailed(step.id, error)
    steps.record(
        run.tenant_id,
        run.run_id,
        key,
        {"status": "succeeded", "output": result["outputs"], "attempts": 1, "finished": now_ms()},
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
    path: list[int | str],
    context: dict[str, Any],
    loop: dict[str, Any] | None,
    prior: dict[str, Any],
) -> dict[str, Any]:
    """A child of a run: one ``for_each`` item, or one ``parallel`` branch (``path`` ends in its index)."""
    plan = steps.plan_of(tenant_id, run_id)
    run = _Run(tenant_id, run_id, plan, prior)
    ctx = {**context, "steps": dict(context.get("steps", {}))}
    try:
        if loop is not None:
            step = run.find(path)
            key = f"{step.id}[{loop['index']}]"
            output = _single(run, step, {**ctx, **loop}, key, int(loop["index"]))
            return {"ok": True, "output": output}
        parent = run.find(path[:-1])
        branch = parent.parallel[int(path[-1])]
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
    plan = steps.load_run(tenant_id, run_id) if resume else steps.plan_of(tenant_id, run_id)
    # .get: a run recovered from before runs parked has a checkpointed plan without these two keys
    if resume and plan.get("status") not in ("waiting_approval", "running"):
        return {"status": plan.get("status"), "outputs": None, "error": None}  # cancelled meanwhile
    run = _Run(
        tenant_id,
        run_id,
        plan,
        prior,
        recorded=steps.recorded_outcomes(tenant_id, run_id) if resume else None,
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
        steps.finish(tenant_id, run_id, "failed", error=str(exc))
        return {"status": "failed", "error": str(exc), "outputs": None}
    except Exception as exc:  # the engine or the store failed, not a step: say so, and end the run
        error = f"internal error: {type(exc).__name__}: {exc}"
        steps.finish(tenant_id, run_id, "failed", error=error)
        return {"status": "failed", "error": error, "outputs": None}
    try:
        steps.finish(tenant_id, run_id, "succeeded", outputs=outputs)
    except Exception as exc:  # outputs the store cannot hold: the run ends failed, never stays running
        error = f"internal error: outputs not recorded: {type(exc).__name__}: {exc}"
        steps.finish(tenant_id, run_id, "failed", error=error)
        return {"status": "failed", "error": error, "outputs": None}
    return {"status": "succeeded", "outputs": outputs, "error": None}
