"""The `system` server: versions and health of this Bastion instance.

It exercises the scaffold end to end, and shows the pattern every server follows:
tools are plain async functions on a `ServerSpec`, they reach the runtime (database,
store, settings) through the MCP context's lifespan state, and the verified caller
through `current_caller()`.
"""

from __future__ import annotations

import platform
from importlib.metadata import version as package_version
from typing import Any, TypedDict

from mcp.server.mcpserver import Context
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS, MODERN_PROTOCOL_VERSIONS

from bastion.mcp import ServerRuntime, ServerSpec, current_caller
from bastion.mcp.health import check_health
from bastion.mcp.spec import bastion_version

__all__ = ["spec"]

spec = ServerSpec(
    name="system",
    description="Versions and health of this Bastion instance.",
    instructions=(
        "Call `version` to learn what runs here and `health` to check the database, store and server."
    ),
)


class VersionInfo(TypedDict):
    bastion: str
    python: str
    mcp_sdk: str
    protocol_versions: list[str]
    server: str


@spec.tool()
async def version() -> VersionInfo:
    """Bastion, Python and MCP SDK versions, and the MCP protocol versions this server speaks."""
    return {
        "bastion": bastion_version(),
        "python": platform.python_version(),
        "mcp_sdk": package_version("mcp"),
        "protocol_versions": [*HANDSHAKE_PROTOCOL_VERSIONS, *MODERN_PROTOCOL_VERSIONS],
        "server": spec.name,
    }


@spec.tool()
async def health(ctx: Context[ServerRuntime, Any]) -> dict[str, Any]:
    """Database (reachable, PostgreSQL and pgvector versions, latency), store (backend,
    ping latency) and server (name, uptime, transport) state, with an overall
    `status` of `ok` or `degraded`, and the caller as this server sees it (subject,
    tenant, roles, and the obligations it applies: datasets, collections, row limit,
    redacted fields)."""
    runtime = ctx.request_context.lifespan_context
    report = await check_health(runtime)
    caller = current_caller()
    report["caller"] = {
        "subject": caller.subject,
        "tenant": caller.tenant,
        "roles": list(caller.roles),
        "obligations": caller.obligations.model_dump(mode="json"),
    }
    return report
