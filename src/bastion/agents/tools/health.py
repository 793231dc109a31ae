"""Health checks an agent may run: is a connection usable, is an intel feed being polled?

``connector_health`` checks, in order, what a step needs: the connection's settings, the secrets its
actions need (names only: values never leave the vault), then one harmless live request, a read action
of that connector (``get_*`` first, then ``find_*``/``list_*``) called through
:func:`~bastion.connectors.call.call_action` exactly as a step would, with a probe value that names no
real object. A 404 for that probe object proves the vendor answered and accepted the credential. The
failure, if any, is classified from the exception's type and status (:mod:`.diagnose`).

``feed_health`` reports the feed's recorded state (status, last error, last success, whether it is
overdue) and makes one request to its URL, reading only the answer's status and headers.

Both are read tools; the live request is audited because it reaches outside Bastion.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Coroutine
from typing import Any

from bastion.agents.spec import AgentDeps, agent_tool
from bastion.agents.tools.diagnose import classify_error, classify_exception
from bastion.store import TenantScope

__all__ = ["PROBE_VALUE", "connector_health", "feed_health", "probe_action"]

PROBE_VALUE = "bastion-health-probe"
_PROBE_TIMEOUT_S = 15.0


def run_coro(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run ``coro`` to completion from sync code, also when called inside a running event loop (an
    agent runtime on asyncio): then on a short-lived thread with its own loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


def probe_action(connection: str) -> tuple[str, dict[str, Any]] | None:
    """The read action used to probe ``connection`` and its probe inputs, or None when the connector
    has no read action (or no actions at all)."""
    from bastion.connectors.registry import all_actions

    reads = [a for a in all_actions() if a.connection == connection and a.impact == "read"]
    if not reads:
        return None

    def rank(a: Any) -> tuple[int, int, str]:
        verb = a.id.split(".", 1)[1]
        order = 0 if verb.startswith("get_") else 1 if verb.startswith(("find_", "list_")) else 2
        return order, len(a.schema.get("required", [])), a.id

    chosen = sorted(reads, key=rank)[0]
    props: dict[str, Any] = chosen.schema.get("properties", {})
    inputs: dict[str, Any] = {}
    for name in chosen.schema.get("required", []):
        kind = props.get(name, {}).get("type")
        inputs[name] = 0 if kind == "integer" else PROBE_VALUE
    return chosen.id, inputs


def _reach(config: dict[str, Any]) -> dict[str, Any]:
    """For a connection no read action uses (a plain HTTP one): is its base URL reachable at all? One
    GET through the SSRF guard, without secrets; any HTTP answer counts as reachable."""
    from bastion.connectors.core import check_url
    from bastion.connectors.egress import guarded_client

    base = str(config.get("base_url") or "")
    if not base.startswith(("http://", "https://")):
        return {"check": "live", "ok": None, "detail": "no read action to probe and no HTTP base_url"}
    headers = {str(k): str(v) for k, v in (config.get("headers") or {}).items()}

    async def get() -> int:
        allow_private = bool(config.get("allow_private", False))
        await check_url(base, allow_private=allow_private)
        async with guarded_client(
            timeout=_PROBE_TIMEOUT_S, verify=bool(config.get("verify_tls", True)), allow_private=allow_private
        ) as client:
            return (await client.get(base, headers=headers)).status_code

    try:
        status = run_coro(get())
    except Exception as exc:  # classified by type below
        return {
            "check": "live",
            "ok": False,
            "url": base,
            "detail": f"{type(exc).__name__}: {str(exc)[:300]}",
            "diagnosis": classify_exception(exc).as_dict(),
        }
    return {"check": "live", "ok": True, "url": base, "detail": f"reachable (HTTP {status})"}


def _audit(deps: AgentDeps, action: str, target_type: str, target: str, data: dict[str, Any]) -> None:
    with deps.db.write() as conn:
        TenantScope(conn, deps.tenant_id).audit.append(deps.actor, action, target_type, target, data)


@agent_tool("connector_health")
def connector_health(deps: AgentDeps, connection: str, live: bool = True) -> dict[str, Any]:
    """Check a connection: its settings (base URL), the secrets its actions need (present or missing,
    never their values), and with ``live`` one harmless read request to the vendor. Returns each check,
    ``healthy``, and when something fails the classified cause (auth, permission, rate_limit, network,
    bad_input, vendor_api_change, our_bug)."""
    from bastion.connectors.call import call_action
    from bastion.connectors.registry import all_actions
    from bastion.tenancy.connections import get_connection
    from bastion.tenancy.secrets import list_secrets

    name = connection.strip()
    checks: list[dict[str, Any]] = []
    with deps.db.read() as conn:
        config = get_connection(conn, deps.tenant_id, name)
    actions = [a for a in all_actions() if a.connection == name]
    if config is None:
        checks.append(
            {
                "check": "config",
                "ok": False,
                "detail": f"no connection {name!r} (`bastion connection set {name}`)",
            }
        )
    else:
        base = config.get("base_url")
        checks.append(
            {
                "check": "config",
                "ok": bool(base) or not actions,
                "detail": f"base_url {base}" if base else "no base_url set",
                "allow_private": bool(config.get("allow_private", False)),
            }
        )
    wanted = sorted({s for a in actions for s in a.secrets} | set((config or {}).get("secrets") or []))
    have = {str(s["name"]) for s in list_secrets(deps.db, deps.tenant_id)}
    missing = [s for s in wanted if s not in have]
    checks.append(
        {
            "check": "secrets",
            "ok": not missing,
            "needed": wanted,
            "missing": missing,
            "detail": f"missing {', '.join(missing)} (`bastion secret set`)" if missing else "all present",
        }
    )
    diagnosis: dict[str, Any] | None = None
    if config is None:
        diagnosis = {
            "cause": "bad_input",
            "evidence": f"the connection {name!r} is not configured",
            "status": None,
            "exception": None,
            "transient": False,
            "certainty": 90,
        }
    elif missing:
        diagnosis = {
            "cause": "auth",
            "evidence": f"secret(s) {', '.join(missing)} not in the vault",
            "status": None,
            "exception": None,
            "transient": False,
            "certainty": 90,
        }
    probe = probe_action(name)
    if live and config is not None and not missing:
        result: dict[str, Any]
        if probe is None:
            result = _reach(config)
            if result["ok"] is False:
                diagnosis = result.pop("diagnosis")
            checks.append(result)
            _audit(
                deps,
                "agent.health.connector",
                "connection",
                name,
                {"reach": result.get("url"), "ok": result["ok"]},
            )
        else:
            action_id, inputs = probe
            result = {"check": "live", "action": action_id, "inputs": inputs}
            try:
                run_coro(
                    call_action(
                        deps.db,
                        deps.tenant_id,
                        action_id,
                        inputs,
                        caller="agent-health",
                        key=f"{deps.run_id}:health:{name}",
                        connection_name=name,
                        timeout_s=_PROBE_TIMEOUT_S,
                    )
                )
                result.update(ok=True, detail="the vendor answered")
            except Exception as exc:  # classified below by type; nothing is re-raised from a probe
                d = classify_exception(exc)
                if d.status == 404:
                    result.update(
                        ok=True, detail="the vendor answered and accepted the credential (probe not found)"
                    )
                else:
                    result.update(ok=False, detail=f"{type(exc).__name__}: {str(exc)[:300]}")
                    diagnosis = d.as_dict()
            checks.append(result)
            _audit(
                deps,
                "agent.health.connector",
                "connection",
                name,
                {
                    "action": action_id,
                    "ok": result["ok"],
                    **({"cause": diagnosis["cause"]} if diagnosis else {}),
                },
            )
    healthy = all(c["ok"] is not False for c in checks)
    return {
        "connection": name,
        "configured": config is not None,
        "actions": [a.id for a in actions],
        "checks": checks,
        "healthy": healthy,
        "diagnosis": None if healthy else diagnosis,
    }


@agent_tool("feed_health")
def feed_health(deps: AgentDeps, feed: str, live: bool = True) -> dict[str, Any]:
    """An intel feed's state: format, URL, status, last error (classified), last poll and success,
    whether it is overdue; with ``live`` one request to its URL (status and headers only)."""
    import httpx

    from bastion.intel.polling import due
    from bastion.store._util import now_ms
    from bastion.store.intel import IntelRepository

    with deps.db.read() as conn:
        row = IntelRepository(conn, deps.tenant_id).feed(feed.strip())
        names = [f.name for f in IntelRepository(conn, deps.tenant_id).feeds()] if row is None else []
    if row is None:
        raise ValueError(f"no feed named {feed!r}; feeds: {', '.join(names) or 'none'}")
    now = now_ms()
    stored = classify_error(row.last_error, context="feed") if row.last_error else None
    state = {
        "name": row.name,
        "format": row.format,
        "url": row.url,
        "enabled": row.enabled,
        "status": row.status,
        "interval_s": row.interval_s,
        "last_poll": row.last_poll,
        "last_success": row.last_success,
        "last_error": row.last_error,
        "loaded_total": row.loaded_total,
        "due": due(row, now),
        "overdue": bool(
            row.enabled
            and row.interval_s > 0
            and row.last_success is not None
            and now - row.last_success > 3 * row.interval_s * 1000
        ),
    }
    live_check: dict[str, Any] | None = None
    if live and row.format != "taxii":  # a TAXII root needs its client; the poll itself checks it
        target = row.url.rstrip("/") + "/manifest.json" if row.format == "misp-feed" else row.url
        try:
            with (
                httpx.Client(timeout=_PROBE_TIMEOUT_S, follow_redirects=True) as client,
                client.stream("GET", target, headers={"User-Agent": "bastion-intel/1"}) as resp,
            ):
                status = resp.status_code
            ok = status < 400
            live_check = {"ok": ok, "status": status}
            if not ok:
                live_check["diagnosis"] = classify_exception(
                    httpx.HTTPStatusError(f"{status}", request=resp.request, response=resp), context="feed"
                ).as_dict()
        except httpx.HTTPError as exc:
            live_check = {
                "ok": False,
                "error": f"{type(exc).__name__}: {str(exc)[:300]}",
                "diagnosis": classify_exception(exc, context="feed").as_dict(),
            }
        _audit(deps, "agent.health.feed", "intel_feed", row.id, {"name": row.name, "ok": live_check["ok"]})
    healthy = row.status in ("ok", "new", "partial") and (live_check is None or bool(live_check["ok"]))
    diagnosis = None
    if not healthy:
        if live_check is not None and not live_check["ok"]:
            diagnosis = live_check["diagnosis"]
        elif stored is not None:
            diagnosis = stored.as_dict()
    return {
        **state,
        "stored_diagnosis": stored.as_dict() if stored else None,
        "live": live_check,
        "healthy": healthy,
        "diagnosis": diagnosis,
    }
