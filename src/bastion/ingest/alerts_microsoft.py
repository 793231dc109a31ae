"""The ``sentinel`` / ``defender`` / ``microsoft`` webhooks: Microsoft security alerts.

Two shapes, told apart per alert: rows of Sentinel's SecurityAlert table (or the Sentinel API's
camelCase ``properties``), whose ``Entities`` is a JSON string or a list, and Microsoft Graph security
alerts (``/security/alerts_v2``, Defender XDR) with their ``evidence``. A payload is one alert, a list, a
Graph ``{"value": [...]}`` page or a Log Analytics query result. Registers itself in
:data:`bastion.ingest.alerts.WEBHOOK_MAPPERS`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from bastion.ingest.alerts import (
    WEBHOOK_MAPPERS,
    AlertDocumentError,
    _items,
    _join,
    _json_type,
    _now_ms,
    _obs,
    _severity_or_unknown,
    _Spec,
    _spec_observables,
    _split_list,
    _tactic_tag,
    _techniques,
    _text,
    _unique,
    _unique_observables,
    _vendor_time,
    parse_time,
)
from bastion.model import Alert, AlertStatus, Observable, ObservableType

__all__ = ["map_microsoft"]

OT = ObservableType

_MS_STATUS = {
    "new": AlertStatus.NEW,
    "inprogress": AlertStatus.IN_PROGRESS,
    "active": AlertStatus.NEW,
    "resolved": AlertStatus.CLOSED,
    "dismissed": AlertStatus.CLOSED,
}
_SENTINEL_IDS = ("systemalertid", "vendororiginalid", "provideralertid")
_HASH_ALGORITHMS = {"md5": OT.MD5, "sha1": OT.SHA1, "sha256": OT.SHA256}
# Sentinel entity Type -> its observable fields (learn.microsoft.com/azure/sentinel/entities-reference)
_ENTITY_SPECS: dict[str, _Spec] = {
    "account": (("Name", OT.USER),),
    "host": (("HostName", OT.HOST),),
    "ip": (("Address", None),),
    "url": (("Url", OT.URL),),
    "file": ((("Directory", "Name"), OT.FILE_PATH),),
    "process": (("ImageFile.Name", OT.PROCESS_NAME),),
    "dns": (("DomainName", OT.DOMAIN),),
    "mailbox": (("MailboxPrimaryAddress", OT.EMAIL),),
    "mail-message": (("Sender", OT.EMAIL), ("Recipient", OT.EMAIL), ("SenderIP", None), ("Urls", OT.URL)),
    "registry-key": ((("Hive", "Key"), OT.REGISTRY_KEY),),
}
_FILE_DETAILS = ("sha1", OT.SHA1), ("sha256", OT.SHA256), ("md5", OT.MD5)
# Graph alertEvidence @odata.type -> its observable fields
# (learn.microsoft.com/graph/api/resources/security-alertevidence and the derived types' pages)
_EVIDENCE_SPECS: dict[str, _Spec] = {
    "deviceEvidence": (
        ("deviceDnsName", OT.HOST),
        ("ipInterfaces", None),
        ("loggedOnUsers.accountName", OT.USER),
    ),
    "userEvidence": (("userAccount.accountName", OT.USER), ("userAccount.userPrincipalName", OT.EMAIL)),
    "ipEvidence": (("ipAddress", None),),
    "urlEvidence": (("url", OT.URL),),
    "fileEvidence": (
        *((f"fileDetails.{k}", t) for k, t in _FILE_DETAILS),
        (("fileDetails.filePath", "fileDetails.fileName"), OT.FILE_PATH),
    ),
    "processEvidence": (
        *((f"imageFile.{k}", t) for k, t in _FILE_DETAILS),
        ("imageFile.fileName", OT.PROCESS_NAME),
        (("imageFile.filePath", "imageFile.fileName"), OT.FILE_PATH),
        ("userAccount.accountName", OT.USER),
    ),
    "mailboxEvidence": (("primaryAddress", OT.EMAIL), ("userAccount.accountName", OT.USER)),
    "analyzedMessageEvidence": (
        ("senderIp", None),
        ("recipientEmailAddress", OT.EMAIL),
        ("p1Sender.emailAddress", OT.EMAIL),
        ("p2Sender.emailAddress", OT.EMAIL),
        ("urls", OT.URL),
    ),
    "registryKeyEvidence": ((("registryHive", "registryKey"), OT.REGISTRY_KEY),),
    "dnsEvidence": (("domainName", OT.DOMAIN),),
}


def _ms_source(product: Any) -> str:
    return "microsoft-sentinel" if not product or "sentinel" in str(product).lower() else "microsoft-defender"


def _iter_entities(node: Any) -> Iterator[dict[str, Any]]:
    """Every entity in a Sentinel entity list, including those nested inline (a process's ImageFile)."""
    if isinstance(node, list):
        for item in node:
            yield from _iter_entities(item)
    elif isinstance(node, dict):
        if isinstance(node.get("Type"), str):
            yield node
        for value in node.values():
            yield from _iter_entities(value)


def _entity_observables(entities: list[Any]) -> Iterator[Observable | None]:
    for entity in _iter_entities(entities):
        kind = entity["Type"].lower()
        kind = {"registrykey": "registry-key", "mailmessage": "mail-message"}.get(kind, kind)
        yield from _spec_observables(entity, _ENTITY_SPECS.get(kind, ()), f"Entities.{kind}")
        algorithm = _HASH_ALGORITHMS.get(str(entity.get("Algorithm", "")).lower())
        if kind == "filehash" and algorithm is not None:
            yield _obs(algorithm, entity.get("Value"), "Entities.filehash.Value")


def _security_alert(item: dict[str, Any], path: str) -> Alert:
    """A row of Sentinel's SecurityAlert table (or the same alert in the Sentinel API's camelCase)."""
    props = item.get("properties") if isinstance(item.get("properties"), dict) else None
    prefix = _join(path, "properties") if props else path
    row = {k.lower(): (k, v) for k, v in (props or item).items() if v not in (None, "")}

    def get(*names: str) -> Any:
        return next((row[n][1] for n in names if n in row), None)

    def name(*names: str) -> str:
        return _join(prefix, next((row[n][0] for n in names if n in row), names[0]))

    title = get("alertname", "displayname", "alertdisplayname")
    if not str(title or "").strip():
        raise AlertDocumentError(
            _join(prefix, "AlertName"), "required (a SecurityAlert has AlertName or DisplayName)"
        )
    time_keys = ("timegenerated", "starttime", "starttimeutc", "endtime", "endtimeutc")
    try:
        when = parse_time(get(*time_keys)) if get(*time_keys) is not None else _now_ms()
    except ValueError as err:
        raise AlertDocumentError(name(*time_keys), str(err)) from None
    entities = get("entities") or []
    if isinstance(entities, str):
        try:
            entities = json.loads(entities)
        except ValueError as err:
            raise AlertDocumentError(name("entities"), f"not valid JSON: {err}") from None
    if not isinstance(entities, list):
        raise AlertDocumentError(name("entities"), f"expected a list of entities, got {_json_type(entities)}")
    product = get("productname")
    tactics = _split_list(get("tactics", "intent") or [])
    return Alert(
        title=str(title).strip(),
        severity=_severity_or_unknown(get("alertseverity", "severity")),
        time=when,
        source=_ms_source(product),
        description=_text(get("description"), name("description")),
        external_id=_text(get(*_SENTINEL_IDS), name(*_SENTINEL_IDS)),
        rule_id=_text(get("alerttype"), name("alerttype")),
        rule_name=str(title).strip(),
        status=_MS_STATUS.get(str(get("status")).lower(), AlertStatus.NEW),
        techniques=_techniques(t for t in (get("techniques"), get("subtechniques")) if t),
        tags=_unique([_tactic_tag(t) for t in tactics] + ([f"product:{product}"] if product else [])),
        observables=_unique_observables(_entity_observables(entities)),
        raw=item,
    )


def _list_field(item: dict[str, Any], path: str, key: str) -> list[Any]:
    """A Graph alert's list property (empty when absent); another type makes the alert unreadable."""
    value = item.get(key) or []
    if not isinstance(value, list):
        raise AlertDocumentError(_join(path, key), f"expected a list, got {_json_type(value)}")
    return value


def _graph_alert(item: dict[str, Any], path: str) -> Alert:
    """A Microsoft Graph security alert (``/security/alerts_v2``), as Defender XDR produces it."""
    title = item.get("title")
    if not isinstance(title, str) or not title.strip():
        raise AlertDocumentError(_join(path, "title"), "required")
    evidence, techniques, system_tags = (
        _list_field(item, path, key) for key in ("evidence", "mitreTechniques", "systemTags")
    )
    service = item.get("serviceSource")
    tags = [_tactic_tag(item["category"])] if isinstance(item.get("category"), str) else []
    tags += [f"product:{service}"] if service else []
    tags += [f"detection:{item['detectionSource']}"] if item.get("detectionSource") else []
    observables: list[Observable | None] = []
    for i, ev in enumerate(evidence):
        kind = str(ev.get("@odata.type", "")).rsplit(".", 1)[-1] if isinstance(ev, dict) else ""
        observables += _spec_observables(ev, _EVIDENCE_SPECS.get(kind, ()), f"evidence[{i}]")
    return Alert(
        title=title.strip(),
        severity=_severity_or_unknown(item.get("severity")),
        time=_vendor_time(
            item, path, "createdDateTime", "alertCreationTime", "firstActivityDateTime", "lastUpdateDateTime"
        ),
        source=_ms_source(service or "defender"),
        description=_text(item.get("description"), _join(path, "description")),
        external_id=_text(item.get("id"), _join(path, "id"))
        or _text(item.get("providerAlertId"), _join(path, "providerAlertId")),
        rule_id=_text(item.get("detectorId"), _join(path, "detectorId")),
        status=_MS_STATUS.get(str(item.get("status", "new")).lower(), AlertStatus.NEW),
        techniques=_techniques(techniques),
        tags=_unique(tags + [str(t) for t in system_tags]),
        observables=_unique_observables(observables),
        raw=item,
    )


_GRAPH_KEYS = ("title", "evidence", "serviceSource", "createdDateTime", "mitreTechniques")


def map_microsoft(payload: Any) -> list[Alert]:
    alerts = []
    for path, item in _items(payload, ("value", "alerts"), "a Sentinel or Microsoft Graph security alert"):
        if not isinstance(item, dict):
            raise AlertDocumentError(path, f"expected an alert object, got {_json_type(item)}")
        graph = any(key in item for key in _GRAPH_KEYS) or "graph.security" in str(item.get("@odata.type"))
        alerts.append(_graph_alert(item, path) if graph else _security_alert(item, path))
    return alerts


WEBHOOK_MAPPERS.update(sentinel=map_microsoft, defender=map_microsoft, microsoft=map_microsoft)
