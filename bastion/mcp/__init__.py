"""The MCP server scaffold: declare a server once, serve it over stdio or HTTP.

ServerSpec       the declaration: name, tools, resources, prompts, migrations, health
ServerRuntime    lifespan state: settings, database, store, instance key, transport
current_caller   the verified caller of the request being handled
build_server     ServerSpec + ServerRuntime -> mcp.server.mcpserver.MCPServer
serve            run a server over stdio or Streamable HTTP at /mcp
structured       a tool result serialised once: structured content and compact JSON text
"""

from __future__ import annotations

from bastion.mcp.build import build_server
from bastion.mcp.caller_middleware import current_caller
from bastion.mcp.results import structured
from bastion.mcp.runtime import ServerRuntime
from bastion.mcp.serve import serve
from bastion.mcp.spec import ServerSpec

__all__ = ["ServerRuntime", "ServerSpec", "build_server", "current_caller", "serve", "structured"]
