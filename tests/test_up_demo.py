"""`bastion up --demo` as a newcomer runs it: a real process serving the demo tenant, with data flowing,
and the console's printed sign-in working; an open console tab does not keep it from stopping."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.conftest import free_port


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_up_demo_serves_demo_data_and_keeps_it_flowing(tmp_path: Path) -> None:
    port, syslog = free_port(), _free_udp_port()
    env = {
        **os.environ,
        "BASTION_DATABASE_URL": f"sqlite:///{tmp_path / 'demo.db'}",
        "BASTION_SYSLOG_UDP_PORT": str(syslog),
        "BASTION_SYSLOG_TCP_PORT": str(free_port()),
        "BASTION_LOG_LEVEL": "warning",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "bastion.cli", "up", "--demo", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    try:
        assert proc.stdout is not None
        lines: list[str] = []
        deadline = time.monotonic() + 60
        key = sign_in = None
        while (key is None or sign_in is None) and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            m = re.search(r"demo API key: (bst_\S+)", line)
            key = m.group(1) if m else key
            sign_in = sign_in or re.search(
                r"console: (http://\S+/login)\s+tenant demo, user (\S+), password (\S+)", line
            )
        assert key and sign_in, "".join(lines)
        assert any(f"http://127.0.0.1:{port}/" in line for line in lines)
        with httpx.Client(
            base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {key}"}, timeout=30
        ) as c:
            assert c.get("/healthz").json()["status"] == "ok"
            events = c.get("/api/v1/events", params={"limit": 1000}).json()["events"]
            assert len(events) >= 50 and {e["format"] for e in events} >= {"windows", "cef", "ecs"}
            alerts = c.get("/api/v1/alerts").json()["alerts"]
            assert len(alerts) >= 5
            cases = c.get("/api/v1/cases").json()["cases"]
            assert len(cases) == 1 and cases[0]["alerts"] >= 1
            # a syslog line sent over UDP lands in the demo tenant
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.sendto(
                    b"<34>1 2026-11-30T10:00:00Z fw-01 sshd 42 - - Failed password for root "
                    b"from 198.51.100.77 port 2222 ssh2",
                    ("127.0.0.1", syslog),
                )
            grew = False
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                found = c.get("/api/v1/events", params={"value": "198.51.100.77"}).json()["events"]
                now = len(c.get("/api/v1/events", params={"limit": 1000}).json()["events"])
                grew = now > len(events) + 1
                if found and grew:
                    break
                time.sleep(0.5)
            assert found, "syslog message not stored"
            assert grew, "no live demo events arrived"
        _console_sign_in_works_and_an_open_stream_does_not_block_stopping(proc, port, sign_in.groups())
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert proc.returncode == 0


def _console_sign_in_works_and_an_open_stream_does_not_block_stopping(
    proc: subprocess.Popen[str], port: int, printed: tuple[str, ...]
) -> None:
    url, user, password = printed
    assert url == f"http://127.0.0.1:{port}/login"
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as c:
        token = re.search(r'name="csrf" value="([^"]+)"', c.get("/login").text)
        assert token
        r = c.post("/login", data={"tenant": "demo", "user": user, "password": password, "csrf": token[1]})
        assert r.status_code == 303, r.text[:300]
        queue = c.get("/queue?status=all&since=all")
        assert queue.status_code == 200 and 'data-row="' in queue.text
        with c.stream("GET", "/ui/stream?topics=alerts") as stream:
            for line in stream.iter_lines():
                if line == "event: ready":
                    break
            proc.send_signal(signal.SIGINT)
            assert proc.wait(30) == 0


def _start_up(tmp_path: Path) -> tuple[subprocess.Popen[str], list[str]]:
    """``bastion up`` on an empty store, once it says it is up; returns the process and what it printed."""
    env = {
        **os.environ,
        "BASTION_DATABASE_URL": f"sqlite:///{tmp_path / 'up.db'}",
        "BASTION_SYSLOG_UDP_PORT": str(_free_udp_port()),
        "BASTION_SYSLOG_TCP_PORT": str(free_port()),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "bastion.cli", "up", "--port", str(free_port())],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if "Bastion is up" in line:
            return proc, lines
    proc.kill()
    raise AssertionError("bastion up did not come up:\n" + "".join(lines))


def test_stop_signals_sent_as_soon_as_it_is_up_stop_it_cleanly(tmp_path: Path) -> None:
    # The handlers were installed after the banner: a signal sent on seeing it could kill the process.
    proc, lines = _start_up(tmp_path)
    try:
        proc.send_signal(signal.SIGTERM)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    finally:
        proc.kill()
    printed = "".join(lines) + out
    assert proc.returncode == 0, printed
    assert "Bastion stopped." in printed
    assert "Traceback" not in printed and "CancelledError" not in printed, printed


def test_a_second_stop_request_stops_at_once_despite_an_open_upload(tmp_path: Path) -> None:
    created = subprocess.run(
        [sys.executable, "-m", "bastion.cli", "tenant", "create", "acme", "--json"],
        env={**os.environ, "BASTION_DATABASE_URL": f"sqlite:///{tmp_path / 'up.db'}"},
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    )
    key = json.loads(created.stdout)["api_key"]
    proc, lines = _start_up(tmp_path)
    port = int(re.search(r"http://127.0.0.1:(\d+)/", "".join(lines))[1])  # type: ignore[index]
    try:
        # An upload that never finishes keeps the server waiting for its connection after the first signal.
        with socket.create_connection(("127.0.0.1", port)) as upload:
            upload.sendall(
                f"POST /api/v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n"
                "Content-Type: application/x-ndjson\r\nContent-Length: 1000\r\n\r\n{}".encode()
            )
            time.sleep(0.5)
            proc.send_signal(signal.SIGINT)
            time.sleep(1.5)
            assert proc.poll() is None, "the server did not wait for the open upload"
            proc.send_signal(signal.SIGINT)
            # Left running, the upload kept its ingest-queue place and stopping waited 30 s for it.
            out, _ = proc.communicate(timeout=20)
    finally:
        proc.kill()
    printed = "".join(lines) + out
    assert proc.returncode == 0, printed
    assert "Bastion stopped." in printed
    assert "Exception in 'lifespan' protocol" not in printed, printed
