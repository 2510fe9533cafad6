"""SSE resumability for the gateway's own streams (a client reconnecting with `Last-Event-ID`).

A bounded in-memory store: the newest `max_events` events of all sessions together, per
gateway process. A client that reconnects to the same process within that window gets
what it missed; older ids are unknown and the SDK answers as for any unknown id.

Each session sees only its own events. The SDK names a stream by the JSON-RPC id of the
request it answers (or `_GET_stream`), which clients of different sessions reuse all the
time, so one store shared by the sessions of a view would replay another session's
answers to whoever names one of its event ids. `SessionManager` gives every session its
own view of the store.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from typing import Any

from mcp.server.auth.middleware.bearer_auth import AuthorizationContext
from mcp.server.lowlevel import Server
from mcp.server.streamable_http import EventCallback, EventMessage, EventStore, StreamableHTTPServerTransport
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp_types import JSONRPCMessage

__all__ = ["MemoryEventStore", "SessionEvents", "SessionManager"]


class MemoryEventStore:
    """Every session's events, the newest `max_events` of them."""

    def __init__(self, max_events: int = 10_000) -> None:
        self.max_events = max_events
        self._ids = itertools.count(1)
        # event number -> (session id, stream id, message)
        self._events: OrderedDict[int, tuple[str, str, JSONRPCMessage | None]] = OrderedDict()

    def for_session(self, session_id: str) -> SessionEvents:
        return SessionEvents(self, session_id)

    def store(self, session_id: str, stream_id: str, message: JSONRPCMessage | None) -> str:
        number = next(self._ids)
        self._events[number] = (session_id, stream_id, message)
        while len(self._events) > self.max_events:
            self._events.popitem(last=False)
        return str(number)

    async def replay(self, session_id: str, last_event_id: str, send_callback: EventCallback) -> str | None:
        """Send `session_id`'s events after `last_event_id` on its stream; None for an id
        that is unknown, too old, or another session's."""
        if not last_event_id.isdigit():
            return None
        last = int(last_event_id)
        found = self._events.get(last)
        if found is None or found[0] != session_id:
            return None
        stream_id = found[1]
        for number, (session, stream, message) in list(self._events.items()):
            if number > last and session == session_id and stream == stream_id and message is not None:
                await send_callback(EventMessage(message, str(number)))
        return stream_id


class SessionEvents(EventStore):
    """One session's view of the shared store: what the SDK's transport for it is given."""

    def __init__(self, store: MemoryEventStore, session_id: str) -> None:
        self._store = store
        self.session_id = session_id

    async def store_event(self, stream_id: str, message: JSONRPCMessage | None) -> str:
        return self._store.store(self.session_id, stream_id, message)

    async def replay_events_after(self, last_event_id: str, send_callback: EventCallback) -> str | None:
        return await self._store.replay(self.session_id, last_event_id, send_callback)


class SessionManager(StreamableHTTPSessionManager):
    """The SDK's session manager, with each session's transport on its own `SessionEvents`.

    The SDK hands its one `event_store` to every session's transport when it admits the
    session (`_admit_session`); the transport reads its store only when it stores or
    replays an event, so swapping in the session's own view right after admission is
    complete. tests/gateway/test_sessions.py proves one session cannot replay another's.
    """

    def __init__(
        self, app: Server[Any], *, events: MemoryEventStore, retry_interval: int, session_idle_timeout: float
    ) -> None:
        # `event_store` only turns resumability on; each session gets its own view below.
        super().__init__(
            app,
            event_store=events.for_session(""),
            retry_interval=retry_interval,
            session_idle_timeout=session_idle_timeout,
        )
        self.events = events

    def _admit_session(self, requestor: AuthorizationContext | None) -> StreamableHTTPServerTransport | None:
        transport = super()._admit_session(requestor)
        if transport is not None and transport.mcp_session_id is not None:
            own = self.events.for_session(transport.mcp_session_id)
            transport._event_store = own  # pyright: ignore[reportPrivateUsage]
        return transport
