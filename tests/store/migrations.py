"""Running the store's Alembic migrations to a given revision, for the tests of one migration."""

from __future__ import annotations

from bastion.store import Database


def run_migration(db: Database, action: str, revision: str) -> None:
    """``alembic upgrade|downgrade REVISION`` on ``db``, in one write transaction."""
    from alembic import command
    from alembic.config import Config

    from bastion.store.db import _MIGRATIONS

    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    with db.engine.connect().execution_options(bastion_write=True) as conn:
        cfg.attributes["connection"] = conn
        getattr(command, action)(cfg, revision)
        conn.commit()
