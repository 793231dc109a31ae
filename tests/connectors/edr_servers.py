"""Local doubles of the EDR vendors' APIs: CrowdStrike Falcon, Microsoft Defender for Endpoint (with its
Entra token endpoint) and SentinelOne, each a real HTTP server on a free port.

They speak the documented requests and answers: paths, methods, auth (a wrong or missing credential gets
the vendor's own error body), status codes, error bodies, pagination (Falcon ``meta.pagination``
offset/limit/total, Defender ``@odata.nextLink``, SentinelOne ``pagination.nextCursor``) and throttling
(``throttle = n`` answers the next n API calls with 429 and ``Retry-After``). Asynchronous vendor state
is modelled the way the vendors show it: a containment is ``containment_pending`` when first read back,
then ``contained``.
"""

from __future__ import annotations

import re
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import orjson

__all__ = [
    "CrowdStrikeDouble",
    "DefenderDouble",
    "Double",
    "SentinelOneDouble",
    "serve",
]


class Double:
    """A vendor: ``handle`` answers (status, body, headers) for one request; every request is kept."""

    retry_after = "1"

    def __init__(self) -> None:
        self.base = ""
        self.seen: list[dict[str, Any]] = []
        self.throttle = 0
        self.lock = threading.Lock()

    def handle(
        self, method: str, path: str, query: dict[str, list[str]], headers: dict[str, str], body: bytes
    ) -> tuple[int, Any, dict[str, str]]:
        raise NotImplementedError

    def throttled(self, body: Any) -> tuple[int, Any, dict[str, str]] | None:
        if self.throttle > 0:
            self.throttle -= 1
            return 429, body, {"Retry-After": self.retry_after}
        return None

    def paths(self, method: str | None = None) -> list[str]:
        return [r["path"] for r in self.seen if method is None or r["method"] == method]


class _Handler(BaseHTTPRequestHandler):
    double: Double

    def _serve(self) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        query = parse_qs(parts.query, keep_blank_values=True)
        headers = {k.lower(): v for k, v in self.headers.items()}
        with self.double.lock:
            self.double.seen.append(
                {"method": self.command, "path": parts.path, "query": query, "headers": headers, "body": body}
            )
            status, answer, extra = self.double.handle(self.command, parts.path, query, headers, body)
            self.double.seen[-1].update(status=status, answer=answer)
        data = b"" if answer is None else orjson.dumps(answer)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in extra.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    do_GET = _serve
    do_POST = _serve

    def log_message(self, *args: Any) -> None:
        pass


@contextmanager
def serve(double: Double) -> Iterator[Double]:
    handler = type("Handler", (_Handler,), {"double": double})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    double.base = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield double
    finally:
        server.shutdown()
        server.server_close()


def _json(body: bytes) -> Any:
    try:
        return orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        return None


# ------------------------------------------------------------------------------------------ CrowdStrike


