"""The action registry and the built-ins, against a real local HTTP server (SSRF guard included)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson
import pytest

from bastion.connectors import ActionContext, ActionError, action, all_actions, get_action
from bastion.connectors.core import SSRFError, check_url, http_request
from bastion.connectors.egress import guarded_client
from bastion.connectors.policy import mask
from bastion.connectors.templates import load_template
from tests.conftest import cli_json


class Recorder(BaseHTTPRequestHandler):
    seen: list[dict[str, Any]] = []

    def do_GET(self) -> None:
        Recorder.seen.append({"path": self.path, "headers": dict(self.headers)})
        if self.path.startswith("/redirect"):
            self.send_response(302)
            self.send_header("Location", "http://127.0.0.1:1/elsewhere")
            self.end_headers()
            return
        body = orjson.dumps({"data": {"ip": "203.0.113.9", "score": 87}, "path": self.path})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def http_server() -> Iterator[str]:
    Recorder.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def ctx(**kw: Any) -> ActionContext:
    return ActionContext(tenant_id="t1", **kw)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/x",
        "http://10.1.2.3/",
        "http://169.254.169.254/latest",
        "http://[::1]/",
        "http://localhost/",
    ],
)
def test_ssrf_guard_refuses_internal_addresses(url: str) -> None:
    with pytest.raises(SSRFError):
        asyncio.run(check_url(url))


def test_ssrf_guard_refuses_other_schemes() -> None:
    with pytest.raises(SSRFError, match="only http and https"):
        asyncio.run(check_url("file:///etc/passwd"))


def test_http_request_refused_on_loopback_without_allowance(http_server: str) -> None:
    with pytest.raises(SSRFError, match="loopback/private"):
        asyncio.run(http_request(url=f"{http_server}/a", ctx=ctx()))
    assert Recorder.seen == []


def test_http_request_with_allowing_connection_passes_idempotency_key(http_server: str) -> None:
    c = ctx(idempotency_key="run1:step1", connection={"base_url": http_server, "allow_private": True})
    result = asyncio.run(http_request(url="/api/thing", params={"q": "1"}, ctx=c))
    assert result["status"] == 200
    assert result["json"]["path"] == "/api/thing?q=1"
    assert Recorder.seen[0]["headers"]["Idempotency-Key"] == "run1:step1"


def _answers(*addresses: str) -> Any:
    """A resolver that gives ``addresses`` for every name (as a rebinding DNS server would, the second
    time it is asked), and counts the questions."""
    asked: list[str] = []

    async def resolve(host: str, port: int) -> list[str]:
        asked.append(host)
        return list(addresses)

    resolve.asked = asked  # type: ignore[attr-defined]
    return resolve


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def test_guarded_client_refuses_a_name_that_now_resolves_to_loopback(http_server: str) -> None:
    # check_url may have seen a public answer; at connect time the name resolves to 127.0.0.1, where a
    # server is listening: the connection is refused and the server is never reached.
    resolver = _answers("127.0.0.1")

    async def get() -> None:
        async with guarded_client(timeout=5, resolver=resolver) as client:
            await client.get(f"http://rebound.example:{_port(http_server)}/secret")

    with pytest.raises(SSRFError, match=r"rebound\.example resolves to 127\.0\.0\.1"):
        asyncio.run(get())
    assert resolver.asked == ["rebound.example"]
    assert Recorder.seen == []


def test_guarded_client_refuses_when_any_answer_is_internal(http_server: str) -> None:
    async def get() -> None:
        async with guarded_client(timeout=5, resolver=_answers("93.184.216.34", "10.0.0.5")) as client:
            await client.get(f"http://mixed.example:{_port(http_server)}/")

    with pytest.raises(SSRFError, match=r"10\.0\.0\.5"):
        asyncio.run(get())
    assert Recorder.seen == []


def test_guarded_client_connects_to_the_address_it_checked(http_server: str) -> None:
    # The name exists only in this resolver's answer, so reaching the server proves the connection went
    # to the vetted address and was not resolved a second time by the system.
    resolver = _answers("127.0.0.1")

    async def get() -> int:
        async with guarded_client(timeout=5, allow_private=True, resolver=resolver) as client:
            return (await client.get(f"http://only-here.test:{_port(http_server)}/hello")).status_code

    assert asyncio.run(get()) == 200
    assert resolver.asked == ["only-here.test"]
    assert Recorder.seen[0]["path"] == "/hello"
    assert Recorder.seen[0]["headers"]["Host"].startswith("only-here.test:")


def test_redirect_hops_are_checked_too(http_server: str) -> None:
    # The first hop is allowed (allow_private), the redirect target gets the same check: port 1 refuses.
    c = ctx(connection={"base_url": http_server, "allow_private": True})
    with pytest.raises(ActionError):
        asyncio.run(http_request(url="/redirect", ctx=c))
    assert Recorder.seen[0]["path"] == "/redirect"


def test_yaml_template_goes_through_the_registry(http_server: str) -> None:
    defn = get_action("abuseipdb.check_ip")
    assert defn is not None and defn.impact == "read" and defn.source.startswith("template:")
    assert defn.schema["required"] == ["ip"]
    c = ctx(
        secrets={"abuseipdb_api_key": "k-123"}, connection={"base_url": http_server, "allow_private": True}
    )
    out = asyncio.run(defn.fn(ip="203.0.113.9", ctx=c))
    assert out == {"ip": "203.0.113.9", "score": 87}
    assert Recorder.seen[0]["headers"]["Key"] == "k-123"
    assert "ipAddress=203.0.113.9" in Recorder.seen[0]["path"]


def test_malformed_template_is_refused() -> None:
    with pytest.raises(ValueError, match="impact"):
        load_template({"id": "x.y", "impact": "huge", "request": {"url": "/"}}, "t.yaml")


def test_decorator_builds_schema_from_signature_and_docstring() -> None:
    @action("testns.greet", impact="high", secrets=["tok"], idempotent=True)
    async def greet(name: str, times: int = 1, loud: bool | None = None, *, ctx: ActionContext) -> str:
        """Greet someone.

        Args:
            name: who to greet
            times: how often
        """
        return name * times

    defn = get_action("testns.greet")
    assert defn is not None
    assert defn.impact == "high" and defn.secrets == ("tok",) and defn.idempotent
    props = defn.schema["properties"]
    assert props["name"] == {"type": "string", "description": "who to greet"}
    assert props["times"]["type"] == "integer" and props["times"]["default"] == 1
    assert props["loud"]["type"] == ["boolean", "null"]
    assert defn.schema["required"] == ["name"]
    assert defn.description == "Greet someone."
    with pytest.raises(TypeError):
        action("testns.sync", impact="read")(lambda: None)  # type: ignore[arg-type]


def test_mask_hides_secret_values_everywhere() -> None:
    assert mask({"a": ["Bearer s3cret!", {"b": "s3cret!"}], "n": 3}, ["s3cret!"]) == {
        "a": ["Bearer ***", {"b": "***"}],
        "n": 3,
    }


def test_actions_list_json(tmp_path: Path) -> None:
    doc = cli_json("actions", "list", db_url=f"sqlite:///{tmp_path / 'b.db'}")
    ids = {a["id"]: a for a in doc["actions"]}
    for name in ("core.http_request", "core.transform", "core.set", "core.sleep", "core.fail", "core.log"):
        assert name in ids
    assert ids["core.http_request"]["impact"] == "low"
    assert ids["core.http_request"]["input_schema"]["required"] == ["url"]
    assert {a.id for a in all_actions()} >= set(ids)
