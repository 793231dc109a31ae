"""The troubleshooting agent: given a failed workflow run, a connection or an intel feed, it finds what
failed, classifies the cause (auth, permission, rate limit, network, bad input, a vendor API change, our
bug), runs the health checks, and proposes a fix, or with ``fix`` applies a safe one.

Safe means a retry or a re-poll that can only repeat what was already decided: ``retry_run`` (with
backoff) and ``requeue_feed``, both impact ``low``. The reasoner applies one only where it can work: the
cause is transient (a rate limit, a network failure whose service answers again now), or the health
check now passes (a credential was fixed since). Causes a retry cannot cure (bad input, a vendor API
change, a bug of ours, a credential still refused) get a proposal in words and no action. High-impact
actions are not on its allow-list at all.

The offline reasoner works in rounds: read the run (or feed, or connection), check the health of what
failed, decide; it never repeats a call.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, Field

from bastion.agents.spec import AgentSpec, Call, Decision, Finish, Seen, Task, register_agent
from bastion.agents.tools.diagnose import CAUSES, TRANSIENT, Diagnosis, classify_error

__all__ = ["SPEC", "TroubleshootReport", "reason"]

Cause = Literal[
    "auth", "permission", "rate_limit", "network", "bad_input", "vendor_api_change", "our_bug", "unknown"
]
_RETRY_IN = re.compile(r"retry in (\d+(?:\.\d+)?)s")


class FailedStep(BaseModel):
    step_id: str
    action: str | None = None
    connection: str | None = None
    attempts: int | None = None
    error: str | None = None
    cause: Cause
    evidence: str


class Fix(BaseModel):
    summary: str
    tool: str | None = None  # the safe tool that applies it, when there is one
    args: dict[str, Any] = Field(default_factory=dict)
    safe: bool = False
    applied: bool = False
    result: dict[str, Any] | None = None


class TroubleshootReport(BaseModel):
    """The troubleshooting agent's answer."""

    subject_kind: Literal["run", "connection", "feed"]
    subject: str
    cause: Cause
    confidence: int = Field(ge=0, le=100)
    evidence: list[str]
    failed_steps: list[FailedStep] = Field(default_factory=list)
    health: list[dict[str, Any]] = Field(default_factory=list)
    healthy_now: bool | None = None
    fix: Fix
    summary: str


def _subject(task: Task) -> tuple[str, str, bool]:
    inp = task.input
    fix = bool(inp.get("fix", False))
    for kind in ("run", "connection", "feed"):
        value = inp.get(kind) or inp.get(f"{kind}_id")
        if value:
            return kind, str(value).strip(), fix
    raise ValueError("troubleshoot needs one of run, connection or feed in its input")


def _key(tool: str, args: dict[str, Any]) -> str:
    return tool + repr(sorted(args.items()))


def _last(seen: list[Seen], tool: str) -> Seen | None:
    return next((s for s in reversed(seen) if s.tool == tool), None)


def _health(seen: list[Seen]) -> dict[str, dict[str, Any]]:
    return {
        str(s.args.get("connection")): s.result
        for s in seen
        if s.tool == "connector_health" and s.error is None and isinstance(s.result, dict)
    }


# ------------------------------------------------------------------------------------ analysis


def _step_diagnoses(run_doc: dict[str, Any]) -> list[tuple[dict[str, Any], Diagnosis]]:
    out = []
    for step in run_doc.get("failed_steps") or []:
        if step.get("status") == "denied":
            out.append((step, Diagnosis("permission", "an approver denied the step", certainty=95)))
        else:
            out.append((step, classify_error(step.get("error"))))
    if not out and (run_doc.get("run") or {}).get("error"):
        err = run_doc["run"]["error"]
        out.append(({"step_id": "(run)", "error": err}, classify_error(err)))
    return out


