"""OCSF normalizer: events already in the Open Cybersecurity Schema Framework shape -> Event.

Our Event is OCSF-aligned, so this is mostly a copy of the objects we keep (``actor``, ``device``,
``process``, ``file``, ``src_endpoint``, ``dst_endpoint``, ``url``, DNS ``query``, Windows ``reg_key``),
with the few OCSF shapes we flatten: ``metadata.product`` (an object) -> product and vendor names,
``file.hashes`` (a list of fingerprints) -> ``{"md5": ..}``, ``device.os`` -> its name, ``query`` ->
its hostname. For IAM classes the top-level ``user`` (the account acted on: the one logging on, the
one changed) becomes ``actor.user`` when there is no acting user, and always for Authentication (3002),
to match the Windows normalizer. Unknown fields are ignored; ``raw`` keeps the whole event.
"""

from __future__ import annotations

from typing import Any

from bastion.ingest.normalize import NormalizeError, register
from bastion.ingest.normalize._coerce import as_int as _int
from bastion.ingest.normalize._coerce import as_str as _str
from bastion.ingest.normalize.generic import to_epoch_ms
from bastion.model import (
    ActionId,
    Actor,
    Device,
    Endpoint,
    Event,
    EventClass,
    File,
    Metadata,
    Process,
    Severity,
    Url,
    User,
)

__all__ = ["normalize_ocsf"]

# OCSF fingerprint algorithm_id -> our hash key.
_ALGORITHMS = {
    1: "md5",
    2: "sha1",
    3: "sha256",
    4: "sha512",
    5: "ssdeep",
    6: "tlsh",
    7: "quickxorhash",
    8: "sha224",
    9: "sha384",
    10: "sha512_224",
    11: "sha512_256",
    12: "sha3_224",
    13: "sha3_256",
    14: "sha3_384",
    15: "sha3_512",
    16: "xxhash_h3_64",
    17: "xxhash_h3_128",
}
_IAM = range(3000, 4000)


def _detect(record: Any) -> bool:
    return type(record) is dict and type(record.get("class_uid")) is int


def _obj(node: Any, key: str) -> dict[str, Any] | None:
    value = node.get(key) if type(node) is dict else None
    return value if type(value) is dict else None


def _user(node: dict[str, Any] | None) -> User | None:
    if node is None:
        return None
    return User(
        name=_str(node.get("name")),
        uid=_str(node.get("uid")),
        domain=_str(node.get("domain")),
        email_addr=_str(node.get("email_addr")),
    )


def _hashes(items: Any) -> dict[str, str] | None:
    if type(items) is not list:
        return None
    found: dict[str, str] = {}
    for item in items:
        if type(item) is not dict or not isinstance(item.get("value"), str):
            continue
        algorithm_id = item.get("algorithm_id")
        algo = _ALGORITHMS.get(algorithm_id) if type(algorithm_id) is int else None
        if algo is None and isinstance(item.get("algorithm"), str):
            algo = item["algorithm"].lower().replace("-", "")
        if algo:
            found[algo] = item["value"].lower()
    return found or None


def _file(node: dict[str, Any] | None) -> File | None:
    if node is None:
        return None
    return File(name=_str(node.get("name")), path=_str(node.get("path")), hashes=_hashes(node.get("hashes")))


def _process(node: dict[str, Any] | None, depth: int = 0) -> Process | None:
    if node is None:
        return None
    file = _obj(node, "file")
    path = _str(node.get("path")) or (_str(file.get("path")) if file else None)
    return Process(
        name=_str(node.get("name")) or (_str(file.get("name")) if file else None),
        pid=_int(node.get("pid")),
        path=path,
        cmd_line=_str(node.get("cmd_line")),
        uid=_str(node.get("uid")),
        user=_user(_obj(node, "user")),
        parent_process=_process(_obj(node, "parent_process"), depth + 1) if depth < 3 else None,
    )


