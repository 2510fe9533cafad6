"""Upstream connections in each protocol era, with real stdio servers.

A dual-era upstream gets a second connection in the 2026-07-28 era (over stdio, a second
process) with its own catalog; the gateway's 2026-07-28 clients are served over it. An
upstream that does not speak 2026-07-28 is recognised as such once, and its 2026-07-28
clients are served over its handshake-era connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import sys
import time
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import pytest
from mcp.shared.exceptions import MCPError

from gateway.upstreams import connection as connection_module
from gateway.upstreams.connection import UpstreamSpec
from gateway.upstreams.manager import UpstreamManager

FIXTURES = Path(__file__).resolve().parent / "fixtures"
CLIENT = {
    "io.modelcontextprotocol/clientCapabilities": {"elicitation": {}},
    "io.modelcontextprotocol/clientInfo": {"name": "test-client", "version": "1"},
}


def _spec(name: str, script: str, tmp_path: Path, *, dual_era: bool = True) -> UpstreamSpec:
    env = {"COUNTING_SERVER_LOG": str(tmp_path / f"{name}.log")}
    return UpstreamSpec(
        name, "stdio", command=sys.executable, args=(str(FIXTURES / script),), env=env, dual_era=dual_era
    )


@asynccontextmanager
async def _running(*specs: UpstreamSpec) -> AsyncGenerator[UpstreamManager]:
    manager = UpstreamManager({spec.name: spec for spec in specs})
    async with anyio.create_task_group() as tg:
        await manager.start(tg, wait=60)
        try:
            yield manager
        finally:
            tg.cancel_scope.cancel()


def _text(result: dict[str, object]) -> str:
    content = result.get("content")
    assert isinstance(content, list) and content, f"no content in {result}"
    return str(content[0]["text"])


async def test_a_dual_era_upstream_gets_a_2026_connection_of_its_own(tmp_path: Path) -> None:
    async with _running(_spec("counter", "counting_server.py", tmp_path)) as manager:
        handshake = manager.connection("counter")
        modern = manager.connection("counter", modern=True)
        assert handshake is not None and modern is not None and handshake is not modern
        assert handshake.protocol_version == "2025-11-25"
        assert modern.protocol_version == "2026-07-28"
        described = manager.describe()["counter"]
        assert described["state"] == "ready" and described["modern"]["state"] == "ready"
        names = {tool["name"] for tool in manager.catalogs(modern=True)["counter"].tools}
        assert {"echo", "pid", "confirm"} <= names
        # Two processes: the same tool answers with two different process ids.
        pids = [
            _text(await connection.request("tools/call", {"name": "pid", "arguments": {}}))
            for connection in (handshake, modern)
        ]
        assert pids[0] != pids[1]


async def test_a_2026_round_trip_passes_through_with_the_clients_envelope(tmp_path: Path) -> None:
    async with _running(_spec("counter", "counting_server.py", tmp_path)) as manager:
        modern = manager.connection("counter", modern=True)
        assert modern is not None
        call = {"name": "confirm", "arguments": {"action": "drop table"}}
        first = await modern.request("tools/call", call, envelope=CLIENT)
        assert first["resultType"] == "input_required"
        assert set(first["inputRequests"]) == {"confirm"}
        sealed = first["requestState"]
        assert sealed != "drop table", "the upstream seals its requestState; it passes through as it is"
        answer = {"confirm": {"action": "accept", "content": {"ok": True}}}
        retry = {**call, "inputResponses": answer, "requestState": sealed}
        second = await modern.request("tools/call", retry, envelope=CLIENT)
        assert _text(second) == "drop table: accept"
        # The upstream hop's envelope stays behind (`complete`, its server identity): the gateway
        # stamps its own for its clients. Only `input_required` must reach them as it came.
        assert "resultType" not in second
        assert "io.modelcontextprotocol/serverInfo" not in (second.get("_meta") or {})
        with pytest.raises(MCPError, match="requestState"):  # the upstream's own check still holds
            await modern.request(
                "tools/call", {**retry, "requestState": sealed[:-4] + "AAAA"}, envelope=CLIENT
            )


async def test_an_upstream_without_2026_serves_both_eras_over_its_handshake_connection(
    tmp_path: Path,
) -> None:
    async with _running(_spec("old", "handshake_only_server.py", tmp_path)) as manager:
        with anyio.fail_after(30):
            while manager.describe()["old"]["modern"]["state"] == "starting":
                await anyio.sleep(0.05)
        described = manager.describe()["old"]
        assert described["modern"]["state"] == "unsupported"
        assert "does not speak 2026-07-28" in described["modern"]["last_error"]
        handshake = manager.connection("old")
        assert handshake is not None and manager.connection("old", modern=True) is handshake
        assert manager.catalogs(modern=True)["old"] is manager.catalogs()["old"]
        echoed = await handshake.request("tools/call", {"name": "echo", "arguments": {"text": "hi"}})
        assert _text(echoed) == "hi"


async def test_dual_era_off_keeps_one_connection(tmp_path: Path) -> None:
    spec = _spec("counter", "counting_server.py", tmp_path, dual_era=False)
    async with _running(spec) as manager:
        assert "modern" not in manager.describe()["counter"]
        assert manager.connection("counter", modern=True) is manager.connection("counter")


@pytest.mark.parametrize("modern", [False, True])
async def test_a_list_change_reaches_the_gateway_in_each_era(tmp_path: Path, modern: bool) -> None:
    """2026-07-28 announces list changes on a `subscriptions/listen` stream only."""
    changes: list[str] = []
    async with _running(_spec("counter", "counting_server.py", tmp_path)) as manager:

        async def heard(upstream: str, what: str) -> None:
            changes.append(what)

        manager.add_listener(heard)
        connection = manager.connection("counter", modern=modern)
        assert connection is not None
        await connection.request("tools/call", {"name": "toggle_extra", "arguments": {}}, envelope=CLIENT)
        with anyio.fail_after(10):
            while "notifications/tools/list_changed" not in changes:
                await anyio.sleep(0.02)
        names = {tool["name"] for tool in manager.catalogs(modern=modern)["counter"].tools}
        assert "extra" in names


async def test_an_http_upstream_round_trips_over_its_2026_connection(http_fixture_url: str) -> None:
    spec = UpstreamSpec("fixture", "http", url=http_fixture_url, dual_era=True)
    async with _running(spec) as manager:
        modern = manager.connection("fixture", modern=True)
        assert modern is not None and modern is not manager.connection("fixture")
        assert modern.direct is not None, "plain calls to a 2026-07-28 HTTP upstream take the direct path"
        call = {"name": "test_input_required_result_elicitation", "arguments": {}}
        first = await modern.request("tools/call", call, envelope=CLIENT)
        assert first["resultType"] == "input_required"
        answer = {"user_name": {"action": "accept", "content": {"name": "Ada"}}}
        second = await modern.request("tools/call", {**call, "inputResponses": answer}, envelope=CLIENT)
        assert _text(second) == "Hello, Ada!"
        # The client's capabilities decide what the upstream may ask for.
        without = {**CLIENT, "io.modelcontextprotocol/clientCapabilities": {}}
        with pytest.raises(MCPError) as refused:
            await modern.request(
                "tools/call", {"name": "test_missing_capability", "arguments": {}}, envelope=without
            )
        assert refused.value.code == -32021


async def test_an_http_upstream_closing_a_calls_stream_closes_the_clients_too(http_fixture_url: str) -> None:
    """SEP-1699: the fixture's `test_reconnection` closes its SSE stream mid-call. The gateway
    is told (to close its own client's stream), and the call still completes after the
    transport resumes with Last-Event-ID."""
    spec = UpstreamSpec("fixture", "http", url=http_fixture_url, dual_era=True)
    async with _running(spec) as manager:
        handshake = manager.connection("fixture")
        assert handshake is not None and handshake.direct is not None
        closed: list[float] = []

        async def close_stream() -> None:
            closed.append(time.monotonic())

        call = {"name": "test_reconnection", "arguments": {}}
        with anyio.fail_after(30):
            result = await handshake.request("tools/call", call, on_stream_closed=close_stream)
        assert _text(result) == "Reconnection test completed"
        assert len(closed) == 1, "the upstream's closed stream was not reported"
        # A call that cannot relay a closed stream takes the direct 2026-07-28 path, where the
        # upstream has no stream to close: nothing is reported, and the answer is the same.
        with anyio.fail_after(30):
            plain = await handshake.request("tools/call", call)
        assert _text(plain) == "Reconnection test completed"
        assert len(closed) == 1


@pytest.mark.parametrize("modern", [False, True])
async def test_a_call_past_the_upstreams_timeout_fails_and_is_cancelled_there(
    tmp_path: Path, modern: bool
) -> None:
    spec = dataclasses.replace(_spec("counter", "counting_server.py", tmp_path), timeout=0.5)
    log = tmp_path / "counter.log"
    async with _running(spec) as manager:
        connection = manager.connection("counter", modern=modern)
        assert connection is not None
        started = time.monotonic()
        with pytest.raises(MCPError) as caught:
            await connection.request(
                "tools/call", {"name": "slow", "arguments": {"steps": 400, "delay": 0.05}}
            )
        assert time.monotonic() - started < 10
        assert caught.value.error.code == -32001, caught.value.error
        with anyio.fail_after(10):
            while "slow-cancelled" not in log.read_text():
                await anyio.sleep(0.05)


async def test_an_upstream_without_resource_templates_lists_every_page_of_its_resources(
    tmp_path: Path,
) -> None:
    """`resources/templates/list` is optional: a server that refuses it is ready all the same."""
    async with _running(_spec("old", "handshake_only_server.py", tmp_path)) as manager:
        described = manager.describe()["old"]
        assert described["state"] == "ready", described
        catalog = manager.catalogs()["old"]
        assert [r["uri"] for r in catalog.resources] == ["old://notes/1", "old://notes/2"]
        assert catalog.templates == []


async def test_a_subscription_is_held_upstream_whatever_crossed_it(tmp_path: Path) -> None:
    """A session's own `resources/subscribe` reaches the upstream outside the watch; the last
    other watcher's unsubscribe may cross it. The watch subscribes again under its lock, so
    the upstream is subscribed while anyone watches."""
    uri = "counter://status"
    async with _running(_spec("counter", "counting_server.py", tmp_path, dual_era=False)) as manager:
        connection = manager.connection("counter")
        assert connection is not None

        async def touched() -> str:
            return _text(await connection.request("tools/call", {"name": "touch", "arguments": {"uri": uri}}))

        assert await manager.watch.hold("counter", uri, "other") is None
        await connection.request("resources/subscribe", {"uri": uri})  # the session's own, sent first
        await manager.watch.unhold("other", "counter", uri)  # crosses it: the upstream is unsubscribed
        assert await touched() == "0"
        assert await manager.watch.hold("counter", uri, "session") is None
        assert await touched() == "1"


@asynccontextmanager
async def _discover_swallowed(port: int) -> AsyncGenerator[int]:
    """A TCP proxy to 127.0.0.1:`port` that forwards everything but a request for
    `server/discover`, which it holds unanswered; yields its own port."""
    held: list[asyncio.StreamWriter] = []

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, inspect: bool) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65536):
                if inspect and b'"server/discover"' in data:
                    return  # never forwarded, never answered
                writer.write(data)
                await writer.drain()
        writer.close()

    async def handle(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        held.append(client_writer)
        upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", port)
        held.append(upstream_writer)
        await asyncio.gather(
            pipe(client_reader, upstream_writer, True), pipe(upstream_reader, client_writer, False)
        )

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        for writer in held:
            writer.close()


async def test_an_upstream_that_never_answers_the_direct_paths_discover_still_becomes_ready(
    http_fixture_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lean 2026-07-28 client asks `server/discover` after `initialize`; no answer means
    no direct path, within DISCOVER_TIMEOUT, not a start that never ends."""
    monkeypatch.setattr(connection_module, "DISCOVER_TIMEOUT", 0.5)
    fixture_port = int(http_fixture_url.rsplit(":", 1)[1].split("/", 1)[0])
    async with _discover_swallowed(fixture_port) as port:
        spec = UpstreamSpec("fixture", "http", url=f"http://127.0.0.1:{port}/mcp", dual_era=False)
        async with _running(spec) as manager:
            assert manager.describe()["fixture"]["state"] == "ready"
            connection = manager.connection("fixture")
            assert connection is not None and connection.direct is None
            result = await connection.request("tools/call", {"name": "test_simple_text", "arguments": {}})
            assert "content" in result
