"""The MCP server: Bastion's read tools and registered actions, offered to external AI assistants (Claude
Desktop, IDE agents, ...) over the Model Context Protocol, with the same guarantees as everything else.

- **Tenant authentication**: the assistant's process is given a tenant API key (env ``BASTION_API_KEY``
  for stdio); it must belong to the tenant named on the command line and not be revoked. Reads need any
  role; calling an action needs the analyst role or above, as starting a run over the API does.
- **Approvals**: an action call runs as a one-step agent run (agent ``mcp``) through the agent runtime,
  so the tenant's approval policy applies exactly as for workflows and agents: a high-impact action
  answers ``approval <id> pending`` and runs only once a person approves it (``bastion approve``, the
  API, Slack, e-mail links); the run is durable and a worker carries it out after the decision.
- **Audit**: every call is audited as ``mcp.call`` by ``mcp:<key name>``, with the tool, arguments and
  outcome; the agent runtime adds its own run entries for actions.

Built on the MCP SDK's low-level ``Server`` (``mcp`` 2.x; FastMCP became ``MCPServer`` there), because
the tools are data (registry schemas), not Python functions to decorate.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import mcp_types as types
import orjson

from bastion.agents.spec import AgentDeps, agent_tools, tool_name, wire_name
from bastion.model import ROLE_RANK, Role
from bastion.store import Database, TenantRepository, TenantScope

__all__ = [
    "McpAuthError",
    "McpSession",
    "build_server",
    "call_tool",
    "list_tools",
    "open_session",
    "serve_stdio",
]

ACTION_ROLE = Role.ANALYST
# Read tools that stay inside Bastion: ``analyze_file`` reads a path on the Bastion host (its strings and
# decoded content would leak any file the service can read to a remote assistant).
NOT_OVER_MCP = frozenset({"analyze_file"})
WAIT_S = 60.0  # how long an action call waits for its run before answering "still running"


class McpAuthError(Exception):
    """The API key is missing, unknown, revoked, or of another tenant."""


@dataclass(frozen=True)
class McpSession:
    db: Database
    tenant_id: str
    tenant_name: str
    role: Role
    actor: str  # mcp:<key name>
    api_key: str = field(default="", repr=False)  # checked again on every call (revocation, role change)


def open_session(db: Database, tenant: str, api_key: str) -> McpSession:
    """Authenticate ``api_key`` for ``tenant`` (by name) and name the caller ``mcp:<key name>``."""
    from bastion.tenancy.service import authenticate

    principal = authenticate(db, api_key.strip()) if api_key and api_key.strip() else None
    if principal is None:
        raise McpAuthError("invalid or revoked API key (BASTION_API_KEY)")
    if principal.tenant_name != tenant:
        raise McpAuthError(f"the API key does not belong to tenant {tenant!r}")
    with db.read() as conn:
        keys = TenantRepository(conn).api_keys(principal.tenant_id)
    name = next((str(k["name"]) for k in keys if k["id"] == principal.key_id), str(principal.key_id))
    return McpSession(
        db, principal.tenant_id, principal.tenant_name, principal.role, f"mcp:{name}", api_key.strip()
    )


# ------------------------------------------------------------------------------------ tools


def list_tools() -> list[types.Tool]:
    """The read agent tools and every registered action, with their JSON schemas; action names use the
    wire form (``crowdstrike__contain_host``) and say their impact."""
    from bastion.agents.toolset import agent_tool_schema
    from bastion.connectors.registry import all_actions

    tools = [
        types.Tool(
            name=t.name,
            description=(t.description or t.name).split("\nArgs:")[0].strip() + " (read)",
            input_schema=agent_tool_schema(t.fn),
        )
        for t in agent_tools()
        if t.impact == "read" and t.name not in NOT_OVER_MCP
    ]
    for a in all_actions():
        note = " A person must approve it before it runs." if a.impact == "high" else ""
        tools.append(
            types.Tool(
                name=wire_name(a.id),
                description=f"{a.description or a.id} (action {a.id}, impact {a.impact}).{note}",
                input_schema=a.schema,
            )
        )
    return tools


def _text(value: Any) -> str:
    return orjson.dumps(value, default=str, option=orjson.OPT_INDENT_2).decode()


def _result(payload: dict[str, Any], text: str | None = None, *, error: bool = False) -> types.CallToolResult:
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=text or _text(payload))],
        structured_content=payload,
        is_error=error,
    )


def _audit(session: McpSession, tool: str, args: dict[str, Any], outcome: dict[str, Any]) -> None:
    with session.db.write() as conn:
        TenantScope(conn, session.tenant_id).audit.append(
            session.actor, "mcp.call", "tool", tool, {"args": args, **outcome}
        )


def call_tool(session: McpSession, name: str, arguments: dict[str, Any] | None) -> types.CallToolResult:
    """Run one tool call for the session (blocking: the server runs it in a worker thread)."""
    from bastion.agents.spec import get_agent_tool
    from bastion.connectors.registry import get_action

    tool = tool_name(name)
    args = dict(arguments or {})
    try:  # a key revoked (or a user demoted) while the assistant is connected counts from the next call
        session = open_session(session.db, session.tenant_name, session.api_key)
    except McpAuthError as exc:
        return _result({"error": str(exc)}, f"error: {exc}", error=True)
    read = get_agent_tool(tool)
    if read is not None and read.impact == "read" and tool not in NOT_OVER_MCP:
        deps = AgentDeps(
            db=session.db,
            tenant_id=session.tenant_id,
            actor=session.actor,
            run_id=f"mcp-{uuid.uuid4().hex[:12]}",
        )
        try:
            value = read.fn(deps, **args)
        except (ValueError, TypeError) as exc:  # a bad argument: the assistant sees why
            _audit(session, tool, args, {"status": "error", "error": str(exc)})
            return _result({"error": str(exc)}, f"error: {exc}", error=True)
        _audit(session, tool, args, {"status": "ok"})
        return _result(value if isinstance(value, dict) else {"result": value})
    if get_action(tool) is None:
        _audit(session, tool, args, {"status": "refused", "error": "unknown tool"})
        return _result({"error": f"unknown tool {name!r}"}, f"error: unknown tool {name!r}", error=True)
    if ROLE_RANK[session.role] < ROLE_RANK[ACTION_ROLE]:
        why = f"role {session.role.value!r} may not call actions; it needs {ACTION_ROLE.value} or higher"
        _audit(session, tool, args, {"status": "refused", "error": why})
        return _result({"error": why}, f"error: {why}", error=True)
    return _call_action(session, tool, args)


def _call_action(session: McpSession, tool: str, args: dict[str, Any]) -> types.CallToolResult:
    from bastion.agents.runtime import AgentRunError, run_agent
    from bastion.agents.spec import Task

    task = Task(
        agent="mcp",
        objective=f"{session.actor} calls {tool}",
        input={"tool": tool, "args": args, "requested_by": session.actor},
        tenant_id=session.tenant_id,
    )
    try:
        result = run_agent(session.db, session.tenant_id, "mcp", task, actor=session.actor, wait_s=WAIT_S)
    except AgentRunError as exc:
        _audit(session, tool, args, {"status": "error", "error": str(exc)})
        return _result({"error": str(exc)}, f"error: {exc}", error=True)
    pending = [a for a in result.approvals if a["status"] == "pending"]
    base = {"run_id": result.run_id, "status": result.status}
    if result.status == "waiting_approval" and pending:
        aid = pending[0]["approval_id"]
        payload = {**base, "approval_id": aid, "tool": tool}
        _audit(session, tool, args, {**payload})
        text = (
            f"approval {aid} pending: {tool} runs only once a person approves it "
            f"(bastion approve {aid} --tenant {session.tenant_name} --as USER). Run {result.run_id}."
        )
        return _result(payload, text)
    if result.status == "running":  # a busy worker: the run goes on; its result is in the run record
        _audit(session, tool, args, {**base})
        return _result({**base, "tool": tool}, f"{tool} is still running as agent run {result.run_id}")
    output = result.output or {}
    if result.status == "succeeded" and output.get("ok"):
        _audit(session, tool, args, {**base})
        return _result({**base, "result": output.get("result")})
    error = output.get("error") or result.error or f"the run is {result.status}"
    _audit(session, tool, args, {**base, "error": str(error)})
    return _result({**base, "error": str(error)}, f"error: {error}", error=True)


# ------------------------------------------------------------------------------------ server


def build_server(session: McpSession) -> Any:
    """The MCP server for one authenticated session."""
    import anyio
    from mcp.server import Server

    async def on_list_tools(ctx: Any, params: Any) -> types.ListToolsResult:
        return types.ListToolsResult(tools=await anyio.to_thread.run_sync(list_tools))

    async def on_call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        return await anyio.to_thread.run_sync(call_tool, session, params.name, params.arguments)

    return Server(
        "bastion",
        instructions=(
            f"Bastion security operations for tenant {session.tenant_name}: read alerts, cases, events and "
            "intel; call response actions. High-impact actions wait for a human approval."
        ),
        on_list_tools=on_list_tools,
        on_call_tool=on_call_tool,
    )


def serve_stdio(db: Database, tenant: str, api_key: str) -> None:
    """Serve ``tenant`` over stdio until the client closes the stream. Action runs need the engine: with
    no live ``bastion worker``, this process joins as an executor (a run still parked on an approval when
    it exits is continued by the next worker)."""
    import anyio
    from mcp.server.stdio import stdio_server

    session = open_session(db, tenant, api_key)

    async def main() -> None:
        import bastion.agents.runtime  # noqa: F401  (the agent workflow, registered before DBOS launches)
        from bastion.respond.runtime import Executor, live_workers

        async with stdio_server() as (read, write):
            executor = None
            if not await anyio.to_thread.run_sync(live_workers, db):
                executor = Executor(db, kind="mcp", listen=False)
                await anyio.to_thread.run_sync(executor.launch)
            try:
                server = build_server(session)
                await server.run(read, write, server.create_initialization_options())
            finally:
                if executor is not None:
                    await anyio.to_thread.run_sync(executor.shutdown)

    anyio.run(main)
