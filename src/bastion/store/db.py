"""Opening the store: the engine for SQLite or PostgreSQL, with the settings each needs, and migrations.

SQLite runs in WAL mode (readers never block the writer) with a busy timeout, and write transactions
start with ``BEGIN IMMEDIATE`` so two writers queue for the lock instead of failing half-way when a
read transaction tries to become a write one.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

__all__ = ["Database", "StoreConfigError"]

_MIGRATIONS = Path(__file__).with_name("migrations")


class StoreConfigError(ValueError):
    """The database URL is unusable; the message says why."""


class Database:
    """The engine plus read and write transactions. One per process; safe to share across threads."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
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
                parsed = parsed.set(database=str(path.resolve()))
            self.engine: Engine = create_engine(parsed, echo=echo, connect_args={"timeout": 30})
            self._prepare_sqlite(self.engine)
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
    def _prepare_sqlite(engine: Engine) -> None:
        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
            # Let SQLAlchemy's BEGIN decide when transactions start (pysqlite's own handling would not).
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            immediate = conn.get_execution_options().get("bastion_write", False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction: committed on success, rolled back on any exception."""
        with self.engine.connect().execution_options(bastion_write=True) as conn, conn.begin():
            yield conn

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read-only transaction (a consistent snapshot)."""
        with self.engine.connect() as conn, conn.begin():
            yield conn

    def migrate(self) -> None:
        """Bring the schema to the newest migration (idempotent, cheap when already current)."""
        from alembic import command
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(_MIGRATIONS))
        with self.engine.connect().execution_options(bastion_write=True) as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
            conn.commit()

    def dispose(self) -> None:
        self.engine.dispose()
