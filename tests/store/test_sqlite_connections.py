"""How a SQLite store hands out connections: writes keep one connection with a large page cache.

SQLite drops a connection's page cache when another connection has written since its last transaction, so
writes that went round the pool's connections re-read the event indexes from the file nearly every batch.
"""

from __future__ import annotations

from sqlalchemy import Connection

from bastion.store import Database
from bastion.store.db import _WRITER_CACHE_KIB


def _dbapi(conn: Connection) -> object:
    return conn.connection.dbapi_connection


def test_writes_use_one_connection_with_the_large_cache_while_reads_go_round(sqlite_db: Database) -> None:
    with sqlite_db.read() as first_read:
        reader = _dbapi(first_read)
        with sqlite_db.write() as conn:
            writer = _dbapi(conn)
            assert conn.exec_driver_sql("PRAGMA cache_size").scalar() == -_WRITER_CACHE_KIB
    # Reads come and go on the pool's connections in between; the writer's stays the writer's.
    with sqlite_db.read() as second_read:
        assert second_read.exec_driver_sql("PRAGMA cache_size").scalar() == -2000  # SQLite's default
        with sqlite_db.write() as conn:
            assert _dbapi(conn) is writer
    assert writer is not reader


def test_an_in_memory_store_writes_and_reads_on_its_one_database() -> None:
    memory = Database("sqlite:///:memory:")
    try:
        with memory.write() as conn:
            conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
            conn.exec_driver_sql("INSERT INTO t VALUES (7)")
        with memory.read() as conn:
            assert conn.exec_driver_sql("SELECT x FROM t").scalar() == 7
    finally:
        memory.dispose()
