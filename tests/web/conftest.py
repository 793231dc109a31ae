"""Fixtures for the console tests: a real server (the API app with the console installed, under uvicorn on
a free port) over a SQLite file holding the demo data set (events, alerts, the intrusion case), users of
every role with known passwords, the workflow engine's Executor running so runs finish, and a real
Debian chromium driven by Playwright.

Every page a test opens is watched: a console error, an uncaught exception or a failed request fails
the test at teardown (``allow_errors(page, "...")`` accepts an expected one, e.g. a 403 page).
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
import sys
import threading
import time
import traceback
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import uvicorn
from playwright.sync_api import Browser, Page, Playwright, expect, sync_playwright

from bastion.config import Settings
from bastion.model import Alert, Observable, ObservableType, Role, Severity
from bastion.pipeline import ingest_alerts
from bastion.store import Database, TenantRepository
from bastion.tenancy.service import add_user
from tests.conftest import ROOT, free_port

T = TypeVar("T")
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
DESKTOP = (1280, 800)
PHONE = (390, 844)
ARTIFACTS = ROOT / "test-artifacts"
TENANT = "demo"
PASSWORDS: dict[str, str] = {
    "admin": "admin-Pass-1234",
    "analyst": "analyst-Pass-1234",
    "approver": "approver-Pass-1234",
    "viewer": "viewer-Pass-1234",
    "engineer": "engineer-Pass-1234",
}
ROLES: dict[str, Role] = {
    "admin": Role.ADMIN,
    "analyst": Role.ANALYST,
    "approver": Role.APPROVER,
    "viewer": Role.VIEWER,
    "engineer": Role.ENGINEER,
}


class WebClient(httpx.Client):
    """An httpx client signed in to the console as one user; ``csrf`` is that session's token."""

    csrf: str = ""

    def post_form(self, url: str, data: dict[str, Any], *, csrf: bool = True) -> httpx.Response:
        """POST a form the way the browser does (with the CSRF field unless ``csrf=False``)."""
        body = {**data, "csrf": self.csrf} if csrf else dict(data)
        return self.post(url, data=body)


@dataclass
class Console:
    """The running console: its URL, store, demo tenant and case, and the users' passwords."""

    url: str
    db: Database
    settings: Settings
    tenant_id: str
    tenant: str
    case_id: str
    passwords: dict[str, str] = field(default_factory=lambda: dict(PASSWORDS))

    def client(self, user: str | None = None) -> WebClient:
        """An httpx client; signed in as ``user`` when given (through the real sign-in form)."""
        c = WebClient(base_url=self.url, timeout=60, follow_redirects=False)
        if user is not None:
            form = c.get("/login")
            token = _hidden(form.text, "csrf")
            r = c.post(
                "/login",
                data={"tenant": self.tenant, "user": user, "password": self.passwords[user], "csrf": token},
            )
            assert r.status_code == 303, f"sign-in as {user} failed: {r.status_code} {r.text[:300]}"
            page = c.get("/queue")
            assert page.status_code == 200, page.text[:300]
            m = re.search(r'<meta name="csrf-token" content="([^"]+)"', page.text)
            assert m, "no CSRF meta tag on the queue page"
            c.csrf = m.group(1)
        return c


def expect_run_status(page: Page, console: Console, status: str, *, timeout_ms: int = 30_000) -> None:
    """Wait for the run page's ``#run`` to show ``status``. A run that takes longer than ``timeout_ms``
    is reported with where it was then (its record, its DBOS status and queue, what the Bastion and DBOS
    threads were doing): as the failure when it never gets there within three times as long, else as a
    warning in the test summary. (CI once saw a run stay queued for over 30 s, unexplained so far.)"""
    run = page.locator("#run")
    try:
        expect(run).to_have_attribute("data-status", status, timeout=timeout_ms)
        return
    except AssertionError:
        where = _where_is_run(console, page.url.rstrip("/").rsplit("/", 1)[-1])
    try:
        expect(run).to_have_attribute("data-status", status, timeout=2 * timeout_ms)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n\nafter {timeout_ms / 1000:g} s: {where}") from None
    warnings.warn(f"the run reached {status!r} only after {timeout_ms / 1000:g} s: {where}", stacklevel=2)


