"""Where the engine's durable state lives and how a process joins as an executor.

DBOS keeps its system tables beside the store: a SQLite store ``var/bastion.db`` gets
``var/bastion-dbos.db`` (switched to WAL before DBOS opens it: about 2x throughput); a PostgreSQL store
gets the schema ``bastion_dbos`` (or ``<search_path schema>_dbos``) in the same database.

Every executor (a ``bastion worker``, or a CLI running one run inline) has its own DBOS executor id and
writes a heartbeat row. A live executor periodically re-enqueues the pending runs of executors whose
heartbeat went stale (killed, machine lost) or that left cleanly with runs still parked (a CLI that
returned while its run waits for approval); DBOS's queue hand-over admits exactly one runner, so two
sweeping workers never run one workflow twice.
"""

from __future__ import annotations

import logging
import os
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import make_url

from bastion.store import Database
from bastion.store.workflows import now_ms, respond_workers

__all__ = [
    "RUN_QUEUE",
    "DbosLocation",
    "Executor",
    "dbos_location",
    "heartbeat_interval_s",
    "install_delivery",
    "live_workers",
    "stale_after_s",
    "unless_workers",
]

log = logging.getLogger("bastion.worker")


class _QuietUserMistakes(logging.Filter):
    """DBOS logs every exception a workflow raises, with its traceback. One that marks itself a user's
    mistake (``user_mistake = True``: an objective the planner cannot read) is reported to that user in
    one line by the run; its traceback on stderr was noise, and in the CLI raced that line."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not getattr(exc, "user_mistake", False)


RUN_QUEUE = "bastion_runs"
APP_NAME = "bastion"
APP_VERSION = "bastion-respond-1"


def stale_after_s() -> float:
    return float(os.environ.get("BASTION_WORKER_STALE_S", "15"))


def heartbeat_interval_s() -> float:
    return float(os.environ.get("BASTION_WORKER_HEARTBEAT_S", "1"))


class DbosLocation:
    def __init__(self, url: str, schema: str | None) -> None:
        self.url = url
        self.schema = schema


def dbos_location(db: Database) -> DbosLocation:
    """The DBOS system database that belongs to the store ``db``."""
    parsed = make_url(db.engine.url.render_as_string(hide_password=False))
    if db.dialect == "sqlite":
        database = parsed.database or ""
        if not database or database == ":memory:":
            raise ValueError("the durable engine needs a SQLite file, not an in-memory store")
        path = Path(database)
        sys_path = path.with_name(path.stem + "-dbos.db")
        _sqlite_wal(sys_path)
        return DbosLocation(f"sqlite:///{sys_path}", None)
    options = parse_qs(str(parsed.query.get("options", "")) if parsed.query else "")
    schema = "bastion_dbos"
    raw_opts = parsed.query.get("options") if parsed.query else None
    if raw_opts:
        text = raw_opts if isinstance(raw_opts, str) else raw_opts[0]
        for part in text.split():
            if part.startswith("-csearch_path="):
                schema = part.split("=", 1)[1].split(",")[0] + "_dbos"
    del options
    url = parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    return DbosLocation(url, schema)


def _sqlite_wal(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=30)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
    finally:
        conn.close()


def live_workers(db: Database) -> list[dict[str, Any]]:
    """Workers (``bastion worker`` processes) whose heartbeat is fresh."""
    cutoff = now_ms() - int(stale_after_s() * 1000)
    with db.read() as conn:
        rows = conn.execute(select(respond_workers).where(respond_workers.c.heartbeat >= cutoff))
        return [
            {"executor_id": r.executor_id, "host": r.host, "pid": r.pid, "heartbeat": r.heartbeat}
            for r in rows
            if r.executor_id.startswith("worker-")
        ]


@contextmanager
def unless_workers(db: Database, *, kind: str = "cli") -> Iterator[Executor | None]:
    """For a command that starts a durable run (a workflow, an agent): when no worker is alive, this
    process executes for the duration of the block, then leaves; a run still parked (on an approval) is
    continued by the next worker that starts. With a live worker, nothing is launched here."""
    if live_workers(db):
        yield None
        return
    executor = Executor(db, kind=kind, listen=False)
    executor.launch()
    try:
        yield executor
    finally:
        executor.shutdown()


class Executor:
    """This process as a DBOS executor: launch, heartbeat, sweep dead executors, shut down."""

    def __init__(
        self, db: Database, *, kind: str = "worker", listen: bool = True, concurrency: int = 32
    ) -> None:
        self.db = db
        self.executor_id = f"{kind}-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.listen = listen
        self.concurrency = concurrency
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def launch(self) -> None:
        from dbos import DBOS

        from bastion.respond import engine

        if self.listen:
            # Workers recover every kind of durable run, agent runs included: register the agent
            # workflow before DBOS launches. A command running its own run inline (listen=False) skips
            # the import (about a second of pydantic-ai); agent commands import the runtime themselves.
            from bastion.agents import runtime as _agent_runs  # noqa: F401

        loc = dbos_location(self.db)
        engine.configure(self.db)
        install_delivery(self.db)
        config: dict[str, Any] = {
            "name": APP_NAME,
            "system_database_url": loc.url,
            "executor_id": self.executor_id,
            "application_version": APP_VERSION,
            "log_level": os.environ.get("BASTION_DBOS_LOG_LEVEL", "WARNING"),
            "notification_listener_polling_interval_sec": 0.2,
        }
        if loc.schema:
            config["dbos_system_schema"] = loc.schema
        DBOS(config=config)  # type: ignore[arg-type]
        dbos_log = logging.getLogger("dbos")
        if not any(isinstance(f, _QuietUserMistakes) for f in dbos_log.filters):
            dbos_log.addFilter(_QuietUserMistakes())
        if not self.listen:
            DBOS.listen_queues([])
        DBOS.launch()
        DBOS.register_queue(
            RUN_QUEUE,
            worker_concurrency=self.concurrency,
            partition_concurrency=int(os.environ.get("BASTION_TENANT_CONCURRENCY", "16")),
            polling_interval_sec=0.1,
        )
        self._beat()
        if self.listen:  # only workers take over others' runs; a CLI running one run inline does not
            self.sweep()
        self._thread = threading.Thread(target=self._loop, name="bastion-heartbeat", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        t = now_ms()
        with self.db.write() as conn:
            done = conn.execute(
                update(respond_workers)
                .where(respond_workers.c.executor_id == self.executor_id)
                .values(heartbeat=t)
            ).rowcount
            if not done:
                conn.execute(
                    insert(respond_workers).values(
                        executor_id=self.executor_id,
                        host=socket.gethostname(),
                        pid=os.getpid(),
                        started=t,
                        heartbeat=t,
                    )
                )

    def sweep(self) -> list[str]:
        """Re-enqueue the pending runs of dead executors; returns their ids."""
        from dbos import DBOS

        cutoff = now_ms() - int(stale_after_s() * 1000)
        with self.db.read() as conn:
            dead = [
                r.executor_id
                for r in conn.execute(
                    select(respond_workers.c.executor_id).where(respond_workers.c.heartbeat < cutoff)
                )
            ]
        pending = {
            w.executor_id
            for w in DBOS.list_workflows(status="PENDING", load_input=False, load_output=False)
            if w.executor_id and w.executor_id != self.executor_id
        }
        with self.db.read() as conn:
            known = {r.executor_id for r in conn.execute(select(respond_workers.c.executor_id))}
        # An executor with pending runs but no heartbeat row left cleanly (or was never registered).
        orphans = [e for e in pending if e not in known or e in dead]
        if orphans:
            handles = DBOS._recover_pending_workflows(orphans)
            log.warning(
                "worker %s recovered %d run(s) of %s", self.executor_id, len(handles), ", ".join(orphans)
            )
        if dead:
            with self.db.write() as conn:
                conn.execute(
                    delete(respond_workers).where(
                        respond_workers.c.executor_id.in_(dead), respond_workers.c.heartbeat < cutoff
                    )
                )
        return orphans

    def _loop(self) -> None:
        from bastion.respond import parking
        from bastion.respond.schedule import fire_schedules

        interval = heartbeat_interval_s()
        ticks = 0
        checked = time.time()
        while not self._stop.wait(interval):
            try:
                self._beat()
                ticks += 1
                if self.listen and ticks % 3 == 0:
                    self.sweep()
                if self.listen:
                    parking.sweep(self.db)
                    now = time.time()
                    fire_schedules(self.db, checked, now)
                    checked = now
            except Exception as exc:  # the heartbeat must outlive a passing database error
                log.warning("worker %s: heartbeat/sweep/schedule failed: %s", self.executor_id, exc)

    def shutdown(self) -> None:
        from dbos import DBOS

        self._stop.set()
        # The heartbeat's sweep calls DBOS's class methods, which act on whatever DBOS instance the
        # process has: let its last round end before this one goes (a test process launches the next).
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=heartbeat_interval_s() + 30)
        try:
            DBOS.destroy(workflow_completion_timeout_sec=0)
        finally:
            with self.db.write() as conn:
                conn.execute(delete(respond_workers).where(respond_workers.c.executor_id == self.executor_id))


_delivery_db: list[Database] = []


def install_delivery(db: Database | None = None, *, factory: Any = None) -> None:
    """Deliver approval decisions to waiting runs: registers the approvals resolution listener.

    When an approval resolves (in any process: API, CLI, link, Slack, e-mail), the listener queues the
    continuation of a parked run (respond.parking), or sends ``{"status", "approval_id"}`` on the
    approval's topic to the workflow waiting in place (a child workflow, an agent run), through DBOS when
    this process is an executor and through a ``DBOSClient`` otherwise. ``db`` (or ``factory()``) names
    the store whose DBOS system database holds the run; without either, the settings' store is used.
    """
    from bastion.respond.approvals import set_resolution_listener

    if db is not None:
        _delivery_db[:] = [db]

    def store() -> Database:
        if _delivery_db:
            return _delivery_db[0]
        from bastion.config import load_settings

        return factory() if factory else Database(load_settings().database_url)

    def deliver(approval: Any) -> None:
        from dbos import DBOS

        from bastion.respond import parking

        target = store()
        run = parking.parks_here(target, approval)
        if run is not None:
            # Queued only for a run still parked; one that stops after this check is queued by a sweep.
            if run["status"] == "waiting_approval":
                parking.continue_run(target, approval.tenant_id, approval.run_id, approval.id)
            return
        message = {"status": approval.status, "approval_id": approval.id}

        try:
            launched = bool(DBOS.executor_id) and _executor_launched()
        except Exception:
            launched = False
        if launched:
            DBOS.send(approval.wake, message, topic=approval.topic)
            return
        from dbos import DBOSClient

        loc = dbos_location(target)
        client = DBOSClient(system_database_url=loc.url, dbos_system_schema=loc.schema or "dbos")
        try:
            client.send(approval.wake, message, topic=approval.topic)
        finally:
            client.destroy()

    set_resolution_listener(deliver)


def _executor_launched() -> bool:
    """This process is a DBOS executor that is up: launched, and not shutting down (``DBOS.destroy``
    clears ``_initialized`` first, before it stops the thread pool and closes the system database)."""
    from dbos._dbos import _dbos_global_instance

    return (
        _dbos_global_instance is not None
        and bool(getattr(_dbos_global_instance, "_launched", False))
        and bool(getattr(_dbos_global_instance, "_initialized", False))
    )
