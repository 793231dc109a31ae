"""The workflow language's typed form: what the validator builds from YAML and the engine runs.

Only :func:`bastion.respond.validate.parse_workflow` builds these from text, after every check passed,
so the engine can trust them.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "INPUT_TYPES",
    "MAX_DURATION_S",
    "TRIGGER_KINDS",
    "InputSpec",
    "RetrySpec",
    "Step",
    "Trigger",
    "Workflow",
    "parse_duration",
]

INPUT_TYPES = ("string", "integer", "number", "boolean", "object", "array", "any")
TRIGGER_KINDS = ("manual", "webhook", "schedule", "alert", "case", "intel")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
_UNIT = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, None: 1}
#: The longest duration (ten years): a deadline then still fits the store's epoch milliseconds.
MAX_DURATION_S = 3650 * 86400.0


def parse_duration(value: Any) -> float:
    """Seconds in ``30``, ``"30s"``, ``"5m"``, ``"4h"``, ``"2d"``, at most ten years; ValueError
    otherwise."""
    seconds: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        if value < 0:
            raise ValueError(f"a duration must not be negative: {value!r}")
        seconds = float(value) if value <= MAX_DURATION_S else math.inf  # float() of a huge int raises
    elif isinstance(value, str):
        m = _DURATION.match(value)
        if m:
            seconds = float(m.group(1)) * _UNIT[m.group(2)]
    if seconds is None:
        raise ValueError(f"not a duration: {value!r} (use seconds or a number with ms, s, m, h, d or w)")
    if not math.isfinite(seconds) or seconds > MAX_DURATION_S:  # YAML reads .inf and .nan as floats
        raise ValueError(f"a duration must be at most 3650d (ten years), not {value!r}")
    return seconds


@dataclass
class InputSpec:
    name: str
    type: str = "string"
    required: bool = True
    default: Any = None
    description: str = ""
    enum: list[Any] | None = None  # the allowed values, when the input is one of a fixed set


@dataclass
class RetrySpec:
    max_attempts: int = 1
    interval_s: float = 1.0
    backoff: float = 2.0

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based), at most
        :data:`MAX_DURATION_S` (a steep backoff over many attempts would overflow a float)."""
        try:
            return min(float(self.interval_s * (self.backoff ** (attempt - 1))), MAX_DURATION_S)
        except OverflowError:
            return MAX_DURATION_S


@dataclass
class Step:
    id: str
    action: str | None = None
    uses: str | None = None
    uses_version: int | None = None
    with_: dict[str, Any] = field(default_factory=dict)
    if_: str | None = None
    for_each: Any = None
    concurrency: int = 1
    parallel: list[list[Step]] = field(default_factory=list)
    retry: RetrySpec = field(default_factory=RetrySpec)
    timeout_s: float | None = None
    on_error: str = "fail"  # "fail", "continue" or the id of a handler
    approval: dict[str, Any] | None = None
    connection: str | None = None


@dataclass
class Trigger:
    kind: str
    schedule: str | None = None
    condition: str | None = None
    match: dict[str, Any] = field(default_factory=dict)


@dataclass
class Workflow:
    id: str
    title: str
    version: int
    description: str = ""
    triggers: list[Trigger] = field(default_factory=list)
    inputs: dict[str, InputSpec] = field(default_factory=dict)
    vars: dict[str, Any] = field(default_factory=dict)
    steps: list[Step] = field(default_factory=list)
    handlers: dict[str, Step] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)

    def trigger(self, kind: str) -> Trigger | None:
        return next((t for t in self.triggers if t.kind == kind), None)

    def all_steps(self) -> list[Step]:
        """Every step in document order, branches of ``parallel`` included, then the handlers."""
        found: list[Step] = []

        def walk(steps: list[Step]) -> None:
            for s in steps:
                found.append(s)
                for branch in s.parallel:
                    walk(branch)

        walk(self.steps)
        found.extend(self.handlers.values())
        return found
