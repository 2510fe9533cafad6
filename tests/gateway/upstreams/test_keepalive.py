"""KeepAliveClient against a real TCP server on loopback that answers as each test scripts."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import cast

import pytest

from gateway.upstreams.keepalive import HTTPAnswer, KeepAliveClient, UpstreamHTTPError

# What the server writes back for a request body; None: write nothing (a silent server).
Script = Callable[[bytes], bytes | None]


def answer(body: bytes, content_type: bytes = b"application/json", extra: bytes = b"") -> bytes:
    head = b"HTTP/1.1 200 OK\r\ncontent-type: " + content_type + b"\r\n" + extra
    return head + b"content-length: %d\r\n\r\n" % len(body) + body


@dataclass
class ScriptedServer:
    script: Script
    connections: int = 0
    open_now: int = 0
    most_open: int = 0
    requests: list[bytes] = field(default_factory=lambda: [])
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    port: int = 0

    def protocol(self) -> asyncio.Protocol:
        server = self

        class Handler(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                self.transport = cast(asyncio.Transport, transport)
                self.buffer = b""
                server.connections += 1
                server.open_now += 1
                server.most_open = max(server.most_open, server.open_now)

            def data_received(self, data: bytes) -> None:
                self.buffer += data
                while b"\r\n\r\n" in self.buffer:
                    head, _, rest = self.buffer.partition(b"\r\n\r\n")
                    length = next(
                        int(line.split(b":", 1)[1])
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length:")
                    )
                    if len(rest) < length:
                        return
                    body, self.buffer = rest[:length], rest[length:]
                    server.requests.append(head + b"\r\n\r\n" + body)
                    reply = server.script(body)
                    if reply is not None:
                        self.transport.write(reply)
                        if b"connection: close" in reply.split(b"\r\n\r\n")[0].lower() or body == b"eof":
                            self.transport.close()

            def connection_lost(self, exc: Exception | None) -> None:
                server.open_now -= 1
                server.closed.set()

        return Handler()


Serve = Callable[[Script], Awaitable[ScriptedServer]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    servers: list[asyncio.Server] = []

    async def start(script: Script) -> ScriptedServer:
        scripted = ScriptedServer(script)
        server = await asyncio.get_running_loop().create_server(scripted.protocol, "127.0.0.1", 0)
        scripted.port = server.sockets[0].getsockname()[1]
        servers.append(server)
        return scripted

    yield start
    for server in servers:
        server.close()


def echo(body: bytes) -> bytes:
    return answer(b'{"echo": "' + body + b'"}')


async def posted(url: str, *bodies: bytes) -> list[HTTPAnswer]:
    """POST each body in turn through one client, then close it; the answers, in order."""
    client = KeepAliveClient(url, {}, read_timeout=5)
    try:
        return [await client.post(body, {}) for body in bodies]
    finally:
        await client.close()


async def test_sequential_posts_share_one_connection_and_send_the_headers_given(serve: Serve) -> None:
    server = await serve(echo)
    client = KeepAliveClient(
        f"http://127.0.0.1:{server.port}/mcp?x=1", {"authorization": "Bearer t"}, read_timeout=5
    )
    try:
        first = await client.post(b"one", {"mcp-method": "tools/call"})
        second = await client.post(b"two", {})
    finally:
        await client.close()
    assert first == HTTPAnswer(200, "application/json", b'{"echo": "one"}')
    assert second.body == b'{"echo": "two"}'
    assert server.connections == 1
    request = server.requests[0].decode()
    assert request.startswith("POST /mcp?x=1 HTTP/1.1\r\n")
    assert f"host: 127.0.0.1:{server.port}\r\n" in request
    assert "authorization: Bearer t\r\n" in request and "mcp-method: tools/call\r\n" in request
    assert request.endswith("content-length: 3\r\n\r\none")


async def test_a_chunked_event_stream_is_read_to_its_end(serve: Serve) -> None:
    events = [b"event: message\ndata: {}\n\n", b'event: message\ndata: {"id": 1}\n\n']
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(e), e) for e in events) + b"0\r\n\r\n"
    head = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
    server = await serve(lambda body: head + chunked)
    got, again = await posted(f"http://127.0.0.1:{server.port}/", b"x", b"y")
    assert got == HTTPAnswer(200, "text/event-stream", b"".join(events)) == again
    assert server.connections == 1


async def test_an_answer_that_ends_with_the_connection_is_taken_whole(serve: Serve) -> None:
    server = await serve(lambda body: b'HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\r\n{"a": 1}')
    got, later = await posted(f"http://127.0.0.1:{server.port}/", b"eof", b"eof")
    assert got.body == b'{"a": 1}' == later.body
    assert server.connections == 2


async def test_connection_close_and_a_server_side_idle_close_open_a_new_connection(serve: Serve) -> None:
    server = await serve(
        lambda body: answer(b"{}", extra=b"connection: close\r\n") if body == b"close" else echo(body)
    )
    client = KeepAliveClient(f"http://127.0.0.1:{server.port}/", {}, read_timeout=5)
    try:
        await client.post(b"close", {})
        await client.post(b"a", {})
        assert server.connections == 2
        server.closed.clear()
        await client.post(b"close", {})  # reuses the second connection, which the server then closes
        await asyncio.wait_for(server.closed.wait(), 5)
        assert (await client.post(b"b", {})).body == b'{"echo": "b"}'
    finally:
        await client.close()
    assert server.connections == 3


async def test_an_idle_connection_past_its_expiry_is_not_reused(serve: Serve) -> None:
    server = await serve(echo)
    client = KeepAliveClient(f"http://127.0.0.1:{server.port}/", {}, read_timeout=5, idle_expiry=0.0)
    try:
        await client.post(b"a", {})
        await client.post(b"b", {})
    finally:
        await client.close()
    assert server.connections == 2


async def test_a_silent_server_times_out_and_its_connection_is_dropped(serve: Serve) -> None:
    server = await serve(lambda body: None if body == b"hang" else echo(body))
    client = KeepAliveClient(f"http://127.0.0.1:{server.port}/", {}, read_timeout=0.2)
    try:
        with pytest.raises(UpstreamHTTPError, match=r"no answer within 0.2 s"):
            await client.post(b"hang", {})
        await asyncio.wait_for(server.closed.wait(), 5)
        assert (await client.post(b"ok", {})).body == b'{"echo": "ok"}'
    finally:
        await client.close()
    assert server.connections == 2


async def test_a_cancelled_request_never_hands_its_connection_to_the_next(serve: Serve) -> None:
    server = await serve(lambda body: None if body == b"hang" else echo(body))
    client = KeepAliveClient(f"http://127.0.0.1:{server.port}/", {}, read_timeout=30)
    try:
        pending = asyncio.ensure_future(client.post(b"hang", {}))
        while not server.requests:
            await asyncio.sleep(0.01)
        pending.cancel()
        with pytest.raises(asyncio.CancelledError):
            await pending
        await asyncio.wait_for(server.closed.wait(), 5)
        assert (await client.post(b"next", {})).body == b'{"echo": "next"}'
    finally:
        await client.close()
    assert server.connections == 2


async def test_concurrent_posts_are_multiplexed_up_to_the_connection_limit(serve: Serve) -> None:
    server = await serve(echo)
    client = KeepAliveClient(f"http://127.0.0.1:{server.port}/", {}, read_timeout=5, max_connections=3)
    try:
        got = await asyncio.gather(*(client.post(str(i).encode(), {}) for i in range(12)))
    finally:
        await client.close()
    assert [a.body for a in got] == [b'{"echo": "%d"}' % i for i in range(12)]
    assert 1 < server.most_open <= 3


async def test_wire_failures_are_clear_errors(serve: Serve) -> None:
    server = await serve(lambda body: b"NOT HTTP AT ALL\r\n\r\n" if body == b"junk" else None)
    client = KeepAliveClient(f"http://127.0.0.1:{server.port}/", {}, read_timeout=5)
    with pytest.raises(UpstreamHTTPError, match="malformed HTTP answer"):
        await client.post(b"junk", {})
    await client.close()
    with socket.socket() as unused:  # a port nothing listens on once this closes
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    refused = KeepAliveClient(f"http://127.0.0.1:{port}/", {}, read_timeout=5)
    with pytest.raises(UpstreamHTTPError, match=r"could not connect to 127\.0\.0\.1:\d+"):
        await refused.post(b"x", {})


def test_bad_urls_and_header_injection_are_refused() -> None:
    with pytest.raises(ValueError, match="http:// or https://"):
        KeepAliveClient("ftp://example/", {}, read_timeout=1)
    with pytest.raises(ValueError, match="line break"):
        KeepAliveClient("http://127.0.0.1:1/", {"x-evil": "a\r\nhost: other"}, read_timeout=1)
    with pytest.raises(ValueError, match="NUL"):
        KeepAliveClient("http://127.0.0.1:1/", {"x-evil\0": "a"}, read_timeout=1)


async def test_a_request_header_that_could_split_the_request_is_refused_before_anything_is_sent() -> None:
    client = KeepAliveClient("http://127.0.0.1:1/", {}, read_timeout=1)  # nothing listens there
    for value in ("a\nb", "a\rb", "a\0b"):
        with pytest.raises(ValueError, match="line break or NUL"):
            await client.post(b"{}", {"mcp-name": value})


async def test_an_interim_answer_is_skipped_and_the_final_one_taken(serve: Serve) -> None:
    """103 Early Hints before the answer: the caller gets the 200, and the next request on
    the connection gets its own answer, not the one before it."""
    hints = b"HTTP/1.1 103 Early Hints\r\nlink: </style.css>; rel=preload\r\n\r\n"
    server = await serve(lambda body: hints + echo(body))
    first, second = await posted(f"http://127.0.0.1:{server.port}/", b"one", b"two")
    assert first == HTTPAnswer(200, "application/json", b'{"echo": "one"}')
    assert second.body == b'{"echo": "two"}'
    assert server.connections == 1


async def test_credentials_in_the_url_never_reach_the_host_header(serve: Serve) -> None:
    server = await serve(echo)
    await posted(f"http://user:secret@127.0.0.1:{server.port}/mcp", b"x")
    request = server.requests[0].decode()
    assert f"host: 127.0.0.1:{server.port}\r\n" in request and "secret" not in request


async def test_one_deadline_covers_waiting_for_a_connection_connecting_and_the_answer(serve: Serve) -> None:
    """`call_timeout` bounds the whole call: a request that waits for the one connection
    (held by a call that never gets its answer) fails within its own deadline."""
    server = await serve(lambda body: None)  # never answers
    client = KeepAliveClient(f"http://127.0.0.1:{server.port}/", {}, read_timeout=1.0, max_connections=1)
    loop = asyncio.get_running_loop()

    async def timed() -> float:
        started = loop.time()
        with pytest.raises(UpstreamHTTPError, match=r"within 1 s"):
            await client.post(b"hang", {})
        return loop.time() - started

    try:
        first = asyncio.ensure_future(timed())
        while not server.requests:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)
        second = await timed()  # waited about 0.9 s for the connection, then got its own
        await first
    finally:
        await client.close()
    assert second < 1.5  # with a deadline of its own after the wait, about 1.9 s


async def test_an_answer_head_over_the_limit_is_refused(serve: Serve) -> None:
    huge = b"x-padding: " + b"a" * (70 * 1024) + b"\r\n"
    server = await serve(lambda body: answer(b"{}", extra=huge))
    client = KeepAliveClient(f"http://127.0.0.1:{server.port}/", {}, read_timeout=5)
    try:
        with pytest.raises(UpstreamHTTPError, match=r"status line and headers over 65536 bytes"):
            await client.post(b"x", {})
    finally:
        await client.close()


async def test_closing_the_client_lets_a_request_already_sent_finish() -> None:
    """The upstream is running it: failing it would have its client retry, and run it twice."""
    release = asyncio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        await reader.readexactly(4)
        await release.wait()
        writer.write(answer(b'"done"'))
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = KeepAliveClient(f"http://127.0.0.1:{port}/", {}, read_timeout=10)
    try:
        pending = asyncio.ensure_future(client.post(b"work", {}))
        await asyncio.sleep(0.2)
        await client.close()
        with pytest.raises(UpstreamHTTPError, match="closed this client"):
            await client.post(b"more", {})  # nothing new starts on a closed client
        release.set()
        assert (await asyncio.wait_for(pending, 10)).body == b'"done"'
    finally:
        server.close()


async def test_a_long_event_stream_is_not_searched_for_its_answer_read_after_read() -> None:
    """Searching reads the whole body so far: it runs only after a read that ends an event,
    and never on a body past EARLY_ANSWER_BYTES (a big answer arriving in many reads)."""
    piece = b"x" * 32 * 1024

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        await reader.readexactly(2)
        head = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n"
        writer.write(head + b"\r\n")
        chunks = [b"data: " + piece, *([piece] * 63), b"\n\n"]
        for chunk in chunks:
            writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            await writer.drain()
            await asyncio.sleep(0.002)  # separate reads
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        writer.close()

    searched: list[int] = []

    def answered(body: bytes) -> bool:
        searched.append(len(body))
        return False

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = KeepAliveClient(f"http://127.0.0.1:{port}/", {}, read_timeout=30)
    try:
        answer = await client.post(b"{}", {}, answered)
    finally:
        await client.close()
        server.close()
    assert len(answer.body) == 64 * len(piece) + 8
    assert searched == []  # its one event ends past the limit
