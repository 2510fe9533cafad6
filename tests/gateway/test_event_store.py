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
    # GET stream events have ids of their own (`g...`); a request's stream's do not.
    assert first.startswith("g") and second.startswith("g")
    assert not answer.startswith("g") and not later.startswith("g")
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
    # Too old, or given by another replica: the GET stream goes on live (told nothing first:
    # this store has no `missed`).
    assert await _replay(store, "mine", old) == (GET_STREAM_KEY, [])
    assert await _replay(store, "mine", "g999999") == (GET_STREAM_KEY, [])
    # Another session's id gives the caller its own stream, never that session's events.
    assert await _replay(store, "mine", theirs) == (GET_STREAM_KEY, [])
    # A request's stream cannot be given back: its answer is not coming.
    assert await _replay(store, "mine", request) == (None, [])
    for nonsense in ("", "g", "gx1", "-1", "1.5", "g-1", "gab-", "G1"):
        assert await _replay(store, "mine", nonsense) == (None, []), nonsense


async def test_an_id_of_another_process_is_never_taken_for_one_of_this_process() -> None:
    """Two replicas (or one gateway before and after a restart) count their events alike:
    the same session's event number 1 on both. Their ids differ, and neither resumes the
    other's."""
    one, two = MemoryEventStore(), MemoryEventStore()
    given = await one.for_session("s").store_event(GET_STREAM_KEY, _note("notifications/tools/list_changed"))
    await two.for_session("s").store_event(GET_STREAM_KEY, _note("notifications/prompts/list_changed"))
    await two.for_session("s").store_event(GET_STREAM_KEY, _note("notifications/resources/list_changed"))
    assert given.startswith("g") and given.endswith("-1")
    assert await _replay(two, "s", given) == (GET_STREAM_KEY, [])
    answer = await one.for_session("s").store_event("5", _note("notifications/progress"))
    await two.for_session("s").store_event("5", _note("notifications/progress"))
    assert await _replay(two, "s", answer) == (None, [])


async def test_a_get_stream_resumed_after_events_lost_to_it_is_first_told_what_may_have_changed() -> None:
    """What the session follows (here: its tool list and one resource) is told again, as
    events of its GET stream, whenever that stream resumes after events this process does
    not hold; never for a resume this process can serve, nor for a request's stream."""
    follows = {
        "mine": [
            _note("notifications/tools/list_changed"),
            JSONRPCNotification(
                jsonrpc="2.0", method="notifications/resources/updated", params={"uri": "file:///a"}
            ),
        ]
    }
    store = MemoryEventStore(missed=lambda session: follows.get(session, []))
    mine = store.for_session("mine")
    held = await mine.store_event(GET_STREAM_KEY, _note("notifications/prompts/list_changed"))
    assert await _replay(store, "mine", held) == (GET_STREAM_KEY, [])  # nothing lost: nothing told
    elsewhere = "g0badcafe-7"  # another replica's
    stream, sent = await _replay(store, "mine", elsewhere)
    assert stream == GET_STREAM_KEY
    assert [line.split(" ")[1] for line in sent] == [
        "notifications/tools/list_changed",
        "notifications/resources/updated",
    ]
    # They are events of the stream like any: a resume after the first gets the second.
    first_id = sent[0].split(" ")[0]
    assert await _replay(store, "mine", first_id) == (GET_STREAM_KEY, [sent[1]])
    # A session that follows nothing is told nothing; a request's stream is not resumed.
    assert await _replay(store, "quiet", elsewhere) == (GET_STREAM_KEY, [])
    assert await _replay(store, "mine", "0badcafe-7") == (None, [])
