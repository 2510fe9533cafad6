"""A built server refuses arguments its tools do not declare, in both protocol eras."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError
from mcp_types import CallToolResult, TextContent

from bastion.mcp import ServerSpec, build_server
from bastion.mcp.caller_middleware import CALLER_REFUSED
from bastion.mcp.runtime import Transport
from tests.offline_runtime import offline_runtime

spec = ServerSpec(name="strict", description="tools with and without arguments")
ran: list[str] = []


@spec.tool()
async def repeat(text: str, times: int = 1) -> str:
    """`text`, `times` times."""
    ran.append("repeat")
    return text * times


@spec.tool()
async def ping_me() -> str:
    """No arguments at all."""
    ran.append("ping_me")
    return "pong"


@pytest.fixture(autouse=True)
def _reset() -> None:
    ran.clear()


ClientFactory = Callable[[Transport], Client]


@pytest.fixture(params=["legacy", "2026-07-28"])
async def connect(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ClientFactory]:
    def factory(transport: Transport) -> Client:
        return Client(build_server(spec, offline_runtime(spec, tmp_path, transport)), mode=request.param)

    yield factory


def _text(result: CallToolResult) -> str:
    block = result.content[0]
    assert isinstance(block, TextContent)
    return block.text


async def test_a_misnamed_argument_is_refused_naming_the_arguments_the_tool_takes(
    connect: ClientFactory,
) -> None:
    async with connect("stdio") as client:
        misnamed = await client.call_tool("repeat", {"text": "ab", "count": 2})
        several = await client.call_tool("ping_me", {"loud": True, "twice": True})
        fine = await client.call_tool("repeat", {"text": "ab", "times": 2})
    assert misnamed.is_error
    assert _text(misnamed) == (
        "invalid arguments for tool 'repeat': 'count' is not an argument of this tool; it takes text, times"
    )
    assert _text(several) == (
        "invalid arguments for tool 'ping_me': 'loud', 'twice' are not arguments of this tool; it takes none"
    )
    assert not fine.is_error and _text(fine) == "abab"
    assert ran == ["repeat"]  # only the call whose arguments were all known


async def test_every_listed_schema_is_closed(connect: ClientFactory) -> None:
    async with connect("stdio") as client:
        tools = (await client.list_tools()).tools
    assert {t.name: t.input_schema.get("additionalProperties") for t in tools} == {
        "repeat": False,
        "ping_me": False,
    }


async def test_a_caller_without_context_is_refused_before_its_arguments_are_looked_at(
    connect: ClientFactory,
) -> None:
    async with connect("http") as client:
        with pytest.raises(MCPError) as info:
            await client.call_tool("repeat", {"text": "ab", "count": 2})
    assert info.value.code == CALLER_REFUSED
    assert ran == []
