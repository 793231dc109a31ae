"""The auto-close decision, with its safety limits: a low score alone never closes an alert that has a
confident intel match, touches a critical asset, or belongs to a multi-technique case."""

from __future__ import annotations

from collections.abc import Collection

from bastion.model import Alert
from bastion.triage.policy import AutoClosePolicy

__all__ = ["autoclose_reason", "blockers"]


def blockers(alert: Alert, policy: AutoClosePolicy, case_techniques: Collection[str]) -> list[str]:
    """Why ``alert`` must stay open whatever its score (empty: nothing prevents closing it)."""
    out = []
    enr = alert.enrichment or {}
    for m in enr.get("intel") or ():
        if isinstance(m, dict) and not m.get("known_benign"):
            conf = int(m.get("confidence") or 0)
            if conf >= policy.intel_confidence:
                out.append(f"intel match confidence {conf} >= {policy.intel_confidence}")
                break
    for a in enr.get("assets") or ():
        if isinstance(a, dict) and int(a.get("criticality") or 0) >= policy.critical_asset:
            out.append(
                f"asset {a.get('hostname')} criticality {a.get('criticality')} >= {policy.critical_asset}"
            )
            break
    n = len(set(case_techniques) | set(alert.techniques))
    if n >= policy.multi_technique and case_techniques:
        out.append(f"case spans {n} techniques >= {policy.multi_technique}")
    return out


def autoclose_reason(
    alert: Alert, policy: AutoClosePolicy, case_techniques: Collection[str], *, in_case: bool
) -> str | None:
    """The close reason if ``alert`` (its score set) is to be auto-closed, else None."""
    if not policy.enabled or alert.score > policy.max_score:
        return None
    if blockers(alert, policy, case_techniques if in_case else ()):
        return None
    return (
        f"auto-closed: score {alert.score} <= {policy.max_score} (no confident intel, no critical asset, "
        "no multi-technique case)"
    )
