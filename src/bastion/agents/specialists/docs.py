"""The documentation agent: case reports, post-incident reports, and runbooks from a workflow, in Markdown
or HTML.

It writes with the report package's templates and filters (``bastion.report.render.template_env``): the
case report is the shipped ``case.*.j2`` over the same data ``bastion report case`` uses; the
post-incident report and the runbook have their own templates next to them. What the agent adds is the
analysis: for a post-incident report the phase durations (detection to acknowledgement, containment,
resolution), how long approvals waited, which automation failed and why (the troubleshooting
classifier), what went well, what to improve, and recommendations derived from those facts; for a
runbook, each step's purpose (its action's docstring), impact, approval requirement and undo.

The offline reasoner reads the case (``case_report``) or the workflow (``workflow_outline``) and then
renders; nothing in a document is written without a fact behind it.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any, Literal

from jinja2 import Environment
from markupsafe import Markup, escape
from pydantic import BaseModel, Field

from bastion.agents.spec import AgentSpec, Call, Decision, Finish, Seen, Task, register_agent

__all__ = ["SPEC", "Document", "post_incident_context", "reason", "render_document"]

Kind = Literal["case", "post_incident", "runbook"]


class Document(BaseModel):
    """The documentation agent's answer: the rendered document and the facts it rests on."""

    kind: Kind
    subject: str
    format: Literal["md", "html"]
    title: str
    content: str
    sections: list[str] = Field(default_factory=list)
    findings: list[str] = Field(default_factory=list)  # the analysis in short sentences
    recommendations: list[str] = Field(default_factory=list)


def _kind(task: Task) -> tuple[Kind, str, str]:
    kind = str(task.input.get("kind") or "case").replace("-", "_")
    if kind not in ("case", "post_incident", "runbook"):
        raise ValueError(f"unknown document kind {kind!r}: use case, post-incident or runbook")
    ref = str(
        task.input.get("ref") or task.input.get("case") or task.input.get("workflow") or task.case_id or ""
    )
    if not ref:
        raise ValueError("a document needs a case id/number or a workflow id (input 'ref')")
    fmt = str(task.input.get("format") or "md").lower()
    if fmt == "markdown":
        fmt = "md"
    if fmt not in ("md", "html"):
        raise ValueError(f"unknown format {fmt!r}: use md or html")
    return kind, ref, fmt  # type: ignore[return-value]


# ------------------------------------------------------------------------------------ analysis


def _dur(a: int | None, b: int | None) -> float | None:
    if a is None or b is None or b < a:
        return None
    return (b - a) / 1000


