"""The ``elastic`` webhook: Elastic Security detection alerts.

An alert is ``kibana.alert.*`` (or the 7.x ``signal.*`` names) plus the ECS fields Elastic copies from
the source event, with dotted or nested keys. A payload is one alert, a list, ``{"alerts": [...]}`` or a
search response's hits. Registers itself in :data:`bastion.ingest.alerts.WEBHOOK_MAPPERS`.
"""

from __future__ import annotations

from typing import Any

from bastion.ingest.alerts import (
    WEBHOOK_MAPPERS,
    AlertDocumentError,
    _items,
    _join,
    _json_type,
    _severity_or_unknown,
    _Spec,
    _spec_observables,
    _tactic_tag,
    _techniques,
    _unique,
    _unique_observables,
    _values,
    _vendor_time,
)
from bastion.model import Alert, AlertStatus, ObservableType, Severity

__all__ = ["map_elastic"]

OT = ObservableType

# 8.x alert field -> the 7.x signal field it replaced
_ELASTIC_LEGACY = {
    f"kibana.alert.{new}": f"signal.{old}"
    for new, old in (
        ("rule.name", "rule.name"),
        ("severity", "rule.severity"),
        ("risk_score", "rule.risk_score"),
        ("rule.uuid", "rule.id"),
        ("rule.rule_id", "rule.rule_id"),
        ("rule.description", "rule.description"),
        ("rule.tags", "rule.tags"),
        ("original_time", "original_time"),
        ("reason", "reason"),
        ("workflow_status", "status"),
        ("rule.threat.technique.id", "rule.threat.technique.id"),
        ("rule.threat.technique.subtechnique.id", "rule.threat.technique.subtechnique.id"),
        ("rule.threat.tactic.name", "rule.threat.tactic.name"),
    )
}
# ECS fields of the source event that Elastic copies into the alert
_ECS_SPEC: _Spec = (
    ("host.name", OT.HOST),
    ("host.hostname", OT.HOST),
    ("host.ip", None),
    ("user.name", OT.USER),
    ("user.target.name", OT.USER),
    ("user.email", OT.EMAIL),
    ("source.ip", None),
    ("destination.ip", None),
    ("client.ip", None),
    ("server.ip", None),
    ("source.domain", OT.DOMAIN),
    ("destination.domain", OT.DOMAIN),
    ("url.domain", OT.DOMAIN),
    ("dns.question.name", OT.DOMAIN),
    ("url.full", OT.URL),
    ("url.original", OT.URL),
    ("process.name", OT.PROCESS_NAME),
    ("process.executable", OT.FILE_PATH),
    ("process.parent.name", OT.PROCESS_NAME),
    ("process.parent.executable", OT.FILE_PATH),
    ("process.hash.md5", OT.MD5),
    ("process.hash.sha1", OT.SHA1),
    ("process.hash.sha256", OT.SHA256),
    ("file.path", OT.FILE_PATH),
    ("file.hash.md5", OT.MD5),
    ("file.hash.sha1", OT.SHA1),
    ("file.hash.sha256", OT.SHA256),
    ("registry.path", OT.REGISTRY_KEY),
    ("email.from.address", OT.EMAIL),
    ("email.to.address", OT.EMAIL),
    ("email.sender.address", OT.EMAIL),
)
_ELASTIC_STATUS = {
    "open": AlertStatus.NEW,
    "acknowledged": AlertStatus.ACKNOWLEDGED,
    "in-progress": AlertStatus.IN_PROGRESS,
    "closed": AlertStatus.CLOSED,
}


def _ev(doc: Any, *paths: str) -> list[Any]:
    """Values of Elastic alert fields, falling back to their 7.x ``signal.*`` names."""
    return [v for p in paths for v in (_values(doc, p) or _values(doc, _ELASTIC_LEGACY.get(p, p)))]


def _scalar(values: list[Any]) -> str | None:
    """The first of some field values as text (a number as written): the alert's text fields are strings."""
    return str(values[0]) if values else None


def _risk_severity(score: Any) -> Severity:
    """Elastic's default risk score bands: 0-21 low, 22-47 medium, 48-73 high, 74-100 critical."""
    try:
        value = float(score)
    except (TypeError, ValueError):
        return Severity.UNKNOWN
    bands = ((74, Severity.CRITICAL), (48, Severity.HIGH), (22, Severity.MEDIUM), (0, Severity.LOW))
    return next((sev for floor, sev in bands if value >= floor), Severity.UNKNOWN)


def _elastic_alert(item: Any, path: str) -> Alert:
    if not isinstance(item, dict):
        raise AlertDocumentError(path, f"expected an Elastic alert object, got {_json_type(item)}")
    doc, prefix = item, path
    if isinstance(item.get("_source"), dict):  # a search hit
        doc, prefix = item["_source"], _join(path, "_source")
    names = _ev(doc, "kibana.alert.rule.name")
    if not names:
        raise AlertDocumentError(
            _join(prefix, "kibana.alert.rule.name"), "required (an Elastic Security alert names its rule)"
        )
    severity = _severity_or_unknown(next(iter(_ev(doc, "kibana.alert.severity")), None))
    if severity is Severity.UNKNOWN:
        severity = _risk_severity(next(iter(_ev(doc, "kibana.alert.risk_score")), None))
    rule_threat = "kibana.alert.rule.threat.technique"
    techniques = _techniques(
        _ev(doc, f"{rule_threat}.id", f"{rule_threat}.subtechnique.id")
        + _values(doc, "threat.technique.id")
        + _values(doc, "threat.technique.subtechnique.id")
    )
    tags = [_tactic_tag(str(t)) for t in _ev(doc, "kibana.alert.rule.threat.tactic.name")]
    status = str(next(iter(_ev(doc, "kibana.alert.workflow_status")), "open")).lower()
    return Alert(
        title=str(names[0]).strip(),
        severity=severity,
        time=_vendor_time(
            doc,
            prefix,
            "@timestamp",
            "kibana.alert.start",
            "kibana.alert.original_time",
            "signal.original_time",
        ),
        source="elastic",
        description=_scalar(_ev(doc, "kibana.alert.reason", "kibana.alert.rule.description")),
        external_id=str(next(iter(_values(doc, "kibana.alert.uuid")), None) or item.get("_id") or "") or None,
        rule_id=_scalar(_ev(doc, "kibana.alert.rule.uuid", "kibana.alert.rule.rule_id")),
        rule_name=str(names[0]).strip(),
        status=_ELASTIC_STATUS.get(status, AlertStatus.NEW),
        techniques=techniques,
        tags=_unique(tags + [str(t) for t in _ev(doc, "kibana.alert.rule.tags")]),
        observables=_unique_observables(_spec_observables(doc, _ECS_SPEC, "")),
        raw=item,
    )


def map_elastic(payload: Any) -> list[Alert]:
    return [
        _elastic_alert(item, path) for path, item in _items(payload, ("alerts",), "an Elastic Security alert")
    ]


WEBHOOK_MAPPERS["elastic"] = map_elastic
