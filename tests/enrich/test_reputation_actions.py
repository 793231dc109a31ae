"""The reputation lookups as actions (``virustotal.lookup``, ``abuseipdb.check``, ``greynoise.lookup``),
called through the policy layer as the engine calls them, against local servers that speak the vendors'
documented APIs over real sockets: verdicts, answers cached per tenant and inputs (no quota spent), the
vendor's default quota counted in the store's shared window, a connection's own rate_limit preferred,
and clear errors."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bastion.connectors.call import call_action
from bastion.connectors.policy import RESULTS
from bastion.connectors.ratelimit import RateLimits
from bastion.connectors.registry import ActionError, get_action
from bastion.tenancy.connections import set_connection
from bastion.tenancy.secrets import set_secret
from bastion.tenancy.service import create_tenant
from tests.connectors.recorded import tenant_store
from tests.enrich.test_reputation import _vendor
from tests.intel.servers import Recorded, http_server

KEYS = {"virustotal_api_key": "vt-key", "abuseipdb_api_key": "abuse-key", "greynoise_api_key": "gn-key"}


@pytest.fixture
def env(tmp_path: Path) -> Iterator[dict[str, Any]]:
    with http_server(_vendor) as (base, rec):
        conn = {"base_url": f"{base}/vt", "allow_private": True}
        db, tenant = tenant_store(str(tmp_path / "bastion.db"), "virustotal", conn, KEYS)
        for vendor in ("abuseipdb", "greynoise"):
            local = {"base_url": f"{base}/{vendor}", "allow_private": True}
            set_connection(db, tenant, vendor, local, actor="test")
        RESULTS.clear()
        yield {"db": db, "tenant": tenant, "rec": rec, "base": base}
        RESULTS.clear()
        db.dispose()


def call(env: dict[str, Any], action_id: str, tenant: str | None = None, **inputs: Any) -> Any:
    return asyncio.run(
        call_action(env["db"], tenant or env["tenant"], action_id, inputs, caller="test", key="k")
    )


def test_each_lookup_answers_a_verdict_and_the_cache_spares_the_vendor(env: dict[str, Any]) -> None:
    rec: Recorded = env["rec"]
    vt = call(env, "virustotal.lookup", value="203.0.113.66", kind="ip")
    assert vt["found"] and vt["malicious"] and vt["score"] == 10 and vt["reputation"] == -12
    assert call(env, "virustotal.lookup", value="http://bad.example/x", kind="url")["malicious"] is False
    assert call(env, "virustotal.lookup", value="a" * 64, kind="hash")["found"] is False  # a 404
    ab = call(env, "abuseipdb.check", ip="203.0.113.66")
    assert ab["malicious"] and ab["score"] == 100 and ab["total_reports"] == 42 and ab["country"] == "NL"
    gn = call(env, "greynoise.lookup", ip="203.0.113.66")
    assert gn["classification"] == "malicious" and gn["noise"] is True
    assert call(env, "greynoise.lookup", ip="192.0.2.1")["found"] is False
    assert len(rec.requests) == 6
    again = call(env, "virustotal.lookup", value="203.0.113.66", kind="ip")
    assert again == vt and len(rec.requests) == 6  # from the cache
    again["score"] = -1  # a caller changing its answer does not change the cache
    assert call(env, "virustotal.lookup", value="203.0.113.66", kind="ip")["score"] == 10
    assert call(env, "abuseipdb.check", ip="203.0.113.66", max_age_days=30)["score"] == 100
    assert len(rec.requests) == 7  # other inputs: asked again

    other, _ = create_tenant(env["db"], "globex", actor="test")  # another tenant's cache is its own
    set_secret(env["db"], other.id, "virustotal_api_key", "vt-key", actor="test")
    local = {"base_url": f"{env['base']}/vt", "allow_private": True}
    set_connection(env["db"], other.id, "virustotal", local, actor="test")
    assert call(env, "virustotal.lookup", tenant=other.id, value="203.0.113.66", kind="ip") == vt
    assert len(rec.requests) == 8


def test_the_vendors_default_quota_is_counted_in_the_shared_window_unless_the_connection_sets_one(
    env: dict[str, Any],
) -> None:
    defn = get_action("virustotal.lookup")
    assert defn is not None and defn.rate_limit == (4, 60.0) and defn.cache_ttl_s == 3600.0
    for i in range(4):  # VirusTotal's public API: 4 a minute
        assert call(env, "virustotal.lookup", value=f"{i:064x}", kind="hash")["found"] is False
    limits = RateLimits(env["db"])
    granted, wait = limits.try_acquire(env["tenant"], "virustotal", 4, 60)
    assert granted is None and 0 < wait <= 60  # the window the lookups used is full for every worker
    paid = {"base_url": f"{env['base']}/vt", "allow_private": True}
    paid["rate_limit"] = {"limit": 100, "period_s": 60}
    set_connection(env["db"], env["tenant"], "virustotal", paid, actor="test")
    assert call(env, "virustotal.lookup", value=f"{5:064x}", kind="hash")["found"] is False  # no wait


def test_refusals_and_bad_inputs_are_clear(env: dict[str, Any]) -> None:
    set_secret(env["db"], env["tenant"], "virustotal_api_key", "wrong", actor="test")
    with pytest.raises(ActionError, match="virustotal: 401"):
        call(env, "virustotal.lookup", value="203.0.113.66", kind="ip")
    with pytest.raises(ActionError, match="kind"):
        call(env, "virustotal.lookup", value="x@y.z", kind="email")
    with pytest.raises(ValueError, match="max_age_days must be 1-365"):
        call(env, "abuseipdb.check", ip="203.0.113.66", max_age_days=0)
