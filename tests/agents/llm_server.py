"""A scripted LLM for tests: a real HTTP server on a free port that answers OpenAI-compatible
``POST /v1/chat/completions`` (and Anthropic's ``POST /v1/messages``, for the ``anthropic`` provider with
``base_url`` = ``llm.url`` minus ``/v1``) from a script, and records every request it got.

Usage::

    from tests.agents.llm_server import ScriptedLLM, call, say

    with ScriptedLLM([call("lookup_host", {"host": "web-01"}), say('{"verdict": "benign"}')]) as llm:
        llm.url        # "http://127.0.0.1:<port>/v1": the base_url of the tenant's `llm` connection
        ...            # run the agent
        llm.requests   # the JSON bodies received, in order (messages, tools, ...)
        llm.tool_names(0)  # the tool names offered in request 0
        llm.prompt_text(0) # every message content of request 0, joined

A script is a list of replies, one per request: :func:`say` (assistant text), :func:`call` (one tool
call) or :func:`calls` (several in one turn). A reply may also be a function ``(request body, index) ->
reply``. When the script runs out, the server repeats the last reply if ``repeat_last`` is set (a
runaway model), else answers HTTP 500. Each answer reports ``usage`` (``prompt_tokens`` and
``completion_tokens`` from the reply, defaults 100 and 20). ``api_key`` set: requests without
``Authorization: Bearer <api_key>`` (Anthropic: or ``x-api-key``) get HTTP 401 like the real APIs.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["Reply", "ScriptedLLM", "call", "calls", "say"]

Reply = dict[str, Any] | Callable[[dict[str, Any], int], dict[str, Any]]


def say(text: str, *, prompt_tokens: int = 100, completion_tokens: int = 20) -> dict[str, Any]:
    """An assistant message with ``text`` (the final answer when the output is plain text or JSON)."""
    return {"content": text, "tool_calls": [], "usage": (prompt_tokens, completion_tokens)}


def call(
    name: str, args: dict[str, Any] | None = None, *, prompt_tokens: int = 100, completion_tokens: int = 20
) -> dict[str, Any]:
    """One tool call ``name(args)``; use ``final_result`` with the output fields to finish a run."""
    return calls((name, args or {}), prompt_tokens=prompt_tokens, completion_tokens=completion_tokens)


def calls(
    *items: tuple[str, dict[str, Any]],
    text: str | None = None,
    prompt_tokens: int = 100,
    completion_tokens: int = 20,
) -> dict[str, Any]:
    """Several tool calls in one assistant turn (with optional text before them)."""
    return {"content": text, "tool_calls": list(items), "usage": (prompt_tokens, completion_tokens)}


class ScriptedLLM:
    def __init__(
        self,
        script: list[Reply],
        *,
        repeat_last: bool = False,
        api_key: str | None = None,
        model: str = "scripted-1",
    ) -> None:
        self.script = list(script)
        self.repeat_last = repeat_last
        self.api_key = api_key
        self.model = model
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []  # per request, names in lower case
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._calls = 0

    # ---- lifecycle

    @property
    def url(self) -> str:
        assert self._server is not None, "start the server first"
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def start(self) -> ScriptedLLM:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status, answer = owner._answer(self.path, dict(self.headers), body)
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> ScriptedLLM:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- what the tests look at

    def tool_names(self, index: int) -> list[str]:
        """The function names offered in request ``index``."""
        return [
            t["function"]["name"] if "function" in t else t["name"]
            for t in self.requests[index].get("tools", [])
        ]

    def prompt_text(self, index: int) -> str:
        """All message contents of request ``index`` (and an Anthropic ``system``), joined with newlines."""
        out: list[str] = []
        system = self.requests[index].get("system")
        if isinstance(system, str):
            out.append(system)
        elif isinstance(system, list):
            out.extend(str(c.get("text", "")) for c in system if isinstance(c, dict))
        for m in self.requests[index].get("messages", []):
            content = m.get("content")
            if isinstance(content, str):
                out.append(content)
            elif isinstance(content, list):
                out.extend(str(c.get("text", "")) for c in content if isinstance(c, dict))
        return "\n".join(out)

    # ---- the protocol

    def _answer(self, path: str, headers: dict[str, str], raw: bytes) -> tuple[int, dict[str, Any]]:
        route = path.split("?")[0].rstrip("/")
        anthropic = route.endswith("/v1/messages")
        if not anthropic and not route.endswith("/chat/completions"):
            return 404, {"error": {"message": f"no route {path}", "type": "invalid_request_error"}}
        if self.api_key is not None:
            lower = {k.lower(): v for k, v in headers.items()}
            offered = {lower.get("authorization", "")}
            if anthropic:  # Anthropic's SDK sends x-api-key, or a bearer token
                offered.add(f"Bearer {lower.get('x-api-key', '')}")
            if f"Bearer {self.api_key}" not in offered:
                return 401, {
                    "error": {
                        "message": "Incorrect API key provided",
                        "type": "invalid_request_error",
                        "code": "invalid_api_key",
                    }
                }
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            return 400, {"error": {"message": "body is not JSON", "type": "invalid_request_error"}}
        with self._lock:
            index = self._calls
            self._calls += 1
            self.requests.append(body)
            self.headers.append({k.lower(): v for k, v in headers.items()})
            if index < len(self.script):
                reply = self.script[index]
            elif self.repeat_last and self.script:
                reply = self.script[-1]
            else:
                return 500, {
                    "error": {
                        "message": f"script exhausted after {len(self.script)} replies",
                        "type": "server_error",
                    }
                }
        if callable(reply):
            reply = reply(body, index)
        return 200, self._message(reply, index) if anthropic else self._completion(reply, index)

    def _message(self, reply: dict[str, Any], index: int) -> dict[str, Any]:
        """The reply in Anthropic's Messages API shape."""
        content: list[dict[str, Any]] = []
        if reply.get("content"):
            content.append({"type": "text", "text": reply["content"]})
        for k, (name, args) in enumerate(reply.get("tool_calls", [])):
            content.append({"type": "tool_use", "id": f"toolu_{index}_{k}", "name": name, "input": args})
        prompt, completion = reply.get("usage", (100, 20))
        return {
            "id": f"msg_{index}",
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": content,
            "stop_reason": "tool_use" if reply.get("tool_calls") else "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": prompt, "output_tokens": completion},
        }

    def _completion(self, reply: dict[str, Any], index: int) -> dict[str, Any]:
        tool_calls = [
            {
                "id": f"call_{index}_{k}",
                "type": "function",
                "function": {"name": name, "arguments": json.dumps(args)},
            }
            for k, (name, args) in enumerate(reply.get("tool_calls", []))
        ]
        message: dict[str, Any] = {"role": "assistant", "content": reply.get("content")}
        if tool_calls:
            message["tool_calls"] = tool_calls
        prompt, completion = reply.get("usage", (100, 20))
        return {
            "id": f"chatcmpl-{index}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.model,
            "choices": [
                {"index": 0, "message": message, "finish_reason": "tool_calls" if tool_calls else "stop"}
            ],
            "usage": {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
            },
        }
