"""The gateway's SSE event store (gateway/event_store.py): what a reconnecting client is
sent after its `Last-Event-ID`, and which stream it gets back."""

from __future__ import annotations

from mcp.server.streamable_http import GET_STREAM_KEY, EventMessage
from mcp_types import JSONRPCMessage, JSONRPCNotification

from gateway.event_store import MemoryEventStore


def _note(method: str) -> JSONRPCMessage:
    return JSONRPCNotification(jsonrpc="2.0", method=method)


async def _replay(store: MemoryEventStore, session: str, last_event_id: str) -> tuple[str | None, list[str]]:
    """(the stream named, the (event id, method) of each event sent)."""
    sent: list[str] = []

    async def send(event: EventMessage) -> None:
        sent.append(f"{event.event_id} {getattr(event.message, 'method', '?')}")

    return await store.for_session(session).replay_events_after(last_event_id, send), sent


async def test_a_stream_resumes_after_its_last_event_with_its_own_events_only() -> None:
    store = MemoryEventStore()
    mine, theirs = store.for_session("mine"), store.for_session("theirs")
    first = await mine.store_event(GET_STREAM_KEY, _note("notifications/tools/list_changed"))
    answer = await mine.store_event("7", _note("notifications/progress"))
    await theirs.store_event(GET_STREAM_KEY, _note("notifications/prompts/list_changed"))
    second = await mine.store_event(GET_STREAM_KEY, _note("notifications/resources/list_changed"))
    later = await mine.store_event("7", _note("notifications/message"))
    # GET stream events have ids of their own; a request's stream keeps plain numbers.
    assert first.startswith("g") and second.startswith("g") and answer.isdigit() and later.isdigit()
    assert await _replay(store, "mine", first) == (
        GET_STREAM_KEY,
        [f"{second} notifications/resources/list_changed"],
    )
    assert await _replay(store, "mine", answer) == ("7", [f"{later} notifications/message"])


async def test_an_unknown_get_stream_event_gives_the_stream_back_and_nothing_else() -> None:
    store = MemoryEventStore(max_events=2)
    mine = store.for_session("mine")
    old = await mine.store_event(GET_STREAM_KEY, _note("notifications/tools/list_changed"))
    request = await mine.store_event("3", _note("notifications/progress"))
    other = store.for_session("other")
    for _ in range(2):  # both fall out of the window
        await other.store_event(GET_STREAM_KEY, _note("notifications/prompts/list_changed"))
    theirs = await store.for_session("theirs").store_event(GET_STREAM_KEY, _note("notifications/message"))
    # Too old, or given by another replica: the GET stream goes on live, nothing replayed.
    assert await _replay(store, "mine", old) == (GET_STREAM_KEY, [])
    assert await _replay(store, "mine", "g999999") == (GET_STREAM_KEY, [])
    # Another session's id gives the caller its own stream, never that session's events.
    assert await _replay(store, "mine", theirs) == (GET_STREAM_KEY, [])
    # A request's stream cannot be given back: its answer is not coming.
    assert await _replay(store, "mine", request) == (None, [])
    for nonsense in ("", "g", "gx1", "-1", "1.5"):
        assert await _replay(store, "mine", nonsense) == (None, []), nonsense
