"""Validate a workflow file and build its :class:`~bastion.respond.model.Workflow`.

Every problem is reported with its 1-based line and column, all at once, before anything runs: YAML
syntax, unknown keys, unknown actions, missing or ill-typed action inputs, references to unknown or
later steps (and unknown names) in expressions, expression syntax errors, and cycles (a workflow that
``uses`` itself directly or through others, and error handlers that hand over to each other in a loop).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from croniter import croniter

from bastion.connectors.registry import check_inputs, get_action, type_ok
from bastion.model import Role
from bastion.respond import expr
from bastion.respond.loader import Positions, load_yaml
from bastion.respond.model import (
    INPUT_TYPES,
    InputSpec,
    RetrySpec,
    Step,
    Trigger,
    Workflow,
    parse_duration,
)

__all__ = [
    "Problem",
    "Resolver",
    "WorkflowInvalid",
    "bind_inputs",
    "parse_stored",
    "parse_workflow",
    "validate_text",
]

Path = tuple[str | int, ...]
Resolver = Callable[[str, int | None], "Workflow | None"]
"""Finds a stored workflow by id (and version, None = latest) for ``uses:``."""

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
_STEP_ID = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_TOP_KEYS = {
    "id",
    "title",
    "version",
    "description",
    "trigger",
    "inputs",
    "vars",
    "steps",
    "handlers",
    "outputs",
}
_STEP_KEYS = {
    "id",
    "name",
    "action",
    "uses",
    "with",
    "if",
    "for_each",
    "concurrency",
    "parallel",
    "retry",
    "timeout",
    "on_error",
    "approval",
    "connection",
}
_INPUT_KEYS = {"type", "required", "default", "description", "enum"}
_RETRY_KEYS = {"max_attempts", "interval", "backoff"}
_APPROVAL_KEYS = {
    "roles",
    "quorum",
    "allow_requester",
    "timeout",
    "on_timeout",
    "escalate_to",
    "channels",
}
_CHANNELS = {"web", "slack", "email"}
# Bounds on counts a workflow sets: items of a for_each run at once, approvers, the retry multiplier.
_MAX_CONCURRENCY = 100
_MAX_QUORUM = 100
_MAX_BACKOFF = 100
_ON_TIMEOUT = {"deny", "approve", "escalate"}
_NAMES = {
    "inputs",
    "steps",
    "trigger",
    "tenant",
    "vars",
    "secrets",
    "run",
    "range",
    "dict",
    "true",
    "false",
    "none",
    "True",
    "False",
    "None",
    "loop",
}
_INPUT_PY: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
    "any": (object,),
}


@dataclass
class Problem:
    line: int
    column: int
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"line": self.line, "column": self.column, "message": self.message}


class WorkflowInvalid(ValueError):
    """The workflow has problems; ``problems`` lists them all, the message shows the first."""

    def __init__(self, problems: list[Problem]) -> None:
        first = problems[0]
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        super().__init__(f"line {first.line}, column {first.column}: {first.message}{more}")
        self.problems = problems


class _Checker:
    def __init__(self, positions: Positions, resolver: Resolver | None) -> None:
        self.pos = positions
        self.resolver = resolver
        self.problems: list[Problem] = []
        self.step_order: dict[str, int] = {}
        self.handler_ids: set[str] = set()
        self.input_names: set[str] = set()

    def add(self, path: Path, message: str, *, key: bool = False, offset: int = 0) -> None:
        line, col = self.pos.at(path, key=key)
        self.problems.append(Problem(line, col + offset, message))

    def keys(self, data: dict[str, Any], allowed: set[str], path: Path, where: str) -> None:
        for k in data:
            if k not in allowed:
                self.add(
                    (*path, k),
                    f"unknown key {k!r} in {where} (allowed: {', '.join(sorted(allowed))})",
                    key=True,
                )

    # ------------------------------------------------------------ expressions

    def expressions(self, value: Any, path: Path, *, order: int | None, loop: bool) -> None:
        """Syntax and references of every expression inside ``value``."""
        if isinstance(value, dict):
            for k, v in value.items():
                self.expressions(v, (*path, k), order=order, loop=loop)
            return
        if isinstance(value, list):
            for i, v in enumerate(value):
                self.expressions(v, (*path, i), order=order, loop=loop)
            return
        if not isinstance(value, str) or "${{" not in value:
            return
        bad = expr.check_syntax(value)
        for offset, message in bad:
            line, col = self.pos.in_text(path, value, offset)
            self.problems.append(Problem(line, col, message))
        if bad:
            return
        for name, step in expr.references(value):
            if name == "steps":
                if not step:
                    continue
                if step not in self.step_order:
                    self.add(path, f"reference to unknown step {step!r}")
                elif order is not None and self.step_order[step] >= order:
                    what = "itself" if self.step_order[step] == order else f"a later step {step!r}"
                    self.add(path, f"reference to {what}: a step can only use the output of earlier steps")
            elif name in ("item", "index"):
                if not loop:
                    self.add(path, f"{name!r} is only defined inside a for_each step")
            elif name not in _NAMES:
                self.add(
                    path,
                    f"unknown name {name!r} in expression (use inputs, steps, trigger, tenant, "
                    "vars or secrets)",
                )

    # ------------------------------------------------------------ steps

    def collect_ids(self, steps: Any, path: Path, counter: list[int]) -> None:
        if not isinstance(steps, list):
            return
        for i, step in enumerate(steps):
            if not isinstance(step, dict):
                continue
            sid = step.get("id")
            if isinstance(sid, str) and _STEP_ID.match(sid):
                if sid in self.step_order:
                    self.add((*path, i, "id"), f"duplicate step id {sid!r}")
                else:
                    self.step_order[sid] = counter[0]
            counter[0] += 1
            branches = step.get("parallel")
            if isinstance(branches, list):
                for b, branch in enumerate(branches):
                    self.collect_ids(branch, (*path, i, "parallel", b), counter)

    def steps(self, steps: Any, path: Path, workflow_id: str, *, handlers: bool = False) -> list[Step]:
        if not isinstance(steps, list):
            self.add(path, "steps must be a list of steps")
            return []
        if not steps and not handlers:
            self.add(path, "a workflow needs at least one step")
        return [s for i, raw in enumerate(steps) if (s := self.step(raw, (*path, i), workflow_id, handlers))]

    def step(self, raw: Any, path: Path, workflow_id: str, handler: bool) -> Step | None:
        if not isinstance(raw, dict):
            self.add(path, "a step must be a mapping with at least 'id' and 'action'")
            return None
        self.keys(raw, _STEP_KEYS, path, "step")
        sid = raw.get("id")
        if sid is None:
            self.add(path, "step has no 'id'")
            sid = f"_step_{path[-1]}"
        elif not isinstance(sid, str) or not _STEP_ID.match(sid):
            self.add(
                (*path, "id"),
                f"invalid step id {sid!r}: use letters, digits and '_', not starting with a digit",
            )
            sid = str(sid)
        order = self.step_order.get(sid, 10**9) if not handler else 10**9
        kinds = [k for k in ("action", "uses", "parallel") if k in raw]
        if len(kinds) != 1:
            self.add(
                path,
                f"step {sid!r} needs exactly one of 'action', 'uses' or 'parallel'"
                + (f" (has {', '.join(kinds)})" if kinds else ""),
            )
        step = Step(id=sid)
        loop = "for_each" in raw
        with_ = raw.get("with", {})
        if not isinstance(with_, dict):
            self.add((*path, "with"), "'with' must be a mapping of input names to values")
            with_ = {}
        step.with_ = with_
        if "action" in raw:
            step.action = str(raw["action"])
            defn = get_action(step.action)
            if defn is None:
                self.add(
                    (*path, "action"), f"unknown action {step.action!r} (`bastion actions list` shows them)"
                )
            else:
                for name, message in check_inputs(defn, with_, literal_only=True):
                    if name:
                        self.add((*path, "with", name), message, key=True)
                    else:
                        self.add((*path, "with") if "with" in raw else (*path, "action"), message)
        if "uses" in raw:
            self.uses(raw["uses"], (*path, "uses"), step, workflow_id)
        if "parallel" in raw:
            branches = raw["parallel"]
            if not isinstance(branches, list) or not all(isinstance(b, list) for b in branches):
                self.add((*path, "parallel"), "'parallel' must be a list of branches, each a list of steps")
            else:
                step.parallel = [
                    self.steps(b, (*path, "parallel", i), workflow_id) for i, b in enumerate(branches)
                ]
        self.expressions(with_, (*path, "with"), order=order, loop=loop)
        if "if" in raw:
            cond = raw["if"]
            if isinstance(cond, bool):
                cond = "${{ true }}" if cond else "${{ false }}"
            if not isinstance(cond, str) or "${{" not in cond:
                self.add((*path, "if"), "'if' must be an expression '${{ ... }}'")
            else:
                step.if_ = cond
                self.expressions(cond, (*path, "if"), order=order, loop=False)
                self.no_secrets(cond, (*path, "if"))
        if loop:
            fe = raw["for_each"]
            if isinstance(fe, str) and "${{" in fe:
                self.expressions(fe, (*path, "for_each"), order=order, loop=False)
                self.no_secrets(fe, (*path, "for_each"))
            elif not isinstance(fe, list):
                self.add((*path, "for_each"), "'for_each' must be a list or an expression giving one")
            step.for_each = fe
        if "concurrency" in raw:
            c = raw["concurrency"]
            if not isinstance(c, int) or isinstance(c, bool) or not 1 <= c <= _MAX_CONCURRENCY:
                self.add(
                    (*path, "concurrency"),
                    f"'concurrency' must be a whole number from 1 to {_MAX_CONCURRENCY}",
                )
            else:
                step.concurrency = c
            if not loop:
                self.add((*path, "concurrency"), "'concurrency' only applies to a for_each step", key=True)
        if "retry" in raw:
            step.retry = self.retry(raw["retry"], (*path, "retry"))
        if "timeout" in raw:
            try:
                step.timeout_s = parse_duration(raw["timeout"])
            except ValueError as exc:
                self.add((*path, "timeout"), str(exc))
        if "on_error" in raw:
            step.on_error = self.on_error(raw["on_error"], (*path, "on_error"))
        if "approval" in raw:
            step.approval = self.approval(raw["approval"], (*path, "approval"))
        if "connection" in raw:
            if not isinstance(raw["connection"], str):
                self.add((*path, "connection"), "'connection' must be the name of a connection")
            else:
                step.connection = raw["connection"]
        self.applies(raw, path, step)
        return step

    def applies(self, raw: dict[str, Any], path: Path, step: Step) -> None:
        """Keys the engine would otherwise ignore on a kind of step: refused rather than silently
        dropped (an approval that is never asked for would be the worst of them)."""
        kind = "uses" if "uses" in raw else "parallel" if "parallel" in raw else "action"
        only_actions = ("retry", "timeout", "connection")
        if kind != "action":
            for key in only_actions:
                if key in raw:
                    self.add(
                        (*path, key),
                        f"'{key}' applies to an action step, not a '{kind}' step (set it on its steps)",
                        key=True,
                    )
        if kind == "parallel" and "approval" in raw:
            self.add(
                (*path, "approval"),
                "'approval' applies to an action or 'uses' step, not a 'parallel' block"
                " (set it on its steps)",
                key=True,
            )
        if step.action == "core.sleep" and "approval" in raw:
            message = "core.sleep takes no approval: put it on the step that acts"
            self.add((*path, "approval"), message, key=True)

    def no_secrets(self, text: str, path: Path) -> None:
        if any(name == "secrets" for name, _ in expr.references(text)):
            self.add(path, "secrets may only be used in 'with', where they are masked in the run record")

    def uses(self, value: Any, path: Path, step: Step, workflow_id: str) -> None:
        if not isinstance(value, str) or not value:
            self.add(path, "'uses' must be a workflow id, optionally with '@version'")
            return
        ref, _, ver = value.partition("@")
        step.uses = ref
        if ver:
            if not ver.isdigit():
                self.add(path, f"invalid version {ver!r} in 'uses': use id@N")
                return
            step.uses_version = int(ver)
        if ref == workflow_id:
            self.add(path, f"cycle: workflow {workflow_id!r} uses itself")
            return
        if self.resolver is None:
            return
        target = self.resolver(ref, step.uses_version)
        if target is None:
            self.add(path, f"unknown workflow {value!r} in 'uses' (add it first with `bastion workflow add`)")
            return
        chain = self.uses_chain(target, workflow_id, [workflow_id, target.id], set())
        if chain:
            self.add(path, "cycle: " + " -> ".join(chain))
        self.sub_inputs(target, step.with_, path[:-1])

    def sub_inputs(self, target: Workflow, with_: dict[str, Any], path: Path) -> None:
        """A ``uses`` step's ``with`` against the sub-workflow's declared inputs: unknown names, missing
        required ones, and literal values of the wrong type (expressions are checked when the run binds)."""
        known = ", ".join(target.inputs) or "none"
        for name, value in with_.items():
            spec = target.inputs.get(name)
            if spec is None:
                message = f"sub-workflow {target.id!r} has no input {name!r} (inputs: {known})"
                self.add((*path, "with", name), message, key=True)
                continue
            if isinstance(value, str) and "${{" in value:
                continue  # an expression: checked when the run binds it
            if isinstance(value, str) and spec.type not in ("string", "any"):
                try:  # as the run binds it: "3" is an integer there too
                    value = _coerce(name, spec.type, value)
                except ValueError:
                    value = None
            if spec.type != "any" and not type_ok(value, {"type": spec.type}):
                message = f"input {name!r} of sub-workflow {target.id!r} must be of type {spec.type}"
                self.add((*path, "with", name), message)
        for name, spec in target.inputs.items():
            if spec.required and spec.default is None and name not in with_:
                message = f"sub-workflow {target.id!r} needs input {name!r} ({spec.type})"
                self.add((*path, "with") if with_ else (*path, "uses"), message)

    def uses_chain(self, wf: Workflow, origin: str, trail: list[str], seen: set[str]) -> list[str] | None:
        if wf.id in seen or self.resolver is None:
            return None
        seen.add(wf.id)
        for s in wf.all_steps():
            if s.uses is None:
                continue
            if s.uses == origin:
                return [*trail, origin]
            nxt = self.resolver(s.uses, s.uses_version)
            if nxt is not None:
                found = self.uses_chain(nxt, origin, [*trail, nxt.id], seen)
                if found:
                    return found
        return None

    def retry(self, raw: Any, path: Path) -> RetrySpec:
        spec = RetrySpec()
        if isinstance(raw, int) and not isinstance(raw, bool):
            if not 1 <= raw <= 100:
                self.add(path, "'retry' (the number of attempts) must be a whole number from 1 to 100")
            else:
                spec.max_attempts = raw
            return spec
        if not isinstance(raw, dict):
            self.add(path, "'retry' must be a number of attempts or {max_attempts, interval, backoff}")
            return spec
        self.keys(raw, _RETRY_KEYS, path, "retry")
        m = raw.get("max_attempts", 3)
        if not isinstance(m, int) or isinstance(m, bool) or not 1 <= m <= 100:
            self.add((*path, "max_attempts"), "'max_attempts' must be a whole number from 1 to 100")
        else:
            spec.max_attempts = m
        if "interval" in raw:
            try:
                spec.interval_s = parse_duration(raw["interval"])
            except ValueError as exc:
                self.add((*path, "interval"), str(exc))
        if "backoff" in raw:
            b = raw["backoff"]
            if not isinstance(b, int | float) or isinstance(b, bool) or not 1 <= b <= _MAX_BACKOFF:
                self.add(
                    (*path, "backoff"),
                    f"'backoff' must be a number from 1 to {_MAX_BACKOFF} (1 = fixed interval)",
                )
            else:
                spec.backoff = float(b)
        return spec

    def on_error(self, raw: Any, path: Path) -> str:
        if raw in ("fail", "continue"):
            return str(raw)
        if isinstance(raw, dict) and set(raw) == {"handler"} and isinstance(raw["handler"], str):
            if raw["handler"] not in self.handler_ids:
                self.add(
                    (*path, "handler"), f"unknown handler {raw['handler']!r}: define it under 'handlers'"
                )
            return str(raw["handler"])
        self.add(path, "'on_error' must be fail, continue or {handler: <id of a step under handlers>}")
        return "fail"

    def roles(self, roles: list[str], path: Path) -> None:
        known = [r.value for r in Role]
        for role in roles:
            if role not in known:
                self.add(path, f"unknown role {role!r}: roles are {', '.join(known)}")

    def approval(self, raw: Any, path: Path) -> dict[str, Any] | None:
        if not isinstance(raw, dict):
            self.add(path, "'approval' must be a mapping with at least 'roles'")
            return None
        self.keys(raw, _APPROVAL_KEYS, path, "approval")
        out: dict[str, Any] = {}
        roles = raw.get("roles")
        if not isinstance(roles, list) or not roles or not all(isinstance(r, str) for r in roles):
            self.add(
                (*path, "roles") if "roles" in raw else path, "'roles' must be a non-empty list of roles"
            )
        else:
            out["roles"] = roles
            self.roles(roles, (*path, "roles"))
        q = raw.get("quorum", 1)
        if not isinstance(q, int) or isinstance(q, bool) or not 1 <= q <= _MAX_QUORUM:
            self.add((*path, "quorum"), f"'quorum' must be a whole number from 1 to {_MAX_QUORUM}")
            q = 1
        out["quorum"] = q
        ar = raw.get("allow_requester", False)
        if not isinstance(ar, bool):
            self.add((*path, "allow_requester"), "'allow_requester' must be true or false")
        out["allow_requester"] = bool(ar)
        if "timeout" in raw:
            try:
                out["timeout_s"] = parse_duration(raw["timeout"])
            except ValueError as exc:
                self.add((*path, "timeout"), str(exc))
        ot = raw.get("on_timeout", "deny")
        if ot not in _ON_TIMEOUT:
            self.add((*path, "on_timeout"), "'on_timeout' must be deny, approve or escalate")
        out["on_timeout"] = ot
        esc = raw.get("escalate_to", [])
        if not isinstance(esc, list) or not all(isinstance(r, str) for r in esc):
            self.add((*path, "escalate_to"), "'escalate_to' must be a list of roles")
        elif ot == "escalate" and not esc:
            self.add((*path, "on_timeout"), "on_timeout: escalate needs 'escalate_to' roles")
        else:
            self.roles(esc, (*path, "escalate_to"))
        out["escalate_to"] = esc if isinstance(esc, list) else []
        ch = raw.get("channels", ["web"])
        if not isinstance(ch, list) or not all(c in _CHANNELS for c in ch):
            self.add((*path, "channels"), f"'channels' must be a list of {', '.join(sorted(_CHANNELS))}")
        out["channels"] = ch if isinstance(ch, list) else ["web"]
        return out

    # ------------------------------------------------------------ the rest

    def triggers(self, raw: Any, path: Path) -> list[Trigger]:
        if raw is None:
            return [Trigger("manual")]
        if isinstance(raw, str):
            raw = {raw: True}
        if not isinstance(raw, dict):
            self.add(path, "'trigger' must be manual, webhook, or a mapping of trigger kinds")
            return [Trigger("manual")]
        found: list[Trigger] = []
        for kind, spec in raw.items():
            kpath = (*path, kind)
            if kind in ("manual", "webhook"):
                if spec not in (True, None, {}):
                    self.add(kpath, f"'{kind}' takes no settings (write '{kind}: true')")
                found.append(Trigger(kind))
            elif kind == "schedule":
                if not isinstance(spec, str) or not croniter.is_valid(spec):
                    self.add(kpath, f"invalid cron schedule {spec!r} (five fields, e.g. '*/15 * * * *')")
                else:
                    found.append(Trigger(kind, schedule=spec))
            elif kind in ("alert", "case", "intel"):
                if spec in (True, None):
                    spec = {}
                if not isinstance(spec, dict):
                    self.add(kpath, f"'{kind}' takes a mapping: fields to match and an optional condition")
                    continue
                cond = spec.get("condition")
                if cond is not None:
                    if not isinstance(cond, str) or "${{" not in cond:
                        self.add((*kpath, "condition"), "'condition' must be an expression '${{ ... }}'")
                        cond = None
                    else:
                        for offset, message in expr.check_syntax(cond):
                            self.add((*kpath, "condition"), message, offset=offset)
                match = {k: v for k, v in spec.items() if k != "condition"}
                found.append(Trigger(kind, condition=cond, match=match))
            else:
                self.add(
                    kpath,
                    f"unknown trigger {kind!r} (use manual, webhook, schedule, alert, case or intel)",
                    key=True,
                )
        return found or [Trigger("manual")]

    def inputs(self, raw: Any, path: Path) -> dict[str, InputSpec]:
        out: dict[str, InputSpec] = {}
        if raw is None:
            return out
        if not isinstance(raw, dict):
            self.add(path, "'inputs' must map input names to {type, required, default, description}")
            return out
        for name, spec in raw.items():
            ipath = (*path, name)
            if spec is None:
                spec = {}
            if isinstance(spec, str):
                spec = {"type": spec}
            if not isinstance(spec, dict):
                self.add(ipath, f"input {name!r} must be a mapping like {{type: string}}")
                continue
            self.keys(spec, _INPUT_KEYS, ipath, f"input {name!r}")
            kind = spec.get("type", "string")
            if kind not in INPUT_TYPES:
                self.add((*ipath, "type"), f"unknown input type {kind!r} (use {', '.join(INPUT_TYPES)})")
                kind = "any"
            has_default = "default" in spec
            if (
                has_default
                and spec["default"] is not None
                and not isinstance(spec["default"], _INPUT_PY[kind])
            ):
                self.add((*ipath, "default"), f"default of input {name!r} is not a {kind}")
            choices = spec.get("enum")
            if choices is not None:
                if (
                    not isinstance(choices, list)
                    or not choices
                    or not all(
                        isinstance(c, _INPUT_PY[kind]) and not isinstance(c, dict | list) for c in choices
                    )
                ):
                    self.add(
                        (*ipath, "enum"),
                        f"'enum' of input {name!r} must be a non-empty list of {kind} values",
                    )
                    choices = None
                elif has_default and spec["default"] is not None and spec["default"] not in choices:
                    self.add((*ipath, "default"), f"default of input {name!r} is not one of its enum values")
            out[name] = InputSpec(
                name=name,
                type=kind,
                required=bool(spec.get("required", not has_default)),
                default=spec.get("default"),
                description=str(spec.get("description", "")),
                enum=choices,
            )
        return out


def _structure(data: Any, c: _Checker, resolver: Resolver | None) -> Workflow | None:
    if not isinstance(data, dict):
        c.add((), "a workflow file is a mapping with id, steps and the other keys")
        return None
    c.keys(data, _TOP_KEYS, (), "workflow")
    wid = data.get("id")
    if wid is None:
        c.add((), "workflow has no 'id'")
        wid = "_"
    elif not isinstance(wid, str) or not _ID.match(wid):
        c.add(("id",), f"invalid workflow id {wid!r}: use letters, digits, '.', '_' or '-'")
        wid = str(wid)
    version = data.get("version", 1)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        c.add(("version",), "'version' must be a whole number of at least 1")
        version = 1
    triggers = c.triggers(data.get("trigger"), ("trigger",))
    inputs = c.inputs(data.get("inputs"), ("inputs",))
    c.input_names = set(inputs)
    vars_ = data.get("vars", {})
    if not isinstance(vars_, dict):
        c.add(("vars",), "'vars' must be a mapping")
        vars_ = {}
    handlers_raw = data.get("handlers", [])
    if isinstance(handlers_raw, list):
        c.handler_ids = {
            h["id"] for h in handlers_raw if isinstance(h, dict) and isinstance(h.get("id"), str)
        }
    c.collect_ids(data.get("steps"), ("steps",), [0])
    if "steps" not in data:
        c.add((), "workflow has no 'steps'")
    steps = c.steps(data.get("steps", []), ("steps",), wid)
    handlers: dict[str, Step] = {}
    for i, h in enumerate(handlers_raw if isinstance(handlers_raw, list) else []):
        hpath: Path = ("handlers", i)
        if isinstance(h, dict) and isinstance(h.get("id"), str) and h["id"] in c.step_order:
            c.add((*hpath, "id"), f"handler id {h['id']!r} is also a step id")
        built = c.step(h, hpath, wid, True)
        if built is not None:
            handlers[built.id] = built
    if not isinstance(handlers_raw, list):
        c.add(("handlers",), "'handlers' must be a list of steps")
    _handler_cycles(handlers, c)
    for hid in handlers:  # outputs may use what a handler produced
        c.step_order.setdefault(hid, 10**8)
    outputs = data.get("outputs", {})
    if not isinstance(outputs, dict):
        c.add(("outputs",), "'outputs' must map names to values or expressions")
        outputs = {}
    c.expressions(outputs, ("outputs",), order=None, loop=False)
    c.no_secrets(str(outputs), ("outputs",)) if "secrets" in str(outputs) else None
    return Workflow(
        id=wid,
        title=str(data.get("title", wid)),
        version=version,
        description=str(data.get("description", "")),
        triggers=triggers,
        inputs=inputs,
        vars=vars_,
        steps=steps,
        handlers=handlers,
        outputs=outputs,
    )


def _handler_cycles(handlers: dict[str, Step], c: _Checker) -> None:
    reported: set[str] = set()
    for i, start in enumerate(handlers):
        trail = [start]
        current = handlers[start].on_error
        while current in handlers and current not in trail:
            trail.append(current)
            current = handlers[current].on_error
        if current in trail and start not in reported:
            cycle = [*trail[trail.index(current) :], current]
            reported.update(cycle)
            c.add(
                ("handlers", i, "on_error"),
                "cycle: error handlers hand over in a loop: " + " -> ".join(cycle),
            )


def validate_text(text: str, *, resolver: Resolver | None = None) -> tuple[Workflow | None, list[Problem]]:
    """The workflow (when there are no problems) and every problem found, in file order."""
    loaded = load_yaml(text)
    problems = [Problem(p.line, p.column, p.message) for p in loaded.problems]
    if loaded.data is None:  # a file holding only ``null`` (or ``~``) parses without a problem
        return None, problems or [Problem(1, 1, "the document is null, not a workflow (a mapping)")]
    checker = _Checker(loaded.positions, resolver)
    workflow = _structure(loaded.data, checker, resolver)
    problems.extend(checker.problems)
    problems.sort(key=lambda p: (p.line, p.column))
    return (workflow if not problems else None), problems


def parse_workflow(text: str, *, resolver: Resolver | None = None) -> Workflow:
    """The workflow, or :class:`WorkflowInvalid` listing every problem."""
    workflow, problems = validate_text(text, resolver=resolver)
    if problems or workflow is None:
        raise WorkflowInvalid(problems or [Problem(1, 1, "not a workflow")])
    return workflow


@functools.lru_cache(maxsize=256)
def parse_stored(text: str) -> Workflow:
    """A stored definition, parsed once per process. Validating YAML with its positions and every
    expression costs milliseconds, more than running a step; each run (and each trigger check) of a stored
    version would otherwise pay it again. The result is shared: callers must not change it."""
    return parse_workflow(text)


def bind_inputs(workflow: Workflow, given: dict[str, Any]) -> dict[str, Any]:
    """Check run inputs against the declared ones, apply defaults and coerce ``k=v`` strings.

    Raises ValueError naming the first wrong input.
    """
    out: dict[str, Any] = {}
    for name in given:
        if name not in workflow.inputs:
            known = ", ".join(workflow.inputs) or "none"
            raise ValueError(f"workflow {workflow.id} has no input {name!r} (inputs: {known})")
    for name, spec in workflow.inputs.items():
        if name not in given:
            if spec.required and spec.default is None:
                raise ValueError(f"workflow {workflow.id} needs input {name!r} ({spec.type})")
            out[name] = spec.default
            continue
        value = given[name]
        if isinstance(value, str) and spec.type not in ("string", "any"):
            value = _coerce(name, spec.type, value)
        if not type_ok(value, {"type": spec.type} if spec.type != "any" else {}):
            raise ValueError(f"input {name!r} must be a {spec.type}, not {type(value).__name__}")
        if spec.enum is not None and value not in spec.enum:
            raise ValueError(f"input {name!r} must be one of {', '.join(map(str, spec.enum))}")
        out[name] = value
    return out


def _coerce(name: str, kind: str, text: str) -> Any:
    import orjson

    try:
        if kind == "integer":
            return int(text)
        if kind == "number":
            return float(text)
        if kind == "boolean":
            if text.lower() in ("true", "1", "yes"):
                return True
            if text.lower() in ("false", "0", "no"):
                return False
            raise ValueError
        return orjson.loads(text)
    except (ValueError, orjson.JSONDecodeError):
        raise ValueError(f"input {name!r}: {text!r} is not a valid {kind}") from None
