"""Unknown tool arguments are refused, not dropped.

The SDK validates a tool's arguments with a model that ignores names it does not know:
`search(query=..., top_k=3)` ran with the default `k` and said nothing, so the caller
(often a model) never learned that its argument was lost. Every built-in tool's published
`inputSchema` therefore says `additionalProperties: false`, which the gateway enforces
before a call leaves it, and `StrictArgumentsMiddleware` refuses the same call made to the
server directly, naming the arguments the tool does take. Both answer with a tool error
(`isError`), which a model reads and corrects itself from.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.mcpserver import MCPServer
from mcp.types import CallToolResult, TextContent

from bastion.tool_arguments import unknown_arguments_message

__all__ = ["StrictArgumentsMiddleware"]


class StrictArgumentsMiddleware:
    """Refuse `tools/call` arguments a tool does not declare; publish each tool's schema closed."""

    def __init__(self, server: MCPServer[Any]) -> None:
        self._server = server
        # Tool name -> its argument names in declaration order, or None when the tool's
        # schema admits any (it says `additionalProperties` itself). Read on first use:
        # tools are added after the middleware is built.
        self._known: dict[str, tuple[str, ...] | None] | None = None

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        if ctx.request_id is None:
            return await call_next(ctx)
        if ctx.method == "tools/call":
            refusal = await self._refusal(ctx.params)
            return refusal if refusal is not None else await call_next(ctx)
        if ctx.method == "tools/list":
            return _closed(await call_next(ctx))
        return await call_next(ctx)

    async def _names(self) -> dict[str, tuple[str, ...] | None]:
        if self._known is None:
            self._known = {
                tool.name: None
                if "additionalProperties" in tool.input_schema
                else tuple(tool.input_schema.get("properties", {}))
                for tool in await self._server.list_tools()
            }
        return self._known

    async def _refusal(self, params: Mapping[str, Any] | None) -> CallToolResult | None:
        if not params:
            return None
        name, arguments = params.get("name"), params.get("arguments")
        if not isinstance(name, str) or not isinstance(arguments, Mapping):
            return None  # the SDK answers a malformed call itself
        known = (await self._names()).get(name)
        if known is None:
            return None
        unknown = [key for key in arguments if key not in known]  # pyright: ignore[reportUnknownVariableType]
        if not unknown:
            return None
        text = f"invalid arguments for tool {name!r}: {unknown_arguments_message(unknown, known)}"
        return CallToolResult(content=[TextContent(text=text)], is_error=True)


def _closed(result: HandlerResult) -> HandlerResult:
    """The tools/list result (the wire form the SDK's handler returns) with every tool's
    schema saying `additionalProperties: false`."""
    if isinstance(result, dict):
        for tool in result.get("tools", ()):
            schema = tool.get("inputSchema") if isinstance(tool, dict) else None
            if isinstance(schema, dict) and "additionalProperties" not in schema:
                tool["inputSchema"] = {**schema, "additionalProperties": False}
    return result
