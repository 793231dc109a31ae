"""Opening the store: the engine for SQLite or PostgreSQL, with the settings each needs, and migrations.

SQLite runs in WAL mode (readers never block the writer) with a busy timeout, and write transactions
start with ``BEGIN IMMEDIATE`` so two writers queue for the lock instead of failing half-way when a
read transaction tries to become a write one.

Checkpoints (copying the WAL back into the database file, and its fsync) run on a background thread
after writes, so a commit never waits for them: that wait was a third of the ingest time. They run at
most every :data:`_CHECKPOINT_INTERVAL_S`: each one syncs the WAL and the database file, and the
engine's small step writes, checkpointed one by one, cost two fsyncs each. The writer's own automatic
checkpoint stays on, at a high mark, as the safety net if that thread falls behind.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import re
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError

__all__ = ["SQLITE_PAGE_SIZE", "Database", "StoreConfigError"]

_MIGRATIONS = Path(__file__).with_name("migrations")
_log = logging.getLogger(__name__)
_REVISION = re.compile(r'^(down_revision|revision) = "([^"]*)"', re.M)


@functools.cache
def _revisions() -> tuple[frozenset[str], frozenset[str]]:
    """(every migration's revision, every revision named as a ``down_revision``), read from the scripts'
    text."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for script in (_MIGRATIONS / "versions").glob("*.py"):
        for kind, value in _REVISION.findall(script.read_text(encoding="utf-8")):
            (revisions if kind == "revision" else parents).add(value)
    return frozenset(revisions), frozenset(parents)


@functools.cache
def _head_revision() -> str | None:
    """The newest migration: the revision no other migration names as its ``down_revision`` (None
    unless there is exactly one, and then Alembic decides)."""
    revisions, parents = _revisions()
    heads = revisions - parents
    return next(iter(heads)) if len(heads) == 1 else None


# The page size of a new SQLite store (an existing one keeps its own). An event row (its normalized and
# raw JSON) is 2-3 KB: on 4 KiB pages one fits a page and the rest of the page is written empty, so
# ingest wrote about 4 KiB an event; on 32 KiB pages thirteen fit.
SQLITE_PAGE_SIZE = 32768
# The writer checkpoints by itself only past this much WAL; normally the background checkpointer has done
# it long before. After a checkpoint the WAL file is cut back to the size limit.
_WAL_AUTOCHECKPOINT_BYTES = 64 * 1024 * 1024
_WAL_SIZE_LIMIT = 64 * 1024 * 1024
# The background checkpointer waits this long after a checkpoint before the next: writes in between are
# copied together, with one pair of fsyncs.
_CHECKPOINT_INTERVAL_S = 0.25
# How long a writer waits for the lock, in this process and then in SQLite's busy handler.
_BUSY_TIMEOUT_S = 30
# The page cache of the writer's connection, in KiB (SQLite's default is 2 MiB). A batch inserts at
# random places in the event indexes (fingerprint, time): once they outgrew 2 MiB, nearly every insert
# read a page back from the file and dirty pages spilled to the WAL mid-transaction. Ingesting 200,000
# events: 122,733 page reads with the default, 18,890 with this. Filled only as pages are used.
_WRITER_CACHE_KIB = 65536


class StoreConfigError(ValueError):
    """The store cannot be used (its URL, its file, its schema version); the message says why."""


class Database:
    """The engine plus read and write transactions. One per process; safe to share across threads."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self._checkpointer: _Checkpointer | None = None
        # The engine write transactions use: its own on a SQLite file, else the same one (an in-memory
        # SQLite database exists only on its engine's connection).
        self._writer: Engine | None = None
        # SQLite: this process's writers queue here, woken the moment the lock is free, instead of in
        # SQLite's busy handler, which polls with sleeps of 1 to 100 ms (other processes still do).
        self._write_lock: threading.RLock | None = None
        try:
            parsed = make_url(url)
        except ArgumentError:
            raise StoreConfigError(f"not a database URL: {url!r}") from None
        backend = parsed.get_backend_name()
        if backend == "sqlite":
            self.dialect = "sqlite"
            database = parsed.database or ""
            if database and database != ":memory:" and not database.startswith("file:"):
                path = Path(database).expanduser()
                path.parent.mkdir(parents=True, exist_ok=True)
                if path.is_dir():
                    raise StoreConfigError(f"the SQLite store {path} is a directory; give a file")
                parsed = parsed.set(database=str(path.resolve()))
            connect_args = {"timeout": _BUSY_TIMEOUT_S}
            self.engine: Engine = create_engine(parsed, echo=echo, connect_args=connect_args)
            self._prepare_sqlite(self.engine, path=parsed.database)
            self._write_lock = threading.RLock()
            if database and database != ":memory:" and not database.startswith("file:"):
                self._checkpointer = _Checkpointer(str(parsed.database))
                # Writes are serialized by the lock above, so one connection does them all and its page
                # cache stays warm: SQLite drops a connection's whole cache when another one has written
                # since, which writes handed round the pool's connections did nearly every time.
                self._writer = create_engine(
                    parsed, echo=echo, connect_args=connect_args, pool_size=1, max_overflow=4
                )
                self._prepare_sqlite(self._writer, cache_kib=_WRITER_CACHE_KIB, path=parsed.database)
        elif backend == "postgresql":
            self.dialect = "postgresql"
            if parsed.drivername == "postgresql":
                parsed = parsed.set(drivername="postgresql+psycopg")
            try:
                self.engine = create_engine(parsed, echo=echo, pool_pre_ping=True, pool_size=10)
            except ModuleNotFoundError:
                raise StoreConfigError(
                    "PostgreSQL needs the driver: pip install 'bastion-soc[postgres]'"
                ) from None
        else:
            raise StoreConfigError(f"unsupported database {backend!r}: use sqlite:/// or postgresql://")
        self.url = parsed.render_as_string(hide_password=True)

    @staticmethod
    def _prepare_sqlite(engine: Engine, *, cache_kib: int | None = None, path: str | None = None) -> None:
        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
            # Let SQLAlchemy's BEGIN decide when transactions start (pysqlite's own handling would not).
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute(f"PRAGMA page_size={SQLITE_PAGE_SIZE}")  # only before the first table, so before WAL
            try:  # the first statement that reads the file
                cur.execute("PRAGMA journal_mode=WAL")
            except sqlite3.DatabaseError as exc:
                # Said alone, "file is not a database" does not name the file. (Checked by SQLite, not by
                # reading the file here: closing any descriptor of it drops this process's locks on it.)
                if exc.sqlite_errorcode == sqlite3.SQLITE_NOTADB:
                    raise StoreConfigError(
                        f"{path} is not a SQLite database: give the store's file, or a new path"
                    ) from None
                raise
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute(f"PRAGMA busy_timeout={int(_BUSY_TIMEOUT_S * 1000)}")
            page_size = int(cur.execute("PRAGMA page_size").fetchone()[0])
            cur.execute(f"PRAGMA wal_autocheckpoint={_WAL_AUTOCHECKPOINT_BYTES // page_size}")
            cur.execute(f"PRAGMA journal_size_limit={_WAL_SIZE_LIMIT}")
            if cache_kib is not None:
                cur.execute(f"PRAGMA cache_size=-{int(cache_kib)}")
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            # On the driver's connection: through SQLAlchemy's execution (events, a result object) the
            # BEGIN cost ~90k instructions, and a workflow run begins a dozen transactions.
            sql = "BEGIN IMMEDIATE" if conn.get_execution_options().get("bastion_write", False) else "BEGIN"
            try:
                conn.connection.driver_connection.execute(sql)  # type: ignore[union-attr]
            except sqlite3.Error as exc:  # as SQLAlchemy would raise it (callers catch its errors)
                raise DBAPIError.instance(sql, None, exc, sqlite3.Error) from None

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction: committed on success, rolled back on any exception."""
        with (
            self._queue_for_write(),
            (self._writer or self.engine).connect().execution_options(bastion_write=True) as conn,
            conn.begin(),
        ):
            yield conn
        if self._checkpointer is not None:
            self._checkpointer.wake()

    @contextmanager
    def _queue_for_write(self) -> Iterator[None]:
        """Wait for this process's other SQLite writers. After the busy timeout it goes on to SQLite,
        whose own busy handler then fails the write as before (``database is locked``)."""
        lock = self._write_lock
        held = lock is not None and lock.acquire(timeout=_BUSY_TIMEOUT_S)
        try:
            yield
        finally:
            if held:
                assert lock is not None
                lock.release()

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read-only transaction (a consistent snapshot)."""
        with self.engine.connect() as conn, conn.begin():
            yield conn

    def migrate(self) -> None:
        """Bring the schema to the newest migration (idempotent). A store already at the newest revision
        is recognised without loading Alembic: every command opens the store, and that check is most of
        a short command's work otherwise."""
        current = self._current_revisions()
        if current == [_head_revision()]:
            return
        unknown = sorted(set(current) - _revisions()[0])
        if unknown:
            raise StoreConfigError(
                f"the store {self.url} was migrated by a newer Bastion (revision {', '.join(unknown)}); "
                "upgrade Bastion to use it"
            )
        from alembic import command
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(_MIGRATIONS))
        with (self._writer or self.engine).connect().execution_options(bastion_write=True) as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
            conn.commit()

    def _current_revisions(self) -> list[str]:
        try:
            with self.engine.connect() as conn:
                return list(conn.execute(text("SELECT version_num FROM alembic_version")).scalars())
        except Exception:  # no version table yet (a new store) or not readable: let Alembic decide
            return []

    def dispose(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.stop()
        if self._writer is not None:
            self._writer.dispose()
        self.engine.dispose()


class _Checkpointer:
    """A daemon thread that runs passive WAL checkpoints after writes, on its own connection.

    Passive checkpoints never block readers or the writer; they copy what is committed and stop at what
    is not. Started on the first write, stopped by :meth:`Database.dispose`.
    """

    def __init__(self, path: str) -> None:
        self._path = path
        self._wanted = threading.Event()
        self._stopped = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def wake(self) -> None:
        if self._thread is None:
            with self._lock:
                if self._thread is None and not self._stopping:
                    self._thread = threading.Thread(
                        target=self._run, name="bastion-wal-checkpoint", daemon=True
                    )
                    self._thread.start()
        self._wanted.set()

    def stop(self) -> None:
        self._stopping = True
        self._stopped.set()
        self._wanted.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout=30)
        self._thread = None
        self._stopping = False
        self._stopped.clear()

    def _run(self) -> None:
        conn = sqlite3.connect(self._path, timeout=30, isolation_level=None, check_same_thread=False)
        try:
            conn.execute(f"PRAGMA journal_size_limit={_WAL_SIZE_LIMIT}")
            while not self._stopping:
                self._wanted.wait()
                self._wanted.clear()
                if self._stopping:
                    break
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error as exc:  # a checkpoint can always be retried by the next one
                    _log.warning("WAL checkpoint failed: %s", exc)
                self._stopped.wait(_CHECKPOINT_INTERVAL_S)
        finally:
            with contextlib.suppress(sqlite3.Error):
                conn.close()
