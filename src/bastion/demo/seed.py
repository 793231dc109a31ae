"""Loading the demo data set into a tenant: events, alerts from three sources, and one case."""

from __future__ import annotations

import time
from typing import Any

from bastion.cases.merge import merge_cases
from bastion.cases.service import attach_alert, get_case, open_case, update_case
from bastion.demo.generator import load_demo_alerts, load_demo_events, load_demo_webhooks
from bastion.detect.tenant import DETECTORS
from bastion.enrich.enricher import Enricher
from bastion.ingest.alerts import map_webhook, parse_alert_document
from bastion.ingest.records import RawRecord
from bastion.model import Case, Severity
from bastion.pipeline import AlertResult, IngestResult, ingest_alerts, prepare_events, store_events
from bastion.store import Database, TenantRepository, TenantScope
from bastion.tenancy.service import create_api_key, create_tenant, list_api_keys, revoke_api_key

__all__ = ["DEMO_CASE_TITLE", "seed_demo"]

DEMO_CASE_TITLE = "Intrusion on WS-0142: phishing to credential theft"


def seed_demo(db: Database, tenant_name: str = "demo", *, enricher: Enricher | None = None) -> dict[str, Any]:
    """Create the tenant (or reuse it), load the demo set, and return a fresh API key with the counts.
    A rerun revokes the key the previous run printed.

    Safe to run again: once the demo case exists, the data set is not loaded a second time.
    """
    with db.read() as conn:
        tenant = TenantRepository(conn).by_name(tenant_name)
    existing_tenant = tenant is not None
    if tenant is None:
        tenant, key = create_tenant(db, tenant_name, actor="demo")
    else:
        # The key is shown once and stored hashed, so each start makes a new one and retires the last.
        for old in list_api_keys(db, tenant_name):
            if old["name"].startswith("demo-") and not old["revoked"]:
                revoke_api_key(db, tenant_name, old["id"], actor="demo")
        key = create_api_key(db, tenant_name, name=f"demo-{int(time.time())}", actor="demo")
    if existing_tenant:
        # The data set is rebased to "now" on load, so a second load would be new events: keep the
        # first load, and let the live trickle of `bastion up --demo` keep the tenant current.
        with db.read() as conn:
            scope = TenantScope(conn, tenant.id)
            found = [c for c in scope.cases.list(limit=1000) if c["title"] == DEMO_CASE_TITLE]
            if found:
                return _report(tenant_name, key, found[0]["id"], IngestResult(), AlertResult())
    now = int(time.time() * 1000)
    records = [
        RawRecord(line=i, data=data, format=fmt)
        for i, (fmt, data) in enumerate(load_demo_events(now), start=1)
    ]
    rows, errors = prepare_events(records, now=now, detection=DETECTORS.for_tenant(db, tenant.id))
    events = store_events(db, tenant.id, "demo", rows, errors, source="demo", enricher=enricher)

    alerts = [parse_alert_document(doc) for doc in load_demo_alerts(now)]
    for source, payload in load_demo_webhooks(now):
        alerts.extend(map_webhook(source, payload))
    alert_result = ingest_alerts(db, tenant.id, "demo", alerts, enricher=enricher)

    with db.write() as conn:
        scope = TenantScope(conn, tenant.id)
        story = [i for i, a in zip(alert_result.ids, alerts, strict=True) if a.severity >= Severity.HIGH]
        case = _story_case(scope, list(dict.fromkeys(story)))
    assert case.id is not None
    return _report(tenant_name, key, case.id, events, alert_result)


def _story_case(scope: TenantScope, story: list[str]) -> Case:
    """The demo's case: triage usually has grouped the story's alerts already (by host and user), so that
    case is named for the story and any other case holding story alerts is merged into it; without
    triage's grouping, a case is opened with them."""
    reason = "demo: same host and user across the intrusion"
    description = "Phishing mail, encoded PowerShell, LSASS access, lateral movement."
    holding = sorted(
        {c for a in story for c in scope.cases.cases_of_alert(a)}, key=lambda c: scope.cases.number(c) or 0
    )
    if not holding:
        return open_case(
            scope,
            "demo",
            DEMO_CASE_TITLE,
            Severity.HIGH,
            alert_ids=story,
            reason=reason,
            description=description,
        )
    target = holding[0]
    if holding[1:]:
        merge_cases(scope, "demo", target, holding[1:], reason)
    update_case(scope, "demo", target, title=DEMO_CASE_TITLE, severity=Severity.HIGH, description=description)
    for alert_id in story:
        if not scope.cases.cases_of_alert(alert_id):
            attach_alert(scope, "demo", target, alert_id, reason=reason)
    return get_case(scope, target)


def _report(
    tenant_name: str, key: str, case_id: str, events: IngestResult, alerts: AlertResult
) -> dict[str, Any]:
    return {
        "tenant": tenant_name,
        "api_key": key,
        "case_id": case_id,
        "events": {"accepted": events.accepted, "duplicates": events.duplicates, "rejected": events.rejected},
        "alerts": {"accepted": alerts.accepted, "duplicates": alerts.duplicates},
    }
