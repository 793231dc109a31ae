"""The MCP server through the real MCP client over stdio, against the real ``bastion agent mcp`` command:
tools listed (read tools and actions), a read tool called on real data, a high-impact action that only
becomes a pending approval (no effect), a viewer refused an action, every call audited as
``mcp:<key name>``; and the authentication rules (wrong tenant, revoked key) checked directly."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

from bastion.agents.mcp_server import McpAuthError, call_tool, open_session
from bastion.connectors import edl
from bastion.model import Role
from bastion.store import Database, TenantScope
from bastion.tenancy.service import create_api_key, create_tenant, revoke_api_key
from tests.agents.objective.world import alert, ingest

ROOT = Path(__file__).resolve().parents[3]


def _client_env(db: Database, key: str) -> dict[str, str]:
    return {
        "BASTION_DATABASE_URL": db.url,
        "BASTION_API_KEY": key,
        "PYTHONPATH": str(ROOT / "src"),
        **{k: v for k, v in os.environ.items() if k in ("BASTION_SECRET_KEY", "HOME")},
    }


async def _session(db: Database, key: str, work: Any) -> Any:
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "bastion.cli", "agent", "mcp", "--tenant", "acme"],
        env=_client_env(db, key),
        cwd=str(ROOT),
    )
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        return await work(session)


def test_tools_reads_and_a_pending_high_impact_action(sqlite_db: Database) -> None:
    tenant, _ = create_tenant(sqlite_db, "acme")
    edl.create_list(sqlite_db, tenant.id, "blocked", actor="test")
    ingest(sqlite_db, tenant.id, alert("Mimikatz on web-01", host="web-01", user="alice"))
    key = create_api_key(sqlite_db, "acme", role=Role.ANALYST, name="claude")
    viewer = create_api_key(sqlite_db, "acme", role=Role.VIEWER, name="reader")

    async def work(session: ClientSession) -> dict[str, Any]:
        tools = await session.list_tools()
        read = await session.call_tool("search_alerts", {"entity": "web-01"})
        act = await session.call_tool(
            "edl__add", {"list": "blocked", "value": "198.51.100.7", "reason": "c2"}
        )
        bad = await session.call_tool("no_such_tool", {})
        return {"tools": {t.name: t for t in tools.tools}, "read": read, "act": act, "bad": bad}

    got = anyio.run(_session, sqlite_db, key, work)
    names = set(got["tools"])
    assert {"search_alerts", "get_case", "intel_lookup", "edl__add", "crowdstrike__contain_host"} <= names
    assert "retry_run" not in names and "analyze_file" not in names  # reads only; no host files
    assert "approve" in (got["tools"]["edl__add"].description or "")
    assert got["tools"]["edl__add"].input_schema["required"] == ["list", "value"]

    read = got["read"]
    assert not read.is_error and read.structured_content["count"] == 1
    assert read.structured_content["alerts"][0]["title"] == "Mimikatz on web-01"

    act = got["act"]
    assert not act.is_error
    approval_id = act.structured_content["approval_id"]
    assert act.structured_content["status"] == "waiting_approval"
    assert act.content[0].text.startswith(f"approval {approval_id} pending")
    assert got["bad"].is_error

    with sqlite_db.read() as conn:
        assert edl.list_entries(conn, tenant.id, "blocked") == []  # nothing blocked without the approval
        entries = [e for e in TenantScope(conn, tenant.id).audit.entries() if e.action == "mcp.call"]
    assert [(e.actor, e.target_id) for e in entries] == [
        ("mcp:claude", "search_alerts"),
        ("mcp:claude", "edl.add"),
        ("mcp:claude", "no_such_tool"),
    ]
    assert entries[1].data["approval_id"] == approval_id

    # a viewer's key reads but may not call actions (checked in-process: same code path as over stdio)
    as_viewer = open_session(sqlite_db, "acme", viewer)
    refused = call_tool(as_viewer, "edl__add", {"list": "blocked", "value": "198.51.100.8"})
    assert refused.is_error and "viewer" in refused.content[0].text
    assert not call_tool(as_viewer, "search_alerts", {"host": "web-01"}).is_error


def test_keys_are_checked(sqlite_db: Database) -> None:
    create_tenant(sqlite_db, "acme")
    create_tenant(sqlite_db, "other")
    key = create_api_key(sqlite_db, "acme", role=Role.ANALYST, name="claude")
    session = open_session(sqlite_db, "acme", key)
    assert session.actor == "mcp:claude" and key not in repr(session)
    with pytest.raises(McpAuthError, match="does not belong to tenant 'other'"):
        open_session(sqlite_db, "other", key)
    assert not call_tool(session, "search_alerts", {"host": "web-01"}).is_error
    revoke_api_key(sqlite_db, "acme", key[:12])
    # an open session: the next call is refused, with the reason
    after = call_tool(session, "search_alerts", {"host": "web-01"})
    assert after.is_error and "invalid or revoked" in after.content[0].text
    with pytest.raises(McpAuthError, match="invalid or revoked"):
        open_session(sqlite_db, "acme", key)
