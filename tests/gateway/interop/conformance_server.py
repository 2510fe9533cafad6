"""The conformance fixture: an MCP server with every tool, resource and prompt the suite asks for.

`@modelcontextprotocol/conformance` drives a server through scenarios that expect
fixtures by name (`test_simple_text`, `test://static-text`, `test_simple_prompt`,
...). This server provides them on the official SDK (`MCPServer`), so the gateway's
transparency can be measured: run the suite against this server directly, then
through the gateway with this server as a stdio upstream, and compare.

    python conformance_server.py --transport stdio
    python conformance_server.py --transport http --port 9200   # http://127.0.0.1:9200/mcp

Both protocol eras are served: 2025-11-25 (initialize, sessions, server-to-client
sampling and elicitation requests) and 2026-07-28 (stateless, `InputRequiredResult`
multi-round-trip tools with a sealed `requestState`).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import logging
import tempfile
from pathlib import Path
from typing import Any

import anyio
from conformance_modern import add_modern_fixtures  # a sibling: this file always runs as a script
from mcp.server.caching import CacheHint
from mcp.server.context import ServerRequestContext
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.prompts.base import UserMessage
from mcp.server.mcpserver.tools.base import Tool
from mcp.server.streamable_http import EventCallback, EventMessage, EventStore
from mcp_types import (
    AudioContent,
    Completion,
    CompletionArgument,
    CompletionContext,
    EmbeddedResource,
    EmptyResult,
    ImageContent,
    JSONRPCMessage,
    PromptReference,
    ResourceTemplateReference,
    SamplingMessage,
    SetLevelRequestParams,
    SubscribeRequestParams,
    TextContent,
    TextResourceContents,
    UnsubscribeRequestParams,
)

__all__ = ["build_server", "main"]

logger = logging.getLogger(__name__)

SERVER_NAME = "mcp-conformance-test-server"
CANCELLATION_PROBE_WAIT = 120.0
# 1x1 red PNG and a minimal WAV, the payloads the suite's reference fixture uses.
TEST_IMAGE_BASE64 = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="
)
TEST_AUDIO_BASE64 = "UklGRiYAAABXQVZFZm10IBAAAAABAAEAQB8AAAB9AAACABAAZGF0YQIAAAA="
# SEP-1613/SEP-2106: a tools/list schema whose 2020-12 keywords must survive every hop.
JSON_SCHEMA_2020_12: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "$defs": {
        "address": {
            "$anchor": "addressDef",
            "type": "object",
            "properties": {"street": {"type": "string"}, "city": {"type": "string"}},
        }
    },
    "properties": {
        "name": {"type": "string"},
        "address": {"$ref": "#/$defs/address"},
        "contactMethod": {"type": "string", "enum": ["phone", "email"]},
        "phone": {"type": "string"},
        "email": {"type": "string"},
    },
    "allOf": [{"anyOf": [{"required": ["phone"]}, {"required": ["email"]}]}],
    "if": {"properties": {"contactMethod": {"const": "phone"}}, "required": ["contactMethod"]},
    "then": {"required": ["phone"]},
    "else": {"required": ["email"]},
    "additionalProperties": False,
}
SEP1034_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "description": "User name", "default": "John Doe"},
        "age": {"type": "integer", "description": "User age", "default": 30},
        "score": {"type": "number", "description": "User score", "default": 95.5},
        "status": {
            "type": "string",
            "description": "User status",
            "enum": ["active", "inactive", "pending"],
            "default": "active",
        },
        "verified": {"type": "boolean", "description": "Verification status", "default": True},
    },
    "required": [],
}
_TITLED = [{"const": f"value{i}", "title": f"Option {i}"} for i in (1, 2, 3)]
SEP1330_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "untitledSingle": {"type": "string", "enum": ["option1", "option2", "option3"]},
        "titledSingle": {"type": "string", "oneOf": _TITLED},
        "legacyEnum": {
            "type": "string",
            "enum": ["opt1", "opt2", "opt3"],
            "enumNames": ["One", "Two", "Three"],
        },
        "untitledMulti": {
            "type": "array",
            "minItems": 1,
            "maxItems": 3,
            "items": {"type": "string", "enum": ["option1", "option2", "option3"]},
        },
        "titledMulti": {"type": "array", "minItems": 1, "maxItems": 3, "items": {"anyOf": _TITLED}},
    },
    "required": [],
}


class MemoryEventStore(EventStore):
    """Keeps SSE events so a client that reconnects with `Last-Event-ID` gets the rest (SEP-1699)."""

    def __init__(self) -> None:
        self._events: list[tuple[str, int, JSONRPCMessage | None]] = []

    async def store_event(self, stream_id: str, message: JSONRPCMessage | None) -> str:
        self._events.append((stream_id, len(self._events) + 1, message))
        return str(len(self._events))

    async def replay_events_after(self, last_event_id: str, send_callback: EventCallback) -> str | None:
        if not last_event_id.isdigit() or not 0 < int(last_event_id) <= len(self._events):
            return None
        stream_id = self._events[int(last_event_id) - 1][0]
        for sid, number, message in self._events[int(last_event_id) :]:
            if sid == stream_id and message is not None:
                await send_callback(EventMessage(message, str(number)))
        return stream_id


def _add_content_tools(server: MCPServer) -> None:
    @server.tool(description="Tests simple text content response")
    def test_simple_text() -> str:
        return "This is a simple text response for testing."

    @server.tool(description="Tests image content response")
    def test_image_content() -> list[ImageContent]:
        return [ImageContent(type="image", data=TEST_IMAGE_BASE64, mime_type="image/png")]

    @server.tool(description="Tests audio content response")
    def test_audio_content() -> list[AudioContent]:
        return [AudioContent(type="audio", data=TEST_AUDIO_BASE64, mime_type="audio/wav")]

    @server.tool(description="Tests embedded resource content response")
    def test_embedded_resource() -> list[EmbeddedResource]:
        text = "This is an embedded resource content."
        resource = TextResourceContents(uri="test://embedded-resource", mime_type="text/plain", text=text)
        return [EmbeddedResource(type="resource", resource=resource)]

    @server.tool(description="Tests response with multiple content types (text, image, resource)")
    def test_multiple_content_types() -> list[TextContent | ImageContent | EmbeddedResource]:
        data = json.dumps({"test": "data", "value": 123})
        resource = TextResourceContents(
            uri="test://mixed-content-resource", mime_type="application/json", text=data
        )
        return [
            TextContent(type="text", text="Multiple content types test:"),
            ImageContent(type="image", data=TEST_IMAGE_BASE64, mime_type="image/png"),
            EmbeddedResource(type="resource", resource=resource),
        ]

    @server.tool(description="Tests error response handling")
    def test_error_handling() -> str:
        raise RuntimeError("This tool intentionally returns an error for testing")


def _marker_path(marker: str) -> Path:
    path = Path(marker).resolve()
    if path.parent != Path(tempfile.gettempdir()).resolve():
        raise ValueError(f"marker must be a file directly in {tempfile.gettempdir()}, got {marker!r}")
    return path


def _add_notifying_tools(server: MCPServer) -> None:
    @server.tool(description="Tests tool that emits log messages during execution")
    async def test_tool_with_logging(ctx: Context) -> str:
        for step, text in enumerate(
            ("Tool execution started", "Tool processing data", "Tool execution completed")
        ):
            if step:
                await asyncio.sleep(0.05)  # the scenario checks notifications spread over the call
            await ctx.info(text)  # pyright: ignore[reportDeprecated] - the suite tests logging
        return "Tool with logging executed successfully"

    @server.tool(description="Tests tool that reports progress notifications")
    async def test_tool_with_progress(ctx: Context) -> str:
        for step in (0, 50, 100):
            if step:
                await asyncio.sleep(0.05)
            await ctx.report_progress(progress=step, total=100, message=f"Completed step {step} of 100")
        meta = ctx.request_context.meta
        token = meta.get("progressToken") if isinstance(meta, dict) else getattr(meta, "progress_token", None)
        return str(token if token is not None else 0)

    @server.tool(
        description="Waits to be cancelled, then writes `marker` (a file in the temp dir) to prove it was"
    )
    async def bastion_cancellation_probe(marker: str, ctx: Context) -> str:
        path = _marker_path(marker)
        await ctx.report_progress(progress=0, total=1, message="waiting for notifications/cancelled")
        try:
            await anyio.sleep(CANCELLATION_PROBE_WAIT)
        except anyio.get_cancelled_exc_class():
            path.write_text("cancelled")  # the test polls for this file
            raise
        return "never cancelled"

    @server.tool(description="Tests SSE stream disconnection and client reconnection (SEP-1699)")
    async def test_reconnection(ctx: Context) -> str:
        await ctx.info("Before disconnect")  # pyright: ignore[reportDeprecated] - the suite tests logging
        await ctx.close_sse_stream()
        await asyncio.sleep(0.2)  # the client reconnects with Last-Event-ID meanwhile
        await ctx.info("After reconnect")  # pyright: ignore[reportDeprecated] - the suite tests logging
        return "Reconnection test completed"


def _add_client_request_tools(server: MCPServer) -> None:
    """2025-11-25 era: the server asks the client mid-call (sampling, elicitation)."""

    @server.tool(description="Tests server-initiated sampling (LLM completion request)")
    async def test_sampling(prompt: str, ctx: Context) -> str:
        message = SamplingMessage(role="user", content=TextContent(type="text", text=prompt))
        result = await ctx.session.create_message(messages=[message], max_tokens=100)  # pyright: ignore[reportDeprecated]
        content = result.content
        return f"LLM response: {content.text if isinstance(content, TextContent) else 'No response'}"

    async def elicit(ctx: Context, message: str, schema: dict[str, Any], label: str) -> str:
        result = await ctx.session.elicit_form(message, schema, related_request_id=ctx.request_id)
        return f"{label}: action={result.action}, content={json.dumps(result.content or {})}"

    @server.tool(description="Tests server-initiated elicitation (user input request)")
    async def test_elicitation(message: str, ctx: Context) -> str:
        schema = {"type": "object", "properties": {"response": {"type": "string"}}, "required": ["response"]}
        return await elicit(ctx, message, schema, "User response")

    @server.tool(description="Tests elicitation with default values per SEP-1034")
    async def test_elicitation_sep1034_defaults(ctx: Context) -> str:
        message = "Please review and update the form fields with defaults"
        return await elicit(ctx, message, SEP1034_SCHEMA, "Elicitation completed")

    @server.tool(description="Tests elicitation with enum schema improvements per SEP-1330")
    async def test_elicitation_sep1330_enums(ctx: Context) -> str:
        return await elicit(
            ctx, "Please select options from the enum fields", SEP1330_SCHEMA, "Elicitation completed"
        )


def _add_resources_and_prompts(server: MCPServer) -> None:
    @server.resource("test://static-text", name="static-text", mime_type="text/plain")
    def static_text() -> str:
        return "This is the content of the static text resource."

    @server.resource("test://static-binary", name="static-binary", mime_type="image/png")
    def static_binary() -> bytes:
        return base64.b64decode(TEST_IMAGE_BASE64)

    @server.resource("test://template/{id}/data", name="template", mime_type="application/json")
    def template(id: str) -> str:
        return json.dumps({"id": id, "templateTest": True, "data": f"Data for ID: {id}"})

    @server.resource("test://watched-resource", name="watched-resource", mime_type="text/plain")
    def watched() -> str:
        return "Watched resource content"

    @server.prompt(description="A simple prompt without arguments")
    def test_simple_prompt() -> list[UserMessage]:
        return [UserMessage(content=TextContent(type="text", text="This is a simple prompt for testing."))]

    @server.prompt(description="A prompt with required arguments")
    def test_prompt_with_arguments(arg1: str, arg2: str) -> list[UserMessage]:
        text = f"Prompt with arguments: arg1='{arg1}', arg2='{arg2}'"
        return [UserMessage(content=TextContent(type="text", text=text))]

    @server.prompt(description="A prompt that includes an embedded resource")
    def test_prompt_with_embedded_resource(resourceUri: str) -> list[UserMessage]:
        text = "Embedded resource content for testing."
        resource = TextResourceContents(uri=resourceUri, mime_type="text/plain", text=text)
        return [
            UserMessage(content=EmbeddedResource(type="resource", resource=resource)),
            UserMessage(content=TextContent(type="text", text="Please process the embedded resource above.")),
        ]

    @server.prompt(description="A prompt that includes image content")
    def test_prompt_with_image() -> list[UserMessage]:
        return [
            UserMessage(content=ImageContent(type="image", data=TEST_IMAGE_BASE64, mime_type="image/png")),
            UserMessage(content=TextContent(type="text", text="Please analyze the image above.")),
        ]

    @server.completion()
    async def complete(
        ref: PromptReference | ResourceTemplateReference,
        argument: CompletionArgument,
        context: CompletionContext | None,
    ) -> Completion:
        # The scenario only needs a well-formed answer; offer the value back as a suggestion.
        return Completion(values=[argument.value] if argument.value else [], total=None, has_more=False)


def _add_legacy_handlers(server: MCPServer) -> None:
    """Handshake-era methods MCPServer has no decorator for: logging level and subscriptions."""
    subscriptions: set[str] = set()
    lowlevel = server._lowlevel_server  # pyright: ignore[reportPrivateUsage] - no public hook in SDK 2.3

    async def set_level(ctx: ServerRequestContext[Any], params: SetLevelRequestParams) -> EmptyResult:
        logger.info("client asked for log level %s", params.level)
        return EmptyResult()

    async def subscribe(ctx: ServerRequestContext[Any], params: SubscribeRequestParams) -> EmptyResult:
        subscriptions.add(str(params.uri))
        return EmptyResult()

    async def unsubscribe(ctx: ServerRequestContext[Any], params: UnsubscribeRequestParams) -> EmptyResult:
        subscriptions.discard(str(params.uri))
        return EmptyResult()

    lowlevel.add_request_handler("logging/setLevel", SetLevelRequestParams, set_level)
    lowlevel.add_request_handler("resources/subscribe", SubscribeRequestParams, subscribe)
    lowlevel.add_request_handler("resources/unsubscribe", UnsubscribeRequestParams, unsubscribe)


def _json_schema_tool() -> Tool:
    def json_schema_2020_12_tool(name: str | None = None) -> str:
        return f"JSON Schema 2020-12 tool called with name={name!r}"

    tool = Tool.from_function(json_schema_2020_12_tool, description="Tool with JSON Schema 2020-12 features")
    return tool.model_copy(update={"parameters": JSON_SCHEMA_2020_12})


def build_server() -> MCPServer:
    hint = CacheHint(ttl_ms=60_000, scope="private")
    cacheable = ("tools/list", "prompts/list", "resources/list", "resources/templates/list", "resources/read")
    server = MCPServer(
        SERVER_NAME,
        version="1.0.0",
        log_level="WARNING",
        tools=[_json_schema_tool()],
        cache_hints={method: hint for method in cacheable},  # pyright: ignore[reportArgumentType]
    )
    _add_content_tools(server)
    _add_notifying_tools(server)
    _add_client_request_tools(server)
    add_modern_fixtures(server)
    _add_resources_and_prompts(server)
    _add_legacy_handlers(server)
    return server


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="The MCP conformance fixture server.")
    parser.add_argument("--transport", choices=["stdio", "http"], default="stdio")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9200)
    args = parser.parse_args(argv)
    server = build_server()
    if args.transport == "stdio":
        server.run("stdio")
    else:
        import uvicorn

        app = server.streamable_http_app(event_store=MemoryEventStore(), retry_interval=100, host=args.host)
        # h11 drops the optional whitespace around header values, as RFC 9110 requires;
        # httptools (uvicorn's choice when installed) keeps it, and the SDK then sees
        # " name " in Mcp-Name (conformance check sep-2243 whitespace).
        uvicorn.run(app, host=args.host, port=args.port, http="h11", log_level="warning")


if __name__ == "__main__":
    main()
