"""Real servers for the feed tests: a small HTTP server with scripted answers (vendor feeds, MISP, the
reputation APIs), and a `medallion` TAXII 2.1 server in a subprocess."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import free_port

Handler = Callable[[str, str, dict[str, str], bytes], tuple[int, dict[str, str], bytes]]


# Feed servers here listen on loopback, which the SSRF guard refuses unless the feed allows it.
LOCAL = {"allow_private": True}


class Recorded:
    def __init__(self) -> None:
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []


@contextmanager
def http_server(handler: Handler) -> Iterator[tuple[str, Recorded]]:
    """Serve ``handler(method, path, headers, body) -> (status, headers, body)`` on a free port."""
    rec = Recorded()

    class H(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            rec.requests.append((self.command, self.path, headers, body))
            status, out_headers, payload = handler(self.command, self.path, headers, body)
            self.send_response(status)
            for k, v in out_headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if payload:
                self.wfile.write(payload)

        do_GET = do_POST = _serve

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), H)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", rec
    finally:
        server.shutdown()
        server.server_close()


COLLECTION = "91a7b528-80eb-42ed-a74d-c6fbd5a26116"


@contextmanager
def medallion(
    tmp_path: Path,
    user: str = "admin",
    password: str = "Password0",  # noqa: S107
    max_page_size: int = 100,
) -> Iterator[str]:
    """A real medallion TAXII 2.1 server (memory back-end), one writable collection; yields the API root.
    It answers at most ``max_page_size`` objects (or manifest entries) a request."""
    port = free_port()
    root = f"http://127.0.0.1:{port}/api1/"
    data = {
        "/discovery": {"title": "test", "default": root, "api_roots": [root]},
        "api1": {
            "information": {
                "title": "api1",
                "versions": ["application/taxii+json;version=2.1"],
                "max_content_length": 9765625,
            },
            "status": [],
            "collections": [
                {
                    "id": COLLECTION,
                    "title": "intel",
                    "can_read": True,
                    "can_write": True,
                    "media_types": ["application/stix+json;version=2.1"],
                    "objects": [],
                    "manifest": [],
                }
            ],
        },
    }
    (tmp_path / "taxii-data.json").write_text(json.dumps(data))
    config = {
        "backend": {
            "module_class": "MemoryBackend",
            "module": "medallion.backends.memory_backend",
            "filename": str(tmp_path / "taxii-data.json"),
        },
        "users": {user: password},
        "taxii": {"max_page_size": max_page_size},
    }
    (tmp_path / "taxii.json").write_text(json.dumps(config))
    exe = Path(sys.executable).with_name("medallion")
    proc = subprocess.Popen(
        [str(exe), "--host", "127.0.0.1", "--port", str(port), str(tmp_path / "taxii.json")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("medallion did not start") from None
                time.sleep(0.1)
        httpx.get(f"http://127.0.0.1:{port}/taxii2/", auth=(user, password), timeout=10)
        yield root
    finally:
        proc.terminate()
        proc.wait(10)
