"""Queue choice: the first matching queue rule of the tenant's routing policy, else the default queue."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bastion.model import Alert
from bastion.triage.policy import QueueRule, TriagePolicy

__all__ = ["choose_queue", "rule_matches"]


def rule_matches(
    rule: QueueRule, alert: Alert, *, tenant_name: str | None, assets: Sequence[dict[str, Any]]
) -> bool:
    """Whether every condition ``rule`` sets holds for ``alert`` (by its score, tenant, asset owners,
    source, rule id and tags)."""
    if rule.min_score is not None and alert.score < rule.min_score:
        return False
    if rule.max_score is not None and alert.score > rule.max_score:
        return False
    if rule.tenants is not None and tenant_name not in rule.tenants:
        return False
    if rule.asset_owner is not None and not any(
        isinstance(a, dict) and a.get("owner") == rule.asset_owner for a in assets
    ):
        return False
    if rule.sources is not None and alert.source not in rule.sources:
        return False
    if rule.rule_ids is not None and alert.rule_id not in rule.rule_ids:
        return False
    if rule.tags is not None:
        have = {t.lower() for t in alert.tags}
        if not any(t.lower() in have for t in rule.tags):
            return False
    return True


def choose_queue(
    policy: TriagePolicy,
    alert: Alert,
    *,
    tenant_name: str | None = None,
    assets: Sequence[dict[str, Any]] | None = None,
) -> tuple[str, int]:
    """(queue, tier) for ``alert`` (its ``score`` already set)."""
    if assets is None:
        assets = (alert.enrichment or {}).get("assets") or ()
    for rule in policy.routing.rules:
        if rule_matches(rule, alert, tenant_name=tenant_name, assets=assets):
            return rule.queue, rule.tier
    return policy.routing.default_queue, 1