class CrowdStrikeDouble(Double):
    client_id = "cs-client-id"
    client_secret = "cs-client-secret"

    def __init__(self) -> None:
        super().__init__()
        self.tokens: set[str] = set()
        self.devices: dict[str, dict[str, Any]] = {}

    def add(self, device_id: str, hostname: str, status: str = "normal") -> None:
        self.devices[device_id] = {
            "device_id": device_id,
            "cid": "c1d",
            "hostname": hostname,
            "platform_name": "Windows",
            "status": status,
        }

    @staticmethod
    def _meta() -> dict[str, Any]:
        return {"query_time": 0.01, "powered_by": "device-api", "trace_id": str(uuid.uuid4())}

    def _error(self, status: int, message: str) -> tuple[int, Any, dict[str, str]]:
        return (
            status,
            {"meta": self._meta(), "resources": None, "errors": [{"code": status, "message": message}]},
            {},
        )

    def handle(
        self, method: str, path: str, query: dict[str, list[str]], headers: dict[str, str], body: bytes
    ) -> tuple[int, Any, dict[str, str]]:
        if method == "POST" and path == "/oauth2/token":
            form = parse_qs(body.decode())
            if form.get("client_id") != [self.client_id] or form.get("client_secret") != [self.client_secret]:
                return self._error(403, "Failed to issue access token - Not Authorized")
            token = uuid.uuid4().hex
            self.tokens.add(token)
            return 201, {"access_token": token, "token_type": "bearer", "expires_in": 1799}, {}
        auth = headers.get("authorization", "")
        if not auth.startswith("Bearer ") or auth[7:] not in self.tokens:
            return self._error(401, "access denied, invalid bearer token")
        limited = self.throttled(
            {"meta": self._meta(), "errors": [{"code": 429, "message": "API rate limit exceeded."}]}
        )
        if limited:
            return (
                limited[0],
                limited[1],
                {**limited[2], "X-RateLimit-Limit": "6000", "X-RateLimit-Remaining": "0"},
            )
        if method == "GET" and path == "/devices/entities/devices/v2":
            ids = [i for v in query.get("ids", []) for i in v.split(",")]
            found = [self._read(i) for i in ids if i in self.devices]
            if not found:
                return self._error(404, "Device not found.")
            return 200, {"meta": self._meta(), "resources": found, "errors": []}, {}
        if method == "GET" and path == "/devices/queries/devices/v1":
            m = re.fullmatch(r"hostname:'([^']+)'", query.get("filter", [""])[0])
            if not m:
                return self._error(400, "Invalid filter expression")
            offset = int(query.get("offset", ["0"])[0])
            limit = int(query.get("limit", ["100"])[0])
            if not 1 <= limit <= 5000:
                return self._error(400, "limit must be between 1 and 5000")
            ids = sorted(d for d, v in self.devices.items() if v["hostname"] == m.group(1))
            meta = {**self._meta(), "pagination": {"offset": offset, "limit": limit, "total": len(ids)}}
            return 200, {"meta": meta, "resources": ids[offset : offset + limit], "errors": []}, {}
        if method == "POST" and path == "/devices/entities/devices-actions/v2":
            name = query.get("action_name", [""])[0]
            target = {"contain": "containment_pending", "lift_containment": "lift_containment_pending"}.get(
                name
            )
            if target is None:
                return self._error(400, f"Invalid action_name: {name}")
            doc = _json(body)
            wanted = doc.get("ids") if isinstance(doc, dict) else None
            if not wanted:
                return self._error(400, "ids is required")
            done = []
            for device_id in wanted:
                if device_id in self.devices:
                    self.devices[device_id]["status"] = target
                    done.append({"id": device_id, "path": ""})
            if not done:
                return self._error(404, "Device not found.")
            return 202, {"meta": self._meta(), "resources": done, "errors": []}, {}
        return self._error(404, f"no route {method} {path}")

    def _read(self, device_id: str) -> dict[str, Any]:
        device = dict(self.devices[device_id])
        # Falcon shows the pending state once, then the sensor confirms.
        settle = {"containment_pending": "contained", "lift_containment_pending": "normal"}
        if device["status"] in settle:
            self.devices[device_id]["status"] = settle[device["status"]]
        return device


# ------------------------------------------------------------------------------------------ Defender

DEFENDER_SCOPE = "https://api.securitycenter.microsoft.com/.default"


