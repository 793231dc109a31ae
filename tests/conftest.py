"""Shared fixtures: real stores (a SQLite file; PostgreSQL at 127.0.0.1:5432), a real HTTP server on a free
port, and the real ``bastion`` command in a subprocess."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import uvicorn

from bastion.config import Settings
from bastion.store import Database

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
PG_BASE = os.environ.get("BASTION_TEST_POSTGRES", "postgresql://127.0.0.1:5432/test")


@pytest.fixture(autouse=True, scope="session")
def _samples_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Malware samples the tests submit go to a temporary folder, not ./var (the CLI inherits it)."""
    os.environ["BASTION_SAMPLES_DIR"] = str(tmp_path_factory.mktemp("samples"))
    yield


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.fail(f"reference data missing: expected {SHARED_DATA} (../shared/data beside the repo)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh schema in the `test` database, dropped afterwards."""
    import psycopg

    schema = f"bastion_test_{uuid.uuid4().hex[:10]}"
    dsn = PG_BASE.replace("postgresql://", "postgresql://", 1)
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL at {PG_BASE} is required (make test starts it): {exc}")
    yield f"{PG_BASE}?options=-csearch_path%3D{schema}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'bastion.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A migrated store, on SQLite and on PostgreSQL (a test using it runs twice)."""
    if request.param == "sqlite":
        database = Database(sqlite_url(tmp_path))
    else:
        database = Database(request.getfixturevalue("pg_url"))
    database.migrate()
    if request.param == "postgres":
        _empty(database)  # the schema is shared by the session: start clean even after a failed test
    yield database
    if request.param == "postgres":
        _empty(database)
    database.dispose()


def _empty(database: Database) -> None:
    # Every module that defines tables, so that all of them are on the metadata and emptied in order.
    import bastion.store.approvals
    import bastion.store.assets
    import bastion.store.detection
    import bastion.store.intel
    import bastion.store.workflows  # noqa: F401
    from bastion.store.tables import metadata

    with database.engine.begin() as conn:
        for table in reversed(metadata.sorted_tables):
            conn.execute(table.delete())


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Iterator[Database]:
    database = Database(sqlite_url(tmp_path))
    database.migrate()
    yield database
    database.dispose()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RunningServer:
    def __init__(self, url: str, db: Database, queue: Any, settings: Settings) -> None:
        self.url = url
        self.db = db
        self.queue = queue
        self.settings = settings

    def client(self, key: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60)


def start_server(
    database: Database, **settings_kw: Any
) -> tuple[RunningServer, uvicorn.Server, threading.Thread]:
    from bastion.api.app import create_app
    from bastion.ingest.queue import IngestQueue

    port = free_port()
    settings = Settings(database_url=database.url, port=port, **settings_kw)
    queue = IngestQueue(database, capacity=settings.ingest_queue_size, batch_size=settings.ingest_batch_size)
    app = create_app(settings, database, queue)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("test server did not start")
        time.sleep(0.02)
    return RunningServer(f"http://127.0.0.1:{port}", database, queue, settings), server, thread


@contextmanager
def serving(database: Database, **settings_kw: Any) -> Iterator[RunningServer]:
    """A real server on ``database`` for the block, stopped (and its ingest queue closed) after it."""
    running, srv, thread = start_server(database, **settings_kw)
    try:
        yield running
    finally:
        srv.should_exit = True
        thread.join(10)
        running.queue.close()


@pytest.fixture
def server(sqlite_db: Database) -> Iterator[RunningServer]:
    with serving(sqlite_db) as running:
        yield running


def run_cli(
    *args: str, db_url: str, input: str | None = None, check: bool = False, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the real `bastion` command."""
    full_env = {**os.environ, "BASTION_DATABASE_URL": db_url, **(env or {})}
    full_env.pop("BASTION_DEBUG", None)
    proc = subprocess.run(
        [sys.executable, "-m", "bastion.cli", *args],
        capture_output=True,
        text=True,
        env=full_env,
        input=input,
        timeout=300,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"bastion {' '.join(args)} exited {proc.returncode}: {proc.stderr}")
    return proc


def cli_json(*args: str, db_url: str, expect_code: int = 0) -> Any:
    proc = run_cli(*args, "--json", db_url=db_url)
    assert proc.returncode == expect_code, proc.stderr
    return orjson.loads(proc.stdout)
