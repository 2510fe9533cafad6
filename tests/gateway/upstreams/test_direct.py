"""How the direct path reads an upstream's HTTP answer into the JSON-RPC answer to its request."""

from __future__ import annotations

import asyncio

import orjson
import pytest
from mcp.shared.exceptions import MCPError

from gateway.upstreams.direct import DirectHTTPClient

read = DirectHTTPClient._message  # pyright: ignore[reportPrivateUsage]


@pytest.mark.parametrize("newline", [b"\n", b"\r\n", b"\r"])
def test_an_event_stream_is_read_whatever_its_line_ends(newline: bytes) -> None:
    """A log notification, then the answer: sse-starlette ends lines with CRLF."""
    events = [
        b'event: message', b'data: {"jsonrpc": "2.0", "method": "notifications/message", "params": {}}', b"",
        b"event: message", b'data: {"jsonrpc": "2.0", "id": 4, "result": {"ok": true}}', b"", b"",
    ]  # fmt: skip
    body = newline.join(events)
    assert read(200, "text/event-stream", body, 4) == {"jsonrpc": "2.0", "id": 4, "result": {"ok": True}}


def test_an_answer_to_another_request_is_refused_not_taken() -> None:
    with pytest.raises(MCPError, match="upstream answered request 3, not 4"):
        read(200, "application/json", b'{"jsonrpc": "2.0", "id": 3, "result": {}}', 4)
    # An error the upstream could not tie to an id is about this request: it passes through.
    refused = read(400, "application/json", b'{"jsonrpc": "2.0", "id": null, "error": {"code": -32600}}', 4)
    assert refused["error"]["code"] == -32600


def test_an_event_that_is_not_json_is_named() -> None:
    with pytest.raises(MCPError, match="upstream sent an SSE event that is not JSON"):
        read(200, "text/event-stream", b"data: {oops\n\n", 4)


async def test_an_answer_on_an_event_stream_the_server_keeps_open_is_taken_at_once() -> None:
    """The server sends the answer's event and leaves the stream open (its SHOULD close is
    not a MUST): the call is answered now, and the connection is reused once it ends."""
    end_stream = asyncio.Event()
    writers: list[asyncio.StreamWriter] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            rid = orjson.loads(await reader.readexactly(length))["id"]
            data = b'{"jsonrpc":"2.0","id":%d,"result":{"n":%d}}' % (rid, rid)
            event = b"event: message\r\ndata: " + data + b"\r\n\r\n"
            writer.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
                + b"%x\r\n%s\r\n" % (len(event), event)
            )
            await writer.drain()
            await end_stream.wait()
            end_stream.clear()
            writer.write(b"0\r\n\r\n")
            await writer.drain()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = DirectHTTPClient(f"http://127.0.0.1:{port}/mcp", {}, timeout=30)
    try:
        first = await asyncio.wait_for(client.request("tools/call", {"name": "x", "arguments": {}}), 5)
        assert first == {"n": 1}
        end_stream.set()  # the stream ends: the connection goes back to the pool
        await asyncio.sleep(0.2)
        second = await asyncio.wait_for(client.request("tools/call", {"name": "x", "arguments": {}}), 5)
        assert second == {"n": 2}
        assert len(writers) == 1  # one connection served both
    finally:
        end_stream.set()
        await client.close()
        server.close()
        for writer in writers:
            writer.close()
        await server.wait_closed()
        await asyncio.sleep(0.05)  # the handlers see their connections end
