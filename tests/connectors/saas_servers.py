"""Local doubles of the chat, paging and ticketing SaaS APIs, each a real HTTP server on 127.0.0.1.

Each speaks its vendor's documented requests and answers: exact paths and methods, the auth it checks
(a wrong or missing credential gets the vendor's own 401/error body), success bodies and error bodies.
``throttle(n)`` makes the next ``n`` requests get the vendor's rate-limit answer (429, with Retry-After
where the vendor documents one). Every request is recorded in ``requests`` for the tests to inspect.
Where a vendor's exact wording is not documented, the double's text is marked "double's wording".
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson

Reply = tuple[int, dict[str, str], bytes]
NOT_ADF = "Operation value must be an Atlassian Document (see the Atlassian Document Format)"


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


def _json(status: int, doc: Any, headers: dict[str, str] | None = None) -> Reply:
    return status, {"Content-Type": "application/json;charset=UTF-8", **(headers or {})}, orjson.dumps(doc)


def _text(status: int, text: str, headers: dict[str, str] | None = None) -> Reply:
    return status, {"Content-Type": "text/plain; charset=utf-8", **(headers or {})}, text.encode()


@dataclass
class Double:
    """The base: records requests, answers throttled ones, and asks ``route`` for the rest."""

    url: str = ""
    requests: list[Seen] = field(default_factory=list)
    throttled: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def throttle(self, n: int = 1) -> None:
        self.throttled = n

    def rate_limited(self) -> Reply:
        raise NotImplementedError

    def route(self, seen: Seen) -> Reply:
        raise NotImplementedError

    def handle(self, seen: Seen) -> Reply:
        with self.lock:
            self.requests.append(seen)
            if self.throttled > 0:
                self.throttled -= 1
                return self.rate_limited()
            return self.route(seen)


def _handler(double: Double) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_args: Any) -> None:
            pass

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            parts = urlsplit(self.path)
            seen = Seen(
                self.command,
                parts.path,
                parse_qs(parts.query),
                {k.lower(): v for k, v in self.headers.items()},
                self.rfile.read(length) if length else b"",
            )
            status, headers, body = double.handle(seen)
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

    return Handler


@contextmanager
def serve(double: Double) -> Iterator[Double]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(double))
    double.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield double
    finally:
        httpd.shutdown()
        httpd.server_close()


def _basic(seen: Seen) -> tuple[str, str] | None:
    value = seen.headers.get("authorization", "")
    if not value.startswith("Basic "):
        return None
    try:
        user, _, password = base64.b64decode(value[6:]).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return None
    return user, password


# ------------------------------------------------------------------------------------------- Slack


@dataclass
class SlackDouble(Double):
    """Slack Web API ``chat.postMessage``: errors are HTTP 200 ``{"ok": false, "error": ...}``."""

    token: str = "xoxb-1111-2222-abcdef"
    channels: dict[str, str] = field(default_factory=lambda: {"C024BE91L": "soc"})
    posted: list[dict[str, Any]] = field(default_factory=list)
    ts: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def rate_limited(self) -> Reply:
        return _json(429, {"ok": False, "error": "ratelimited"}, {"Retry-After": "1"})

    def route(self, seen: Seen) -> Reply:
        if seen.method != "POST" or seen.path != "/api/chat.postMessage":
            return _json(404, {"ok": False, "error": "unknown_method"})
        auth = seen.headers.get("authorization")
        if not auth:
            return _json(200, {"ok": False, "error": "not_authed"})
        if auth != f"Bearer {self.token}":
            return _json(200, {"ok": False, "error": "invalid_auth"})
        if seen.headers.get("content-type", "").startswith("application/json"):
            args = seen.json()
        else:
            args = {k: v[0] for k, v in parse_qs(seen.body.decode()).items()}
        wanted = str(args.get("channel", "")).lstrip("#")
        channel = wanted if wanted in self.channels else None
        channel = channel or next((cid for cid, name in self.channels.items() if name == wanted), None)
        if channel is None:
            return _json(200, {"ok": False, "error": "channel_not_found"})
        if not args.get("text") and not args.get("blocks"):
            return _json(200, {"ok": False, "error": "no_text"})
        ts = f"{1_700_000_000 + next(self.ts)}.000100"
        self.posted.append({**args, "channel": channel, "ts": ts})
        message = {"type": "message", "text": args.get("text"), "ts": ts, "bot_id": "B0BASTION"}
        return _json(200, {"ok": True, "channel": channel, "ts": ts, "message": message})


# ------------------------------------------------------------------------------------------- Teams


@dataclass
class TeamsDouble(Double):
    """A classic Teams incoming webhook: the URL is the secret; success is 200 with the text ``1``."""

    path: str = "/webhookb2/7f1c@72f9/IncomingWebhook/5b1d3a/0c2e9d"
    cards: list[dict[str, Any]] = field(default_factory=list)

    def rate_limited(self) -> Reply:
        return _text(429, "Microsoft Teams endpoint returned HTTP error 429")  # double's wording

    def route(self, seen: Seen) -> Reply:
        if seen.method != "POST" or seen.path != self.path:
            return _text(404, "Webhook not found")  # double's wording
        try:
            doc = seen.json()
            attachment = doc["attachments"][0]
            card = attachment["content"]
            ok = (
                doc["type"] == "message"
                and attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
                and card["type"] == "AdaptiveCard"
                and isinstance(card["version"], str)
                and isinstance(card["body"], list)
            )
        except (orjson.JSONDecodeError, KeyError, IndexError, TypeError):
            ok = False
        if not ok:
            return _text(400, "Bad payload received by generic incoming webhook.")
        self.cards.append(card)
        return _text(200, "1")


# --------------------------------------------------------------------------------------- PagerDuty


@dataclass
class PagerDutyDouble(Double):
    """Events API v2 ``POST /v2/enqueue``: the routing key is in the body; 202 on success."""

    routing_key: str = "R0ut1ngK3yR0ut1ngK3yR0ut1ngK3y00"
    events: list[dict[str, Any]] = field(default_factory=list)
    open_alerts: set[str] = field(default_factory=set)

    def rate_limited(self) -> Reply:
        return _json(
            429, {"status": "throttle event", "message": "Requests for this service are arriving too quickly"}
        )

    def _invalid(self, *errors: str) -> Reply:
        return _json(
            400, {"status": "invalid event", "message": "Event object is invalid", "errors": list(errors)}
        )

    def route(self, seen: Seen) -> Reply:
        if seen.method != "POST" or seen.path != "/v2/enqueue":
            return _json(404, {"status": "not found", "message": "Not Found"})
        try:
            event = seen.json()
        except orjson.JSONDecodeError:
            return _json(400, {"status": "invalid request", "message": "Invalid JSON"})
        key = str(event.get("routing_key", ""))
        if len(key) != 32:
            return self._invalid("Length of 'routing_key' is incorrect (should be 32 characters)")
        if key != self.routing_key:
            return self._invalid("Invalid routing key")  # double's wording
        action = event.get("event_action")
        if action not in ("trigger", "acknowledge", "resolve"):
            return self._invalid("'event_action' is invalid (must be one of: trigger, acknowledge, resolve)")
        dedup = event.get("dedup_key")
        if action == "trigger":
            payload = event.get("payload") or {}
            missing = [
                f"'payload.{f}' is missing or blank" for f in ("summary", "source") if not payload.get(f)
            ]
            if payload.get("severity") not in ("critical", "error", "warning", "info"):
                missing.append(
                    "'payload.severity' is invalid (must be one of: critical, error, warning, info)"
                )
            if missing:
                return self._invalid(*missing)
            dedup = dedup or hashlib.sha1(seen.body).hexdigest()  # noqa: S324  (an id, not security)
            self.open_alerts.add(dedup)
        elif not dedup:
            return self._invalid("'dedup_key' is missing or blank")
        else:
            self.open_alerts.discard(dedup)
        self.events.append(event)
        return _json(202, {"status": "success", "message": "Event processed", "dedup_key": dedup})


# ----------------------------------------------------------------------------------- signed webhook


@dataclass
class WebhookReceiver(Double):
    """A receiver that checks Bastion's documented signature with the standard library only."""

    key: str = "whsec-5c3f1e0a9b"
    retry_after: str = "1"
    accepted: list[Any] = field(default_factory=list)

    def rate_limited(self) -> Reply:
        return _json(429, {"error": "slow down"}, {"Retry-After": self.retry_after})

    def route(self, seen: Seen) -> Reply:
        timestamp = seen.headers.get("x-bastion-timestamp", "")
        signature = seen.headers.get("x-bastion-signature", "")
        expected = (
            "v1="
            + hmac.new(self.key.encode(), f"{timestamp}.".encode() + seen.body, hashlib.sha256).hexdigest()
        )
        fresh = timestamp.isdigit() and abs(time.time() - int(timestamp)) <= 300
        if not fresh or not hmac.compare_digest(expected, signature):
            return _json(401, {"error": "invalid signature"})
        self.accepted.append(seen.json())
        return _json(200, {"received": True})


