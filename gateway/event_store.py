"""SSE resumability for the gateway's own streams (a client reconnecting with `Last-Event-ID`),
and the session manager that gives each session its own events and can adopt a session
another replica opened.

A bounded in-memory store: the newest `max_events` events of all sessions together, per
gateway process. A client that reconnects to the same process within that window gets
what it missed. Event ids carry a tag of the process that gave them, so an id this
process does not hold (too old, given by another gateway replica or by this gateway
before a restart) is never mistaken for one of its own. Such an id resumes nothing of a
request's stream; a session's GET stream (its events' ids start with `g`) comes back
live instead of ending at once (the client would reconnect with the same id again and
again), and since what the client missed is not here, it is first told that everything
it follows may have changed: a `list_changed` for each kind of list the session was
shown and a `resources/updated` for each resource it subscribes to (`missed`), so it
takes them again rather than miss a change.

Each session sees only its own events. The SDK names a stream by the JSON-RPC id of the
request it answers (or `_GET_stream`), which clients of different sessions reuse all the
time, so one store shared by the sessions of a view would replay another session's
answers to whoever names one of its event ids. `SessionManager` gives every session its
own view of the store.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import secrets
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

import anyio
import orjson
from mcp.server.auth.middleware.bearer_auth import AuthorizationContext
from mcp.server.lowlevel import Server
from mcp.server.streamable_http import (
    GET_STREAM_KEY,
    EventCallback,
    EventMessage,
    EventStore,
    StreamableHTTPServerTransport,
)
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.shared.message import SessionMessage
from mcp_types import JSONRPCMessage, JSONRPCNotification
from starlette.types import Message, Receive, Scope

__all__ = ["MemoryEventStore", "SessionEvents", "SessionManager"]

_GET_STREAM_ID = "g"  # what the ids of GET stream events start with
# `[g]<tag>-<number>`; `[g]<number>` is an id of a gateway from before ids had tags.
_EVENT_ID = re.compile(r"(g?)(?:([0-9a-f]+)-)?([0-9]+)")

# What a session whose GET stream resumes after events this process does not hold is
# told first (see the module's docstring): session id -> notifications.
Missed = Callable[[str], Sequence[JSONRPCNotification]]


class MemoryEventStore:
    """Every session's events, the newest `max_events` of them."""

    def __init__(self, max_events: int = 10_000, *, missed: Missed | None = None) -> None:
        self.max_events = max_events
        self.missed = missed
        self.tag = secrets.token_hex(4)  # this process's: ids it did not give are not its own
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
        return self._event_id(number, stream_id)

    async def replay(self, session_id: str, last_event_id: str, send_callback: EventCallback) -> str | None:
        """Send `session_id`'s events after `last_event_id` on its stream and name that
        stream. An id that is malformed, or not held here for a request's stream: None.
        An id not held here for the session's GET stream (unknown, too old, another
        session's): that stream, after the notifications of `missed`."""
        parsed = _EVENT_ID.fullmatch(last_event_id)
        if parsed is None:
            return None
        standalone = parsed[1] == _GET_STREAM_ID
        found = self._events.get(int(parsed[3])) if parsed[2] == self.tag else None
        if found is None or found[0] != session_id:
            if standalone:
                await self._catch_up(session_id, send_callback)
                return GET_STREAM_KEY
            return None
        last, stream_id = int(parsed[3]), found[1]
        for number, (session, stream, message) in list(self._events.items()):
            if number > last and session == session_id and stream == stream_id and message is not None:
                await send_callback(EventMessage(message, self._event_id(number, stream)))
        return stream_id

    async def _catch_up(self, session_id: str, send_callback: EventCallback) -> None:
        """Tell a session that resumes its GET stream after events lost to it that what
        it follows may have changed; each notification is an event of that stream."""
        for message in self.missed(session_id) if self.missed is not None else ():
            event_id = self.store(session_id, GET_STREAM_KEY, message)
            await send_callback(EventMessage(message, event_id))

    def _event_id(self, number: int, stream_id: str) -> str:
        own = f"{self.tag}-{number}"
        return _GET_STREAM_ID + own if stream_id == GET_STREAM_KEY else own


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
        self._adopting: dict[str, asyncio.Future[bool]] = {}
        self._ending: set[asyncio.Task[None]] = set()

    def _admit_session(self, requestor: AuthorizationContext | None) -> StreamableHTTPServerTransport | None:
        transport = super()._admit_session(requestor)
        if transport is not None and transport.mcp_session_id is not None:
            own = self.events.for_session(transport.mcp_session_id)
            transport._event_store = own  # pyright: ignore[reportPrivateUsage]
        return transport

    def holds(self, session_id: str) -> bool:
        """Whether session `session_id` is open here (and not still being adopted)."""
        return session_id in self._server_instances and session_id not in self._adopting

    async def notify(self, session_id: str, method: str, params: dict[str, Any] | None = None) -> bool:
        """Send a notification on session `session_id`'s own stream (its GET stream), as
        the session's server would; False if the session is not open here.

        Written where the session's server writes (the transport's outgoing stream), so a
        session is told whatever request reached this replica, or none: a copy opened
        here for a GET stream alone has never run a handler.
        """
        transport = self._server_instances.get(session_id)
        outgoing = getattr(transport, "_write_stream", None) if transport is not None else None
        if transport is None or outgoing is None or transport.is_terminated:
            return False
        message = (
            JSONRPCNotification(jsonrpc="2.0", method=method, params=params)
            if params is not None
            else JSONRPCNotification(jsonrpc="2.0", method=method)
        )
        try:
            await outgoing.send(SessionMessage(message=message))
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            return False  # it ended meanwhile
        return True

    def end(self, session_id: str) -> None:
        """The session ended elsewhere: it is unknown here from now on, and its transport
        is terminated in the background."""
        transport = self._server_instances.pop(session_id, None)
        if transport is not None:
            task = asyncio.get_running_loop().create_task(self._discard_session(session_id, transport))
            self._ending.add(task)
            task.add_done_callback(self._ending.discard)

    async def adopt(
        self,
        session_id: str,
        requestor: AuthorizationContext | None,
        scope: Scope,
        initialize: dict[str, Any],
    ) -> bool:
        """Open this process's copy of a session another gateway replica opened
        (gateway/session_records.py): a transport under the same id, initialized by
        replaying the client's `initialize` and `notifications/initialized`. `scope`: the
        request that asks for the session. False if it could not be opened here (the
        session limit, or this gateway refuses the `initialize`).
        """
        pending = self._adopting.get(session_id)
        if pending is not None:  # another request for it is opening it
            return await asyncio.shield(pending)
        if session_id in self._server_instances:
            return True
        pending = asyncio.get_running_loop().create_future()
        self._adopting[session_id] = pending
        adopted = False
        try:
            transport = await self._register(session_id, requestor)
            adopted = transport is not None and await self._initialize(transport, scope, initialize)
            return adopted
        finally:
            pending.set_result(adopted)
            del self._adopting[session_id]

    async def _register(
        self, session_id: str, requestor: AuthorizationContext | None
    ) -> StreamableHTTPServerTransport | None:
        """`_admit_session`, under a given id."""
        async with self._session_creation_lock:
            if self.max_sessions is not None and len(self._server_instances) >= self.max_sessions:
                return None
            transport = StreamableHTTPServerTransport(
                mcp_session_id=session_id,
                is_json_response_enabled=self.json_response,
                event_store=self.events.for_session(session_id),
                security_settings=self.security_settings,
                retry_interval=self.retry_interval,
                idle_timeout=self.session_idle_timeout,
            )
            if requestor is not None:
                self._session_owners[session_id] = requestor
            self._server_instances[session_id] = transport
            return transport

    async def _initialize(
        self, transport: StreamableHTTPServerTransport, scope: Scope, initialize: dict[str, Any]
    ) -> bool:
        """Start the session's server and replay its opening; discard it if that fails."""
        session_id = transport.mcp_session_id
        assert session_id is not None
        try:
            answer = _Answer()
            opening = _replayed(scope, initialize)
            await self._serve_opening_request(transport, opening, _body(initialize), answer.send)
            if self._server_instances.get(session_id) is not transport:
                return False  # refused: the SDK discarded it
            initialized = {"jsonrpc": "2.0", "method": "notifications/initialized"}
            headers = [(b"mcp-session-id", session_id.encode("latin-1"))]
            version = answer.protocol_version()
            if version is not None:
                headers.append((b"mcp-protocol-version", version.encode("latin-1")))
            told = _Answer()
            notified = _replayed(scope, initialized, headers)
            await transport.handle_request(notified, _body(initialized), told.send)
            if told.status == 202:
                return True
        except BaseException:
            await self._discard_session(session_id, transport)
            raise
        await self._discard_session(session_id, transport)
        return False


