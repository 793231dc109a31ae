"""Per-tenant triage settings and noise rules: the triage policy document and scoped suppressions.

The repository classes here read and write rows of their own tenant only; the services in
``bastion.triage`` add the audit entries.
"""

from __future__ import annotations

from collections.abc import Iterable
from operator import itemgetter
from typing import Any

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
    bindparam,
    func,
    select,
)

from bastion.store._util import chunks, driver_mark, insert_tuples
from bastion.store.tables import (
    alert_observables,
    alerts,
    case_alerts,
    case_entities,
    case_observables,
    case_tasks,
    case_timeline,
    cases,
    metadata,
)

__all__ = ["triage_policies", "triage_suppressions"]

# One JSON document per tenant (``bastion.triage.policy.TriagePolicy``): weights, windows, fingerprints,
# auto-close, queues, SLA targets, manual-minute estimates and case templates. Absent means defaults.
triage_policies = Table(
    "triage_policies",
    metadata,
    Column("tenant_id", String(32), ForeignKey("tenants.id"), primary_key=True),
    Column("document", Text, nullable=False),
    Column("updated", BigInteger, nullable=False),
    Column("updated_by", String(200), nullable=False),
)

# A suppression closes matching alerts as they arrive (they stay stored and searchable, with the reason).
# It matches on any of: a rule id, a source, alert field values (JSON object) and one entity. Every
# suppression has an owner and an expiry.
triage_suppressions = Table(
    "triage_suppressions",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("tenant_id", String(32), ForeignKey("tenants.id"), nullable=False),
    Column("rule_id", String(200), nullable=True),
    Column("source", String(100), nullable=True),
    Column("fields", Text, nullable=False, default="{}"),
    Column("entity_type", String(20), nullable=True),
    Column("entity_value", String(2048), nullable=True),
    Column("reason", Text, nullable=True),
    Column("owner", String(200), nullable=False),
    Column("created", BigInteger, nullable=False),
    Column("created_by", String(200), nullable=False),
    Column("expires", BigInteger, nullable=False),
    Column("hits", Integer, nullable=False, default=0),
    Column("last_hit", BigInteger, nullable=True),
    Index(None, "tenant_id", "expires"),
)


# ---- suppressions
# Rows of ``triage_suppressions`` for one tenant. ``bastion.triage.suppress`` validates, matches and audits;
# this class only reads and writes rows, always filtered on the tenant.


class SuppressionRepository:
    """Suppression rows of one tenant, as plain mappings (``fields`` is JSON text)."""

    def __init__(self, conn: Connection, tenant_id: str) -> None:
        self.conn = conn
        self.tenant_id = tenant_id

    def insert(self, row: dict[str, object]) -> None:
        self.conn.execute(triage_suppressions.insert().values(**row, tenant_id=self.tenant_id))

    def get(self, suppression_id: str) -> dict[str, object] | None:
        t = triage_suppressions
        row = self.conn.execute(
            t.select().where(t.c.tenant_id == self.tenant_id, t.c.id == suppression_id)
        ).first()
        return dict(row._mapping) if row is not None else None

    def delete(self, suppression_id: str) -> bool:
        t = triage_suppressions
        result = self.conn.execute(
            t.delete().where(t.c.tenant_id == self.tenant_id, t.c.id == suppression_id)
        )
        return bool(result.rowcount)

    def list(self, *, active_at: int | None = None) -> list[dict[str, object]]:
        """Oldest first; with ``active_at``, only those not expired at that time."""
        t = triage_suppressions
        q = t.select().where(t.c.tenant_id == self.tenant_id)
        if active_at is not None:
            q = q.where(t.c.expires > active_at)
        return [dict(r._mapping) for r in self.conn.execute(q.order_by(t.c.created, t.c.id))]

    def add_hits(self, hits: dict[str, int], now: int) -> None:
        """Count ``hits[id]`` more matches for each suppression and stamp ``last_hit``."""
        t = triage_suppressions
        for suppression_id, n in sorted(hits.items()):
            if n <= 0:
                continue
            self.conn.execute(
                t.update()
                .where(t.c.tenant_id == self.tenant_id, t.c.id == suppression_id)
                .values(hits=t.c.hits + n, last_hit=now)
            )


# ---- triage engine
# Batched reads and writes for ``bastion.triage.engine``: one statement per table per batch of alerts,
# never one per alert. Every query filters on the tenant.

CLOSED_CASE_STATUSES = ("resolved", "closed")


