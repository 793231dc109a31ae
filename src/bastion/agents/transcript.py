"""An agent run's transcript: the model conversation as plain JSON entries, for ``agent_runs``, the audit
log (``agent.run.finish`` carries it) and the case timeline.

pydantic-ai's message history is rich and version-specific; what people and auditors need is simpler:
who said what, which tool was called with which arguments, and what came back. Long texts and results are
cut (with a note) so that an audit entry stays a reasonable size.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    RetryPromptPart,
    SystemPromptPart,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)

from bastion.agents.spec import tool_name

__all__ = ["MAX_TEXT", "OUTPUT_PREFIX", "clip", "compact", "plan_entries", "with_outcomes"]

MAX_TEXT = 4000
OUTPUT_PREFIX = "final_result"  # pydantic-ai's output tools: final_result, final_result_<Type>


def clip(value: Any, limit: int = MAX_TEXT) -> Any:
    """``value`` as JSON-able data, cut to about ``limit`` characters when serialised."""
    if isinstance(value, str):
        return value if len(value) <= limit else value[:limit] + f"... [{len(value) - limit} more characters]"
    try:
        text = orjson.dumps(value, default=str).decode()
    except TypeError:
        text = str(value)
    if len(text) <= limit:
        return orjson.loads(text) if text and text[0] in "[{" else value
    return text[:limit] + f"... [{len(text) - limit} more characters]"


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):
        return "\n".join(c if isinstance(c, str) else f"[{type(c).__name__}]" for c in content)
    return str(content)


def compact(
    messages: Sequence[ModelMessage], *, output_tools: set[str] | None = None
) -> list[dict[str, Any]]:
    """The transcript entries of ``messages`` (tool names as ids, e.g. ``cases.comment``)."""
    outputs = output_tools or set()
    out: list[dict[str, Any]] = []
    first = True
    for msg in messages:
        if isinstance(msg, ModelRequest):
            if first and msg.instructions:
                out.append({"kind": "instructions", "text": clip(msg.instructions)})
            first = False
            for part in msg.parts:
                if isinstance(part, SystemPromptPart):
                    out.append({"kind": "system", "text": clip(part.content)})
                elif isinstance(part, UserPromptPart):
                    out.append({"kind": "user", "text": clip(_text(part.content))})
                elif isinstance(part, ToolReturnPart):
                    entry: dict[str, Any] = {
                        "kind": "tool_result",
                        "tool": tool_name(part.tool_name),
                        "id": part.tool_call_id,
                    }
                    meta = part.metadata if isinstance(part.metadata, dict) else {}
                    if meta.get("error"):
                        entry["error"] = clip(str(meta["error"]))
                        entry["status"] = (
                            "refused" if meta.get("refused") else "denied" if meta.get("denied") else "failed"
                        )
                    else:
                        entry["result"] = clip(part.content)
                        entry["status"] = "done"
                    out.append(entry)
                elif isinstance(part, RetryPromptPart):
                    out.append(
                        {
                            "kind": "retry",
                            "status": "failed",
                            "tool": tool_name(part.tool_name) if part.tool_name else None,
                            "id": part.tool_call_id,
                            "text": clip(part.model_response()),
                        }
                    )
        elif isinstance(msg, ModelResponse):
            for rpart in msg.parts:
                if isinstance(rpart, TextPart) and rpart.content.strip():
                    out.append({"kind": "assistant", "text": clip(rpart.content)})
                elif isinstance(rpart, ToolCallPart):
                    is_output = rpart.tool_name in outputs or rpart.tool_name.startswith(OUTPUT_PREFIX)
                    kind = "output" if is_output else "tool_call"
                    out.append(
                        {
                            "kind": kind,
                            "tool": rpart.tool_name if kind == "output" else tool_name(rpart.tool_name),
                            "args": clip(rpart.args_as_dict()),
                            "id": rpart.tool_call_id,
                        }
                    )
    return out


def plan_entries(response: ModelResponse, *, output_tools: set[str]) -> list[dict[str, Any]]:
    """The tool calls ``response`` asks for, as plan entries ``{"tool", "args", "why", "id"}``. ``why``
    is the reasoner's reason, else the text the model wrote before its calls."""
    whys: dict[str, str] = {}
    details = response.provider_details or {}
    if isinstance(details.get("why"), dict):
        whys = {str(k): str(v) for k, v in details["why"].items()}
    said = " ".join(p.content.strip() for p in response.parts if isinstance(p, TextPart)).strip()
    entries: list[dict[str, Any]] = []
    for part in response.parts:
        if isinstance(part, ToolCallPart) and part.tool_name not in output_tools:
            entries.append(
                {
                    "tool": tool_name(part.tool_name),
                    "args": clip(part.args_as_dict(), 2000),
                    "why": whys.get(part.tool_call_id) or clip(said, 500),
                    "id": part.tool_call_id,
                }
            )
    return entries


def with_outcomes(plan: list[dict[str, Any]], entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``plan`` with each entry's ``status`` (done, failed, refused, denied) from the transcript's results;
    entries without a result yet (a call waiting for its approval) keep none."""
    outcome = {e["id"]: e["status"] for e in entries if e.get("id") and e.get("status")}
    return [{**p, "status": outcome[p["id"]]} if p.get("id") in outcome else p for p in plan]