# -------------------------------------------------------------------------------------------- Jira


@dataclass
class JiraDouble(Double):
    """Jira Cloud REST v3: basic auth e-mail:API token; issues, edits and comments in ADF."""

    email: str = "soc-bot@acme.example.org"
    api_token: str = "ATATT3xFfGF0-test-token"
    projects: tuple[str, ...] = ("SEC",)
    issues: dict[str, dict[str, Any]] = field(default_factory=dict)
    comments: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    ids: Iterator[int] = field(default_factory=lambda: itertools.count(10000))

    def rate_limited(self) -> Reply:
        return _json(429, {"errorMessages": ["Rate limit exceeded."], "errors": {}}, {"Retry-After": "1"})

    @staticmethod
    def _bad(errors: dict[str, str], messages: list[str] | None = None, status: int = 400) -> Reply:
        return _json(status, {"errorMessages": messages or [], "errors": errors})

    @staticmethod
    def _is_adf(doc: Any) -> bool:
        return (
            isinstance(doc, dict)
            and doc.get("type") == "doc"
            and doc.get("version") == 1
            and isinstance(doc.get("content"), list)
        )

    def route(self, seen: Seen) -> Reply:
        if _basic(seen) != (self.email, self.api_token):
            return _text(401, "Client must be authenticated to access this resource.")
        parts = seen.path.strip("/").split("/")
        if parts[:4] != ["rest", "api", "3", "issue"]:
            return self._bad({}, ["Not found"], 404)
        if seen.method == "POST" and len(parts) == 4:
            return self._create(seen.json().get("fields") or {})
        key = parts[4] if len(parts) > 4 else ""
        issue = self.issues.get(key)
        if issue is None:
            return self._bad({}, ["Issue does not exist or you do not have permission to see it."], 404)
        if seen.method == "PUT" and len(parts) == 5:
            fields = seen.json().get("fields") or {}
            if "description" in fields and not self._is_adf(fields["description"]):
                return self._bad({"description": NOT_ADF})
            issue["fields"].update(fields)
            return 204, {}, b""
        if seen.method == "POST" and parts[5:] == ["comment"]:
            body = seen.json().get("body")
            if not self._is_adf(body):
                return self._bad({"comment": "Comment body can not be empty!"})
            cid = str(next(self.ids))
            comment = {
                "id": cid,
                "self": f"{self.url}/rest/api/3/issue/{issue['id']}/comment/{cid}",
                "body": body,
            }
            self.comments.setdefault(key, []).append(comment)
            return _json(201, {**comment, "created": "2026-11-30T10:00:00.000+0000"})
        return self._bad({}, ["Method not allowed"], 405)

    def _create(self, fields: dict[str, Any]) -> Reply:
        errors: dict[str, str] = {}
        project = (fields.get("project") or {}).get("key")
        if project not in self.projects:
            errors["project"] = "valid project is required"
        if not fields.get("summary"):
            errors["summary"] = "You must specify a summary of the issue."
        if not (fields.get("issuetype") or {}).get("name"):
            errors["issuetype"] = "Specify an issue type"
        if "description" in fields and not self._is_adf(fields["description"]):
            errors["description"] = (
                "Operation value must be an Atlassian Document (see the Atlassian Document Format)"
            )
        if errors:
            return self._bad(errors)
        iid = str(next(self.ids))
        key = f"{project}-{len(self.issues) + 1}"
        self.issues[key] = {"id": iid, "key": key, "fields": fields}
        return _json(201, {"id": iid, "key": key, "self": f"{self.url}/rest/api/3/issue/{iid}"})