def _decide_run(run_doc: dict[str, Any], health: dict[str, dict[str, Any]]) -> tuple[str, Diagnosis, Fix]:
    """(connection of the first failure, its diagnosis, the fix) for a run."""
    diags = _step_diagnoses(run_doc)
    run = run_doc.get("run") or {}
    if not diags:
        d = Diagnosis("unknown", f"run is {run.get('status')}; no failed step recorded", certainty=0)
        return (
            "",
            d,
            Fix(
                summary="Nothing to fix: no step failed."
                if run.get("status") == "succeeded"
                else "No failure recorded yet; look again when the run finishes."
            ),
        )
    step, d = diags[0]
    conn = str(step.get("connection") or "")
    h = health.get(conn) if conn else None
    healthy_now = bool(h and h.get("healthy"))
    rid = str(run.get("run_id"))
    retryable = run.get("status") in ("failed", "cancelled") and not run.get("retried_by")
    wait = 0.0
    m = _RETRY_IN.search(str(step.get("error") or ""))
    if m:
        wait = float(m.group(1))
    retry = Fix(
        summary="",
        tool="retry_run",
        args={"run_id": rid, **({"min_wait_s": wait} if wait else {})},
        safe=True,
    )
    who = f"{step.get('action')}" + (f" on connection {conn}" if conn else "")
    if not retryable:
        already = run.get("retried_by") or []
        msg = f"already retried as run {already[0]}" if already else f"the run is {run.get('status')}"
        return conn, d, Fix(summary=f"No retry: {msg}. {_advice(d, who, conn, h)}")
    if d.cause == "rate_limit":
        retry.summary = (
            f"{who} was rate limited by the vendor; retry the run after the wait it asked for "
            f"({wait:g}s, with exponential backoff along the retries)."
        )
        return conn, d, retry
    if d.cause == "network" and (healthy_now or not conn):
        retry.summary = (
            f"{who} could not reach the vendor; "
            f"{'it answers again now' if conn else 'a transient failure'}: retry the run."
        )
        return conn, d, retry
    if d.cause in ("auth", "permission") and healthy_now:
        retry.summary = (
            f"{who} was refused ({d.cause}) but the health check passes now (the credential was fixed): "
            "retry."
        )
        return conn, d, retry
    return conn, d, Fix(summary=_advice(d, who, conn, h))


def _advice(d: Diagnosis, who: str, conn: str, health: dict[str, Any] | None) -> str:
    secrets = ""
    base = ""
    for c in (health or {}).get("checks") or []:
        if c.get("check") == "secrets":
            secrets = ", ".join(c.get("missing") or c.get("needed") or [])
        if c.get("check") == "config":
            base = str(c.get("detail") or "")
    name = conn or "the connection"
    if d.cause == "auth":
        return (
            f"The credential of {name} was refused or is missing ({d.evidence}): store a valid one with "
            f"`bastion secret set {secrets or 'NAME'}`, then retry (the agent retries once the health "
            "check passes)."
        )
    if d.cause == "permission":
        return (
            f"{who} was authenticated but not allowed ({d.evidence}): grant the API client the permission or "
            "scope this action needs in the vendor's admin console, or ask the approver who denied it."
        )
    if d.cause == "rate_limit":
        return (
            f"{who} is rate limited: wait for the vendor's reset, lower the workflow's concurrency or set "
            "the connection's rate_limit."
        )
    if d.cause == "network":
        where = f" ({base})" if base else ""
        return (
            f"{name}{where} cannot be reached ({d.evidence}): check the base URL, DNS, firewall and that the "
            "service is up; retry when the health check passes."
        )
    if d.cause == "bad_input":
        return (
            f"The request was invalid ({d.evidence}): fix the step's inputs, the workflow's expressions or "
            "the connection settings; a retry would fail the same way."
        )
    if d.cause == "vendor_api_change":
        return (
            f"The vendor's API answered {who} unexpectedly on a documented path ({d.evidence}): check the "
            "vendor's API changelog and update the connector; a retry would fail the same way."
        )
    if d.cause == "our_bug":
        return (
            f"A {d.exception or 'programming error'} in Bastion's own code ({d.evidence}): report it with "
            "the run id; a retry would fail the same way."
        )
    return f"The cause could not be determined ({d.evidence}); read the step's logs."


# ------------------------------------------------------------------------------------ the reasoner


def _not_found(kind: str, value: str, error: str) -> Finish:
    """The subject itself could not be read (no such run, connection or feed): say so, diagnose nothing."""
    return Finish(
        _report(kind, value, Diagnosis("bad_input", error, certainty=90), Fix(summary=error), [], [], None)
    )