def post_incident_context(data: dict[str, Any]) -> dict[str, Any]:
    """The post-incident analysis of a case report's data: phases, approval waits, failures with their
    classified causes, what went well, what to improve, recommendations."""
    from bastion.agents.tools.diagnose import classify_error
    from bastion.report.render import fmt_duration

    case = data["case"]
    times = {label: t for label, t in data["times"]}
    first_alert = times.get("First alert fired")
    opened = times.get("Case opened")
    acked = times.get("Acknowledged")
    contained = times.get("Contained")
    resolved = times.get("Resolved")
    closed = times.get("Closed")
    phases = [
        ("First alert to case", first_alert, opened, _dur(first_alert, opened)),
        ("Case to acknowledgement", opened, acked, _dur(opened, acked)),
        (
            "Acknowledgement to containment" if acked else "Case to containment",
            acked or opened,
            contained,
            _dur(acked or opened, contained),
        ),
        ("Containment to resolution", contained, resolved, _dur(contained, resolved)),
        ("First alert to close", first_alert, closed, _dur(first_alert, closed)),
    ]
    failures = []
    for a in data["actions"]:
        if a.get("status") in ("failed", "denied"):
            d = classify_error(a.get("error")) if a.get("status") == "failed" else None
            failures.append(
                {**a, "cause": d.cause if d else "denied", "evidence": d.evidence if d else "denied"}
            )
    succeeded = [a for a in data["actions"] if a.get("status") == "succeeded"]
    containment = [a for a in succeeded if a.get("containment")]
    waits = []
    for ap in data["approvals"]:
        decided = [d.get("time") for d in ap.get("decisions") or [] if d.get("time")]
        wait = _dur(ap.get("requested_at"), min(decided)) if decided else None
        waits.append({**ap, "wait_s": wait})
    went_well: list[str] = []
    improve: list[str] = []
    recs: list[str] = []
    d_open = _dur(first_alert, opened)
    if d_open is not None:
        (went_well if d_open <= 900 else improve).append(
            f"The case was opened {fmt_duration(d_open)} after the first alert."
        )
    if containment:
        went_well.append(
            f"{len(containment)} containment action(s) succeeded: "
            + ", ".join(sorted({str(a["action"]) for a in containment}))
            + "."
        )
    elif case.get("verdict") == "true_positive" or case["severity"] in ("high", "critical"):
        improve.append("No containment action is recorded for this case.")
        recs.append(
            "Add a containment step (host isolation, account suspension or a block) to the workflow that "
            "answers this kind of case, so containment does not wait for a person."
        )
    if succeeded:
        went_well.append(f"Automation ran {len(succeeded)} step(s) successfully.")
    for f in failures:
        improve.append(f"Step {f['step_id']} ({f['action']}) of {f['workflow_id']} failed: {f['cause']}.")
    causes = sorted({f["cause"] for f in failures})
    advice = {
        "auth": "Rotate or set the credentials of the failing connections and add a scheduled health check.",
        "permission": "Grant the API clients the permissions the failing actions need.",
        "rate_limit": "Lower the workflows' concurrency or set a rate_limit on the busy connections.",
        "network": "Check that the workers reach the failing connections (DNS, firewall, proxy).",
        "bad_input": "Fix the inputs and expressions of the failing steps, then validate the workflows.",
        "vendor_api_change": "Update the connectors whose vendor API answered unexpectedly.",
        "our_bug": "Report the programming error with the run id to the Bastion maintainers.",
        "denied": "Review why approvers denied the requested actions; adjust the workflow or the policy.",
    }
    recs.extend(advice[c] for c in causes if c in advice)
    slow = [w for w in waits if w["wait_s"] is not None and w["wait_s"] > 3600]
    if slow:
        improve.append(f"{len(slow)} approval(s) waited more than an hour for a decision.")
        recs.append(
            "Add an approval channel that reaches approvers faster (Slack or Teams) or a second approver."
        )
    if case.get("sla_breaches"):
        improve.append(f"SLA breached: {', '.join(map(str, case['sla_breaches']))}.")
        recs.append("Review the queue's staffing and the SLA targets for this severity.")
    if case.get("escalations"):
        improve.append(f"The case was escalated {case['escalations']} time(s).")
    auto = [a for a in data["alerts"] if a.get("auto_closed")]
    if auto:
        improve.append(f"{len(auto)} alert(s) in the case had been auto-closed before it was opened.")
        recs.append(
            "Review the auto-close policy that closed alerts which later proved part of this incident."
        )
    if case.get("techniques"):
        recs.append(
            "Hunt for the case's ATT&CK techniques elsewhere in the estate: "
            + ", ".join(case["techniques"][:8])
            + "."
        )
    iocs = [
        o
        for o in data["observables"]
        if o["type"] in ("ipv4", "ipv6", "domain", "url", "sha256", "md5", "sha1")
    ]
    if iocs:
        recs.append(
            f"Keep the {len(iocs)} indicator(s) from this case on watch (intel store, blocks with expiry)."
        )
    if not recs:
        recs.append("No follow-up action is indicated by the recorded facts.")
    summary = [
        f"Case #{case['number']} ({case['severity']}, {case['status']}"
        + (f", verdict {case['verdict']}" if case.get("verdict") else "")
        + f") grouped {len(data['alerts'])} alert(s) with a risk score of {case['score']}/100.",
    ]
    total = _dur(first_alert, closed or resolved)
    if total is not None:
        summary.append(
            f"From the first alert to {'close' if closed else 'resolution'} took {fmt_duration(total)}."
        )
    summary.append(
        f"Automation ran {len(data['actions'])} step(s) in {len(data['runs'])} workflow run(s); "
        f"{len(failures)} failed and {len(containment)} contained the threat."
    )
    if waits:
        summary.append(f"{len(waits)} approval(s) were requested.")
    return {
        **data,
        "phases": phases,
        "failures": failures,
        "approval_waits": waits,
        "went_well": went_well,
        "to_improve": improve,
        "recommendations": recs,
        "summary": summary,
    }


# ------------------------------------------------------------------------------------ rendering


_RST_LITERAL = re.compile(r"``(.+?)``", re.S)


def _code(value: Any) -> Markup:
    """A Markdown code span holding ``value`` as inert text: it cannot close the span (backticks are
    replaced), and renderers show HTML inside a code span as text."""
    text = str("" if value is None else value).replace("`", "'").replace("\r", " ").replace("\n", " ")
    return Markup(f"`{text}`")  # noqa: S704 - made inert just above


