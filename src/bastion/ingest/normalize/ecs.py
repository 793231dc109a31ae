"""Elastic Common Schema normalizer: ECS documents (Beats, Elastic Agent / Endpoint, Logstash) -> Event.

Documents may be nested (``{"source": {"ip": ..}}``), dotted (``{"source.ip": ..}``) or a mix. The class
comes from ``event.kind`` (alerts are detection findings) and ``event.category`` / ``event.type``; the
severity from ``log.level``, else ``event.severity`` read on Elastic's rule scale (21 low, 47 medium,
73 high, 99 critical), since ECS leaves that number's meaning to the source. Field names follow
``ecs_flat.yml``: ``process.executable``, ``process.parent.*``, ``file.hash.*``, ``source.*`` /
``destination.*``, ``url.full``, ``dns.question.name``, ``registry.path``, ``user.*``, ``host.*``.
``raw`` is the document itself.
"""

from __future__ import annotations

from typing import Any

from bastion.ingest.normalize import NormalizeError, register
from bastion.ingest.normalize._coerce import as_int as _int
from bastion.ingest.normalize._coerce import as_str
from bastion.ingest.normalize.generic import get_path, to_epoch_ms
from bastion.model import (
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

__all__ = ["normalize_ecs"]

_TOP = frozenset({"event", "host", "source", "destination", "process", "user", "ecs", "agent"})
_C = EventClass
# event.category values in the order they decide the class when several are given.
_CATEGORIES = (
    ("authentication", _C.AUTHENTICATION),
    ("iam", _C.ACCOUNT_CHANGE),
    ("process", _C.PROCESS_ACTIVITY),
    ("web", _C.HTTP_ACTIVITY),
    ("network", _C.NETWORK_ACTIVITY),
    ("registry", _C.REGISTRY_KEY_ACTIVITY),
    ("library", _C.MODULE_ACTIVITY),
    ("driver", _C.KERNEL_EXTENSION),
    ("file", _C.FILE_ACTIVITY),
    ("email", _C.EMAIL_ACTIVITY),
    ("configuration", _C.DEVICE_CONFIG_STATE),
    ("api", _C.API_ACTIVITY),
    ("session", _C.AUTHORIZE_SESSION),
    ("malware", _C.DETECTION_FINDING),
    ("intrusion_detection", _C.DETECTION_FINDING),
    ("threat", _C.DETECTION_FINDING),
    ("vulnerability", _C.SECURITY_FINDING),
)
_LOG_LEVELS = {
    "emergency": Severity.CRITICAL,
    "emerg": Severity.CRITICAL,
    "alert": Severity.CRITICAL,
    "critical": Severity.CRITICAL,
    "crit": Severity.CRITICAL,
    "fatal": Severity.FATAL,
    "error": Severity.HIGH,
    "err": Severity.HIGH,
    "warning": Severity.MEDIUM,
    "warn": Severity.MEDIUM,
    "notice": Severity.LOW,
    "information": Severity.INFORMATIONAL,
    "informational": Severity.INFORMATIONAL,
    "info": Severity.INFORMATIONAL,
    "debug": Severity.INFORMATIONAL,
    "trace": Severity.INFORMATIONAL,
    "verbose": Severity.INFORMATIONAL,
}
_HASHES = ("md5", "sha1", "sha256", "sha384", "sha512", "ssdeep", "tlsh")


def _detect(record: Any) -> bool:
    if type(record) is not dict:
        return False
    if "ecs" in record or "ecs.version" in record:
        return True
    if "@timestamp" not in record:
        return False
    for key, value in record.items():
        head, dot, _ = key.partition(".")
        if head in _TOP and (dot or type(value) is dict):
            return True
    return False


def _str(value: Any) -> str | None:
    """ECS lets many fields be arrays: take the first element."""
    if type(value) is list:
        value = value[0] if value else None
    return as_str(value)


def _class(doc: dict[str, Any]) -> int:
    kind = get_path(doc, "event.kind")
    if kind in ("alert", "signal"):
        return _C.DETECTION_FINDING
    categories = get_path(doc, "event.category")
    if isinstance(categories, str):
        categories = [categories]
    if not isinstance(categories, list):
        return _C.BASE
    types = get_path(doc, "event.type")
    if not isinstance(types, list | str):
        types = ()
    for name, cls in _CATEGORIES:
        if name not in categories:
            continue
        if name == "network" and get_path(doc, "dns.question.name") is not None:
            return _C.DNS_ACTIVITY
        if name == "iam" and "group" in types:
            return _C.GROUP_MANAGEMENT
        if name == "registry" and get_path(doc, "registry.value") is not None:
            return _C.REGISTRY_VALUE_ACTIVITY
        return cls
    return _C.BASE


def _severity(doc: dict[str, Any]) -> int:
    level = get_path(doc, "log.level")
    if isinstance(level, str):
        found = _LOG_LEVELS.get(level.strip().lower())
        if found is not None:
            return found
        try:
            return Severity.parse(level)
        except ValueError:
            pass
    score = _int(get_path(doc, "event.severity"))
    if score is None or score <= 0:
        return Severity.UNKNOWN
    if score <= 21:
        return Severity.LOW
    if score <= 47:
        return Severity.MEDIUM
    if score <= 73:
        return Severity.HIGH
    return Severity.CRITICAL


def _user(doc: dict[str, Any], prefix: str) -> User | None:
    name, uid = _str(get_path(doc, prefix + ".name")), _str(get_path(doc, prefix + ".id"))
    email = _str(get_path(doc, prefix + ".email"))
    if name is None and uid is None and email is None:
        return None
    return User(name=name, uid=uid, domain=_str(get_path(doc, prefix + ".domain")), email_addr=email)


def _hashes(doc: dict[str, Any], prefix: str) -> dict[str, str] | None:
    found = {}
    for algo in _HASHES:
        value = get_path(doc, f"{prefix}.{algo}")
        if isinstance(value, str) and value:
            found[algo] = value.lower()
    return found or None


def _process(doc: dict[str, Any], prefix: str, depth: int = 0) -> Process | None:
    path = _str(get_path(doc, prefix + ".executable"))
    name = _str(get_path(doc, prefix + ".name"))
    cmd = _str(get_path(doc, prefix + ".command_line"))
    if cmd is None:
        args = get_path(doc, prefix + ".args")
        if type(args) is list and args:
            cmd = " ".join(str(a) for a in args)
    pid = _int(get_path(doc, prefix + ".pid"))
    if path is None and name is None and cmd is None and pid is None:
        return None
    return Process(
        name=name,
        pid=pid,
        path=path,
        cmd_line=cmd,
        uid=_str(get_path(doc, prefix + ".entity_id")),
        user=_user(doc, prefix + ".user"),
        parent_process=_process(doc, prefix + ".parent", depth + 1) if depth < 2 else None,
    )


def _endpoint(doc: dict[str, Any], prefix: str) -> Endpoint | None:
    ip = _str(get_path(doc, prefix + ".ip"))
    hostname = _str(get_path(doc, prefix + ".domain"))
    address = _str(get_path(doc, prefix + ".address"))
    if address is not None and address not in (ip, hostname):
        looks_ip = (address.count(".") == 3 and address.replace(".", "").isdigit()) or ":" in address
        if ip is None and looks_ip:
            ip = address
        elif hostname is None:
            hostname = address
    port = _int(get_path(doc, prefix + ".port"))
    domain = _str(get_path(doc, prefix + ".registered_domain"))
    if ip is None and hostname is None and port is None and domain is None:
        return None
    return Endpoint(ip=ip, port=port, hostname=hostname, domain=domain)


def _file(doc: dict[str, Any], process: Process | None) -> File | None:
    for prefix in ("file", "dll"):
        path = _str(get_path(doc, prefix + ".path"))
        name = _str(get_path(doc, prefix + ".name"))
        if path is None and name is not None:
            directory = _str(get_path(doc, prefix + ".directory"))
            if directory:
                path = directory.rstrip("\\/") + ("\\" if "\\" in directory else "/") + name
        hashes = _hashes(doc, prefix + ".hash")
        if path or name or hashes:
            return File(name=name, path=path, hashes=hashes)
    hashes = _hashes(doc, "process.hash")
    if hashes is not None and process is not None:
        return File(name=process.name, path=process.path, hashes=hashes)
    return None


@register("ecs", detect=_detect, priority=30)
def normalize_ecs(record: Any) -> Event:
    """Map one ECS document onto an Event."""
    if type(record) is not dict:
        raise NormalizeError(f"an ECS document is a JSON object, got {type(record).__name__}")
    stamp = get_path(record, "@timestamp")
    process = _process(record, "process")
    device = None
    hostname = _str(get_path(record, "host.hostname")) or _str(get_path(record, "host.name"))
    host_ip, host_id = _str(get_path(record, "host.ip")), _str(get_path(record, "host.id"))
    if hostname is not None or host_ip is not None or host_id is not None:
        device = Device(
            hostname=hostname,
            ip=host_ip,
            os=_str(get_path(record, "host.os.name")) or _str(get_path(record, "host.os.type")),
            uid=host_id,
            domain=_str(get_path(record, "host.domain")),
        )
    user = _user(record, "user")
    url = None
    url_string = _str(get_path(record, "url.full")) or _str(get_path(record, "url.original"))
    url_host = _str(get_path(record, "url.domain"))
    if url_string is not None or url_host is not None:
        url = Url(url_string=url_string, hostname=url_host, path=_str(get_path(record, "url.path")))
    registry = _str(get_path(record, "registry.path"))
    if registry is None:
        hive, key = _str(get_path(record, "registry.hive")), _str(get_path(record, "registry.key"))
        if key is not None:
            registry = f"{hive}\\{key}" if hive else key
    return Event(
        class_uid=_class(record),
        time=to_epoch_ms(stamp) or 0,
        severity_id=_severity(record),
        message=_str(get_path(record, "message")),
        format="ecs",
        metadata=Metadata(
            product=_str(get_path(record, "observer.product"))
            or _str(get_path(record, "event.provider"))
            or _str(get_path(record, "event.module")),
            vendor=_str(get_path(record, "observer.vendor")),
            log_name=_str(get_path(record, "event.dataset"))
            or _str(get_path(record, "data_stream.dataset"))
            or _str(get_path(record, "winlog.channel")),
            event_code=_str(get_path(record, "event.code")) or _str(get_path(record, "winlog.event_id")),
            uid=_str(get_path(record, "event.id")),
            original_time=stamp if isinstance(stamp, str) else None,
        ),
        actor=Actor(user=user) if user is not None else None,
        device=device,
        process=process,
        file=_file(record, process),
        src_endpoint=_endpoint(record, "source"),
        dst_endpoint=_endpoint(record, "destination"),
        url=url,
        query=_str(get_path(record, "dns.question.name")),
        registry_key=registry,
        raw=record,
    )