def _replayed(
    scope: Scope, message: dict[str, Any], headers: list[tuple[bytes, bytes]] | None = None
) -> Scope:
    """A POST of `message` on behalf of the request `scope` (its caller, path and host)."""
    host = [(k, v) for k, v in scope["headers"] if k == b"host"]
    return {
        **scope,
        "method": "POST",
        "query_string": b"",
        "headers": [
            *host,
            (b"content-type", b"application/json"),
            (b"accept", b"application/json, text/event-stream"),
            *(headers or []),
        ],
    }


def _body(message: dict[str, Any]) -> Receive:
    """The request's body, then nothing: a replayed request's client never leaves (an SSE
    answer listens for that until it is done)."""
    body = orjson.dumps(message)
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            await anyio.sleep_forever()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


class _Answer:
    """What a replayed request was answered, kept instead of sent."""

    def __init__(self) -> None:
        self.status: int | None = None
        self.body: list[bytes] = []

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
        elif message["type"] == "http.response.body":
            self.body.append(message.get("body", b""))

    def protocol_version(self) -> str | None:
        """The version the replayed `initialize` negotiated (JSON or an SSE event)."""
        text = b"".join(self.body)
        for chunk in [text, *(line[5:] for line in text.splitlines() if line.startswith(b"data:"))]:
            try:
                result = orjson.loads(chunk).get("result")
            except (orjson.JSONDecodeError, AttributeError):
                continue
            version = result.get("protocolVersion") if isinstance(result, dict) else None
            if isinstance(version, str):
                return version
        return None
