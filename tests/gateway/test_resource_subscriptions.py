"""Resource subscriptions end to end: what the upstream is told, and what clients hear.

The counting upstream logs every `resources/subscribe` and `resources/unsubscribe` that
reaches it, and its `touch` tool sends `notifications/resources/updated` only to the
sessions subscribed to that URI (it returns how many): so an update a client hears
proves the upstream was subscribed on the gateway's behalf.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import httpx2
import pytest
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client

from tests.gateway.conftest import GatewayProcess, counter_upstream, listen_request, running_gateway

# `resources/subscribe` is what 2025-11-25 clients send; the SDK warns that 2026-07-28 dropped it.
pytestmark = pytest.mark.filterwarnings("ignore::mcp.shared.exceptions.MCPDeprecationWarning")

URI = "counter://status"
SUBSCRIBED = f"subscribe {URI}"
UNSUBSCRIBED = f"unsubscribe {URI}"


@pytest.fixture(scope="module")
def watched(shared_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    work = tmp_path_factory.mktemp("subscriptions")
    counter_log = work / "counter.log"
    config = f"""
{counter_upstream(counter_log)}
[virtual_servers.solo]
upstreams = ["counter"]
"""
    with running_gateway(shared_home, work, config, counter_log) as process:
        yield process


class Listener:
    """A 2025-11-25 client that records the resource updates it hears."""

    def __init__(self, client: Client, heard: list[str], touch_tool: str) -> None:
        self.client = client
        self.heard = heard
        self.touch_tool = touch_tool

    async def touch(self) -> int:
        """Have the upstream announce a change of URI; how many upstream sessions it told."""
        result = await self.client.call_tool(self.touch_tool, {"uri": URI})
        assert not result.is_error, result
        return int(result.structured_content["result"])  # type: ignore[index]

    async def hears_update(self, count: int) -> None:
        with anyio.fail_after(20):
            while self.heard.count(URI) < count:
                await anyio.sleep(0.05)


@asynccontextmanager
async def _legacy(gateway: GatewayProcess, path: str = "/mcp") -> AsyncIterator[Listener]:
    heard: list[str] = []

    async def on_message(message: Any) -> None:
        params = getattr(getattr(message, "root", message), "params", None)
        if getattr(getattr(message, "root", message), "method", "") == "notifications/resources/updated":
            heard.append(str(params.uri))  # type: ignore[union-attr]

    headers = {"Authorization": f"Bearer {gateway.key('admin')}"}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30.0, read=60.0)) as http,
        Client(
            streamable_http_client(gateway.url + path, http_client=http),
            mode="legacy",
            message_handler=on_message,
        ) as client,
    ):
        # A virtual server of one upstream names its tools without the prefix.
        yield Listener(client, heard, "counter_touch" if path == "/mcp" else "touch")


async def _logged(gateway: GatewayProcess, line: str, count: int) -> None:
    """Wait until the upstream has logged `line` `count` times."""
    with anyio.fail_after(30):
        while gateway.counted().count(line) < count:
            await anyio.sleep(0.05)


async def test_the_upstream_stays_subscribed_until_the_last_session_lets_go(watched: GatewayProcess) -> None:
    """Two sessions, on two endpoints, watch one resource: one unsubscribing leaves the
    other hearing updates; the upstream is unsubscribed with the last one."""
    unsubscribed = watched.counted().count(UNSUBSCRIBED)
    async with _legacy(watched) as first, _legacy(watched, "/mcp/solo") as second:
        await first.client.subscribe_resource(URI)
        await second.client.subscribe_resource(URI)
        assert await first.touch() == 1
        await first.hears_update(1)
        await second.hears_update(1)

        await first.client.unsubscribe_resource(URI)
        assert watched.counted().count(UNSUBSCRIBED) == unsubscribed  # the second still watches
        assert await second.touch() == 1
        await second.hears_update(2)
        assert first.heard.count(URI) == 1  # no longer subscribed: told nothing more

        await second.client.unsubscribe_resource(URI)
        assert watched.counted().count(UNSUBSCRIBED) == unsubscribed + 1
        assert await second.touch() == 0  # the upstream no longer sends updates


async def test_a_session_that_ends_lets_go_of_its_subscriptions(watched: GatewayProcess) -> None:
    unsubscribed = watched.counted().count(UNSUBSCRIBED)
    async with _legacy(watched) as client:
        await client.client.subscribe_resource(URI)
        assert await client.touch() == 1
    # The client's DELETE ended its session; nobody watches the resource any more.
    await _logged(watched, UNSUBSCRIBED, unsubscribed + 1)


async def test_a_restarted_upstream_is_subscribed_again(watched: GatewayProcess) -> None:
    """A crashed stdio upstream comes back as a new process that knows no subscriptions:
    the gateway subscribes it again, and the client keeps hearing updates."""
    async with _legacy(watched) as client:
        await client.client.subscribe_resource(URI)
        subscribed = watched.counted().count(SUBSCRIBED)
        with anyio.fail_after(20), pytest.raises(Exception):  # noqa: B017 - the upstream's exit
            await client.client.call_tool("counter_crash", {})
        await _logged(watched, SUBSCRIBED, subscribed + 1)
        with anyio.fail_after(30):
            while True:
                try:
                    told = await client.touch()
                    break
                except Exception:  # still restarting: retried
                    await anyio.sleep(0.2)
        assert told == 1
        await client.hears_update(1)
        await client.client.unsubscribe_resource(URI)


async def test_a_listen_stream_subscribes_the_upstream_while_it_lasts(watched: GatewayProcess) -> None:
    """A 2026-07-28 client watches with `resourceSubscriptions` on its listen stream: the
    upstream is subscribed while the stream is open, its updates reach the stream, and the
    upstream is unsubscribed when the stream closes."""
    subscribed = watched.counted().count(SUBSCRIBED)
    unsubscribed = watched.counted().count(UNSUBSCRIBED)
    headers, body = listen_request(watched.key("admin"), [URI])
    events: list[dict[str, Any]] = []
    async with (
        httpx.AsyncClient(timeout=httpx.Timeout(30.0)) as http,
        http.stream("POST", watched.url + "/mcp", headers=headers, content=body) as response,
    ):
        assert response.status_code == 200
        lines = response.aiter_lines()
        with anyio.fail_after(20):
            async for line in lines:
                if line.startswith("data:"):
                    events.append(json.loads(line[5:]))
                    break
        assert events[0]["params"]["notifications"]["resourceSubscriptions"] == [URI]
        assert watched.counted().count(SUBSCRIBED) == subscribed + 1  # before the acknowledgement
        async with _legacy(watched) as other:  # the handshake-era process is the subscribed one
            assert await other.touch() == 1
        with anyio.fail_after(20):
            async for line in lines:
                if line.startswith("data:"):
                    events.append(json.loads(line[5:]))
                    break
        assert events[1]["method"] == "notifications/resources/updated"
        assert events[1]["params"]["uri"] == URI
    await _logged(watched, UNSUBSCRIBED, unsubscribed + 1)
