"""Chaining actions into a plan: one step per intent, the action chosen by vendor, every input filled.

For each intent the planner picks the action with that effect whose product the objective names, else
one the tenant has a connection for (``tenant.connections``), else the catalogue's default. It then
fills each input from the catalogue's ``with`` template, resolving every ``<<kind>>``:

- an entity (user, host, ip, ...) comes from a workflow input named as the trigger payloads name it
  (``username``, ``hostname``, ...), or for an alert trigger from the alert's observables (a first
  ``facts`` step, with an ``if`` guard on the steps that need the value);
- a product id (a Falcon device id, a Defender machine, a SentinelOne agent, a case id) comes from an
  earlier step's output; when no step produced it yet, the lookup action that does is inserted first;
- a setting (blocklist, channel, ...) comes from the workflow's ``vars``.

A value that is a list (device ids, extracted domains) turns the step into a ``for_each`` over it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from bastion.agents.planner.catalogue import (
    ACTIONS,
    EFFECTS,
    ENTITY_INPUTS,
    OBSERVABLE_QUERIES,
    PRODUCERS,
    SETTINGS,
)
from bastion.agents.planner.parse import Intent, Parsed

__all__ = ["Builder", "candidates", "choose_action"]

_PLACEHOLDER = re.compile(r"<<(\w+)>>")
_OMIT = object()
_BASE_KINDS = ("user", "email", "host", "ip", "domain", "url", "hash", "cve")
_OBSERVABLE_TYPE = {
    "user": "user",
    "email": "email",
    "host": "host",
    "ip": "ipv4",
    "domain": "domain",
    "url": "url",
    "hash": "sha256",
    "cve": "cve",
}
_STEP_NAMES = {
    "suspend-account": "suspend",
    "enable-account": "enable",
    "reset-password": "reset_password",
    "reset-mfa": "reset_mfa",
    "revoke-sessions": "sessions",
    "confirm-compromised": "compromised",
    "remove-group": "privileges",
    "add-group": "add_group",
    "isolate-host": "isolate",
    "release-host": "release",
    "collect-forensics": "forensics",
    "av-scan": "scan",
    "block-ip": "block_ip",
    "block-domain": "block_domain",
    "block-url": "block_url",
    "unblock": "unblock",
    "open-case": "case",
    "ticket": "ticket",
    "comment-case": "note",
    "add-observable": "observables",
    "close-case": "close",
    "page": "page",
    "email": "mail",
    "notify": "notify",
    "lookup-user": "account",
    "lookup-host": "device",
    "ip-reputation": "reputation",
    "extract-iocs": "indicators",
}
_DESCRIPTIONS = {
    "user": "the user's directory login (or the identity provider's login)",
    "email": "the user's e-mail address",
    "host": "the machine's host name",
    "ip": "the IP address",
    "domain": "the domain",
    "url": "the URL",
    "hash": "the file's hash",
    "cve": "the vulnerability (CVE id) or indicator",
    "text": "the reported message's text (indicators are taken from it)",
}
_PRODUCER_WHY = {
    "cs_device": "find the host's Falcon device ids: CrowdStrike acts on device ids, not host names",
    "machine": "find the host's Defender for Endpoint machine ids: the machine actions take those",
    "s1_agent": "find the host's SentinelOne agent: the network actions take the agent id",
    "case_id": "open a case first: the next step writes to it",
    "case_number": "open a case first: the next step refers to it",
}
_APPROVAL = {"roles": ["approver"], "channels": ["slack", "web"], "timeout": "4h", "on_timeout": "deny"}


def candidates(effect: str) -> list[str]:
    """Action ids with ``effect``, the default first."""
    order = {aid: i for i, aid in enumerate(ACTIONS)}
    found = [aid for aid, e in ACTIONS.items() if effect in e.effects]
    # the default first; an action whose main effect this is before one that only also has it
    return sorted(found, key=lambda a: (not ACTIONS[a].default, ACTIONS[a].effects[0] != effect, order[a]))


def choose_action(
    effect: str, vendor: str | None, connections: set[str], named: list[str] | tuple[str, ...] = ()
) -> str | None:
    """The action for an effect: the product named in its clause, else one named elsewhere in the
    objective, else a connected product's, else the default."""
    found = candidates(effect)
    if not found:
        return None
    for wanted in [vendor] if vendor else list(named):
        match = [a for a in found if ACTIONS[a].vendor == wanted]
        if match:
            return match[0]
    connected = [a for a in found if ACTIONS[a].vendor in connections]
    if connected:
        return connected[0]
    return found[0]