def _md_doc(value: Any) -> Markup:
    """A docstring in Markdown: its text escaped as the report's ``md`` filter does, its ``literals``
    as code spans."""
    from bastion.report.render import md_cell

    parts = _RST_LITERAL.split(str(value or ""))
    return Markup("").join(_code(p) if i % 2 else md_cell(p) for i, p in enumerate(parts))


def _html_doc(value: Any) -> Markup:
    """A docstring in HTML: escaped, with its ``literals`` in ``<code>``."""
    parts = _RST_LITERAL.split(str(value or ""))
    return Markup("").join(Markup("<code>%s</code>") % p if i % 2 else escape(p) for i, p in enumerate(parts))


@cache
def _env() -> Environment:
    """The report package's template environment (same loader, filters, autoescaping) with three more
    filters for code spans and docstrings; an overlay, so the shared environment is left as it is."""
    from bastion.report.render import template_env

    env = template_env().overlay()
    env.filters = {**env.filters, "code": _code, "mddoc": _md_doc, "htmldoc": _html_doc}
    return env


def render_document(
    kind: Kind, fmt: str, data: dict[str, Any], *, generated: int
) -> tuple[str, str, list[str]]:
    """(title, content, section headings) of the document over ``data`` (a tool result)."""
    env = _env()
    if kind == "runbook":
        title = f"Runbook: {data['title']} ({data['workflow_id']} v{data['version']})"
        content = env.get_template(f"runbook.{fmt}.j2").render(w=data, generated=generated)
    elif kind == "post_incident":
        ctx = post_incident_context(data)
        title = f"Post-incident report: case #{data['case']['number']} {data['case']['title']}"
        content = env.get_template(f"post_incident.{fmt}.j2").render(**ctx, generated=generated)
    else:
        title = f"Case #{data['case']['number']}: {data['case']['title']}"
        content = env.get_template(f"case.{fmt}.j2").render(**data, generated=generated)
    return title, content, _headings(content, fmt)


def _headings(content: str, fmt: str) -> list[str]:
    if fmt == "md":
        return [m.group(1).strip() for m in re.finditer(r"^##\s+(.+)$", content, re.M)]
    return [re.sub(r"<[^>]+>", "", m.group(1)).strip() for m in re.finditer(r"<h2>(.*?)</h2>", content)]


def reason(task: Task, seen: list[Seen]) -> Decision:
    """Read the case or workflow, then write the document."""
    kind, ref, fmt = _kind(task)
    tool, args = (
        ("workflow_outline", {"workflow_id": ref})
        if kind == "runbook"
        else ("case_report", {"case_ref": ref})
    )
    got = next((s for s in seen if s.tool == tool), None)
    if got is None:
        return [Call(tool, args, f"the facts the {kind.replace('_', '-')} document is written from")]
    if got.error is not None or not isinstance(got.result, dict):
        raise ValueError(got.error or f"{tool} returned nothing")
    generated = int(task.input.get("generated") or 0) or _now()
    title, content, sections = render_document(kind, fmt, got.result, generated=generated)
    findings: list[str] = []
    recs: list[str] = []
    if kind == "post_incident":
        ctx = post_incident_context(got.result)
        findings = [*ctx["summary"], *ctx["went_well"], *ctx["to_improve"]]
        recs = ctx["recommendations"]
    elif kind == "runbook":
        steps = got.result["steps"]
        gated = [s["id"] for s in steps if s["approval"]["required"]]
        findings = [
            f"{len(steps)} step(s); {len(gated)} need an approval"
            + (f" ({', '.join(gated)})" if gated else ""),
            f"{sum(1 for s in steps if s['undo'])} step(s) record a change that can be undone",
        ]
    return Finish(
        Document(
            kind=kind,
            subject=ref,
            format=fmt,  # type: ignore[arg-type]
            title=title,
            content=content,
            sections=sections,
            findings=findings,
            recommendations=recs,
        ).model_dump(mode="json")
    )


def _now() -> int:
    from bastion.store._util import now_ms

    return now_ms()


SPEC = register_agent(
    AgentSpec(
        name="docs",
        title="Documentation",
        instructions=(
            "You write security documentation from Bastion's records: case reports, post-incident reports "
            "(timeline, phase durations, what automation did and where it failed, what went well, what to "
            "improve, recommendations) and runbooks from a workflow (purpose, trigger, inputs, every step "
            "with what it does, its impact, approval requirement and undo, outputs). Read the facts with "
            "case_report or workflow_outline; write only what they support."
        ),
        tools=("case_report", "workflow_outline"),
        output=Document,
        reasoner=reason,
        max_steps=4,
    )
)
