"""A local double of the Slack Web API methods Bastion calls (``chat.postMessage``, ``chat.update``,
``chat.postEphemeral``, ``users.info``), on 127.0.0.1: the chat server of ``bastion demo credential-leak``
and of the tests. It checks the bot token (``invalid_auth`` otherwise), answers as Slack documents
(HTTP 200 with ``ok: false`` and an error code), and records every call."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson

__all__ = ["LocalSlack"]


@dataclass
class LocalSlack:
    """``emails`` maps Slack user ids to e-mail addresses for ``users.info``; ``channel_id`` is the id
    answered for posted messages."""

    token: str
    channel_id: str = "C0SOC"
    emails: dict[str, str] = field(default_factory=dict)
    url: str = ""
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    _httpd: ThreadingHTTPServer | None = None

    def called(self, method: str) -> list[dict[str, Any]]:
        return [body for m, body in self.calls if m == method]

    def start(self) -> LocalSlack:
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}/api/"
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None


def _handler(state: LocalSlack) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_args: Any) -> None:
            pass

        def _args(self) -> dict[str, Any]:
            args: dict[str, Any] = {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if raw and self.headers.get("Content-Type", "").startswith("application/json"):
                args.update(orjson.loads(raw))
            elif raw:
                args.update({k: v[0] for k, v in parse_qs(raw.decode()).items()})
            return args

        def _answer(self, doc: dict[str, Any]) -> None:
            body = orjson.dumps(doc)
            self.send_response(200)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _handle(self) -> None:
            method = urlsplit(self.path).path.rsplit("/", 1)[-1]
            args = self._args()
            if self.headers.get("Authorization") != f"Bearer {state.token}":
                self._answer({"ok": False, "error": "invalid_auth"})
                return
            state.calls.append((method, args))
            if method == "chat.postMessage":
                if not args.get("channel"):
                    self._answer({"ok": False, "error": "channel_not_found"})
                    return
                ts = f"{int(time.time())}.{len(state.calls):06d}"
                self._answer({"ok": True, "channel": state.channel_id, "ts": ts, "message": {"ts": ts}})
            elif method == "chat.update":
                self._answer({"ok": True, "channel": args.get("channel"), "ts": args.get("ts")})
            elif method == "chat.postEphemeral":
                if not args.get("channel") or not args.get("user"):
                    self._answer({"ok": False, "error": "invalid_arguments"})
                    return
                self._answer({"ok": True, "message_ts": f"{int(time.time())}.000001"})
            elif method == "users.info":
                email = state.emails.get(str(args.get("user")))
                if email is None:
                    self._answer({"ok": False, "error": "user_not_found"})
                else:
                    self._answer({"ok": True, "user": {"id": args["user"], "profile": {"email": email}}})
            else:
                self._answer({"ok": False, "error": "unknown_method"})

        do_GET = _handle
        do_POST = _handle

    return Handler
