"""Tables and repository for response: workflow definitions (versioned), webhook tokens, runs and their
step records, the per-tenant secrets vault and connections, the tenant's approval policy, and the
worker heartbeats used to recover the runs of a worker that died.

The durable execution state itself lives in DBOS's system database; these tables are Bastion's record
of it (what ran, with which rendered inputs and outputs, secrets masked) and what the API and CLI show.
"""

from __future__ import annotations

import functools
import re
import time
import uuid
from typing import Any

import orjson
from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    and_,
    bindparam,
    delete,
    func,
    insert,
    literal_column,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from bastion.store._util import INT64_MAX, first_row_prebuilt, run_prebuilt
from bastion.store.tables import ID, metadata, tenants

__all__ = [
    "RUN_STATUSES",
    "WorkflowRepository",
    "lock_tenant",
    "now_ms",
    "respond_connections",
    "respond_policies",
    "respond_rate_windows",
    "respond_secrets",
    "respond_workers",
    "workflow_defs",
    "workflow_run_steps",
    "workflow_runs",
    "workflow_webhooks",
]

_HEX_ID = re.compile(r"^[0-9a-f]{32}$")
RUN_STATUSES = ("running", "waiting_approval", "succeeded", "failed", "cancelled")


def now_ms() -> int:
    return int(time.time() * 1000)


_LOCK_TENANT = select(tenants.c.id).where(tenants.c.id == bindparam("b_tenant")).with_for_update()


def lock_tenant(conn: Connection, tenant_id: str) -> None:
    """Take the tenant row's lock first in a transaction that both inserts tenant rows and audits.

    On PostgreSQL an insert takes a key-share lock on the tenant row (the foreign key) and the audit
    append then asks for the row lock: two such transactions deadlock unless the row lock comes first.
    (SQLite's write transactions are exclusive already, so there it does nothing.)
    """
    if conn.dialect.name != "sqlite":
        conn.execute(_LOCK_TENANT, {"b_tenant": tenant_id})


def _tenant() -> Column[str]:
    return Column("tenant_id", String(ID), ForeignKey("tenants.id"), nullable=False)


workflow_defs = Table(
    "workflow_defs",
    metadata,
    Column("tenant_id", String(ID), ForeignKey("tenants.id"), primary_key=True),
    Column("workflow_id", String(100), primary_key=True),
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("title", String(500), nullable=False),
    Column("triggers", Text, nullable=False),
    Column("source", Text, nullable=False),
    Column("created", BigInteger, nullable=False),
    Column("created_by", String(200), nullable=False),
)