def _where_is_run(console: Console, run_id: str) -> str:
    from bastion.respond.runtime import dbos_location
    from bastion.store.workflows import WorkflowRepository

    lines = [f"run {run_id}:"]
    with console.db.read() as conn:
        record = WorkflowRepository(conn, console.tenant_id).get_run(run_id)
    lines.append(f"  record: {record and {k: record.get(k) for k in ('status', 'waiting_step', 'error')}}")
    sys_path = dbos_location(console.db).url.removeprefix("sqlite:///")
    with contextlib.closing(sqlite3.connect(sys_path, timeout=5)) as conn:
        rows = conn.execute(
            "SELECT workflow_uuid, status, queue_name, queue_partition_key, executor_id, application_version"
            " FROM workflow_status WHERE workflow_uuid LIKE ?",
            (f"{run_id}%",),
        ).fetchall()
        lines.append(f"  DBOS: {rows}")
        lines.append(f"  DBOS queue: {conn.execute('SELECT * FROM queues').fetchall()}")
    names = {t.ident: t.name for t in threading.enumerate()}
    for ident, frame in sys._current_frames().items():
        stack = traceback.format_stack(frame)
        if any("/bastion/" in f or "/dbos/" in f for f in stack):  # not the idle pools and the browser's
            lines.append(f"thread {names.get(ident, ident)}:")
            lines.extend("  " + line.rstrip() for line in stack[-10:])
    return "\n".join(lines)


def off_loop(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Call ``fn`` in a fresh thread and return its result. Playwright's sync API keeps an event loop
    running in the test's thread, and DBOS refuses its sync calls there (``service.start_run``,
    ``Executor.launch``): run such calls through this."""
    result: list[T] = []
    error: list[BaseException] = []

    def target() -> None:
        try:
            result.append(fn(*args, **kwargs))
        except BaseException as exc:  # handed back to the caller below
            error.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if error:
        raise error[0]
    return result[0]


def store_alerts(
    console: Console,
    n: int,
    tag: str,
    *,
    source: str = "webtest",
    severity: Severity = Severity.MEDIUM,
    per_time: int = 1,
) -> list[str]:
    """Store ``n`` fresh alerts titled "<tag> alert <i>" on host "<tag>-host", untriaged, newest first
    in steps of a second with ``per_time`` alerts at each time; returns their ids in that order."""
    now = int(time.time() * 1000)
    alerts = [
        Alert(
            title=f"{tag} alert {i}",
            severity=severity,
            time=now - (i // per_time) * 1000,
            source=source,
            external_id=f"{tag}-{i}-{time.time_ns()}",
            observables=[Observable(ObservableType.HOST, f"{tag}-host")],
        )
        for i in range(n)
    ]
    return list(off_loop(ingest_alerts, console.db, console.tenant_id, "test", alerts, triage=False).ids)


def _hidden(html: str, name: str) -> str:
    m = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert m, f"no hidden field {name!r} in the page"
    return m.group(1)


def start_console(tmp: Path) -> tuple[Console, Callable[[], None]]:
    """Seed a store, start the Executor and the server; returns the console and a stop function."""
    from bastion.api.app import create_app
    from bastion.demo.seed import seed_demo
    from bastion.ingest.queue import IngestQueue
    from bastion.respond.runtime import Executor
    from bastion.web import install_console

    db = Database(f"sqlite:///{tmp / 'bastion.db'}")
    db.migrate()
    report = seed_demo(db, TENANT)
    for name, role in ROLES.items():
        add_user(db, TENANT, name, role, email=f"{name}@demo.example.org", password=PASSWORDS[name])
    with db.read() as conn:
        tenant = TenantRepository(conn).by_name(TENANT)
    assert tenant is not None
    executor = Executor(db)
    off_loop(executor.launch)
    port = free_port()
    settings = Settings(database_url=db.url, port=port)
    queue = IngestQueue(db, capacity=settings.ingest_queue_size, batch_size=settings.ingest_batch_size)
    app = create_app(settings, db, queue)
    install_console(app)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", timeout_graceful_shutdown=2)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("console test server did not start")
        time.sleep(0.02)

    def stop() -> None:
        off_loop(_cancel_open_runs, db, tenant.id)
        server.should_exit = True
        thread.join(5)
        if thread.is_alive():
            server.force_exit = True
            thread.join(10)
        queue.close()
        off_loop(executor.shutdown)
        db.dispose()

    console = Console(
        url=f"http://127.0.0.1:{port}",
        db=db,
        settings=settings,
        tenant_id=tenant.id,
        tenant=TENANT,
        case_id=str(report["case_id"]),
    )
    return console, stop


def _cancel_open_runs(db: Database, tenant_id: str) -> None:
    """Runs still parked on an approval hold DBOS worker threads that outlive the test's store (and
    would be joined at interpreter exit, for minutes): cancel them, which wakes and ends them."""
    from bastion.respond.service import RunError, cancel_run
    from bastion.store.workflows import WorkflowRepository

    for status in ("waiting_approval", "running"):
        with db.read() as conn:
            runs = WorkflowRepository(conn, tenant_id).list_runs(status=status, limit=1000)
        for run in runs:
            with contextlib.suppress(RunError):  # it finished meanwhile
                cancel_run(db, tenant_id, run["run_id"], actor="test:teardown")


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    """One running console per test module (starting one takes a few seconds)."""
    running, stop = start_console(tmp_path_factory.mktemp("console"))
    yield running
    stop()


# ---------------------------------------------------------------- the browser


# Per module, not per session: Playwright's sync API keeps an event loop running in the test thread while
# it is open, and a later module (on the same pytest-xdist worker) that launches DBOS there would fail.
@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"{CHROMIUM} is missing: `make services` (scripts/test-services.sh) installs Debian chromium"
        )
    with sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    """One chromium per test module."""
    b = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    yield b
    b.close()


class PageErrors:
    """Console errors, uncaught exceptions and failed requests of one page."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.allowed: list[str] = []

    def add(self, text: str) -> None:
        self.errors.append(text)

    def unexpected(self) -> list[str]:
        return [e for e in self.errors if not any(a in e for a in self.allowed)]


