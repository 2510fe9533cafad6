"""`build_server`: turn a `ServerSpec` and its open runtime into an `MCPServer`.

The runtime is opened by the caller (`serve`, or a test) and outlives every MCP
connection; the server's lifespan only hands it to each connection as lifespan
state, so stdio, Streamable HTTP and the SDK's in-memory client all see the same one.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.resources import ResourceSecurity

from bastion.mcp.caller_middleware import CallerContextMiddleware
from bastion.mcp.runtime import ServerRuntime
from bastion.mcp.spec import ServerSpec
from bastion.mcp.strict_arguments import StrictArgumentsMiddleware

__all__ = ["build_server"]


def build_server(spec: ServerSpec, runtime: ServerRuntime) -> MCPServer[ServerRuntime]:
    """An `MCPServer` serving `spec`, enforcing caller contexts, with `runtime` as lifespan state."""

    @asynccontextmanager
    async def lifespan(_: MCPServer[ServerRuntime]) -> AsyncGenerator[ServerRuntime, None]:
        yield runtime

    server: MCPServer[ServerRuntime] = MCPServer(
        spec.name,
        description=spec.description or None,
        instructions=spec.instructions,
        version=spec.version,
        lifespan=lifespan,
        log_level=runtime.settings.log_level,
        middleware=[
            CallerContextMiddleware(
                runtime.instance_key,
                transport=runtime.transport,
                require=runtime.settings.require_caller_context,
            )
        ],
    )
    # Inside the caller check: a refused caller learns nothing of a tool's arguments.
    server.middleware.append(StrictArgumentsMiddleware(server))
    for tool in spec.tools:
        server.add_tool(
            tool.fn,
            name=tool.name,
            title=tool.title,
            description=tool.description,
            annotations=tool.annotations,
            structured_output=tool.structured_output,
        )
    for resource in spec.resources:
        server.resource(
            resource.uri,
            name=resource.name,
            description=resource.description,
            mime_type=resource.mime_type,
            security=ResourceSecurity(exempt_params=resource.opaque) if resource.opaque else None,
        )(resource.fn)
    for prompt in spec.prompts:
        server.prompt(name=prompt.name, description=prompt.description)(prompt.fn)
    return server