workflow_webhooks = Table(
    "workflow_webhooks",
    metadata,
    Column("tenant_id", String(ID), ForeignKey("tenants.id"), primary_key=True),
    Column("workflow_id", String(100), primary_key=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("created", BigInteger, nullable=False),
)

workflow_runs = Table(
    "workflow_runs",
    metadata,
    Column("id", String(ID), primary_key=True),
    _tenant(),
    Column("workflow_id", String(100), nullable=False),
    Column("version", Integer, nullable=False),
    Column("status", String(20), nullable=False),
    Column("trigger", Text, nullable=False),
    Column("inputs", Text, nullable=False),
    Column("outputs", Text, nullable=True),
    Column("error", Text, nullable=True),
    Column("waiting_step", String(200), nullable=True),
    Column("parent_run_id", String(ID), nullable=True),
    Column("retry_of", String(ID), nullable=True),
    Column("requested_by", String(200), nullable=True),
    Column("created", BigInteger, nullable=False),
    Column("updated", BigInteger, nullable=False),
    Column("finished", BigInteger, nullable=True),
    # The alert and case a run acted on (from its inputs or trigger payload), so a case's timeline shows
    # its runs' steps and the metrics can count automated actions per alert.
    Column("alert_id", String(ID), nullable=True),
    Column("case_id", String(ID), nullable=True),
    # What the run sees as ``tenant`` (name, connection names), fixed when it is created: the engine reads
    # it, with the definition and inputs, without a checkpoint, so it must not change under a replay.
    # NULL for runs created before 0012; those load their plan in a checkpointed step.
    Column("tenant_context", Text, nullable=True),
    Index(None, "tenant_id", "created"),
    Index(None, "tenant_id", "case_id"),
    Index(None, "status"),  # the workers' sweep for parked runs (respond.parking), across tenants
)

workflow_run_steps = Table(
    "workflow_run_steps",
    metadata,
    Column("run_id", String(ID), ForeignKey("workflow_runs.id"), primary_key=True),
    Column("key", String(300), primary_key=True),
    _tenant(),
    Column("step_id", String(100), nullable=False),
    Column("iteration", Integer, nullable=True),
    Column("action", String(200), nullable=True),
    Column("status", String(20), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("inputs", Text, nullable=True),
    Column("output", Text, nullable=True),
    Column("error", Text, nullable=True),
    Column("logs", Text, nullable=True),
    Column("approval_id", String(100), nullable=True),
    Column("started", BigInteger, nullable=False),
    Column("finished", BigInteger, nullable=True),
    Column("duration_ms", Integer, nullable=True),
)

# Built once: every run start reads its definition.
_DEFINITION = select(workflow_defs).where(
    workflow_defs.c.tenant_id == bindparam("b_tenant"), workflow_defs.c.workflow_id == bindparam("b_workflow")
)
_DEFINITION_VERSION = _DEFINITION.where(workflow_defs.c.version == bindparam("b_version"))
# Limit and offset as literals: bound ones would be parameters the prebuilt execution is not given.
_LATEST_DEFINITION = (
    _DEFINITION.order_by(workflow_defs.c.version.desc())
    .limit(literal_column("1"))
    .offset(literal_column("0"))
)
_RUN = select(workflow_runs).where(
    workflow_runs.c.tenant_id == bindparam("b_tenant"), workflow_runs.c.id == bindparam("b_run")
)
_INSERT_RUN = insert(workflow_runs)  # every run start (see AuditRepository for why built once)
# Every column a new step row may leave out, so each insert names the same columns (one compiled form).
_STEP_DEFAULTS = {
    c.name: None for c in workflow_run_steps.columns if c.nullable and c.name not in ("run_id", "key")
}

# The columns a new step row cannot do without (the others have defaults in record_step or may be NULL).
_STEP_REQUIRED = frozenset(
    c.name
    for c in workflow_run_steps.columns
    if not c.nullable and c.name not in ("run_id", "key", "tenant_id", "started", "attempts", "status")
)


@functools.cache
def _upsert_step(dialect: str, given: tuple[str, ...]) -> Any:
    """The step record upsert that updates the ``given`` columns of an existing row, built once per
    dialect and set of columns (see AuditRepository for why statements are built once). The row's
    values are bound at execution."""
    upsert = (sqlite_insert if dialect == "sqlite" else postgresql_insert)(workflow_run_steps)
    keys = [workflow_run_steps.c.run_id, workflow_run_steps.c.key]
    if not given:
        return upsert.on_conflict_do_nothing(index_elements=keys)
    return upsert.on_conflict_do_update(
        index_elements=keys,
        set_={name: upsert.excluded[name] for name in given},
        where=workflow_run_steps.c.tenant_id == upsert.excluded.tenant_id,  # never another tenant's row
    )


@functools.cache
def _set_run_status(only_if_active: bool) -> Any:
    """The run status update, built once (see AuditRepository for why): the columns set are bound at
    execution, the run by ``b_tenant`` and ``b_run``."""
    q = update(workflow_runs).where(
        workflow_runs.c.tenant_id == bindparam("b_tenant"), workflow_runs.c.id == bindparam("b_run")
    )
    if only_if_active:  # literals, not IN's expanding parameter, so that the SQL is compiled once
        active = ("running", "waiting_approval")
        q = q.where(or_(*(workflow_runs.c.status == literal_column(f"'{s}'") for s in active)))
    return q


respond_secrets = Table(
    "respond_secrets",
    metadata,
    Column("tenant_id", String(ID), ForeignKey("tenants.id"), primary_key=True),
    Column("name", String(200), primary_key=True),
    Column("ciphertext", Text, nullable=False),
    Column("created", BigInteger, nullable=False),
    Column("updated", BigInteger, nullable=False),
)

respond_connections = Table(
    "respond_connections",
    metadata,
    Column("tenant_id", String(ID), ForeignKey("tenants.id"), primary_key=True),
    Column("name", String(200), primary_key=True),
    Column("config", Text, nullable=False),
    Column("updated", BigInteger, nullable=False),
)

respond_policies = Table(
    "respond_policies",
    metadata,
    Column("tenant_id", String(ID), ForeignKey("tenants.id"), primary_key=True),
    Column("document", Text, nullable=False),
    Column("updated", BigInteger, nullable=False),
)

# Per-connection rate limits, shared by every worker on the store: the call times (epoch ms) inside the
# connection's window, oldest first (``connectors/ratelimit.py``).
respond_rate_windows = Table(
    "respond_rate_windows",
    metadata,
    Column("tenant_id", String(ID), ForeignKey("tenants.id"), primary_key=True),
    Column("connection", String(200), primary_key=True),
    Column("calls", Text, nullable=False),
)

respond_workers = Table(
    "respond_workers",
    metadata,
    Column("executor_id", String(100), primary_key=True),
    Column("host", String(200), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("started", BigInteger, nullable=False),
    Column("heartbeat", BigInteger, nullable=False),
)


def _dump(value: Any) -> str:
    return orjson.dumps(value, default=str).decode()


def _load(text: str | None) -> Any:
    return None if text is None else orjson.loads(text)


def _run(row: Any) -> dict[str, Any]:
    return {
        "run_id": row.id,
        "workflow_id": row.workflow_id,
        "version": row.version,
        "status": row.status,
        "trigger": _load(row.trigger),
        "inputs": _load(row.inputs),
        "outputs": _load(row.outputs),
        "error": row.error,
        "waiting_step": row.waiting_step,
        "parent_run_id": row.parent_run_id,
        "retry_of": row.retry_of,
        "requested_by": row.requested_by,
        "created": row.created,
        "updated": row.updated,
        "finished": row.finished,
    }


def _step(row: Any) -> dict[str, Any]:
    return {
        "key": row.key,
        "step_id": row.step_id,
        "iteration": row.iteration,
        "action": row.action,
        "status": row.status,
        "attempts": row.attempts,
        "inputs": _load(row.inputs),
        "output": _load(row.output),
        "error": row.error,
        "logs": _load(row.logs) or [],
        "approval_id": row.approval_id,
        "started": row.started,
        "finished": row.finished,
        "duration_ms": row.duration_ms,
    }


def _linked_id(key: str, inputs: dict[str, Any], trigger: dict[str, Any]) -> str | None:
    """An id-shaped ``key`` of the inputs, else of the trigger (or its payload); ids are 32 hex."""
    payload = trigger.get("payload")
    for source in (inputs, trigger, payload if isinstance(payload, dict) else {}):
        value = source.get(key)
        if isinstance(value, str) and _HEX_ID.match(value.strip().lower()):
            return value.strip().lower()
    return None


class WorkflowRepository:
    """Definitions, runs and step records of one tenant; every query filters on the tenant."""

    def __init__(self, conn: Connection, tenant_id: str) -> None:
        self.conn = conn
        self.tenant_id = tenant_id

    # ------------------------------------------------------------ definitions

    def latest_version(self, workflow_id: str) -> int:
        v = self.conn.execute(
            select(func.max(workflow_defs.c.version)).where(
                workflow_defs.c.tenant_id == self.tenant_id, workflow_defs.c.workflow_id == workflow_id
            )
        ).scalar()
        return int(v or 0)

    def add_definition(
        self, workflow_id: str, title: str, triggers: list[str], source: str, actor: str
    ) -> tuple[int, bool]:
        """Store ``source`` as the next version; (version, created). Unchanged text is not stored again."""
        latest = self.latest_version(workflow_id)
        if latest:
            current = self.definition(workflow_id, latest)
            if current is not None and current["source"] == source:
                return latest, False
        version = latest + 1
        self.conn.execute(
            insert(workflow_defs).values(
                tenant_id=self.tenant_id,
                workflow_id=workflow_id,
                version=version,
                title=title,
                triggers=_dump(triggers),
                source=source,
                created=now_ms(),
                created_by=actor,
            )
        )
        return version, True

    def definition(self, workflow_id: str, version: int | None = None) -> dict[str, Any] | None:
        """The stored ``version`` (latest when None), or None. A version below 1 or past 64 bits is None
        too: none is stored, and the driver could not bind it (CLI ``id@N``, web ``?version=``)."""
        params = {"b_tenant": self.tenant_id, "b_workflow": workflow_id}
        if version is not None and not 1 <= version <= INT64_MAX:
            return None
        if version is None:
            row = first_row_prebuilt(self.conn, _LATEST_DEFINITION, params)
        else:
            row = first_row_prebuilt(self.conn, _DEFINITION_VERSION, {**params, "b_version": version})
        if row is None:
            return None
        return {
            "workflow_id": row.workflow_id,
            "version": row.version,
            "title": row.title,
            "triggers": _load(row.triggers),
            "source": row.source,
            "created": row.created,
            "created_by": row.created_by,
        }

    def list_definitions(self) -> list[dict[str, Any]]:
        latest = (
            select(workflow_defs.c.workflow_id, func.max(workflow_defs.c.version).label("v"))
            .where(workflow_defs.c.tenant_id == self.tenant_id)
            .group_by(workflow_defs.c.workflow_id)
            .subquery()
        )
        rows = self.conn.execute(
            select(workflow_defs)
            .join(
                latest,
                and_(
                    workflow_defs.c.workflow_id == latest.c.workflow_id, workflow_defs.c.version == latest.c.v
                ),
            )
            .where(workflow_defs.c.tenant_id == self.tenant_id)
            .order_by(workflow_defs.c.workflow_id)
        )
        return [
            {
                "workflow_id": r.workflow_id,
                "version": r.version,
                "title": r.title,
                "triggers": _load(r.triggers),
                "created": r.created,
            }
            for r in rows
        ]

    def with_trigger(self, kind: str) -> list[dict[str, Any]]:
        """Latest definitions whose triggers include ``kind``."""
        found = []
        for d in self.list_definitions():
            if kind in d["triggers"]:
                full = self.definition(d["workflow_id"], d["version"])
                if full is not None:
                    found.append(full)
        return found

    def set_webhook_token(self, workflow_id: str, token_hash: str) -> None:
        self.conn.execute(
            delete(workflow_webhooks).where(
                workflow_webhooks.c.tenant_id == self.tenant_id,
                workflow_webhooks.c.workflow_id == workflow_id,
            )
        )
        self.conn.execute(
            insert(workflow_webhooks).values(
                tenant_id=self.tenant_id, workflow_id=workflow_id, token_hash=token_hash, created=now_ms()
            )
        )

    def has_webhook_token(self, workflow_id: str) -> bool:
        return (
            self.conn.execute(
                select(workflow_webhooks.c.workflow_id).where(
                    workflow_webhooks.c.tenant_id == self.tenant_id,
                    workflow_webhooks.c.workflow_id == workflow_id,
                )
            ).first()
            is not None
        )

    # ------------------------------------------------------------ runs

    def create_run(
        self,
        workflow_id: str,
        version: int,
        *,
        inputs: dict[str, Any],
        trigger: dict[str, Any],
        requested_by: str | None,
        parent_run_id: str | None = None,
        retry_of: str | None = None,
        run_id: str | None = None,
        alert_id: str | None = None,
        case_id: str | None = None,
        tenant_context: dict[str, Any] | None = None,
    ) -> str:
        """Record a new run. The alert and case it acts on are ``alert_id``/``case_id`` when given, else
        the ``alert_id``/``case_id`` keys of its inputs or of its trigger's payload. ``tenant_context`` is
        what its expressions see as ``tenant``, fixed for the run's life."""
        rid = run_id or uuid.uuid4().hex
        t = now_ms()
        alert_id = alert_id or _linked_id("alert_id", inputs, trigger)
        case_id = case_id or _linked_id("case_id", inputs, trigger)
        run_prebuilt(
            self.conn,
            _INSERT_RUN,
            {
                "id": rid,
                "tenant_id": self.tenant_id,
                "workflow_id": workflow_id,
                "version": version,
                "status": "running",
                "trigger": _dump(trigger),
                "inputs": _dump(inputs),
                "requested_by": requested_by,
                "parent_run_id": parent_run_id,
                "retry_of": retry_of,
                "created": t,
                "updated": t,
                "alert_id": alert_id,
                "case_id": case_id,
                "tenant_context": None if tenant_context is None else _dump(tenant_context),
            },
        )
        return rid

    def get_run(self, run_id: str) -> dict[str, Any] | None:
        found = self.get_run_and_tenant(run_id)
        return None if found is None else found[0]

    def get_run_and_tenant(self, run_id: str) -> tuple[dict[str, Any], dict[str, Any] | None] | None:
        """A run and the ``tenant`` it was created with (None for runs from before that was recorded),
        from one read of its row."""
        row = first_row_prebuilt(self.conn, _RUN, {"b_tenant": self.tenant_id, "b_run": run_id})
        if row is None:
            return None
        return _run(row), None if row.tenant_context is None else dict(_load(row.tenant_context))

    def list_runs(
        self, *, status: str | None = None, workflow_id: str | None = None, limit: int = 100, offset: int = 0
    ) -> list[dict[str, Any]]:
        q = select(workflow_runs).where(workflow_runs.c.tenant_id == self.tenant_id)
        if status:
            q = q.where(workflow_runs.c.status == status)
        if workflow_id:
            q = q.where(workflow_runs.c.workflow_id == workflow_id)
        q = q.order_by(workflow_runs.c.created.desc(), workflow_runs.c.id).limit(limit).offset(offset)
        return [_run(r) for r in self.conn.execute(q)]

    def active_descendants(self, run_id: str) -> list[str]:
        """The sub-workflow runs (``uses``) started under ``run_id``, at any depth, still running or
        waiting for an approval."""
        found: list[str] = []
        parents = [run_id]
        while parents:
            q = select(workflow_runs.c.id, workflow_runs.c.status).where(
                workflow_runs.c.tenant_id == self.tenant_id, workflow_runs.c.parent_run_id.in_(parents)
            )
            rows = self.conn.execute(q).all()
            parents = [r.id for r in rows]
            found += [r.id for r in rows if r.status in ("running", "waiting_approval")]
        return found

    def set_run_status(
        self,
        run_id: str,
        status: str,
        *,
        outputs: Any = None,
        error: str | None = None,
        waiting_step: str | None = None,
        only_if_active: bool = True,
    ) -> bool:
        values: dict[str, Any] = {"status": status, "updated": now_ms(), "waiting_step": waiting_step}
        if status in ("succeeded", "failed", "cancelled"):
            values["finished"] = now_ms()
            values["outputs"] = _dump(outputs) if outputs is not None else None
            values["error"] = error
        values.update(b_tenant=self.tenant_id, b_run=run_id)
        return bool(run_prebuilt(self.conn, _set_run_status(only_if_active), values))

    def steps(self, run_id: str) -> list[dict[str, Any]]:
        rows = self.conn.execute(
            select(workflow_run_steps)
            .where(workflow_run_steps.c.tenant_id == self.tenant_id, workflow_run_steps.c.run_id == run_id)
            .order_by(workflow_run_steps.c.started, workflow_run_steps.c.key)
        )
        return [_step(r) for r in rows]

    def record_step(self, run_id: str, key: str, **values: Any) -> None:
        """Insert or update one step record (``values`` are column values; JSON ones are encoded here).
        One statement: an upsert when ``values`` could make a new row, else an update of the existing
        one. A step is recorded several times (started, each attempt, finished), and a look for the row
        before writing it was a statement more each time."""
        for name in ("inputs", "output", "logs"):
            if name in values:
                values[name] = _dump(values[name])
        given = list(values)
        if not _STEP_REQUIRED.issubset(values):  # the row exists already: only an update can be meant
            updated = self.conn.execute(
                update(workflow_run_steps)
                .where(
                    workflow_run_steps.c.tenant_id == self.tenant_id,
                    workflow_run_steps.c.run_id == run_id,
                    workflow_run_steps.c.key == key,
                )
                .values(**values)
            )
            if not updated.rowcount:
                raise LookupError(f"run {run_id} has no step record {key!r} to update")
            return
        row = {
            "tenant_id": self.tenant_id,
            "run_id": run_id,
            "key": key,
            **_STEP_DEFAULTS,
            "started": now_ms(),
            "attempts": 0,
            "status": "running",
            **values,
        }
        run_prebuilt(self.conn, _upsert_step(self.conn.dialect.name, tuple(given)), row)