_errors: dict[int, PageErrors] = {}


def allow_errors(page: Page, fragment: str) -> None:
    """Accept console errors or failed requests containing ``fragment`` on ``page`` (an expected 403)."""
    _errors[id(page)].allowed.append(fragment)


def _watch(page: Page) -> PageErrors:
    found = PageErrors()
    _errors[id(page)] = found
    page.on(
        "console",
        lambda m: found.add(f"console {m.type}: {m.text} at {m.location}") if m.type == "error" else None,
    )
    page.on("pageerror", lambda exc: found.add(f"page error: {exc}"))

    def failed(request: Any) -> None:
        reason = request.failure or ""
        # Leaving a page aborts its event stream (and a favicon still loading); that is the browser's
        # doing, not an error.
        if "ERR_ABORTED" in reason and ("/ui/stream" in request.url or "/favicon.svg" in request.url):
            return
        found.add(f"request failed: {request.method} {request.url} {reason}")

    page.on("requestfailed", failed)
    page.on(
        "response",
        lambda r: found.add(f"response {r.status}: {r.request.method} {r.url}") if r.status >= 400 else None,
    )
    page.on("dialog", lambda d: d.accept())  # data-confirm prompts: the test means to go ahead
    return found


@pytest.fixture
def new_page(browser: Browser) -> Iterator[Callable[..., Page]]:
    """``new_page(viewport=DESKTOP)``: a page in a fresh context (its own cookies), watched for errors."""
    made: list[tuple[Any, Page]] = []

    def make(viewport: tuple[int, int] = DESKTOP) -> Page:
        context = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]})
        context.set_default_timeout(15_000)
        page = context.new_page()
        _watch(page)
        made.append((context, page))
        return page

    yield make
    problems: list[str] = []
    for context, page in made:
        problems += _errors.pop(id(page)).unexpected()
        context.close()
    assert not problems, "browser errors:\n" + "\n".join(problems)


@pytest.fixture
def page(new_page: Callable[..., Page]) -> Page:
    """A desktop-sized (1280x800) page, watched for errors."""
    return new_page(DESKTOP)


def sign_in(page: Page, console: Console, user: str, *, next: str = "/") -> None:
    """Sign in through the form as ``user`` and wait for the page after it."""
    page.goto(f"{console.url}/login?next={next}")
    page.fill("input[name=tenant]", console.tenant)
    page.fill("input[name=user]", user)
    page.fill("input[name=password]", console.passwords[user])
    with page.expect_navigation():
        page.click("button[type=submit]")
    assert "/login" not in page.url, f"sign-in as {user} failed: {page.content()[:500]}"


def shot(page: Page, name: str) -> Path:
    """Save a full-page screenshot to test-artifacts/<name>-<w>x<h>.png and return its path."""
    ARTIFACTS.mkdir(exist_ok=True)
    size = page.viewport_size or {"width": 0, "height": 0}
    path = ARTIFACTS / f"{name}-{size['width']}x{size['height']}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 1000, f"screenshot {path} is empty"
    return path