class DefenderDouble(Double):
    azure_tenant = "6f1c0f1e-0000-4000-8000-00000000a2d1"
    client_id = "def-app-id"
    client_secret = "def-app-secret"
    page_size = 2

    def __init__(self) -> None:
        super().__init__()
        self.tokens: set[str] = set()
        self.machines: dict[str, dict[str, Any]] = {}
        self.actions: list[dict[str, Any]] = []
        self._clock = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)

    def add(self, machine_id: str, name: str) -> None:
        self.machines[machine_id] = {
            "id": machine_id,
            "computerDnsName": name,
            "osPlatform": "Windows11",
            "healthStatus": "Active",
            "riskScore": "Medium",
            "exposureLevel": "Medium",
        }

    def _error(self, status: int, code: str, message: str) -> tuple[int, Any, dict[str, str]]:
        return status, {"error": {"code": code, "message": message, "target": str(uuid.uuid4())}}, {}

    def _now(self) -> str:
        self._clock += timedelta(seconds=1)
        return self._clock.strftime("%Y-%m-%dT%H:%M:%S.%f0Z")

    def handle(
        self, method: str, path: str, query: dict[str, list[str]], headers: dict[str, str], body: bytes
    ) -> tuple[int, Any, dict[str, str]]:
        if method == "POST" and path.endswith("/oauth2/v2.0/token"):
            return self._token(path, body)
        auth = headers.get("authorization", "")
        if not auth.startswith("Bearer ") or auth[7:] not in self.tokens:
            return self._error(401, "Unauthorized", "Authorization header is missing or the token is invalid")
        limited = self.throttled({"error": {"code": "TooManyRequests", "message": "Too many requests"}})
        if limited:
            return limited
        if method == "GET" and path == "/api/machineactions":
            return self._list_actions(query)
        if method == "GET" and path == "/api/machines":
            return self._list_machines(query)
        m = re.fullmatch(r"/api/machines/([^/]+)(?:/(\w+))?", path)
        if not m:
            return self._error(404, "ResourceNotFound", f"no route {method} {path}")
        machine = self.machines.get(m.group(1))
        if machine is None:
            return self._error(404, "ResourceNotFound", f"Machine {m.group(1)} was not found")
        verb = m.group(2)
        if method == "GET" and verb is None:
            return 200, {"@odata.context": f"{self.base}/api/$metadata#Machines/$entity", **machine}, {}
        if method == "POST" and verb in (
            "isolate",
            "unisolate",
            "runAntiVirusScan",
            "collectInvestigationPackage",
        ):
            return self._machine_action(machine, verb, _json(body))
        return self._error(405, "MethodNotAllowed", f"{method} {path}")

    def _token(self, path: str, body: bytes) -> tuple[int, Any, dict[str, str]]:
        form = parse_qs(body.decode())
        if path != f"/{self.azure_tenant}/oauth2/v2.0/token":
            return (
                400,
                {"error": "invalid_request", "error_description": "AADSTS90002: Tenant not found."},
                {},
            )
        if form.get("grant_type") != ["client_credentials"] or form.get("scope") != [DEFENDER_SCOPE]:
            return (
                400,
                {
                    "error": "invalid_scope",
                    "error_description": "AADSTS70011: The provided scope is invalid.",
                },
                {},
            )
        if form.get("client_id") != [self.client_id] or form.get("client_secret") != [self.client_secret]:
            return (
                401,
                {
                    "error": "invalid_client",
                    "error_description": "AADSTS7000215: Invalid client secret provided.",
                },
                {},
            )
        token = uuid.uuid4().hex
        self.tokens.add(token)
        return (
            200,
            {"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": token},
            {},
        )

    def _list_machines(self, query: dict[str, list[str]]) -> tuple[int, Any, dict[str, str]]:
        """GET /api/machines with the OData filter ``computerDnsName eq '<name>'`` (case-insensitive, as
        Defender compares names), paged by ``$skip`` like the service."""
        flt = query.get("$filter", [""])[0]
        m = re.fullmatch(r"computerDnsName eq '([^']+)'", flt)
        if flt and not m:
            return self._error(400, "InvalidRequestBody", f"Invalid filter: {flt}")
        found = [
            x for x in self.machines.values() if not m or x["computerDnsName"].lower() == m.group(1).lower()
        ]
        skip = int(query.get("$skip", ["0"])[0])
        answer: dict[str, Any] = {
            "@odata.context": f"{self.base}/api/$metadata#Machines",
            "value": found[skip : skip + self.page_size],
        }
        if skip + self.page_size < len(found):
            answer["@odata.nextLink"] = (
                f"{self.base}/api/machines?$filter={quote(flt)}&$skip={skip + self.page_size}"
            )
        return 200, answer, {}

    def _list_actions(self, query: dict[str, list[str]]) -> tuple[int, Any, dict[str, str]]:
        flt = query.get("$filter", [""])[0]
        m = re.fullmatch(r"machineId eq '([^']+)'", flt)
        if flt and not m:
            return self._error(400, "InvalidRequestBody", f"Invalid filter: {flt}")
        found = [a for a in self.actions if not m or a["machineId"] == m.group(1)]
        skip = int(query.get("$skip", ["0"])[0])
        answer: dict[str, Any] = {
            "@odata.context": f"{self.base}/api/$metadata#MachineActions",
            "value": found[skip : skip + self.page_size],
        }
        if skip + self.page_size < len(found):
            answer["@odata.nextLink"] = (
                f"{self.base}/api/machineactions?$filter={quote(flt)}&$skip={skip + self.page_size}"
            )
        return 200, answer, {}

    def _machine_action(
        self, machine: dict[str, Any], verb: str, doc: Any
    ) -> tuple[int, Any, dict[str, str]]:
        if not isinstance(doc, dict) or not doc.get("Comment"):
            return self._error(400, "InvalidRequestBody", "Request body is incorrect: Comment is required")
        kind = {
            "isolate": "Isolate",
            "unisolate": "Unisolate",
            "runAntiVirusScan": "RunAntiVirusScan",
            "collectInvestigationPackage": "CollectInvestigationPackage",
        }[verb]
        scope = None
        if verb == "isolate":
            scope = doc.get("IsolationType", "Full")
            if scope not in ("Full", "Selective"):
                return self._error(400, "InvalidRequestBody", f"Invalid IsolationType {scope}")
        if verb == "runAntiVirusScan":
            scope = doc.get("ScanType", "Quick")
            if scope not in ("Quick", "Full"):
                return self._error(400, "InvalidRequestBody", f"Invalid ScanType {scope}")
        for prior in self.actions:
            if prior["machineId"] == machine["id"] and prior["type"] == kind and prior["status"] == "Pending":
                return self._error(400, "ActiveRequestAlreadyExists", "Action is already in progress")
        for prior in self.actions:  # an earlier action of the machine has now run on the device
            if prior["machineId"] == machine["id"]:
                prior["status"] = "Succeeded"
        now = self._now()
        item = {
            "id": str(uuid.uuid4()),
            "type": kind,
            "scope": scope,
            "requestor": self.client_id,
            "requestorComment": doc["Comment"],
            "status": "Pending",
            "machineId": machine["id"],
            "computerDnsName": machine["computerDnsName"],
            "creationDateTimeUtc": now,
            "lastUpdateDateTimeUtc": now,
            "relatedFileInfo": None,
        }
        self.actions.append(item)
        return 201, {"@odata.context": f"{self.base}/api/$metadata#MachineActions/$entity", **item}, {}


