"""uvicorn's httptools protocol as the gateway runs it: one write per loop step, and a
deadline for each request to arrive.

One write: uvicorn writes a response's head and its body with two `transport.write`
calls, and a connection with TCP_NODELAY sends each at once: two loopback sends for one
small JSON answer, and a client that wakes for the head, then again for the body.
Measured on the gateway's hot path (strace), those two writes were a tenth of its CPU
per call. `CoalescingHttpToolsProtocol` gives uvicorn a transport that keeps the writes
of the current step and sends them with one `writelines` (one `writev`) when the step
ends; a long stream still goes out as it is written, one step at a time. A finished
answer goes out the moment its last byte is written: what runs after it in the same
step (the app returning, uvicorn's bookkeeping) no longer delays the client.

A deadline: uvicorn times out a connection only while it idles between requests, so a
client that opens a connection and sends nothing, or stops halfway through a request's
head or body, holds the connection (and, once its head is in, a request task) for as
long as it likes; enough of them exhaust the process's file descriptors. Here a request
must arrive whole within `read_timeout` seconds of its first byte (a new connection's
first request, of the connection opening): one that does not is answered 408 and its
connection closed; a connection that sent nothing is just closed. Time the server itself
stops reading (its app has not taken the body yet) is not held against the client. The
clock is one timer per connection that looks four times per timeout at what uvicorn is
reading, so a late request is closed 1 to 1.25 timeouts after it began, and a request
pays nothing for it (a deadline set and cleared per request measured about 5,000
instructions, 0.6% of a gateway call's).

Use it as `uvicorn.Config(http=CoalescingHttpToolsProtocol.reading_within(seconds))`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any, cast

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

__all__ = ["REQUEST_READ_TIMEOUT", "CoalescingHttpToolsProtocol", "CoalescingTransport"]

REQUEST_READ_TIMEOUT = 30.0  # seconds; the `request_read_timeout` setting's default
CHECKS_PER_TIMEOUT = 4  # a late request is closed 1 to 1.25 timeouts after its first byte
_NOTHING = object()  # what a connection that has sent nothing is reading


class CoalescingTransport:
    """Wraps a transport: writes wait for the end of the loop step, then go out together."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []
        self._scheduled: asyncio.Handle | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            return
        if not self._pending:
            self._scheduled = self._loop.call_soon(self._flush)
        self._pending.append(bytes(data))

    def writelines(self, list_of_data: Iterable[bytes | bytearray | memoryview]) -> None:
        for data in list_of_data:
            self.write(data)

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + sum(len(data) for data in self._pending)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def write_eof(self) -> None:
        self._flush()
        self._transport.write_eof()

    def abort(self) -> None:
        self._pending.clear()
        self._transport.abort()

    def __getattr__(self, name: str) -> Any:
        # Everything else (is_closing, pause_reading, get_extra_info, ...) is the transport's own.
        return getattr(self._transport, name)

    def flush(self) -> None:
        """Send what this step wrote so far, now."""
        if self._scheduled is not None:
            self._scheduled.cancel()
        self._flush()

    def _flush(self) -> None:
        self._scheduled = None
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        if not self._transport.is_closing():
            self._transport.writelines(pending)


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol over a `CoalescingTransport`, with a deadline for
    each request to arrive whole."""

    # Slots, not instance attributes: as two more instance attributes, these made
    # uvicorn's own per-request code run 2% more instructions (callgrind; its instances'
    # attribute table outgrew what CPython shares between instances and specializes).
    __slots__ = ("_coalescing", "_deadline", "_seen")

    read_timeout: float = REQUEST_READ_TIMEOUT

    @classmethod
    def reading_within(cls, seconds: float) -> type[CoalescingHttpToolsProtocol]:
        """This protocol with a `read_timeout` of `seconds` (> 0)."""
        if not seconds > 0:
            raise ValueError(f"a request read timeout must be > 0 seconds, got {seconds!r}")
        return type(cls.__name__, (cls,), {"read_timeout": float(seconds)})

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._coalescing = CoalescingTransport(transport, self.loop)
        super().connection_made(self._coalescing)  # type: ignore[arg-type]
        # The request being read, told by the object uvicorn made for it (its scope; before
        # the first, _NOTHING), and since when this timer has seen it. Waiting for a
        # connection's first request counts; between later requests, uvicorn's keep-alive
        # timeout applies.
        self._seen: tuple[object, float] | None = (_NOTHING, self.loop.time())
        self._deadline: asyncio.TimerHandle | None = self.loop.call_later(self._period, self._check_read)

    @property
    def _period(self) -> float:
        return self.read_timeout / CHECKS_PER_TIMEOUT

    def connection_lost(self, exc: Exception | None) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        super().connection_lost(exc)

    def on_response_complete(self) -> None:
        # The answer is whole: the client gets it before the rest of this step runs.
        self._coalescing.flush()
        super().on_response_complete()

    def _being_read(self) -> object | None:
        """What marks the request being read now (None: none is)."""
        # uvicorn types both as always set: they are None until a connection's first request.
        scope = cast("object | None", self.scope)
        cycle = cast("RequestResponseCycle | None", self.cycle)
        if scope is None:
            return _NOTHING  # nothing has arrived yet
        if cycle is None or cycle.scope is not scope:
            return scope  # a head begun: uvicorn makes the cycle when it is whole
        if cycle.more_body and not cycle.response_complete:
            return scope  # a body begun (an answer sent early ends the wait)
        return None

    def _check_read(self) -> None:
        self._deadline = None
        if self._coalescing.is_closing():
            return
        marker, now = self._being_read(), self.loop.time()
        seen = self._seen
        if marker is None or seen is None or seen[0] is not marker:
            self._seen = None if marker is None else (marker, now)
        elif now - seen[1] >= self.read_timeout and not self.flow.read_paused:
            # Late (time the server itself stopped reading, its app not having taken the
            # body yet, is not held against the client).
            self._close_late(marker)
            return
        self._deadline = self.loop.call_later(self._period, self._check_read)

    def _close_late(self, marker: object) -> None:
        """Close the connection of a late request, answering 408 where no other answer is on
        the wire (pipelined requests: answers go out in order, the newest cycle last) and
        this request has none yet."""
        cycle = cast("RequestResponseCycle | None", self.cycle)  # None before a first request
        if marker is _NOTHING:
            answer = False  # nothing was asked
        elif cycle is None or cycle.scope is not marker:  # its head is not in
            answer = cycle is None or cycle.response_complete
        else:
            answer = not cycle.response_started and not self.pipeline
        if answer:
            self._coalescing.write(self._timeout_answer())
        if cycle is not None:
            cycle.keep_alive = False
        self._coalescing.close()

    def _timeout_answer(self) -> bytes:
        """408 for a request that began but did not arrive whole in time."""
        message = (
            f"the request did not arrive whole within {self.read_timeout:g} s; "
            "send each request's head and body at once"
        )
        body = orjson.dumps({"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": message}})
        head = [b"HTTP/1.1 408 Request Timeout\r\n"]
        head += [name + b": " + value + b"\r\n" for name, value in self.server_state.default_headers]
        head += [
            b"content-type: application/json\r\n",
            b"content-length: " + str(len(body)).encode("ascii") + b"\r\n",
            b"connection: close\r\n\r\n",
        ]
        return b"".join(head) + body
