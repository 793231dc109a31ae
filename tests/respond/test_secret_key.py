"""The vault key file: processes that start together (two workers) agree on one complete key."""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path

from cryptography.fernet import Fernet


def _load(folder: str, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    os.environ.pop("BASTION_SECRET_KEY", None)
    os.environ["BASTION_SECRET_KEY_FILE"] = f"{folder}/secret.key"
    from bastion.store import Database
    from bastion.tenancy.secrets import load_key

    try:
        key = load_key(Database(f"sqlite:///{folder}/b.db"))
        Fernet(key)  # a half-written file would fail here
        out.put(key)
    except Exception as exc:
        out.put(f"error: {exc}")


def test_processes_creating_the_key_at_once_all_get_the_same_complete_key(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    results: multiprocessing.Queue = ctx.Queue()  # type: ignore[type-arg]
    procs = [ctx.Process(target=_load, args=(str(tmp_path), results)) for _ in range(6)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    keys = [results.get(timeout=10) for _ in procs]
    assert len(set(keys)) == 1 and isinstance(keys[0], bytes), keys
    assert (tmp_path / "secret.key").read_bytes().strip() == keys[0]
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".secret-key-")) == []