# ------------------------------------------------------------------------------------------ SentinelOne


class SentinelOneDouble(Double):
    token = "s1-api-token-0123456789"
    page_size = 10

    def __init__(self) -> None:
        super().__init__()
        self.agents: dict[str, dict[str, Any]] = {}

    def add(self, agent_id: str, name: str, network_status: str = "connected") -> None:
        self.agents[agent_id] = {
            "id": agent_id,
            "computerName": name,
            "networkStatus": network_status,
            "osName": "Windows 11",
            "isActive": True,
        }

    @staticmethod
    def _error(
        status: int, code: int, title: str, detail: str | None = None
    ) -> tuple[int, Any, dict[str, str]]:
        return status, {"errors": [{"code": code, "detail": detail, "title": title}]}, {}

    def handle(
        self, method: str, path: str, query: dict[str, list[str]], headers: dict[str, str], body: bytes
    ) -> tuple[int, Any, dict[str, str]]:
        if headers.get("authorization") != f"ApiToken {self.token}":
            return self._error(401, 4010010, "Authentication Failed")
        limited = self.throttled(
            {"errors": [{"code": 4290010, "detail": None, "title": "Too many requests"}]}
        )
        if limited:
            return limited
        if method == "GET" and path == "/web/api/v2.1/agents":
            return self._list(query)
        m = re.fullmatch(r"/web/api/v2.1/agents/actions/(disconnect|connect)", path)
        if method == "POST" and m:
            doc = _json(body)
            ids = ((doc or {}).get("filter") or {}).get("ids") if isinstance(doc, dict) else None
            if not ids:
                return self._error(400, 4000010, "Validation Error", "filter: a filter is required")
            target = "disconnecting" if m.group(1) == "disconnect" else "connecting"
            affected = 0
            for agent_id in ids:
                if agent_id in self.agents:
                    self.agents[agent_id]["networkStatus"] = target
                    affected += 1
            return 200, {"data": {"affected": affected}}, {}
        return self._error(404, 4040010, "Not Found", f"{method} {path}")

    def _list(self, query: dict[str, list[str]]) -> tuple[int, Any, dict[str, str]]:
        found = sorted(self.agents.values(), key=lambda a: a["id"])
        if "ids" in query:
            wanted = {i for v in query["ids"] for i in v.split(",")}
            found = [a for a in found if a["id"] in wanted]
        if "computerName" in query:
            found = [a for a in found if a["computerName"] == query["computerName"][0]]
        start = int(query["cursor"][0]) if "cursor" in query else 0
        page = found[start : start + self.page_size]
        out = []
        settle = {"disconnecting": "disconnected", "connecting": "connected"}
        for agent in page:
            out.append(dict(agent))
            if agent["networkStatus"] in settle:  # shown once while the agent applies it
                agent["networkStatus"] = settle[agent["networkStatus"]]
        more = start + self.page_size < len(found)
        pagination = {"nextCursor": str(start + self.page_size) if more else None, "totalItems": len(found)}
        return 200, {"data": out, "pagination": pagination}, {}
