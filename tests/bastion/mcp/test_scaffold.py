"""The server scaffold in process: a spec built into an MCPServer, driven by the SDK's client.

Every test runs in both protocol eras: the 2025-11-25 handshake session ("legacy") and
the stateless 2026-07-28 per-request envelope, where the middleware must still see
each request.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Annotated, Any

import pytest
from mcp import Client
from mcp.server.mcpserver import Context
from mcp.shared.exceptions import MCPError
from mcp_types import CallToolResult, RequestParamsMeta, TextContent
from typing_extensions import TypedDict

import bastion.mcp
from bastion.caller import META_KEY, CallerContext, Obligations, sign_caller
from bastion.errors import ConfigError
from bastion.mcp import ServerRuntime, ServerSpec, build_server, current_caller, structured
from bastion.mcp.caller_middleware import CALLER_REFUSED
from bastion.mcp.runtime import Transport
from tests.offline_runtime import offline_runtime

KEY = secrets.token_bytes(32)
MODES = ["legacy", "2026-07-28"]

calls: list[str] = []

spec = ServerSpec(name="probe", description="a server that reports who called it")


@spec.tool()
async def whoami() -> dict[str, Any]:
    """The caller as the tool sees it."""
    calls.append("whoami")
    caller = current_caller()
    return {
        "subject": caller.subject,
        "tenant": caller.tenant,
        "roles": list(caller.roles),
        "may_read_docs": caller.may_read_collection("docs"),
        "row_limit": caller.row_limit(),
    }


@spec.resource("probe://caller", mime_type="text/plain")
async def caller_resource() -> str:
    calls.append("resource")
    return current_caller().subject


@spec.prompt(description="greets the caller")
async def greet() -> str:
    calls.append("prompt")
    return f"Hello {current_caller().subject}"


@pytest.fixture(autouse=True)
def _reset_calls() -> None:
    calls.clear()


def _runtime(tmp_path: Path, transport: Transport) -> ServerRuntime:
    return offline_runtime(spec, tmp_path, transport, KEY)


ClientFactory = Callable[[Transport], Client]


@pytest.fixture(params=MODES)
async def connect(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ClientFactory]:
    def factory(transport: Transport) -> Client:
        return Client(build_server(spec, _runtime(tmp_path, transport)), mode=request.param)

    yield factory


def _meta(ctx: CallerContext, key: bytes = KEY) -> RequestParamsMeta:
    return {META_KEY: sign_caller(ctx, key)}


def _raw_meta(wire: object) -> RequestParamsMeta:
    return {META_KEY: wire}


def _alice(ttl: float = 60, now: float | None = None) -> CallerContext:
    return CallerContext.expiring(
        subject="alice",
        tenant="acme",
        roles=["analyst"],
        obligations=Obligations(allowed_collections=("wiki",), row_limit=100),
        ttl=ttl,
        now=now,
    )


async def test_over_stdio_a_request_without_context_runs_as_the_local_owner(connect: ClientFactory) -> None:
    async with connect("stdio") as client:
        result = await client.call_tool("whoami", {})
    assert not result.is_error
    assert result.structured_content is not None
    assert result.structured_content["tenant"] == "local"
    assert result.structured_content["roles"] == ["owner"]
    assert result.structured_content["may_read_docs"] is True
    assert result.structured_content["row_limit"] is None


async def test_over_http_a_request_without_context_is_refused_before_the_tool_runs(
    connect: ClientFactory,
) -> None:
    async with connect("http") as client:
        with pytest.raises(MCPError) as info:
            await client.call_tool("whoami", {})
    assert info.value.code == CALLER_REFUSED
    assert "no caller context" in info.value.message
    assert info.value.data == {"reason": "missing", "status": 401}
    assert calls == []


async def test_a_signed_context_reaches_the_tool_with_its_obligations(connect: ClientFactory) -> None:
    async with connect("http") as client:
        # The SDK client validates structured results against the listed schema and
        # lists tools itself (without _meta) if it has not: over HTTP, list first.
        await client.list_tools(meta=_meta(_alice()))
        result = await client.call_tool("whoami", {}, meta=_meta(_alice()))
    assert result.structured_content == {
        "subject": "alice",
        "tenant": "acme",
        "roles": ["analyst"],
        "may_read_docs": False,
        "row_limit": 100,
    }


async def test_a_context_signed_with_another_key_is_refused_as_forged(connect: ClientFactory) -> None:
    async with connect("http") as client:
        with pytest.raises(MCPError) as info:
            await client.call_tool("whoami", {}, meta=_meta(_alice(), secrets.token_bytes(32)))
    assert info.value.code == CALLER_REFUSED
    assert info.value.message.startswith("caller context signature does not match")
    assert info.value.data["reason"] == "forged"
    assert calls == []


async def test_a_context_with_raised_privileges_is_refused_as_forged(connect: ClientFactory) -> None:
    wire = sign_caller(_alice(), KEY)
    wire["claims"]["roles"] = ["admin"]
    async with connect("http") as client:
        with pytest.raises(MCPError, match="signature does not match") as info:
            await client.call_tool("whoami", {}, meta=_raw_meta(wire))
    assert info.value.data["reason"] == "forged"


async def test_an_expired_context_is_refused_saying_when_it_expired(connect: ClientFactory) -> None:
    stale = _alice(ttl=30, now=time.time() - 3600)
    async with connect("http") as client:
        with pytest.raises(MCPError, match=r"^caller context expired at \S+Z \(now \S+Z\)") as info:
            await client.call_tool("whoami", {}, meta=_meta(stale))
    assert info.value.data["reason"] == "expired"
    assert calls == []


async def test_over_stdio_a_bad_context_is_refused_not_downgraded_to_the_local_owner(
    connect: ClientFactory,
) -> None:
    async with connect("stdio") as client:
        with pytest.raises(MCPError, match="signature does not match"):
            await client.call_tool("whoami", {}, meta=_meta(_alice(), secrets.token_bytes(32)))
        with pytest.raises(MCPError, match=r"^malformed caller context"):
            await client.call_tool("whoami", {}, meta=_raw_meta("let me in"))
    assert calls == []


async def test_listing_reading_and_prompting_over_http_need_a_context_too(connect: ClientFactory) -> None:
    async with connect("http") as client:
        for attempt in (
            client.list_tools(),
            client.read_resource("probe://caller"),
            client.get_prompt("greet"),
        ):
            with pytest.raises(MCPError) as info:
                await attempt
            assert info.value.code == CALLER_REFUSED
        meta = _meta(_alice())
        tools = await client.list_tools(meta=meta)
        resource = await client.read_resource("probe://caller", meta=meta)
        prompt = await client.get_prompt("greet", meta=meta)
    assert [tool.name for tool in tools.tools] == ["whoami"]
    assert resource.contents[0].text == "alice"  # type: ignore[union-attr]
    assert prompt.messages[0].content.text == "Hello alice"  # type: ignore[union-attr]
    assert calls == ["resource", "prompt"]


async def test_the_caller_is_bound_only_while_a_request_is_handled(connect: ClientFactory) -> None:
    async with connect("stdio") as client:
        await client.call_tool("whoami", {})
    with pytest.raises(RuntimeError, match="outside a request"):
        current_caller()


async def test_tools_reach_the_runtime_through_the_lifespan_context(tmp_path: Path) -> None:
    local = ServerSpec(name="lifespan-probe")
    seen: list[ServerRuntime] = []

    @local.tool
    async def runtime_name(ctx: Context[ServerRuntime, Any]) -> str:
        """The name of the server whose runtime the tool received."""
        seen.append(ctx.request_context.lifespan_context)
        return ctx.request_context.lifespan_context.spec.name

    runtime = _runtime(tmp_path, "stdio")
    async with Client(build_server(local, runtime)) as client:
        result = await client.call_tool("runtime_name", {})
    assert seen == [runtime]
    assert result.structured_content == {"result": "probe"}


class _Rows(TypedDict):
    rows: list[list[int]]
    count: int


async def test_a_structured_result_keeps_its_schema_and_sends_compact_json_text(tmp_path: Path) -> None:
    local = ServerSpec(name="rows-probe")

    @local.tool
    async def rows(n: int) -> Annotated[CallToolResult, _Rows]:
        """n rows of two numbers."""
        return structured({"rows": [[i, i * i] for i in range(n)], "count": n})

    @local.tool
    async def broken() -> Annotated[CallToolResult, _Rows]:
        """A result that does not match the schema it publishes."""
        return structured({"rows": "not rows"})

    async with Client(build_server(local, _runtime(tmp_path, "stdio"))) as client:
        listed = {tool.name: tool for tool in (await client.list_tools()).tools}
        result = await client.call_tool("rows", {"n": 3})
        failed = await client.call_tool("broken", {})
    schema = listed["rows"].output_schema
    assert schema is not None and set(schema["properties"]) == {"rows", "count"}
    assert result.structured_content == {"rows": [[0, 0], [1, 1], [2, 4]], "count": 3}
    assert [block.text for block in result.content if isinstance(block, TextContent)] == [
        '{"rows":[[0,0],[1,1],[2,4]],"count":3}'
    ]
    # The server still checks what it sends against what it publishes.
    assert failed.is_error


def test_a_blocking_tool_is_refused_at_declaration() -> None:
    local = ServerSpec(name="blocking")

    def blocking() -> str:
        return "x"

    with pytest.raises(ConfigError, match="must be an `async def` function"):
        local.tool(blocking)


def test_a_tool_name_declared_twice_is_refused() -> None:
    local = ServerSpec(name="twice")

    async def same() -> None: ...

    local.tool(same)
    with pytest.raises(ConfigError, match="declares the tool 'same' twice"):
        local.tool(name="same")(same)


def test_an_opaque_resource_parameter_must_be_one_of_its_template() -> None:
    local = ServerSpec(name="opaque")

    async def read(key: str) -> str:
        return key

    with pytest.raises(ConfigError, match=r"opaque parameters \['path'\] are not parameters"):
        local.resource("things://{key}", opaque={"path"})(read)
    local.resource("things://{key}", opaque={"key"})(read)
    assert local.resources[0].opaque == frozenset({"key"})


def test_a_server_name_must_be_a_simple_lowercase_identifier() -> None:
    with pytest.raises(ConfigError, match="server name 'Bad Name'"):
        ServerSpec(name="Bad Name")


def test_the_package_exports_exactly_the_scaffold_surface() -> None:
    assert sorted(bastion.mcp.__all__) == [
        "ServerRuntime",
        "ServerSpec",
        "build_server",
        "current_caller",
        "serve",
        "structured",
    ]
    for name in bastion.mcp.__all__:
        assert getattr(bastion.mcp, name) is not None
