"""An independent client: the MCP Inspector CLI lists and calls tools through the gateway.

The Inspector is built on the TypeScript SDK, so this checks the gateway against a
client that shares no code with Bastion. A direct run against the conformance fixture
shows the helper and the expectations hold before the gateway is involved.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.gateway.interop.conftest import GatewayInstance
from tests.gateway.interop.node import NodeToolchain, NodeToolError

SIMPLE_TEXT = "This is a simple text response for testing."


def _names(listing: Any) -> set[str]:
    return {tool["name"] for tool in listing["tools"]}


def _texts(result: Any) -> list[str]:
    return [block["text"] for block in result["content"] if block.get("type") == "text"]


def test_the_inspector_lists_and_calls_the_fixture_directly(
    toolchain: NodeToolchain, fixture_server_url: str
) -> None:
    listing = toolchain.inspector(fixture_server_url, "--method", "tools/list", headers={})
    assert {"test_simple_text", "test_headers"} <= _names(listing)
    args = ["--method", "tools/call", "--tool-name", "test_headers", "--tool-arg", "region=eu-west"]
    result = toolchain.inspector(fixture_server_url, *args, headers={})
    assert result["isError"] is False
    assert _texts(result) == ["region=eu-west"]


def test_the_inspector_lists_and_calls_tools_through_the_gateway_with_a_bearer_key(
    toolchain: NodeToolchain, gateway_instance: GatewayInstance
) -> None:
    key = gateway_instance.create_key("inspector", "admin")
    url, auth = gateway_instance.mcp_url(), {"Authorization": f"Bearer {key}"}
    names = _names(toolchain.inspector(url, "--method", "tools/list", headers=auth))
    # Every upstream is behind /mcp with its name as the prefix.
    assert {"conformance_test_simple_text", "conformance_test_headers", "everything_echo"} <= names
    simple = toolchain.inspector(
        url, "--method", "tools/call", "--tool-name", "conformance_test_simple_text", headers=auth
    )
    assert _texts(simple) == [SIMPLE_TEXT]
    echo_args = [
        "--method",
        "tools/call",
        "--tool-name",
        "everything_echo",
        "--tool-arg",
        "message=through bastion",
    ]
    echo = toolchain.inspector(url, *echo_args, headers=auth)
    assert echo.get("isError") is not True
    assert any("through bastion" in text for text in _texts(echo))


def test_the_inspector_without_a_key_is_refused_by_the_gateway(
    toolchain: NodeToolchain, gateway_instance: GatewayInstance
) -> None:
    with pytest.raises(NodeToolError, match=r"401|auth_required|[Uu]nauthori[sz]ed"):
        toolchain.inspector(gateway_instance.mcp_url(), "--method", "tools/list", headers={})
