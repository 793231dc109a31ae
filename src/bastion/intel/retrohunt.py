"""Retro-hunt: when new indicators arrive, search stored events of the last N days (default 30) for them
through the observable index, and raise one alert per (indicator, event) hit, marked ``retro-hunt``.

The index is keyed by exact observable value, so exact-value indicators (addresses, domains, URLs,
hashes, e-mail addresses, file names) are searched; CIDR ranges, parent-domain matches and regex
indicators cannot use it and are not retro-hunted. Alerts are idempotent per (indicator, event) through
the alert's ``source``/``external_id``, so a re-run raises nothing twice. A value on a MISP warning list
(``benign``: the names of the lists holding it) still raises its alert, marked ``known-benign`` and at
informational severity: the match is worth a record, not an analyst's attention.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import msgspec

from bastion.intel.store import decayed_confidence
from bastion.model import Alert, Observable, ObservableType, Severity
from bastion.model.intel import Indicator, IndicatorType
from bastion.store import Database
from bastion.store._util import now_ms
from bastion.store.scope import TenantScope

__all__ = ["DEFAULT_RETRO_DAYS", "RetroHuntResult", "retro_hunt"]

DEFAULT_RETRO_DAYS = 30
_OBS: dict[IndicatorType, tuple[str, ...]] = {
    IndicatorType.IPV4: ("ipv4",),
    IndicatorType.IPV6: ("ipv6",),
    IndicatorType.DOMAIN: ("domain", "host"),
    IndicatorType.URL: ("url",),
    IndicatorType.MD5: ("md5",),
    IndicatorType.SHA1: ("sha1",),
    IndicatorType.SHA256: ("sha256",),
    IndicatorType.EMAIL: ("email",),
    IndicatorType.FILE_NAME: ("process_name",),
    IndicatorType.JA3: ("ja3",),
    IndicatorType.JA4: ("ja4",),
}


class RetroHuntResult(msgspec.Struct):
    searched: int = 0
    hits: int = 0
    alerts: list[str] = msgspec.field(default_factory=list)


def _severity(confidence: int) -> Severity:
    return Severity.HIGH if confidence >= 75 else Severity.MEDIUM if confidence >= 40 else Severity.LOW


def retro_hunt(
    db: Database,
    tenant_id: str,
    indicators: Sequence[Indicator],
    *,
    days: int = DEFAULT_RETRO_DAYS,
    actor: str = "intel:retro-hunt",
    now: int | None = None,
    limit_per_indicator: int = 1000,
    benign: Callable[[str, str], list[str]] | None = None,
    decay: dict[str, float] | None = None,
) -> RetroHuntResult:
    result = RetroHuntResult()
    now = now if now is not None else now_ms()
    start = now - days * 86_400_000
    with db.write() as conn:
        scope = TenantScope(conn, tenant_id)
        for ind in indicators:
            obs_types = _OBS.get(ind.type)
            if not obs_types or ind.pattern or ind.id is None:
                continue
            result.searched += 1
            if ind.valid_until is not None and ind.valid_until < now:
                continue
            seen: set[str] = set()
            for obs_type in obs_types:
                events, _ = scope.events.search(
                    start=start, value=ind.value, obs_type=obs_type, limit=limit_per_indicator
                )
                lists: list[str] | None = None  # asked on the first hit only (loading the lists costs)
                for ev in events:
                    if ev.id in seen:
                        continue
                    seen.add(ev.id)
                    result.hits += 1
                    if lists is None:
                        lists = benign(ind.value, obs_type) if benign is not None else []
                    alert = Alert(
                        title=f"Retro-hunt: {ind.type.value} {ind.value} ({ind.source}) in a stored event",
                        severity=Severity.INFORMATIONAL
                        if lists
                        else _severity(decayed_confidence(ind, now, decay)),
                        time=ev.time,
                        source="retro-hunt",
                        external_id=f"{ind.id}:{ev.id}",
                        rule_id=f"intel:{ind.id}",
                        description=ind.description,
                        techniques=list(ind.techniques),
                        tags=["retro-hunt", *ind.tags, *(["known-benign"] if lists else [])],
                        observables=[Observable(type=ObservableType(obs_type), value=ind.value)],
                        event_ids=[ev.id],
                        raw={
                            "indicator_id": ind.id,
                            "indicator": ind.value,
                            "event_id": ev.id,
                            "retro_hunt": True,
                            **({"warninglists": lists} if lists else {}),
                        },
                    )
                    stored, new = scope.alerts.insert(alert)
                    if new and stored.id:
                        result.alerts.append(stored.id)
                        scope.audit.append(
                            actor,
                            "alert.create",
                            "alert",
                            stored.id,
                            {
                                "title": stored.title,
                                "source": "retro-hunt",
                                "indicator": ind.id,
                                "event": ev.id,
                            },
                        )
    return result