def _clean(text: str) -> str:
    """Objective text that is safe inside YAML and expressions (no expression markers)."""
    return text.replace("${{", "").replace("}}", "").replace("{{", "").strip()


@dataclass
class Binding:
    expr: str  # a Jinja expression, without the ${{ }}
    is_list: bool = False
    guard: str | None = None  # an expression that is true when the value is there


@dataclass
class Builder:
    parsed: Parsed
    connections: set[str]
    title: str
    steps: list[dict[str, Any]] = field(default_factory=list)
    inputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    vars: dict[str, Any] = field(default_factory=dict)
    facts: dict[str, str] = field(default_factory=dict)
    bindings: dict[str, Binding] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def alert(self) -> bool:
        return self.parsed.trigger.kind == "alert"

    # ------------------------------------------------------------ building

    def build(self) -> None:
        if self.alert:
            self.inputs["title"] = {
                "type": "string",
                "default": self.title,
                "description": "the alert's title",
            }
            self.inputs["severity"] = {
                "type": "string",
                "default": "high",
                "description": "the alert's severity",
            }
            self.inputs["alert_id"] = {
                "type": "string",
                "default": "",
                "description": "the alert that started the run; it goes into the case",
            }
            self.inputs["observables"] = {
                "type": "array",
                "default": [],
                "description": "the alert's observables ({type, value})",
            }
        if self.parsed.trigger.topic == "report":
            self._bind_input("reporter", required=True, description="who reported the message (e-mail)")
        for intent in self.parsed.intents:
            self.add_intent(intent)
        if self.facts:
            self.steps.insert(
                0,
                {
                    "id": "facts",
                    "action": "core.set",
                    "why": "take the entities from the alert's observables (or the inputs given)",
                    "with": {"values": dict(self.facts)},
                },
            )

    def add_intent(self, intent: Intent) -> None:
        if intent.effect == "extract-iocs":
            self._extract(intent)
            return
        action = choose_action(intent.effect, intent.vendor, self.connections, self.parsed.vendors)
        if action is None:
            self.notes.append(f"no action can {intent.effect.replace('-', ' ')} ({intent.clause!r})")
            return
        target = self._target_kind(intent)
        if any(s["action"] == action and s.get("_target") == target for s in self.steps):
            return  # asked twice ("... and a case")
        why = f'{EFFECTS[intent.effect].why} ("{_clean(intent.clause)}")'
        self.add_step(
            action, _STEP_NAMES.get(intent.effect, "step"), why, target=target, approval=intent.approval
        )

    def add_step(
        self, action: str, name: str, why: str, *, target: str | None, approval: bool = False
    ) -> dict[str, Any]:
        entry = ACTIONS[action]
        loop: Binding | None = self._bind("iocs") if target == "iocs" else None
        guards: list[str] = []
        resolved: dict[str, Any] = {}
        for key, template in entry.with_.items():
            value, loop, guards = self._fill(template, target, entry.vendor, loop, guards)
            if value is not _OMIT:
                resolved[key] = value
        step: dict[str, Any] = {"id": self._step_id(name), "action": action, "why": why}
        if guards:
            step["if"] = "${{ " + " and ".join(dict.fromkeys(guards)) + " }}"
        if loop is not None:
            step["for_each"] = "${{ " + loop.expr + " }}"
        step["with"] = resolved
        if approval:
            step["approval"] = dict(_APPROVAL)
        step["_target"] = target
        self.steps.append(step)
        for kind, (path, is_list) in entry.produces.items():
            if loop is None:
                self.bindings.setdefault(kind, Binding(f"steps.{step['id']}.output.{path}", is_list))
        return step

    def _extract(self, intent: Intent) -> None:
        text = self._bind("text")
        src = text.expr
        sid = self._step_id("indicators")
        values = {
            "all": "${{ " + src + " | refang | iocs }}",
            "domains": "${{ " + src + " | refang | iocs('domain') | unique | list }}",
            "ips": "${{ " + src + " | refang | iocs('ipv4') | unique | list }}",
            "urls": "${{ " + src + " | refang | iocs('url') | unique | list }}",
        }
        self.steps.append(
            {
                "id": sid,
                "action": "core.set",
                "why": EFFECTS["extract-iocs"].why,
                "with": {"values": values},
                "_target": "text",
            }
        )
        for kind, key in (("iocs", "all"), ("domain", "domains"), ("ip", "ips"), ("url", "urls")):
            self.bindings[kind] = Binding(f"steps.{sid}.output.{key}", True)

    # ------------------------------------------------------------ resolution

    def _target_kind(self, intent: Intent) -> str | None:
        if intent.effect == "email":
            reporter = (
                bool(re.search(r"report|whoever", intent.clause, re.I))
                or self.parsed.trigger.topic == "report"
            )
            return "reporter" if reporter else "email"
        if intent.effect == "unblock":
            for kind in ("ip", "domain", "url"):
                if kind in self.bindings or kind in self.parsed.entities:
                    return kind
            return "ip"
        if intent.effect == "add-observable":
            if "iocs" in self.bindings:
                return "iocs"
            for kind in ("host", "user", "ip", "domain", "url", "hash"):
                if kind in self.bindings or kind in self.parsed.entities:
                    return kind
            return "host"
        return intent.target

    def _fill(
        self, template: Any, target: str | None, vendor: str, loop: Binding | None, guards: list[str]
    ) -> tuple[Any, Binding | None, list[str]]:
        if isinstance(template, list):
            items = []
            for t in template:
                v, loop, guards = self._fill(t, target, vendor, loop, guards)
                items.append(v)
            return items, loop, guards
        if not isinstance(template, str) or "<<" not in template:
            return template, loop, guards
        whole = _PLACEHOLDER.fullmatch(template)
        if whole:
            value = self._value(whole.group(1), target, vendor)
            if value is _OMIT or not isinstance(value, Binding):
                return value, loop, guards
            if value.guard:
                guards.append(value.guard)
            if value.is_list and loop is None and whole.group(1) not in ("alert_ids",):
                loop = value
                return "${{ item }}", loop, guards
            return "${{ " + value.expr + " }}", loop, guards

        def sub(m: re.Match[str]) -> str:
            value = self._value(m.group(1), target, vendor)
            if value is _OMIT:
                return ""
            if isinstance(value, Binding):
                if value.is_list:
                    return "${{ " + value.expr + " | join(', ') }}"
                return "${{ " + value.expr + " }}"
            return str(value)

        return _PLACEHOLDER.sub(sub, template), loop, guards

    def _value(self, name: str, target: str | None, vendor: str) -> Any:
        """A placeholder's value: a literal, :data:`_OMIT`, or a :class:`Binding`."""
        if name == "target":
            name = target or "ip"
            if name == "iocs":
                return Binding("item.value")
        if name == "target_type":
            if target == "iocs":
                return Binding("item.type")
            return _OBSERVABLE_TYPE.get(target or "host", "other")
        if name == "title":
            return Binding("inputs.title") if self.alert else self.title
        if name == "severity":
            return Binding("inputs.severity") if self.alert else "high"
        if name == "alert_ids":
            return Binding("[inputs.alert_id] if inputs.alert_id else []") if self.alert else _OMIT
        if name == "subject":
            return self._subject()
        if name == "description":
            return f"Objective: {_clean(self.parsed.objective)}"
        if name == "outcome":
            done = [s["id"] for s in self.steps if s["action"] not in ("core.set", "cases.create")]
            return f"{self.title}: done {', '.join(done) or 'nothing yet'}."
        if name == "case_ref":
            if "case_number" in self.bindings:
                return f" (case #${{{{ {self.bindings['case_number'].expr} }}}})"
            return ""
        if name in SETTINGS:
            self.vars.setdefault(name, self._setting(name))
            return Binding(f"vars.{name}")
        return self._bind(name, vendor)

    def _setting(self, name: str) -> Any:
        if name == "block_for":
            m = re.search(r"\bfor (\d+) ?(hour|day|week|minute)s?\b", self.parsed.objective, re.I)
            if m:
                return f"{m.group(1)}{m.group(2)[0].lower()}"
        if name == "privileged_group":
            m = re.search(r"\b(?:the )?([\w-]+) group\b", self.parsed.objective, re.I)
            if m and m.group(1).lower() not in ("privileged", "the", "a", "admin", "their"):
                return m.group(1)
        return SETTINGS[name]

    def _subject(self) -> str:
        parts: list[str] = []
        kinds = [i.target for i in self.parsed.intents if i.target in _BASE_KINDS]
        for kind in dict.fromkeys(k for k in kinds if k):
            b = self._bind(kind)
            parts.append(
                f"{kind} ${{{{ {b.expr} | join(', ') }}}}" if b.is_list else f"{kind} ${{{{ {b.expr} }}}}"
            )
        return ", ".join(parts) or _clean(self.parsed.objective)[:80]

    def _bind(self, kind: str, vendor: str = "") -> Binding:
        if kind in self.bindings:
            return self.bindings[kind]
        if kind in PRODUCERS:
            producer = next(
                (a for a in PRODUCERS[kind] if not vendor or ACTIONS[a].vendor in (vendor, "")),
                PRODUCERS[kind][0],
            )
            self.add_step(
                producer,
                _STEP_NAMES["open-case"]
                if producer == "cases.create"
                else {"cs_device": "device", "machine": "machine", "s1_agent": "agent"}.get(kind, "lookup"),
                _PRODUCER_WHY.get(kind, f"{kind.replace('_', ' ')} for the next step comes from {producer}"),
                target=None,
            )
            if kind not in self.bindings:  # the producer ran in a loop: use its whole output
                self.bindings[kind] = Binding(f"steps.{self.steps[-1]['id']}.output", True)
            return self.bindings[kind]
        if kind == "iocs":
            text = self._bind("text")
            self.bindings[kind] = Binding(f"{text.expr} | refang | iocs", True)
            return self.bindings[kind]
        if self.alert and kind in OBSERVABLE_QUERIES:
            name = ENTITY_INPUTS[kind]
            self._bind_input(kind, required=False)
            query = OBSERVABLE_QUERIES[kind].replace('"', "'")
            self.facts[kind] = (
                f"${{{{ inputs.{name} or (inputs.observables | jmespath(\"{query}\")) or '' }}}}"
            )
            expr = f"steps.facts.output.{kind}"
            self.bindings[kind] = Binding(expr, guard=f"{expr} != ''")
            return self.bindings[kind]
        name = self._bind_input(kind, required=True)
        self.bindings[kind] = Binding(f"inputs.{name}")
        return self.bindings[kind]

    def _bind_input(self, kind: str, *, required: bool, description: str = "") -> str:
        name = ENTITY_INPUTS.get(kind, kind)
        if name in self.inputs:
            return name
        spec: dict[str, Any] = {"type": "string"}
        given = self.parsed.entities.get(kind) or (self.parsed.entities.get("cve") if kind == "cve" else None)
        if kind == "user" and not given and self.parsed.entities.get("email"):
            given = self.parsed.entities["email"]
        if given:
            spec["default"] = given[0]
        elif not required or (self.parsed.trigger.kind == "intel" and kind == "email"):
            spec["default"] = ""
        spec["description"] = description or _DESCRIPTIONS.get(kind, f"the {kind.replace('_', ' ')}")
        self.inputs[name] = spec
        if kind == "text" and "reporter" not in self.inputs and self.parsed.trigger.topic == "report":
            self._bind_input("reporter", required=True, description="who reported the message (e-mail)")
        return name

    def _step_id(self, name: str) -> str:
        taken = {s["id"] for s in self.steps} | {"facts"}
        if name not in taken:
            return name
        n = 2
        while f"{name}_{n}" in taken:
            n += 1
        return f"{name}_{n}"