def _plan(task: Task, seen: list[Seen]) -> list[Call] | Finish:
    kind, value, fix = _subject(task)
    if kind == "run":
        got = _last(seen, "run_history")
        if got is None:
            return [Call("run_history", {"run_id": value}, "read the run and its failed steps")]
        if got.error is not None:
            return _not_found(kind, value, got.error)
        conns = sorted(
            {str(s["connection"]) for s in got.result.get("failed_steps", []) if s.get("connection")}
        )
        checks = [Call("connector_health", {"connection": c}, f"is {c} usable now?") for c in conns]
        done = {_key(s.tool, s.args) for s in seen}
        todo = [c for c in checks if _key(c.tool, c.args) not in done]
        if todo:
            return todo
        health = _health(seen)
        _, d, f = _decide_run(got.result, health)
        return _finish_or_apply(kind, value, d, f, fix, seen, got.result, list(health.values()))
    if kind == "feed":
        got = _last(seen, "feed_health")
        if got is None:
            return [Call("feed_health", {"feed": value}, "the feed's state, last error and a live request")]
        if got.error is not None:
            return _not_found(kind, value, got.error)
        h = got.result
        d = _diag(h.get("diagnosis") or h.get("stored_diagnosis"))
        live = h.get("live") or {}
        if h.get("healthy"):
            f = Fix(summary="The feed is healthy: nothing to fix.")
        elif live.get("ok") or d.cause == "rate_limit":
            why = "its URL answers again now" if live.get("ok") else "the rate limit has had time to reset"
            f = Fix(
                summary=f"The feed failed ({d.cause}) but {why}: poll it now.",
                tool="requeue_feed",
                args={"feed": value},
                safe=True,
            )
        else:
            f = Fix(summary=_feed_advice(d, h))
        return _finish_or_apply(kind, value, d, f, fix, seen, None, [h])
    # a connection
    got = _last(seen, "connector_health")
    if got is None:
        return [
            Call("connector_health", {"connection": value}, "settings, secrets and a live read request"),
            Call("run_history", {"status": "failed", "limit": 20}, "recent failed runs that may involve it"),
        ]
    if got.error is not None:
        return Finish(
            _report(
                kind,
                value,
                Diagnosis("bad_input", got.error, certainty=90),
                Fix(summary=got.error),
                [],
                [],
                None,
            )
        )
    h = got.result
    runs = (_last(seen, "run_history") or Seen("", {})).result or {}
    affected = [
        r["run_id"]
        for r in runs.get("runs", [])
        if any(s.get("connection") == value for s in r.get("failed_steps", []))
    ]
    if h.get("healthy"):
        d = Diagnosis("unknown", "every check passed", certainty=0)
        tail = (
            f" Failed runs that used it: {', '.join(affected[:5])} (troubleshoot each with --run)."
            if affected
            else ""
        )
        f = Fix(summary="The connection is healthy now." + tail)
    else:
        d = _diag(h.get("diagnosis"))
        f = Fix(
            summary=_advice(d, f"connection {value}", value, h)
            + (f" Runs that failed on it: {', '.join(affected[:5])}." if affected else "")
        )
    return Finish(_report(kind, value, d, f, [], [h], bool(h.get("healthy"))))


def _diag(doc: dict[str, Any] | None) -> Diagnosis:
    if not doc:
        return Diagnosis("unknown", "no failure recorded", certainty=0)
    cause = doc.get("cause") if doc.get("cause") in CAUSES else "unknown"
    return Diagnosis(
        str(cause),
        str(doc.get("evidence") or ""),
        status=doc.get("status"),
        exception=doc.get("exception"),
        transient=cause in TRANSIENT,
        certainty=int(doc.get("certainty") or 50),
    )


def _feed_advice(d: Diagnosis, h: dict[str, Any]) -> str:
    url = h.get("url")
    if d.cause == "bad_input":
        return (
            f"The feed URL {url} is wrong or moved ({d.evidence}): correct it (remove and re-add the feed)."
        )
    if d.cause == "auth":
        return (
            f"The feed {url} refused the credential ({d.evidence}): set its API key (the environment "
            "variable named by the feed's api_key_env)."
        )
    if d.cause == "network":
        return (
            f"The feed {url} cannot be reached ({d.evidence}): check the host, DNS and firewall; it is "
            "polled again on schedule."
        )
    if d.cause == "vendor_api_change":
        return (
            f"The feed {url} answered in an unexpected form ({d.evidence}): check the publisher's format "
            "and the feed's format setting."
        )
    return _advice(d, f"feed {h.get('name')}", "", None)


