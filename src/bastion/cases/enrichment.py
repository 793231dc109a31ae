"""The enrichment an alert brought to its case (intel matches, assets, identities), as one timeline entry,
whether the alert joined by triage or by an analyst."""

from __future__ import annotations

from typing import Any

from bastion.model import Alert

__all__ = ["enrichment_summary"]


def enrichment_summary(alert: Alert) -> tuple[str, dict[str, Any]] | None:
    """(summary line, data) for the case timeline, or None when enrichment found nothing."""
    e = alert.enrichment or {}
    intel = [
        {"indicator": m.get("indicator"), "source": m.get("source"), "confidence": m.get("confidence")}
        for m in e.get("intel") or []
        if isinstance(m, dict)
    ]
    assets = [
        {"hostname": a.get("hostname"), "criticality": a.get("criticality"), "owner": a.get("owner")}
        for a in e.get("assets") or []
        if isinstance(a, dict)
    ]
    identities = [
        {"username": i.get("username"), "privileged": i.get("privileged"), "groups": i.get("groups")}
        for i in e.get("identities") or []
        if isinstance(i, dict)
    ]
    if not (intel or assets or identities):
        return None
    parts = []
    if intel:
        parts.append(
            "intel " + ", ".join(f"{m['indicator']} ({m['source']}, {m['confidence']})" for m in intel)
        )
    if assets:
        parts.append("assets " + ", ".join(str(a["hostname"]) for a in assets))
    if identities:
        parts.append("identities " + ", ".join(str(i["username"]) for i in identities))
    data = {"alert_id": alert.id, "intel": intel, "assets": assets, "identities": identities}
    return f"Enrichment of {alert.title}: " + "; ".join(parts), data
