"""The SDK's Streamable HTTP client transport, reporting when an upstream closes a call's stream.

A 2025-11-25 server may close a request's SSE stream mid-call (SEP-1699 polling): its
client reconnects with `Last-Event-ID` and reads the rest. The SDK's transport does that
by itself, invisibly; the gateway also needs to know, so it can close its own client's
stream at the same point and let that client resume from the gateway's event store, as it
would have resumed from the upstream. `streamable_http_client` below is the SDK's function
of the same name with this transport in place of the SDK's (it builds its transport
inside, with no way to pass another).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import asynccontextmanager

import anyio
import httpx2
from mcp.client._transport import TransportStreams
from mcp.client.streamable_http import RequestContext, StreamableHTTPTransport
from mcp.shared._context_streams import create_context_streams
from mcp.shared.message import SessionMessage
from mcp_types import JSONRPCRequest, RequestId

__all__ = ["StreamClosedFn", "streamable_http_client"]

logger = logging.getLogger(__name__)

StreamClosedFn = Callable[[RequestId], Awaitable[None]]


class _ReportingTransport(StreamableHTTPTransport):
    def __init__(self, url: str, on_stream_closed: StreamClosedFn) -> None:
        super().__init__(url)
        self._on_stream_closed = on_stream_closed

    async def _handle_reconnection(
        self, ctx: RequestContext, last_event_id: str, retry_interval_ms: int | None = None, attempt: int = 0
    ) -> None:
        # Attempt 0 follows a stream the server ended; later attempts retry a failed reconnect.
        message = ctx.session_message.message
        if attempt == 0 and isinstance(message, JSONRPCRequest):
            try:
                await self._on_stream_closed(message.id)
            except Exception as exc:  # the relay is best effort; the call itself goes on
                logger.debug("reporting a closed upstream stream failed: %s", exc)
        await super()._handle_reconnection(ctx, last_event_id, retry_interval_ms, attempt)


@asynccontextmanager
async def streamable_http_client(
    url: str, *, http_client: httpx2.AsyncClient, on_stream_closed: StreamClosedFn
) -> AsyncGenerator[TransportStreams, None]:
    """Read and write streams to the upstream at `url`, as the SDK's client gives them."""
    transport = _ReportingTransport(url, on_stream_closed)
    read_writer, read_stream = create_context_streams[SessionMessage | Exception](0)
    write_stream, write_reader = create_context_streams[SessionMessage](0)
    async with read_writer, read_stream, write_stream, write_reader, anyio.create_task_group() as tg:

        def start_get_stream() -> None:
            tg.start_soon(transport.handle_get_stream, http_client, read_writer)

        tg.start_soon(
            transport.post_writer, http_client, write_reader, read_writer, write_stream, start_get_stream, tg
        )
        try:
            yield read_stream, write_stream
        finally:
            if transport.session_id:
                await transport.terminate_session(http_client)  # logs its own failure
            tg.cancel_scope.cancel()
