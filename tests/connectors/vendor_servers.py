"""Local doubles of Okta's Users API and Microsoft Graph (with the identity platform's token endpoint),
speaking the vendors' documented requests and answers over a real socket.

Each double checks the auth header exactly (``Authorization: SSWS <token>`` for Okta, ``Bearer`` with a
token it issued for Graph) and rejects anything else with the vendor's error body; it keeps the users'
state so a test can see what an action changed, can answer the next N requests to a path with a 429, and
logs every request (method, path, query, headers, body).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import orjson

__all__ = ["EntraDouble", "OktaDouble", "Seen", "serve"]


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes


@dataclass
class _Double:
    seen: list[Seen] = field(default_factory=list)
    throttle: dict[str, int] = field(default_factory=dict)  # path -> how many 429s to answer first
    lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""

    def take_throttle(self, path: str) -> bool:
        with self.lock:
            left = self.throttle.get(path, 0)
            if left:
                self.throttle[path] = left - 1
            return bool(left)


# --------------------------------------------------------------------------------------------- Okta


def _okta_error(code: str, summary: str, causes: list[str] | None = None) -> dict[str, Any]:
    return {
        "errorCode": code,
        "errorSummary": summary,
        "errorLink": code,
        "errorId": "oae" + uuid.uuid4().hex[:19],
        "errorCauses": [{"errorSummary": c} for c in causes or []],
    }


@dataclass
class OktaDouble(_Double):
    token: str = "00Okta-test-API-token"
    reset_in_s: int = 1  # what a 429's X-Rate-Limit-Reset announces
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    sessions: dict[str, int] = field(default_factory=dict)
    factors: dict[str, list[str]] = field(default_factory=dict)

    def add_user(self, login: str, status: str = "ACTIVE") -> dict[str, Any]:
        uid = "00u" + uuid.uuid4().hex[:17]
        first, _, last = login.split("@")[0].partition(".")
        self.users[uid] = {
            "id": uid,
            "status": status,
            "created": "2025-01-12T09:00:00.000Z",
            "activated": "2025-01-12T09:00:00.000Z",
            "statusChanged": "2025-01-12T09:00:00.000Z",
            "lastLogin": "2026-11-29T08:12:44.000Z",
            "lastUpdated": "2025-01-12T09:00:00.000Z",
            "passwordChanged": "2025-01-12T09:00:00.000Z",
            "type": {"id": "oty1a2b3c4d5e6f7g8h9"},
            "profile": {
                "firstName": first.title(),
                "lastName": last.title(),
                "mobilePhone": None,
                "secondEmail": None,
                "login": login,
                "email": login,
            },
            "credentials": {"provider": {"type": "OKTA", "name": "OKTA"}},
            "_links": {"self": {"href": f"{self.url}/api/v1/users/{uid}"}},
        }
        self.sessions[uid] = 2
        self.factors[uid] = ["push", "totp"]
        return self.users[uid]

    def find(self, key: str) -> dict[str, Any] | None:
        if key in self.users:
            return self.users[key]
        return next((u for u in self.users.values() if u["profile"]["login"] == key), None)

    def handle(self, req: _Handler, method: str) -> None:
        path = urlsplit(req.path).path
        if req.headers.get("Authorization") != f"SSWS {self.token}":
            return req.answer(401, _okta_error("E0000011", "Invalid token provided"))
        if self.take_throttle(path):
            reset = int(time.time()) + self.reset_in_s
            return req.answer(
                429,
                _okta_error("E0000047", "API call exceeded rate limit due to too many requests."),
                {
                    "X-Rate-Limit-Limit": "600",
                    "X-Rate-Limit-Remaining": "0",
                    "X-Rate-Limit-Reset": str(reset),
                },
            )
        parts = [unquote(p) for p in path.split("/") if p]
        if parts[:3] != ["api", "v1", "users"] or len(parts) < 4:
            return req.answer(
                404, _okta_error("E0000022", "The endpoint does not support the provided HTTP method")
            )
        user = self.find(parts[3])
        if user is None:
            return req.answer(
                404, _okta_error("E0000007", f"Not found: Resource not found: {parts[3]} (User)")
            )
        rest = parts[4:]
        uid = user["id"]
        if method == "GET" and not rest:
            return req.answer(200, user)
        if method == "DELETE" and rest == ["sessions"]:
            self.sessions[uid] = 0
            return req.answer(204, None)
        if method == "POST" and rest[:1] == ["lifecycle"] and len(rest) == 2:
            op = rest[1]
            if op == "suspend":
                if user["status"] != "ACTIVE":
                    return req.answer(
                        400,
                        _okta_error(
                            "E0000001",
                            "Api validation failed: suspend",
                            ["Cannot suspend a user that is not active"],
                        ),
                    )
                user["status"] = "SUSPENDED"
                return req.answer(200, {})
            if op == "unsuspend":
                if user["status"] != "SUSPENDED":
                    return req.answer(
                        400,
                        _okta_error(
                            "E0000001",
                            "Api validation failed: unsuspend",
                            ["Cannot unsuspend a user that is not suspended"],
                        ),
                    )
                user["status"] = "ACTIVE"
                return req.answer(200, {})
            if op == "reset_factors":
                self.factors[uid] = []
                return req.answer(200, {})
        return req.answer(
            405, _okta_error("E0000022", "The endpoint does not support the provided HTTP method")
        )


# -------------------------------------------------------------------------------- Entra ID / Graph


def _graph_error(code: str, message: str) -> dict[str, Any]:
    return {
        "error": {
            "code": code,
            "message": message,
            "innerError": {
                "date": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()),
                "request-id": str(uuid.uuid4()),
                "client-request-id": str(uuid.uuid4()),
            },
        }
    }


def _aad_error(status_code: str, code: int, text: str) -> dict[str, Any]:
    trace = str(uuid.uuid4())
    return {
        "error": status_code,
        "error_description": f"AADSTS{code}: {text}\r\nTrace ID: {trace}\r\nCorrelation ID: {uuid.uuid4()}",
        "error_codes": [code],
        "timestamp": time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime()),
        "trace_id": trace,
        "correlation_id": str(uuid.uuid4()),
        "error_uri": f"https://login.microsoftonline.com/error?code={code}",
    }


_DEFAULT_FIELDS = (
    "businessPhones",
    "displayName",
    "givenName",
    "jobTitle",
    "mail",
    "mobilePhone",
    "officeLocation",
    "preferredLanguage",
    "surname",
    "userPrincipalName",
    "id",
)


@dataclass
class EntraDouble(_Double):
    tenant: str = "6f1c0e2a-3b4d-4e5f-8a9b-0c1d2e3f4a5b"
    client_id: str = "2b7e1c4d-1111-4a2b-9c3d-5e6f7a8b9c0d"
    client_secret: str = "Xy8Q~test-client-secret"
    scope: str = "https://graph.microsoft.com/.default"
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    valid_tokens: set[str] = field(default_factory=set)
    tokens_issued: int = 0
    risky: dict[str, str] = field(default_factory=dict)
    reject_all: bool = False  # refuse even the tokens it issued (an app whose consent was removed)

    def add_user(self, upn: str, enabled: bool = True) -> dict[str, Any]:
        uid = str(uuid.uuid4())
        given, _, surname = upn.split("@")[0].partition(".")
        self.users[uid] = {
            "id": uid,
            "businessPhones": [],
            "displayName": f"{given.title()} {surname.title()}".strip(),
            "givenName": given.title(),
            "jobTitle": None,
            "mail": upn,
            "mobilePhone": None,
            "officeLocation": None,
            "preferredLanguage": "en-US",
            "surname": surname.title(),
            "userPrincipalName": upn,
            "accountEnabled": enabled,
            "signInSessionsValidFromDateTime": "2025-01-12T09:00:00Z",
        }
        return self.users[uid]

    def find(self, key: str) -> dict[str, Any] | None:
        if key in self.users:
            return self.users[key]
        return next((u for u in self.users.values() if u["userPrincipalName"].lower() == key.lower()), None)

    def revoke_all_tokens(self) -> None:
        self.valid_tokens.clear()

    def handle(self, req: _Handler, method: str) -> None:
        path = urlsplit(req.path).path
        if path.endswith("/oauth2/v2.0/token"):
            return self._token(req, method, path)
        auth = req.headers.get("Authorization", "")
        if not auth:
            return req.answer(401, _graph_error("InvalidAuthenticationToken", "Access token is empty."))
        if (
            self.reject_all
            or not auth.startswith("Bearer ")
            or auth[len("Bearer ") :] not in self.valid_tokens
        ):
            return req.answer(
                401,
                _graph_error(
                    "InvalidAuthenticationToken", "Access token validation failure. Invalid audience."
                ),
            )
        if self.take_throttle(path):
            return req.answer(
                429,
                _graph_error("TooManyRequests", "Too many requests are being made. Retry after some time."),
                {"Retry-After": "1"},
            )
        parts = [unquote(p) for p in path.split("/") if p]
        if parts == ["v1.0", "identityProtection", "riskyUsers", "confirmCompromised"] and method == "POST":
            ids = req.json_body().get("userIds")
            if not isinstance(ids, list) or not ids:
                return req.answer(400, _graph_error("BadRequest", "userIds is required."))
            for uid in ids:
                try:
                    uuid.UUID(str(uid))
                except ValueError:
                    return req.answer(400, _graph_error("BadRequest", f"Invalid user id '{uid}'."))
            for uid in ids:
                self.risky[str(uid)] = "high"
            return req.answer(204, None)
        if parts[:2] != ["v1.0", "users"] or len(parts) < 3:
            return req.answer(
                400, _graph_error("BadRequest", f"Resource not found for the segment '{path}'.")
            )
        user = self.find(parts[2])
        if user is None:
            return req.answer(
                404,
                _graph_error(
                    "Request_ResourceNotFound",
                    f"Resource '{parts[2]}' does not exist or one of its queried reference-property objects "
                    "are not present.",
                ),
            )
        rest = parts[3:]
        if method == "GET" and not rest:
            query = parse_qs(urlsplit(req.path).query)
            fields = query["$select"][0].split(",") if "$select" in query else list(_DEFAULT_FIELDS)
            out: dict[str, Any] = {"@odata.context": f"{self.url}/v1.0/$metadata#users/$entity"}
            out.update({f: user.get(f) for f in fields if f in user})
            return req.answer(200, out)
        if method == "PATCH" and not rest:
            body = req.json_body()
            unknown = [k for k in body if k not in user]
            if unknown:
                return req.answer(
                    400,
                    _graph_error(
                        "Request_BadRequest",
                        f"Property '{unknown[0]}' does not exist on type 'microsoft.graph.user'.",
                    ),
                )
            user.update(body)
            return req.answer(204, None)
        if method == "POST" and rest == ["revokeSignInSessions"]:
            user["signInSessionsValidFromDateTime"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            return req.answer(
                200, {"@odata.context": f"{self.url}/v1.0/$metadata#Edm.Boolean", "value": True}
            )
        return req.answer(
            405,
            _graph_error(
                "Request_BadRequest", "Specified HTTP method is not allowed for the request target."
            ),
        )

    def _token(self, req: _Handler, method: str, path: str) -> None:
        if method != "POST":
            return req.answer(
                405, _aad_error("invalid_request", 900561, "The endpoint only accepts POST requests.")
            )
        tenant = path.strip("/").split("/")[0]
        form = {k: v[0] for k, v in parse_qs(req.body.decode()).items()}
        if tenant != self.tenant:
            return req.answer(400, _aad_error("invalid_request", 90002, f"Tenant '{tenant}' not found."))
        if form.get("grant_type") != "client_credentials":
            return req.answer(
                400,
                _aad_error("unsupported_grant_type", 70003, "The app requested an unsupported grant type."),
            )
        if form.get("client_id") != self.client_id:
            return req.answer(
                400,
                _aad_error(
                    "unauthorized_client",
                    700016,
                    f"Application with identifier '{form.get('client_id')}' was not found.",
                ),
            )
        if form.get("client_secret") != self.client_secret:
            return req.answer(
                401,
                _aad_error(
                    "invalid_client",
                    7000215,
                    "Invalid client secret provided. Ensure the secret being sent in the request is the "
                    "client secret value, not the client secret ID.",
                ),
            )
        if form.get("scope") != self.scope:
            return req.answer(
                400,
                _aad_error(
                    "invalid_scope",
                    1002012,
                    f"The provided value for scope {form.get('scope')} is not valid.",
                ),
            )
        with self.lock:
            self.tokens_issued += 1
            token = f"eyJ0eXAiOiJKV1Qi.test.{uuid.uuid4().hex}"
            self.valid_tokens.add(token)
        return req.answer(
            200, {"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": token}
        )


# ---------------------------------------------------------------------------------------- server


class _Handler(BaseHTTPRequestHandler):
    double: Any = None
    body: bytes = b""

    def _run(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.body = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        self.double.seen.append(
            Seen(method, parts.path, parse_qs(parts.query), dict(self.headers.items()), self.body)
        )
        self.double.handle(self, method)

    def do_GET(self) -> None:
        self._run("GET")

    def do_POST(self) -> None:
        self._run("POST")

    def do_PATCH(self) -> None:
        self._run("PATCH")

    def do_DELETE(self) -> None:
        self._run("DELETE")

    def json_body(self) -> dict[str, Any]:
        try:
            found = orjson.loads(self.body or b"{}")
        except orjson.JSONDecodeError:
            return {}
        return found if isinstance(found, dict) else {}

    def answer(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = b"" if body is None else orjson.dumps(body)
        self.send_response(status)
        if body is not None:
            self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@contextmanager
def serve(double: _Double) -> Iterator[_Double]:
    """Run ``double`` on a free loopback port (its ``url``) for the duration of the block."""
    handler = type("Handler", (_Handler,), {"double": double})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    double.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield double
    finally:
        server.shutdown()
        server.server_close()


