"""CoalescingHttpToolsProtocol: uvicorn over it answers with one write per loop step."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, cast

import httpx
import pytest
import uvicorn
from starlette.types import Receive, Scope, Send

from bastion.http_protocol import CoalescingHttpToolsProtocol, CoalescingTransport


class RecordingTransport:
    """Stands in for a socket transport and records each call that reaches it."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.closing = False

    def write(self, data: bytes) -> None:
        self.calls.append(("write", data))

    def writelines(self, lines: list[bytes]) -> None:
        self.calls.append(("writelines", list(lines)))

    def close(self) -> None:
        self.closing = True
        self.calls.append(("close", None))

    def abort(self) -> None:
        self.closing = True
        self.calls.append(("abort", None))

    def is_closing(self) -> bool:
        return self.closing

    def get_write_buffer_size(self) -> int:
        return 0

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 1)}.get(name, default)


def coalescing() -> tuple[CoalescingTransport, RecordingTransport]:
    inner = RecordingTransport()
    return CoalescingTransport(cast(asyncio.Transport, inner), asyncio.get_running_loop()), inner


async def test_writes_of_one_step_leave_together_when_the_step_ends() -> None:
    transport, inner = coalescing()
    transport.write(b"HTTP/1.1 200 OK\r\n\r\n")
    transport.write(b"")
    transport.writelines([bytearray(b"body"), memoryview(b"!")])
    assert inner.calls == [] and transport.get_write_buffer_size() == 24
    await asyncio.sleep(0)
    assert inner.calls == [("writelines", [b"HTTP/1.1 200 OK\r\n\r\n", b"body", b"!"])]
    transport.write(b"next")
    await asyncio.sleep(0)
    assert inner.calls[-1] == ("writelines", [b"next"])


async def test_close_sends_what_is_pending_first_and_abort_drops_it() -> None:
    transport, inner = coalescing()
    transport.write(b"last words")
    transport.close()
    await asyncio.sleep(0)
    assert inner.calls == [("writelines", [b"last words"]), ("close", None)]
    aborted, dropped = coalescing()
    aborted.write(b"never sent")
    aborted.abort()
    await asyncio.sleep(0)
    assert dropped.calls == [("abort", None)]


async def test_writes_after_the_peer_left_are_dropped_and_other_calls_pass_through() -> None:
    transport, inner = coalescing()
    transport.write(b"too late")
    inner.closing = True
    await asyncio.sleep(0)
    assert inner.calls == []
    assert transport.is_closing() and transport.get_extra_info("peername") == ("127.0.0.1", 1)


READ_TIMEOUT = 0.5  # the deadline of the servers below that set one
bodies_cut_off: list[bytes] = []  # what the app had of each body whose client left


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    if scope["path"] in ("/stream", "/slow-stream"):
        pause = 2 * READ_TIMEOUT / 3 if scope["path"] == "/slow-stream" else 0
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for part in (b"one ", b"two ", b"three"):
            await send({"type": "http.response.body", "body": part, "more_body": True})
            await asyncio.sleep(pause)
        await send({"type": "http.response.body", "body": b""})
        return
    body = b""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            bodies_cut_off.append(body)
            return
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


