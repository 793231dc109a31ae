"""Per-tenant triage settings and noise rules: the triage policy document and scoped suppressions.

The repository classes here read and write rows of their own tenant only; the services in
``bastion.triage`` add the audit entries.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, ForeignKey, Index, Integer, String, Table, Text

from bastion.store.tables import metadata

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

from sqlalchemy import Connection as _SqlConnection  # noqa: E402  (kept with its section)


class SuppressionRepository:
    """Suppression rows of one tenant, as plain mappings (``fields`` is JSON text)."""

    def __init__(self, conn: _SqlConnection, tenant_id: str) -> None:
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

from collections.abc import Iterable as _Iterable  # noqa: E402  (kept with its section)
from collections.abc import Sequence as _Sequence  # noqa: E402
from typing import Any as _Any  # noqa: E402

from sqlalchemy import bindparam as _bindparam  # noqa: E402
from sqlalchemy import func as _func  # noqa: E402
from sqlalchemy import select as _select  # noqa: E402

from bastion.store.tables import (  # noqa: E402
    alert_observables as _alert_observables,
)
from bastion.store.tables import (  # noqa: E402
    alerts as _alerts,
)
from bastion.store.tables import (  # noqa: E402
    case_alerts as _case_alerts,
)
from bastion.store.tables import (  # noqa: E402
    case_entities as _case_entities,
)
from bastion.store.tables import (  # noqa: E402
    case_observables as _case_observables,
)
from bastion.store.tables import (  # noqa: E402
    case_tasks as _case_tasks,
)
from bastion.store.tables import (  # noqa: E402
    case_timeline as _case_timeline,
)
from bastion.store.tables import (  # noqa: E402
    cases as _cases,
)

CLOSED_CASE_STATUSES = ("resolved", "closed")
_CHUNK = 500


def _chunked(items: _Sequence[_Any]) -> _Iterable[_Sequence[_Any]]:
    for i in range(0, len(items), _CHUNK):
        yield items[i : i + _CHUNK]


class TriageRepository:
    """What the triage engine reads and writes about alerts, cases and case entities of one tenant."""

    def __init__(self, conn: _SqlConnection, tenant_id: str) -> None:
        self.conn = conn
        self.tenant_id = tenant_id

    def lock(self) -> None:
        """Serialise triage per tenant (PostgreSQL; SQLite write transactions already are): two batches
        deciding dedupe, links and case numbers at once would each miss the other's alerts and cases.
        Locks the tenant row, which the audit append locks later in the same transaction anyway."""
        from bastion.store.tables import tenants

        self.conn.execute(_select(tenants.c.id).where(tenants.c.id == self.tenant_id).with_for_update())

    # -- reads

    def open_case_entities(self, entities: _Iterable[tuple[str, str]]) -> list[_Any]:
        """``case_entities`` rows (type, value, case_id, first_seen, last_seen, tactics) of these
        entities in cases that are still open."""
        wanted = set(entities)
        values = sorted({v for _, v in wanted})
        ce, c = _case_entities, _cases
        out: list[_Any] = []
        for chunk in _chunked(values):
            q = (
                _select(ce.c.type, ce.c.value, ce.c.case_id, ce.c.first_seen, ce.c.last_seen, ce.c.tactics)
                .join(c, c.c.id == ce.c.case_id)
                .where(
                    ce.c.tenant_id == self.tenant_id,
                    c.c.tenant_id == self.tenant_id,
                    ce.c.value.in_(chunk),
                    c.c.status.not_in(CLOSED_CASE_STATUSES),
                )
            )
            out.extend(r for r in self.conn.execute(q) if (r.type, r.value) in wanted)
        return out

    def cases(self, case_ids: _Iterable[str]) -> list[_Any]:
        """The case rows (every column) of these ids."""
        ids = sorted(set(case_ids))
        out: list[_Any] = []
        for chunk in _chunked(ids):
            out.extend(
                self.conn.execute(
                    _select(_cases).where(_cases.c.tenant_id == self.tenant_id, _cases.c.id.in_(chunk))
                )
            )
        return out

    def entity_history(
        self, entities: _Iterable[tuple[str, str]], since: int, cap: int
    ) -> dict[tuple[str, str], int]:
        """How many alerts (repeats included) each entity was on since ``since`` (epoch ms), counted
        up to ``cap``: the score saturates there, and a busy host would otherwise cost a scan of all
        its alerts in every batch."""
        ao, a = _alert_observables, _alerts
        first = (
            _select(a.c.count.label("n"))
            .select_from(ao.join(a, a.c.id == ao.c.alert_id))
            .where(
                ao.c.tenant_id == self.tenant_id,
                ao.c.type == _bindparam("t"),
                ao.c.value == _bindparam("v"),
                a.c.time >= since,
            )
            .limit(cap)
            .subquery()
        )
        q = _select(_func.coalesce(_func.sum(first.c.n), 0))
        out: dict[tuple[str, str], int] = {}
        for t, v in sorted(set(entities)):
            n = int(self.conn.execute(q, {"t": t, "v": v}).scalar_one())
            if n:
                out[(t, v)] = min(n, cap)
        return out

    def case_hosts(self, case_ids: _Iterable[str]) -> dict[str, set[str]]:
        """The host entities of these cases (how widely a shared value has spread)."""
        ids = sorted(set(case_ids))
        ce = _case_entities
        out: dict[str, set[str]] = {}
        for chunk in _chunked(ids):
            rows = self.conn.execute(
                _select(ce.c.case_id, ce.c.value).where(
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
                    _select(_func.coalesce(_func.max(_cases.c.number), 0)).where(
                        _cases.c.tenant_id == self.tenant_id
                    )
                ).scalar_one()
            )
            + 1
        )

    def case_observable_keys(self, keys: _Iterable[tuple[str, str, str]]) -> set[tuple[str, str, str]]:
        """Which of these (case id, type, value) observables the cases already hold (looked up by case
        and value, so a large case costs only the values asked about)."""
        wanted = set(keys)
        co = _case_observables
        out: set[tuple[str, str, str]] = set()
        by_case: dict[str, list[str]] = {}
        for cid, _, v in wanted:
            by_case.setdefault(cid, []).append(v)
        for cid, values in sorted(by_case.items()):
            for chunk in _chunked(sorted(set(values))):
                rows = self.conn.execute(
                    _select(co.c.type, co.c.value).where(
                        co.c.tenant_id == self.tenant_id, co.c.case_id == cid, co.c.value.in_(chunk)
                    )
                )
                out.update((cid, r.type, r.value) for r in rows if (cid, r.type, r.value) in wanted)
        return out

    def case_alert_documents(self, case_id: str) -> list[str]:
        """The documents of the alerts currently linked to a case (``alerts.case_id``)."""
        return list(
            self.conn.execute(
                _select(_alerts.c.document).where(
                    _alerts.c.tenant_id == self.tenant_id, _alerts.c.case_id == case_id
                )
            ).scalars()
        )

    # -- writes (rows carry every column but the tenant, which is added here)

    def _insert(self, table: Table, rows: list[dict[str, _Any]]) -> None:
        if rows:
            self.conn.execute(table.insert(), [{**r, "tenant_id": self.tenant_id} for r in rows])

    def insert_cases(self, rows: list[dict[str, _Any]]) -> None:
        self._insert(_cases, rows)

    def insert_case_alerts(self, rows: list[dict[str, _Any]]) -> None:
        self._insert(_case_alerts, rows)

    def insert_timeline(self, rows: list[dict[str, _Any]]) -> None:
        self._insert(_case_timeline, rows)

    def insert_tasks(self, rows: list[dict[str, _Any]]) -> None:
        self._insert(_case_tasks, rows)

    def insert_case_observables(self, rows: list[dict[str, _Any]]) -> None:
        self._insert(_case_observables, rows)

    def update_cases(self, rows: list[dict[str, _Any]]) -> None:
        """Triage's view of existing cases: score, components, techniques, tactics, newest alert."""
        if not rows:
            return
        c = _cases
        self.conn.execute(
            c.update()
            .where(c.c.tenant_id == self.tenant_id, c.c.id == _bindparam("_id"))
            .values(
                score=_bindparam("_score"),
                score_components=_bindparam("_score_components"),
                techniques=_bindparam("_techniques"),
                tactics=_bindparam("_tactics"),
                last_alert=_bindparam("_last_alert"),
                updated=_bindparam("_updated"),
            ),
            [{f"_{k}": v for k, v in r.items()} for r in rows],
        )

    def raise_severity(self, severities: dict[str, int]) -> None:
        """Set each case's severity to the given one where that is higher."""
        if not severities:
            return
        c = _cases
        self.conn.execute(
            c.update()
            .where(
                c.c.tenant_id == self.tenant_id,
                c.c.id == _bindparam("_id"),
                c.c.severity_id < _bindparam("_sev"),
            )
            .values(severity_id=_bindparam("_sev")),
            [{"_id": k, "_sev": v} for k, v in sorted(severities.items())],
        )

    def upsert_case_entities(self, new: list[dict[str, _Any]], changed: list[dict[str, _Any]]) -> None:
        """Insert ``new`` rows; update last_seen and tactics of ``changed`` (existing) ones."""
        self._insert(_case_entities, new)
        if changed:
            ce = _case_entities
            self.conn.execute(
                ce.update()
                .where(
                    ce.c.tenant_id == self.tenant_id,
                    ce.c.case_id == _bindparam("_case_id"),
                    ce.c.type == _bindparam("_type"),
                    ce.c.value == _bindparam("_value"),
                )
                .values(
                    first_seen=_bindparam("_first_seen"),
                    last_seen=_bindparam("_last_seen"),
                    tactics=_bindparam("_tactics"),
                ),
                [{f"_{k}": v for k, v in r.items()} for r in changed],
            )

    def replace_case_entities(self, case_id: str, rows: list[dict[str, _Any]]) -> None:
        """Drop a case's entity rows and write ``rows`` instead (after a merge, split or move)."""
        ce = _case_entities
        self.conn.execute(ce.delete().where(ce.c.tenant_id == self.tenant_id, ce.c.case_id == case_id))
        self._insert(ce, rows)
