"""An external server proxied: `@modelcontextprotocol/server-everything` behind the gateway.

Its tools, resources and prompts must be reachable through `/mcp` (names prefixed
`everything_`), its long-running operation must stream progress to the client, and a
cancelled call must end at once and leave the session usable. The same checks run
against the server directly over stdio, so a failure through the gateway is the
gateway's. Cancellation reaching the upstream is proven with the conformance fixture's
probe tool, which writes a file when its call is cancelled.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import AsyncGenerator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp_types import TextContent, TextResourceContents

from tests.gateway.interop.conftest import GatewayInstance
from tests.gateway.interop.node import EVERYTHING

ERAS = ("legacy", "2026-07-28")  # `legacy`: the 2025-11-25 initialize handshake


@dataclass
class Target:
    client: Client
    prefix: str  # what the endpoint puts before an upstream's names

    def name(self, original: str) -> str:
        return f"{self.prefix}{original}"


@asynccontextmanager
async def _over_http(url: str, mode: str, headers: dict[str, str]) -> AsyncGenerator[Client]:
    timeout = httpx2.Timeout(30.0, read=300.0)
    async with (
        httpx2.AsyncClient(headers=headers, timeout=timeout) as http,
        Client(streamable_http_client(url, http_client=http), mode=mode) as client,
    ):
        yield client


@pytest.fixture(scope="module")
def gateway_key(gateway_instance: GatewayInstance) -> str:
    return gateway_instance.create_key("everything-tests", "admin")


@asynccontextmanager
async def _everything_direct() -> AsyncGenerator[Target]:
    async with Client(StdioServerParameters(command="npx", args=["-y", EVERYTHING])) as client:
        yield Target(client, "")


@asynccontextmanager
async def _everything_via_gateway(instance: GatewayInstance, key: str, mode: str) -> AsyncGenerator[Target]:
    async with _over_http(instance.mcp_url(), mode, {"Authorization": f"Bearer {key}"}) as client:
        yield Target(client, "everything_")


def _text(result: Any) -> str:
    return "".join(block.text for block in result.content if isinstance(block, TextContent))


async def _check_catalog(target: Target) -> None:
    tools = {tool.name for tool in (await target.client.list_tools()).tools}
    assert {
        target.name("echo"),
        target.name("get-sum"),
        target.name("trigger-long-running-operation"),
    } <= tools
    echoed = await target.client.call_tool(target.name("echo"), {"message": "hello"})
    assert "hello" in _text(echoed)
    total = await target.client.call_tool(target.name("get-sum"), {"a": 2, "b": 40})
    assert "42" in _text(total)

    resources = (await target.client.list_resources()).resources
    architecture = next(r for r in resources if "architecture" in str(r.uri))
    assert architecture.name == target.name("architecture.md")  # whose it is; the URI is unchanged
    contents = (await target.client.read_resource(architecture.uri)).contents
    assert any(isinstance(c, TextResourceContents) and c.text for c in contents)

    prompts = {prompt.name for prompt in (await target.client.list_prompts()).prompts}
    assert {target.name("simple-prompt"), target.name("args-prompt")} <= prompts
    prompt = await target.client.get_prompt(target.name("args-prompt"), {"city": "Lisbon"})
    assert any("Lisbon" in str(message.content) for message in prompt.messages)


async def _check_progress(target: Target) -> None:
    seen: list[tuple[float, float | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, total))

    with anyio.fail_after(30):
        result = await target.client.call_tool(
            target.name("trigger-long-running-operation"),
            {"duration": 1, "steps": 4},
            progress_callback=on_progress,
        )
    assert result.is_error is not True
    assert len(seen) >= 3, f"expected a progress notification per step, got {seen}"
    assert [p for p, _ in seen] == sorted(p for p, _ in seen)
    assert seen[-1][1] == 4


async def _cancel_after_first_progress(client: Client, tool: str, arguments: dict[str, Any]) -> float:
    """Start a call, cancel it once it reports progress, return how long the cancel took."""
    progressed = anyio.Event()
    started = time.perf_counter()

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        progressed.set()

    async with anyio.create_task_group() as group:
        group.start_soon(partial(client.call_tool, tool, arguments, progress_callback=on_progress))
        with anyio.move_on_after(30) as waited:
            await progressed.wait()
        if waited.cancelled_caught:
            raise AssertionError(
                f"{tool} sent no progress notification in 30 s, so it was never cancelled mid-call"
            )
        started = time.perf_counter()
        group.cancel_scope.cancel()
    return time.perf_counter() - started


async def _check_cancellation(target: Target) -> None:
    long_call = {"duration": 120, "steps": 120}
    with anyio.fail_after(40):
        took = await _cancel_after_first_progress(
            target.client, target.name("trigger-long-running-operation"), long_call
        )
    assert took < 5, f"cancelling took {took:.1f} s"
    with anyio.fail_after(10):  # the session survives the cancelled call
        assert "still here" in _text(
            await target.client.call_tool(target.name("echo"), {"message": "still here"})
        )


CHECKS: dict[str, Callable[[Target], Any]] = {
    "catalog": _check_catalog,
    "progress": _check_progress,
    "cancellation": _check_cancellation,
}


@pytest.mark.parametrize("check", CHECKS)
async def test_server_everything_works_directly_over_stdio(check: str) -> None:
    async with _everything_direct() as target:
        await CHECKS[check](target)


@pytest.mark.parametrize("mode", ERAS)
@pytest.mark.parametrize("check", CHECKS)
async def test_server_everything_works_through_the_gateway(
    gateway_instance: GatewayInstance, gateway_key: str, check: str, mode: str
) -> None:
    async with _everything_via_gateway(gateway_instance, gateway_key, mode) as target:
        await CHECKS[check](target)


async def _probe_cancellation(client: Client, tool: str) -> None:
    marker = Path(tempfile.gettempdir()) / f"bastion-cancel-{time.monotonic_ns()}"
    try:
        await _cancel_after_first_progress(client, tool, {"marker": str(marker)})
        with anyio.fail_after(15):
            # Another process writes the marker when notifications/cancelled arrives: no event to await.
            while not marker.exists():
                await anyio.sleep(0.05)
    finally:
        marker.unlink(missing_ok=True)


@pytest.mark.parametrize("mode", ERAS)
async def test_a_cancelled_call_is_cancelled_in_the_fixture_directly(
    fixture_server_url: str, mode: str
) -> None:
    async with _over_http(fixture_server_url, mode, {}) as client:
        await _probe_cancellation(client, "bastion_cancellation_probe")


@pytest.mark.parametrize("mode", ERAS)
async def test_a_cancelled_call_is_cancelled_in_the_upstream_through_the_gateway(
    gateway_instance: GatewayInstance, gateway_key: str, mode: str
) -> None:
    headers = {"Authorization": f"Bearer {gateway_key}"}
    async with _over_http(gateway_instance.mcp_url(), mode, headers) as client:
        await _probe_cancellation(client, "conformance_bastion_cancellation_probe")