# --------------------------------------------------------------------------------------- ServiceNow


@dataclass
class ServiceNowDouble(Double):
    """ServiceNow Table API on ``incident``: basic auth; ``{"result": ...}`` and ``{"error": ...}``."""

    username: str = "bastion.integration"
    password: str = "Sn0w-pa55!"
    incidents: dict[str, dict[str, Any]] = field(default_factory=dict)
    numbers: Iterator[int] = field(default_factory=lambda: itertools.count(10001))

    def rate_limited(self) -> Reply:
        return _json(
            429,
            {
                "error": {
                    "message": "Rate limit exceeded",
                    "detail": "The maximum number of requests per hour for this user has been reached",
                },
                "status": "failure",
            },
            {"Retry-After": "1", "X-RateLimit-Limit": "100"},
        )

    @staticmethod
    def _error(status: int, message: str, detail: str) -> Reply:
        return _json(status, {"error": {"message": message, "detail": detail}, "status": "failure"})

    def route(self, seen: Seen) -> Reply:
        if _basic(seen) != (self.username, self.password):
            return self._error(401, "User Not Authenticated", "Required to provide Auth information")
        parts = seen.path.strip("/").split("/")
        if parts[:4] != ["api", "now", "table", "incident"]:
            return self._error(400, "Invalid table", "")
        try:
            record = seen.json() if seen.body else {}
        except orjson.JSONDecodeError:
            return self._error(400, "Exception while reading request", "The payload is not valid JSON.")
        if seen.method == "POST" and len(parts) == 4:
            n = next(self.numbers)
            sys_id = hashlib.md5(str(n).encode()).hexdigest()  # noqa: S324  (a 32-hex id, not security)
            row = {
                "state": "1",
                "urgency": "3",
                "impact": "3",
                **record,
                "sys_id": sys_id,
                "number": f"INC{n:07d}",
            }
            self.incidents[sys_id] = row
            return _json(201, {"result": row}, {"Location": f"{self.url}/api/now/table/incident/{sys_id}"})
        if seen.method == "PATCH" and len(parts) == 5:
            found = self.incidents.get(parts[4])
            if found is None:
                return self._error(
                    404, "No Record found", "Record doesn't exist or ACL restricts the record retrieval"
                )
            found.update(record)
            return _json(200, {"result": found})
        return self._error(405, "Method not Supported", f"{seen.method} is not supported on this resource")