@asynccontextmanager
async def serving(protocol: type[CoalescingHttpToolsProtocol]) -> AsyncIterator[str]:
    """uvicorn over `protocol` on a free loopback port, serving `app`, until the block ends."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = uvicorn.Config(app, host="127.0.0.1", port=port, http=protocol, log_config=None, lifespan="off")
    server = uvicorn.Server(config)
    task = asyncio.ensure_future(server.serve())
    async with asyncio.timeout(10):
        while not server.started:
            await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


@pytest.fixture
async def server_url() -> AsyncIterator[str]:
    async with serving(CoalescingHttpToolsProtocol) as url:
        yield url


@pytest.fixture
async def strict_server() -> AsyncIterator[tuple[str, int]]:
    """(host, port) of a server whose requests must arrive within READ_TIMEOUT."""
    async with serving(CoalescingHttpToolsProtocol.reading_within(READ_TIMEOUT)) as url:
        parsed = httpx.URL(url)
        assert parsed.host and parsed.port
        yield parsed.host, parsed.port


async def test_uvicorn_over_it_answers_keep_alive_requests_and_streams(server_url: str) -> None:
    async with httpx.AsyncClient(base_url=server_url) as client:
        for body in (b'{"n": 1}', b'{"n": 2}', b"x" * 300_000):
            answer = await client.post("/echo", content=body)
            assert answer.status_code == 200 and answer.content == body
        streamed = await client.get("/stream")
        assert streamed.text == "one two three"
        assert streamed.headers["transfer-encoding"] == "chunked"


async def test_a_finished_answer_leaves_before_the_rest_of_its_step() -> None:
    """The last body write sends the answer at once; the app's own work after it does not
    hold it back until the loop step ends."""
    sent: list[bytes] = []
    after_answer: list[int] = []
    done = asyncio.Event()

    async def slow_after_answer(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})
        after_answer.append(len(sent))  # what had reached the socket when the app went on
        done.set()

    class Socket(RecordingTransport):
        def writelines(self, lines: list[bytes]) -> None:
            sent.extend(lines)

        def pause_reading(self) -> None: ...

        def resume_reading(self) -> None: ...

    config = uvicorn.Config(
        slow_after_answer, http=CoalescingHttpToolsProtocol, log_config=None, lifespan="off"
    )
    config.load()
    protocol = CoalescingHttpToolsProtocol(config, uvicorn.server.ServerState(), {})
    protocol.connection_made(cast(asyncio.Transport, Socket()))
    protocol.data_received(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
    async with asyncio.timeout(5):
        await done.wait()
    assert after_answer == [2] and sent[1] == b"ok" and sent[0].startswith(b"HTTP/1.1 200 OK")
    protocol.connection_lost(None)


async def _read_all(reader: asyncio.StreamReader, within: float = 5.0) -> bytes:
    """Everything the server sends until it closes the connection (bounded in time)."""
    async with asyncio.timeout(within):
        return await reader.read()


def _answer(raw: bytes) -> tuple[int, dict[str, Any]]:
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), json.loads(body)


async def test_a_connection_that_sends_nothing_is_closed_after_the_deadline(
    strict_server: tuple[str, int],
) -> None:
    started = time.monotonic()
    reader, writer = await asyncio.open_connection(*strict_server)
    assert await _read_all(reader) == b""  # closed, nothing said: there was no request to answer
    assert time.monotonic() - started >= READ_TIMEOUT * 0.9
    writer.close()


@pytest.mark.parametrize("sent", ["half a head", "head and half a body"])
async def test_a_request_that_stalls_is_answered_408_and_its_connection_closed(
    strict_server: tuple[str, int], sent: str
) -> None:
    bodies_cut_off.clear()
    head = b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 40\r\n"
    reader, writer = await asyncio.open_connection(*strict_server)
    writer.write(head if sent == "half a head" else head + b'\r\n{"jsonrpc": "2.0", "id": 1}')
    raw = await _read_all(reader)
    status, body = _answer(raw)
    assert status == 408 and b"connection: close" in raw.lower()
    assert body["error"]["code"] == -32600
    assert body["error"]["message"].startswith(f"the request did not arrive whole within {READ_TIMEOUT:g} s")
    # The app never takes a cut-off body for a whole one: it is told the client left.
    assert bodies_cut_off == ([] if sent == "half a head" else [b'{"jsonrpc": "2.0", "id": 1}'])
    writer.close()


async def test_each_request_on_a_kept_alive_connection_has_its_own_deadline(
    strict_server: tuple[str, int],
) -> None:
    """Slow requests inside their deadline are served, however long the connection lives,
    and an answer that streams for longer than the deadline is not cut."""
    reader, writer = await asyncio.open_connection(*strict_server)
    for _ in range(3):  # 3 x 0.5 deadlines of connection time
        writer.write(b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\n")
        await asyncio.sleep(READ_TIMEOUT / 2)
        writer.write(b"ok")
        async with asyncio.timeout(5):
            head = await reader.readuntil(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200") and await reader.readexactly(2) == b"ok"
        await asyncio.sleep(READ_TIMEOUT / 2)  # idle between requests: keep-alive's to time
    writer.close()
    async with httpx.AsyncClient(base_url=f"http://{strict_server[0]}:{strict_server[1]}") as client:
        started = time.monotonic()
        streamed = await client.get("/slow-stream", timeout=10)
        assert streamed.text == "one two three" and time.monotonic() - started > READ_TIMEOUT


def test_a_deadline_must_be_positive() -> None:
    for seconds in (0, -1, float("nan")):
        with pytest.raises(ValueError, match="must be > 0 seconds"):
            CoalescingHttpToolsProtocol.reading_within(seconds)
    assert CoalescingHttpToolsProtocol.reading_within(2.5).read_timeout == 2.5