def _endpoint(node: dict[str, Any] | None) -> Endpoint | None:
    if node is None:
        return None
    return Endpoint(
        ip=_str(node.get("ip")),
        port=_int(node.get("port")),
        hostname=_str(node.get("hostname")) or _str(node.get("name")),
        domain=_str(node.get("domain")),
    )


def _severity(record: dict[str, Any]) -> int:
    value = record.get("severity_id")
    if value is None:
        value = record.get("severity")
    if value is None:
        return Severity.UNKNOWN
    try:
        return Severity.parse(value)
    except ValueError:
        return Severity.UNKNOWN


@register("ocsf", detect=_detect, priority=20)
def normalize_ocsf(record: Any) -> Event:
    """Map one OCSF event (any class) onto an Event."""
    if type(record) is not dict:
        raise NormalizeError(f"an OCSF event is a JSON object, got {type(record).__name__}")
    class_uid = _int(record.get("class_uid"))
    if class_uid is None:
        raise NormalizeError(f"OCSF event without an integer class_uid (got {record.get('class_uid')!r})")
    time = to_epoch_ms(record.get("time"))
    if time is None:
        time = to_epoch_ms(record.get("time_dt"))
    meta = _obj(record, "metadata") or {}
    product = _obj(meta, "product") or {}

    actor_node = _obj(record, "actor")
    actor_user = _user(_obj(actor_node, "user"))
    target_user = _user(_obj(record, "user")) if class_uid in _IAM else None
    if target_user is not None and (actor_user is None or class_uid == EventClass.AUTHENTICATION):
        actor_user = target_user
    actor_process = _process(_obj(actor_node, "process"))
    actor = Actor(user=actor_user, process=actor_process) if actor_user or actor_process else None

    device_node = _obj(record, "device")
    device = None
    if device_node is not None:
        os_node = device_node.get("os")
        device = Device(
            hostname=_str(device_node.get("hostname")) or _str(device_node.get("name")),
            ip=_str(device_node.get("ip")),
            os=_str(os_node.get("name")) if type(os_node) is dict else _str(os_node),
            uid=_str(device_node.get("uid")),
            domain=_str(device_node.get("domain")),
        )

    url_node = _obj(record, "url") or _obj(_obj(record, "http_request"), "url")
    url = None
    if url_node is not None:
        url = Url(
            url_string=_str(url_node.get("url_string")),
            hostname=_str(url_node.get("hostname")),
            path=_str(url_node.get("path")),
        )
    query = record.get("query")
    registry = _obj(record, "reg_key") or _obj(record, "reg_value")
    finding = _obj(record, "finding_info")

    return Event(
        class_uid=class_uid,
        time=time or 0,
        severity_id=_severity(record),
        message=_str(record.get("message")) or (_str(finding.get("title")) if finding else None),
        format="ocsf",
        metadata=Metadata(
            product=_str(product.get("name")),
            vendor=_str(product.get("vendor_name")),
            log_name=_str(meta.get("log_name")),
            event_code=_str(meta.get("event_code")),
            uid=_str(meta.get("uid")),
            original_time=_str(meta.get("original_time")),
        ),
        actor=actor,
        device=device,
        process=_process(_obj(record, "process")),
        file=_file(
            _obj(record, "file")
            or _obj(_obj(record, "module"), "file")
            or _obj(_obj(record, "driver"), "file")
        ),
        src_endpoint=_endpoint(_obj(record, "src_endpoint")),
        dst_endpoint=_endpoint(_obj(record, "dst_endpoint")),
        url=url,
        query=_str(query.get("hostname")) if type(query) is dict else _str(query),
        registry_key=_str(registry.get("path")) if registry else None,
        action=_str(record.get("action")),
        action_id=_action_id(record),
        raw=record,
    )


def _action_id(record: dict[str, Any]) -> int:
    """OCSF ``action_id`` as given (0, 1, 2 or 99), else read from its ``action`` word."""
    given = record.get("action_id")
    if type(given) is int and given in ActionId._value2member_map_:
        return given
    return int(ActionId.from_word(_str(record.get("action"))))