def _finish_or_apply(
    kind: str,
    value: str,
    d: Diagnosis,
    f: Fix,
    fix: bool,
    seen: list[Seen],
    run_doc: dict[str, Any] | None,
    health: list[dict[str, Any]],
) -> Decision:
    steps = []
    if run_doc is not None:
        for step, sd in _step_diagnoses(run_doc):
            steps.append(
                FailedStep(
                    step_id=str(step.get("step_id")),
                    action=step.get("action"),
                    connection=step.get("connection"),
                    attempts=step.get("attempts"),
                    error=step.get("error"),
                    cause=sd.cause,  # type: ignore[arg-type]
                    evidence=sd.evidence,
                )
            )
    if fix and f.safe and f.tool:
        applied = _last(seen, f.tool)
        if applied is None:
            return [Call(f.tool, f.args, f.summary)]
        f.applied = applied.error is None and bool(
            (applied.result or {}).get("retried", True)
            and (applied.result or {}).get("status", "ok") != "error"
        )
        f.result = applied.result if applied.error is None else {"error": applied.error}
    healthy = None
    if health:
        healthy = all(bool(h.get("healthy")) for h in health)
    return Finish(_report(kind, value, d, f, steps, health, healthy))


def _report(
    kind: str,
    value: str,
    d: Diagnosis,
    f: Fix,
    steps: list[FailedStep],
    health: list[dict[str, Any]],
    healthy: bool | None,
) -> dict[str, Any]:
    evidence = [d.evidence] if d.evidence else []
    if d.status:
        evidence.append(f"HTTP status {d.status}")
    if d.exception:
        evidence.append(f"exception {d.exception}")
    for h in health:
        for c in h.get("checks") or []:
            if c.get("ok") is False:
                evidence.append(f"health check {c.get('check')} failed: {c.get('detail')}")
        if h.get("live") and not (h["live"] or {}).get("ok"):
            evidence.append(
                f"live request failed: {(h['live'] or {}).get('error') or (h['live'] or {}).get('status')}"
            )
    confidence = d.certainty
    if kind == "run" and health and d.cause not in ("unknown",):
        live_diag = [h.get("diagnosis") for h in health if h.get("diagnosis")]
        if any((x or {}).get("cause") == d.cause for x in live_diag):
            confidence = min(100, confidence + 10)
            evidence.append("the live health check fails the same way now")
    action = "applied" if f.applied else ("proposed" if f.tool else "advice")
    summary = (
        f"{kind.capitalize()} {value}: cause {d.cause} (confidence {confidence})."
        + (f" {len(steps)} failed step(s)." if steps else "")
        + (
            " The health check passes now."
            if healthy
            else " The health check fails now."
            if healthy is False
            else ""
        )
        + f" Fix ({action}): {f.summary}"
    )
    return TroubleshootReport(
        subject_kind=kind,  # type: ignore[arg-type]
        subject=value,
        cause=d.cause,  # type: ignore[arg-type]
        confidence=confidence,
        evidence=evidence,
        failed_steps=steps,
        health=[_health_view(h) for h in health],
        healthy_now=healthy,
        fix=f,
        summary=summary,
    ).model_dump(mode="json")


def _health_view(h: dict[str, Any]) -> dict[str, Any]:
    keep = (
        "connection",
        "name",
        "url",
        "status",
        "healthy",
        "checks",
        "live",
        "diagnosis",
        "last_error",
        "last_success",
    )
    return {k: h[k] for k in keep if k in h}


def reason(task: Task, seen: list[Seen]) -> Decision:
    """The next calls for a troubleshooting task, or its report."""
    try:
        return _plan(task, seen)
    except ValueError as exc:
        d = Diagnosis("bad_input", str(exc), certainty=100)
        return Finish(_report("run", str(task.input), d, Fix(summary=str(exc)), [], [], None))


SPEC = register_agent(
    AgentSpec(
        name="troubleshoot",
        title="Troubleshooting",
        instructions=(
            "You troubleshoot Bastion's integrations. Given a failed workflow run, a connection or an intel "
            "feed: read what failed (run_history, feed_health), run the health checks (connector_health, "
            "feed_health), classify the cause as one of auth, permission, rate_limit, network, bad_input, "
            "vendor_api_change, our_bug (HTTP 401 auth, 403 permission, 429 rate limit, 400/422 bad "
            "input, 404/410 on a documented path vendor_api_change, refused/timeouts/DNS network, "
            "KeyError/TypeError/AttributeError in our code our_bug), and propose a fix. Only when asked to "
            "fix, apply a safe one: retry_run (with backoff) or requeue_feed, and only where it can work."
        ),
        tools=("run_history", "connector_health", "feed_health", "retry_run", "requeue_feed"),
        output=TroubleshootReport,
        reasoner=reason,
        max_steps=6,
    )
)