class TriageRepository:
    """What the triage engine reads and writes about alerts, cases and case entities of one tenant."""

    def __init__(self, conn: Connection, tenant_id: str) -> None:
        self.conn = conn
        self.tenant_id = tenant_id

    def lock(self) -> None:
        """Serialise triage per tenant (PostgreSQL; SQLite write transactions already are): two batches
        deciding dedupe, links and case numbers at once would each miss the other's alerts and cases.
        Locks the tenant row, which the audit append locks later in the same transaction anyway."""
        from bastion.store.tables import tenants

        self.conn.execute(select(tenants.c.id).where(tenants.c.id == self.tenant_id).with_for_update())

    # -- reads

    def open_case_entities(self, entities: Iterable[tuple[str, str]]) -> list[Any]:
        """``case_entities`` rows (type, value, case_id, first_seen, last_seen, tactics) of these
        entities in cases that are still open. One query per entity type and chunk of values, so the
        (tenant, type, value) key is searched instead of every entity row of the tenant, closed cases'
        included, being scanned; on the driver, with no statement to compile."""
        by_type: dict[str, set[str]] = {}
        for t, v in entities:
            by_type.setdefault(t, set()).add(v)
        mark = driver_mark(self.conn)
        closed = ", ".join([mark] * len(CLOSED_CASE_STATUSES))
        out: list[Any] = []
        for t, values in sorted(by_type.items()):
            for chunk in chunks(sorted(values)):
                out.extend(
                    self.conn.exec_driver_sql(
                        "SELECT ce.type, ce.value, ce.case_id, ce.first_seen, ce.last_seen, ce.tactics"
                        f" FROM {case_entities.name} ce JOIN {cases.name} c ON c.id = ce.case_id"
                        f" WHERE ce.tenant_id = {mark} AND ce.type = {mark}"
                        f" AND ce.value IN ({', '.join([mark] * len(chunk))})"
                        f" AND c.tenant_id = {mark} AND c.status NOT IN ({closed})",
                        (self.tenant_id, t, *chunk, self.tenant_id, *CLOSED_CASE_STATUSES),
                    )
                )
        return out

    def cases(self, case_ids: Iterable[str]) -> list[Any]:
        """The case rows (every column) of these ids."""
        ids = sorted(set(case_ids))
        out: list[Any] = []
        for chunk in chunks(ids):
            out.extend(
                self.conn.execute(
                    select(cases).where(cases.c.tenant_id == self.tenant_id, cases.c.id.in_(chunk))
                )
            )
        return out

    def entity_history(
        self, entities: Iterable[tuple[str, str]], since: int, cap: int
    ) -> dict[tuple[str, str], int]:
        """How many alerts (repeats included) each entity was on since ``since`` (epoch ms), counted
        up to ``cap``: the score saturates there, and a busy host would otherwise cost a scan of all
        its alerts in every batch.

        One small query per entity, run on the driver's cursor: a batch asks about hundreds of hosts
        and users, and SQLAlchemy's work per statement took three times as long as the query."""
        mark = driver_mark(self.conn)
        sql = (
            f"SELECT COALESCE(SUM(recent.n), 0) FROM (SELECT a.count AS n FROM {alert_observables.name} ao"
            f" JOIN {alerts.name} a ON a.id = ao.alert_id WHERE ao.tenant_id = {mark} AND ao.type = {mark}"
            f" AND ao.value = {mark} AND a.time >= {mark} LIMIT {mark}) recent"
        )
        out: dict[tuple[str, str], int] = {}
        cursor = self.conn.connection.cursor()
        try:
            for t, v in sorted(set(entities)):
                cursor.execute(sql, (self.tenant_id, t, v, since, cap))
                row = cursor.fetchone()  # an aggregate: always one row
                n = int(row[0]) if row is not None else 0
                if n:
                    out[(t, v)] = min(n, cap)
        finally:
            cursor.close()
        return out

    def case_hosts(self, case_ids: Iterable[str]) -> dict[str, set[str]]:
        """The host entities of these cases (how widely a shared value has spread)."""
        ids = sorted(set(case_ids))
        ce = case_entities
        out: dict[str, set[str]] = {}
        for chunk in chunks(ids):
            rows = self.conn.execute(
                select(ce.c.case_id, ce.c.value).where(
                    ce.c.tenant_id == self.tenant_id, ce.c.case_id.in_(chunk), ce.c.type == "host"
                )
            )
            for r in rows:
                out.setdefault(r.case_id, set()).add(r.value)
        return out

    def next_case_number(self) -> int:
        return (
            int(
                self.conn.execute(
                    select(func.coalesce(func.max(cases.c.number), 0)).where(
                        cases.c.tenant_id == self.tenant_id
                    )
                ).scalar_one()
            )
            + 1
        )

    def case_alert_documents(self, case_id: str) -> list[str]:
        """The documents of the alerts currently linked to a case (``alerts.case_id``)."""
        return list(
            self.conn.execute(
                select(alerts.c.document).where(
                    alerts.c.tenant_id == self.tenant_id, alerts.c.case_id == case_id
                )
            ).scalars()
        )

    # -- writes (rows carry every column but the tenant, which is added here)

    def _insert(
        self, table: Table, rows: list[dict[str, Any]], *, plain: bool = False, skip_existing: bool = False
    ) -> None:
        """``plain``: every column of the rows is a plain value with no client-side default, so the
        rows go through the driver's executemany directly (the high-volume tables of a batch);
        ``skip_existing`` (plain only): rows whose primary key is stored are left out."""
        if not rows:
            return
        tenant = self.tenant_id
        if plain:  # tuples of the rows' values and the tenant, with no tagged copy of each row
            names = list(rows[0])
            get = itemgetter(*names)
            params = [(*get(r), tenant) for r in rows] if len(names) > 1 else [(get(r), tenant) for r in rows]
            insert_tuples(self.conn, table, [*names, "tenant_id"], params, skip_existing=skip_existing)
        else:
            self.conn.execute(table.insert(), [{**r, "tenant_id": tenant} for r in rows])

    def insert_cases(self, rows: list[dict[str, Any]]) -> None:
        self._insert(cases, rows)

    def insert_case_alerts(self, rows: list[dict[str, Any]]) -> None:
        self._insert(case_alerts, rows, plain=True)

    def insert_timeline(self, rows: list[dict[str, Any]]) -> None:
        self._insert(case_timeline, rows, plain=True)

    def insert_tasks(self, rows: list[dict[str, Any]]) -> None:
        self._insert(case_tasks, rows)

    def insert_case_observables(self, rows: list[dict[str, Any]]) -> None:
        """Add observables to cases; a row whose (case, type, value) the case already holds is skipped
        by the primary key, keeping its first ``added`` (no lookup first: one statement per batch)."""
        self._insert(case_observables, rows, plain=True, skip_existing=True)

    def update_cases(self, rows: list[dict[str, Any]]) -> None:
        """Triage's view of existing cases: score, components, techniques, tactics, newest alert."""
        if not rows:
            return
        c = cases
        self.conn.execute(
            c.update()
            .where(c.c.tenant_id == self.tenant_id, c.c.id == bindparam("_id"))
            .values(
                score=bindparam("_score"),
                score_components=bindparam("_score_components"),
                techniques=bindparam("_techniques"),
                tactics=bindparam("_tactics"),
                last_alert=bindparam("_last_alert"),
                updated=bindparam("_updated"),
            ),
            [{f"_{k}": v for k, v in r.items()} for r in rows],
        )

    def raise_severity(self, severities: dict[str, int]) -> None:
        """Set each case's severity to the given one where that is higher."""
        if not severities:
            return
        c = cases
        self.conn.execute(
            c.update()
            .where(
                c.c.tenant_id == self.tenant_id,
                c.c.id == bindparam("_id"),
                c.c.severity_id < bindparam("_sev"),
            )
            .values(severity_id=bindparam("_sev")),
            [{"_id": k, "_sev": v} for k, v in sorted(severities.items())],
        )

    def upsert_case_entities(self, new: list[dict[str, Any]], changed: list[dict[str, Any]]) -> None:
        """Insert ``new`` rows; update last_seen and tactics of ``changed`` (existing) ones."""
        self._insert(case_entities, new)
        if changed:
            ce = case_entities
            self.conn.execute(
                ce.update()
                .where(
                    ce.c.tenant_id == self.tenant_id,
                    ce.c.case_id == bindparam("_case_id"),
                    ce.c.type == bindparam("_type"),
                    ce.c.value == bindparam("_value"),
                )
                .values(
                    first_seen=bindparam("_first_seen"),
                    last_seen=bindparam("_last_seen"),
                    tactics=bindparam("_tactics"),
                ),
                [{f"_{k}": v for k, v in r.items()} for r in changed],
            )

    def replace_case_entities(self, case_id: str, rows: list[dict[str, Any]]) -> None:
        """Drop a case's entity rows and write ``rows`` instead (after a merge, split or move)."""
        ce = case_entities
        self.conn.execute(ce.delete().where(ce.c.tenant_id == self.tenant_id, ce.c.case_id == case_id))
        self._insert(ce, rows)
