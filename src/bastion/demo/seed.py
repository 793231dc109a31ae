"""Loading the demo data set into a tenant: events, alerts from three sources, and one case."""

from __future__ import annotations

import time
from typing import Any

from bastion.cases.service import open_case
from bastion.demo.generator import load_demo_alerts, load_demo_events, load_demo_webhooks
from bastion.ingest.alerts import map_webhook, parse_alert_document
from bastion.ingest.records import RawRecord
from bastion.model import Severity
from bastion.pipeline import ingest_alerts, prepare_events, store_events
from bastion.store import Database, TenantRepository, TenantScope
from bastion.tenancy.service import create_api_key, create_tenant

__all__ = ["DEMO_CASE_TITLE", "seed_demo"]

DEMO_CASE_TITLE = "Intrusion on WS-0142: phishing to credential theft"


def seed_demo(db: Database, tenant_name: str = "demo") -> dict[str, Any]:
    """Create the tenant (or reuse it), load the demo set, and return a fresh API key with the counts.

    Safe to run again: events dedupe by fingerprint, alerts by their external id, the case by title.
    """
    with db.read() as conn:
        tenant = TenantRepository(conn).by_name(tenant_name)
    if tenant is None:
        tenant, key = create_tenant(db, tenant_name, actor="demo")
    else:
        key = create_api_key(db, tenant_name, name=f"demo-{int(time.time())}", actor="demo")
    now = int(time.time() * 1000)
    records = [
        RawRecord(line=i, data=data, format=fmt)
        for i, (fmt, data) in enumerate(load_demo_events(now), start=1)
    ]
    rows, errors = prepare_events(records, now=now)
    events = store_events(db, tenant.id, "demo", rows, errors, source="demo")

    alerts = [parse_alert_document(doc) for doc in load_demo_alerts(now)]
    for source, payload in load_demo_webhooks(now):
        alerts.extend(map_webhook(source, payload))
    alert_result = ingest_alerts(db, tenant.id, "demo", alerts)

    with db.write() as conn:
        scope = TenantScope(conn, tenant.id)
        existing = [c for c in scope.cases.list(limit=1000) if c["title"] == DEMO_CASE_TITLE]
        if existing:
            case_id = existing[0]["id"]
        else:
            story = [i for i, a in zip(alert_result.ids, alerts, strict=True) if a.severity >= Severity.HIGH]
            case = open_case(
                scope,
                "demo",
                DEMO_CASE_TITLE,
                Severity.HIGH,
                alert_ids=story,
                reason="demo: same host and user across the intrusion",
                description="Phishing mail, encoded PowerShell, LSASS access, lateral movement.",
            )
            case_id = case.id
    return {
        "tenant": tenant_name,
        "api_key": key,
        "case_id": case_id,
        "events": {"accepted": events.accepted, "duplicates": events.duplicates, "rejected": events.rejected},
        "alerts": {"accepted": alert_result.accepted, "duplicates": alert_result.duplicates},
    }
