"""SSE resumability for the gateway's own streams (a client reconnecting with `Last-Event-ID`).

A bounded in-memory store: the newest `max_events` events, per gateway process. A
client that reconnects to the same process within that window gets what it missed;
older ids are unknown and the SDK answers as for any unknown id.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict

from mcp.server.streamable_http import EventCallback, EventMessage, EventStore
from mcp_types import JSONRPCMessage

__all__ = ["MemoryEventStore"]


class MemoryEventStore(EventStore):
    def __init__(self, max_events: int = 10_000) -> None:
        self.max_events = max_events
        self._ids = itertools.count(1)
        self._events: OrderedDict[int, tuple[str, JSONRPCMessage | None]] = OrderedDict()

    async def store_event(self, stream_id: str, message: JSONRPCMessage | None) -> str:
        number = next(self._ids)
        self._events[number] = (stream_id, message)
        while len(self._events) > self.max_events:
            self._events.popitem(last=False)
        return str(number)

    async def replay_events_after(self, last_event_id: str, send_callback: EventCallback) -> str | None:
        if not last_event_id.isdigit() or int(last_event_id) not in self._events:
            return None
        last = int(last_event_id)
        stream_id = self._events[last][0]
        for number, (sid, message) in list(self._events.items()):
            if number > last and sid == stream_id and message is not None:
                await send_callback(EventMessage(message, str(number)))
        return stream_id
