"""Whether this execution of an agent run still owns it.

An executor that shuts down (a command that ran a run inline exits with the run parked on an approval; a
worker stops) leaves the run's thread behind for a moment, and a new executor in the same process may
take the run over. The old execution must neither act nor record an outcome: the run stays pending for
the executor that recovers it. It stops by raising :class:`Abandoned`, a BaseException, so that neither
the run's own error handling nor DBOS (which records any Exception a workflow or step raises as its
outcome) takes it for the run's end or for a tool's result.
"""

from __future__ import annotations

from dbos import DBOS

__all__ = ["Abandoned", "check_owner"]


class Abandoned(BaseException):
    """This execution belongs to an executor that is shutting down or has shut down."""


def check_owner() -> None:
    """Raise :class:`Abandoned` once ``DBOS.destroy`` has begun (the thread pool stops, so the next
    wait or store call of the run would fail), or when another executor launched in this process owns
    the run now."""
    from dbos._context import get_local_dbos_context

    from bastion.respond.runtime import _executor_launched

    if not _executor_launched():
        raise Abandoned("the executor is shutting down; the run stays pending for the next one")
    ctx = get_local_dbos_context()
    if ctx is not None and ctx.executor_id != DBOS.executor_id:
        raise Abandoned(f"executor {ctx.executor_id} is gone; {DBOS.executor_id} owns the run now")