# ------------------------------------------------------------------------------------------ TheHive


@dataclass
class TheHiveDouble(Double):
    """TheHive 5 API v1 alerts and cases, with ``Authorization: Bearer <API key>``."""

    api_key: str = "th5-ApiKey-0a1b2c3d4e5f"
    alerts: list[dict[str, Any]] = field(default_factory=list)
    cases: list[dict[str, Any]] = field(default_factory=list)
    ids: Iterator[int] = field(default_factory=lambda: itertools.count(4096, 4096))

    def rate_limited(self) -> Reply:
        return _json(429, {"type": "TooManyRequests", "message": "Too many requests"})  # double's wording

    @staticmethod
    def _error(status: int, kind: str, message: str) -> Reply:
        return _json(status, {"type": kind, "message": message})

    def route(self, seen: Seen) -> Reply:
        if seen.headers.get("authorization") != f"Bearer {self.api_key}":
            return self._error(401, "AuthenticationError", "Authentication failure")
        if seen.method == "POST" and seen.path == "/api/v1/query":
            return self._query(seen.json().get("query") or [])
        if seen.method != "POST" or seen.path not in ("/api/v1/alert", "/api/v1/case"):
            return self._error(404, "NotFound", f"{seen.method} {seen.path} not found")
        doc = seen.json()
        kind = "alert" if seen.path.endswith("alert") else "case"
        required = (
            ("type", "source", "sourceRef", "title", "description")
            if kind == "alert"
            else ("title", "description")
        )
        missing = [f for f in required if not doc.get(f)]
        if missing:
            return self._error(400, "AttributeCheckingError", f"Attribute {missing[0]} is missing")
        if doc.get("severity", 2) not in (1, 2, 3, 4):
            return self._error(400, "AttributeCheckingError", "Attribute severity must be between 1 and 4")
        if kind == "alert":
            ref = (doc["type"], doc["source"], doc["sourceRef"])
            if any((a["type"], a["source"], a["sourceRef"]) == ref for a in self.alerts):
                return self._error(
                    400,
                    "CreateError",
                    f"Alert {doc['type']}:{doc['source']}:{doc['sourceRef']} already exists",
                )
            out = {**doc, "_id": f"~{next(self.ids)}", "_type": "Alert", "status": "New"}
            self.alerts.append(out)
        else:
            out = {
                **doc,
                "_id": f"~{next(self.ids)}",
                "_type": "Case",
                "number": len(self.cases) + 1,
                "status": "New",
            }
            self.cases.append(out)
        return _json(201, out)

    def _query(self, steps: list[dict[str, Any]]) -> Reply:
        """The part of the query API used here: listAlert, filter (``_and`` of field equalities), page."""
        if not steps or steps[0].get("_name") != "listAlert":
            return self._error(400, "BadRequest", "the double only answers listAlert queries")
        rows = list(self.alerts)
        for step in steps[1:]:
            if step.get("_name") == "filter":
                for cond in step.get("_and", [step]):
                    rows = [r for r in rows if r.get(cond.get("_field")) == cond.get("_value")]
            elif step.get("_name") == "page":
                rows = rows[int(step.get("from", 0)) : int(step.get("to", len(rows)))]
        return _json(200, rows)
