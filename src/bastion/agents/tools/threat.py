"""Read tools over threat intelligence: indicator lookups (the same answer as ``bastion intel lookup``,
with the known-benign warning lists), indicators linked to an actor, campaign, malware family or
technique by name, and MITRE ATT&CK objects by id or name.

The indicator document search is a tenant-scoped substring pre-filter on the stored JSON, confirmed on
the decoded fields (actors, malware, tags, techniques, description), so a name inside another field
cannot match.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec
from sqlalchemy import func, select

from bastion.agents.spec import AgentDeps, agent_tool
from bastion.agents.tools.read import ATTACK_ID, _cut, _limit

__all__ = ["attack_lookup", "intel_lookup", "intel_search"]


@agent_tool("intel_lookup")
def intel_lookup(deps: AgentDeps, value: str, limit: int = 20) -> dict[str, Any]:
    """Threat intel on one value (IP, CIDR, domain, URL, hash, e-mail, ...): the matching indicators with
    their confidence (decayed with age), sources, tags, actors, malware and ATT&CK techniques, and the
    known-benign warning lists the value is on."""
    from bastion.config import load_settings
    from bastion.intel.store import lookup
    from bastion.intel.warninglists import shared_warninglists

    if not value.strip():
        raise ValueError("value must not be empty")
    try:
        wl = shared_warninglists(load_settings().warninglists_path)
    except ValueError:
        wl = None  # the warning lists are optional reference data
    answer = lookup(deps.db, deps.tenant_id, value, warninglists=wl)
    matches = answer["matches"]
    answer["matches"] = matches[: _limit(limit)]
    answer["match_count"] = len(matches)
    return answer


@agent_tool("intel_search")
def intel_search(deps: AgentDeps, name: str, limit: int = 50) -> dict[str, Any]:
    """Indicators linked to a threat actor, campaign, malware family, tag or ATT&CK technique by name
    (case-insensitive; actors, malware, tags, techniques and descriptions are searched), with the
    actors, malware, techniques and sources they share."""
    from bastion.intel.store import decay_policy, decayed_confidence
    from bastion.model.intel import Indicator
    from bastion.store._util import now_ms
    from bastion.store.intel import intel_indicators

    needle = name.strip()
    if len(needle) < 2:
        raise ValueError("name must have at least 2 characters")
    n = _limit(limit)
    low = needle.lower()
    decode = msgspec.json.Decoder(Indicator).decode
    escaped = low.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")

    t = intel_indicators.c
    found: list[Indicator] = []
    with deps.db.read() as conn:
        rows = conn.execute(
            select(t.pk, t.document)
            .where(t.tenant_id == deps.tenant_id, func.lower(t.document).like(f"%{escaped}%", escape="\\"))
            .order_by(t.confidence.desc(), t.pk)
            .limit(2000)
        )
        for r in rows:
            ind = decode(r.document)
            ind.id = str(r.pk)
            fields = [*ind.actors, *ind.malware, *ind.tags, *ind.techniques]
            if (
                any(low == f.lower() or low in f.lower() for f in fields)
                or low in (ind.description or "").lower()
            ):
                found.append(ind)
    now = now_ms()
    decay = decay_policy(deps.db, deps.tenant_id)
    actors: dict[str, int] = {}
    malware: dict[str, int] = {}
    techniques: dict[str, int] = {}
    sources: dict[str, int] = {}
    for ind in found:
        for a in ind.actors:
            actors[a] = actors.get(a, 0) + 1
        for m in ind.malware:
            malware[m] = malware.get(m, 0) + 1
        for tq in ind.techniques:
            techniques[tq] = techniques.get(tq, 0) + 1
        for s in {s.source for s in ind.sightings} or {ind.source}:
            sources[s] = sources.get(s, 0) + 1

    def top(d: dict[str, int]) -> list[dict[str, Any]]:
        return [
            {"name": k, "indicators": v} for k, v in sorted(d.items(), key=lambda kv: (-kv[1], kv[0]))[:20]
        ]

    return {
        "name": needle,
        "count": len(found),
        "indicators": [
            {
                "id": ind.id,
                "type": ind.type.value,
                "value": ind.value,
                "confidence": decayed_confidence(ind, now, decay),
                "source": ind.source,
                "actors": ind.actors,
                "malware": ind.malware[:5],
                "techniques": ind.techniques,
                "tags": ind.tags[:10],
            }
            for ind in found[:n]
        ],
        "actors": top(actors),
        "malware": top(malware),
        "techniques": top(techniques),
        "sources": top(sources),
    }


@agent_tool("attack_lookup")
def attack_lookup(deps: AgentDeps, query: str, limit: int = 5) -> dict[str, Any]:
    """MITRE ATT&CK: an id (T1059.001, TA0002, G0006, S0154, C0010) gives that object with what it uses
    and is used by; a name or alias ("PowerShell", "APT1", "Comment Crew") gives the best matches."""
    from bastion.config import load_settings
    from bastion.intel.attack import shared_attack

    q = query.strip()
    if not q:
        raise ValueError("query must not be empty")
    try:
        att = shared_attack(load_settings().attack_path)
    except ValueError as exc:  # the matrix is reference data; say where it was expected
        raise ValueError(str(exc)) from None

    def shown(attack_id: str) -> dict[str, Any]:
        doc = att.show(attack_id)
        doc["description"] = _cut(re.sub(r"\(Citation: [^)]*\)", "", doc.get("description", "")), 600)
        for key in ("uses", "used_by"):
            doc[f"{key}_total"] = len(doc.get(key) or [])
            doc[key] = (doc.get(key) or [])[:25]
        return doc

    if ATTACK_ID.match(q):
        if att.get(q) is None:
            return {"query": q, "found": [], "note": f"no ATT&CK object {q.upper()} in the loaded matrix"}
        return {"query": q, "found": [shown(q)]}
    low = q.lower()
    exact = [
        o for o in att.objects.values() if o.name.lower() == low or low in (a.lower() for a in o.aliases)
    ]
    partial = [
        o
        for o in att.objects.values()
        if o not in exact and (low in o.name.lower() or any(low in a.lower() for a in o.aliases))
    ]
    rank = {"group": 0, "campaign": 1, "software": 2, "technique": 3, "tactic": 4}
    ordered = sorted(exact, key=lambda o: (rank.get(o.kind, 9), o.id)) + sorted(
        partial, key=lambda o: (rank.get(o.kind, 9), len(o.name), o.id)
    )
    return {"query": q, "found": [shown(o.id) for o in ordered[: _limit(limit, 20)]]}
