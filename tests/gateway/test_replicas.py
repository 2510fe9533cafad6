"""Two gateway replicas, as a scaled-out deployment runs them (docs/gateway.md, "Running
several gateways"): each with its own home and stdio upstream, sharing one PostgreSQL
(`DATABASE_URL`), one Redis (`REDIS_URL`) and one instance key.

What the replicas share holds across them: a key created once works on both, a revocation
reaches both at once, rate limits count the calls made on either, and both audit into one
table. A 2025-11-25 session opened on one replica continues on the other (for its owner
only), ending it on one ends it on both, and its stream hears of the lists it was shown
and the resources it subscribed to on either.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import shutil
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import cast

import httpx
import psycopg
import pytest

from bastion.db.embedded import EmbeddedPostgres
from bastion.home import Home
from tests.gateway.conftest import GatewayProcess, counter_upstream, running_gateway
from tests.gateway.test_gateway import HANDSHAKE, HANDSHAKE_INITIALIZE, _modern

pytestmark = pytest.mark.redis

# The per-principal bucket every test's own key draws from (each request takes a token):
# BURST requests, then 429 for minutes. Key lookups are cached far longer than any test
# runs, so a revoked key refused within seconds was dropped by the revocation message, not
# by the cache expiring.
BURST = 40
CONFIG = f"""builtin_servers = []
rate_limit_per_second = 0.01
rate_limit_burst = {BURST}
rate_limit_tool_per_second = 0
api_key_cache_ttl = 600
"""


@pytest.fixture(scope="module")
def replicas(
    shared_home: Path, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[GatewayProcess, GatewayProcess]]:
    work = tmp_path_factory.mktemp("replicas")
    env = {"DATABASE_URL": EmbeddedPostgres(Home(shared_home)).dsn(), "REDIS_URL": redis_url}
    homes = [work / "a" / "home", work / "b" / "home"]
    Home(homes[0]).instance_key(create=True)
    Home(homes[1]).ensure()
    shutil.copy2(Home(homes[0]).key_file, Home(homes[1]).key_file)  # one instance key for both
    logs = [work / "a" / "counter.log", work / "b" / "counter.log"]
    with (
        running_gateway(
            homes[0], work / "a", CONFIG + counter_upstream(logs[0]), logs[0], extra_env=env
        ) as one,
        running_gateway(
            homes[1], work / "b", CONFIG + counter_upstream(logs[1]), logs[1], extra_env=env
        ) as two,
    ):
        yield one, two


def _key(replica: GatewayProcess) -> tuple[str, str]:
    """A new admin key of its own (so its own rate bucket), made with the CLI: (id, key)."""
    record = replica.new_key_record("admin", f"replica-{uuid.uuid4().hex[:10]}")
    return record["id"], record["key"]


def _call(replica: GatewayProcess, key: str, request_id: str = "") -> httpx.Response:
    """A 2026-07-28 `tools/call` of the counting upstream's echo."""
    params = {"name": "counter_echo", "arguments": {"text": "hi"}}
    extra = {"x-request-id": request_id} if request_id else None
    return _modern(replica.url + "/mcp", "tools/call", params, key, name="counter_echo", headers=extra)


def test_a_key_created_once_calls_through_every_replica_and_both_audit_into_one_table(
    replicas: tuple[GatewayProcess, GatewayProcess],
) -> None:
    one, two = replicas
    _, key = _key(one)
    ids = {
        f"replica-{name}-{uuid.uuid4().hex}": replica for name, replica in zip("ab", replicas, strict=True)
    }
    for request_id, replica in ids.items():
        response = _call(replica, key, request_id)
        assert response.status_code == 200, response.text
        assert "result" in response.json(), response.text
        assert response.json()["result"]["content"][0]["text"] == "hi"
    assert one.counted() and two.counted()  # each replica ran the call on its own upstream
    with psycopg.connect(one.env["DATABASE_URL"]) as conn:
        rows = conn.execute(
            "SELECT request_id, outcome FROM gateway.audit_events WHERE request_id = ANY(%s)",
            (list(ids),),
        ).fetchall()
    assert sorted(rows) == sorted((request_id, "ok") for request_id in ids)


def test_a_revocation_reaches_every_replica_at_once(replicas: tuple[GatewayProcess, GatewayProcess]) -> None:
    one, two = replicas
    key_id, key = _key(one)
    for replica in replicas:  # both have the key cached now
        assert _call(replica, key).status_code == 200
    two.revoke_key(key_id)
    for replica in replicas:
        statuses = []
        for _ in range(100):  # bounded: 10 s, against a cache entry good for 600 s
            response = _call(replica, key)
            statuses.append(response.status_code)
            if response.status_code == 401:
                break
            time.sleep(0.1)
        assert statuses[-1] == 401, statuses
        assert "revoked" in response.json()["error_description"]


def test_rate_limits_count_the_calls_made_on_either_replica(
    replicas: tuple[GatewayProcess, GatewayProcess],
) -> None:
    one = replicas[0]
    _, key = _key(one)
    # The key's burst, taken on alternating replicas: in-process buckets would let each
    # replica admit a whole burst.
    assert [_call(replicas[i % 2], key).status_code for i in range(BURST)] == [200] * BURST
    for replica in replicas:
        refused = _call(replica, key)
        assert refused.status_code == 429, refused.text
        assert int(refused.headers["retry-after"]) >= 1
        assert "rate limit" in refused.json()["error"]["message"]


def _session_headers(key: str, sid: str | None = None) -> dict[str, str]:
    headers = {
        "content-type": "application/json",
        "accept": "application/json, text/event-stream",
        "authorization": f"Bearer {key}",
    }
    if sid is not None:
        headers |= {"mcp-session-id": sid, "mcp-protocol-version": HANDSHAKE}
    return headers


def _open_session(replica: GatewayProcess, key: str) -> str:
    opened = httpx.post(
        replica.url + "/mcp", headers=_session_headers(key), content=HANDSHAKE_INITIALIZE, timeout=30
    )
    assert opened.status_code == 200, opened.text
    return opened.headers["mcp-session-id"]


_IDS = itertools.count(2)  # a session's requests each need an id of their own


def _on_session(
    replica: GatewayProcess, key: str, sid: str, method: str, params: Mapping[str, object]
) -> httpx.Response:
    body = json.dumps({"jsonrpc": "2.0", "id": next(_IDS), "method": method, "params": params})
    return httpx.post(replica.url + "/mcp", headers=_session_headers(key, sid), content=body, timeout=30)


def _answer(response: httpx.Response) -> dict[str, object]:
    """The JSON-RPC answer of a session request (JSON, or the SSE event that carries it)."""
    assert response.status_code == 200, response.text
    if response.headers["content-type"].startswith("application/json"):
        return cast(dict[str, object], response.json())
    data = [line[5:] for line in response.text.splitlines() if line.startswith("data:") and line[5:].strip()]
    return cast(dict[str, object], json.loads(data[-1]))


ECHO = {"name": "counter_echo", "arguments": {"text": "hi"}}


@pytest.fixture
def opened(replicas: tuple[GatewayProcess, GatewayProcess]) -> tuple[str, str]:
    """A session opened on the first replica with a key of its own: (key, session id)."""
    _, key = _key(replicas[0])
    return key, _open_session(replicas[0], key)


def test_a_handshake_session_opened_on_one_replica_continues_on_the_other(
    replicas: tuple[GatewayProcess, GatewayProcess], opened: tuple[str, str]
) -> None:
    one, two = replicas
    key, sid = opened
    listed = _answer(_on_session(two, key, sid, "tools/list", {}))
    assert "counter_echo" in json.dumps(listed["result"])
    before = len(two.counted())
    called = _answer(_on_session(two, key, sid, "tools/call", ECHO))
    assert called["result"]["content"][0]["text"] == "hi", called  # type: ignore[index]
    assert len(two.counted()) == before + 1  # run by the replica the request reached
    back = _answer(_on_session(one, key, sid, "tools/call", ECHO))  # and still on the first
    assert back["result"]["content"][0]["text"] == "hi", back  # type: ignore[index]
    # The session's stream of server messages opens on either replica too.
    stream_headers = {**_session_headers(key, sid), "accept": "text/event-stream"}
    with httpx.stream("GET", two.url + "/mcp", headers=stream_headers, timeout=30) as stream:
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")


def test_only_its_owner_continues_a_session_on_another_replica(
    replicas: tuple[GatewayProcess, GatewayProcess], opened: tuple[str, str]
) -> None:
    one, two = replicas
    key, sid = opened
    _, other = _key(one)
    stolen = _on_session(two, other, sid, "tools/list", {})
    assert stolen.status_code == 404, stolen.text  # as if it did not exist
    assert _on_session(two, key, sid, "tools/list", {}).status_code == 200  # not spoiled for its owner
    made_up = _on_session(two, key, uuid.uuid4().hex, "tools/list", {})
    assert made_up.status_code == 404, made_up.text


def test_a_session_ended_on_one_replica_ends_on_every_replica(
    replicas: tuple[GatewayProcess, GatewayProcess], opened: tuple[str, str]
) -> None:
    one, two = replicas
    key, sid = opened
    assert _on_session(two, key, sid, "tools/list", {}).status_code == 200  # two holds a copy now
    ended = httpx.delete(one.url + "/mcp", headers=_session_headers(key, sid), timeout=30)
    assert ended.status_code == 200, ended.text
    assert _on_session(one, key, sid, "tools/list", {}).status_code == 404
    statuses = []
    for _ in range(50):  # bounded: 5 s for the message to reach the other replica
        statuses.append(_on_session(two, key, sid, "tools/list", {}).status_code)
        if statuses[-1] == 404:
            break
        time.sleep(0.1)
    assert statuses[-1] == 404, statuses
    # A new session for the same client works on either.
    assert _on_session(two, key, _open_session(two, key), "tools/list", {}).status_code == 200


def test_requests_that_reach_another_replica_at_once_all_continue_the_session(
    replicas: tuple[GatewayProcess, GatewayProcess], opened: tuple[str, str]
) -> None:
    _, two = replicas
    key, sid = opened
    with ThreadPoolExecutor(max_workers=6) as pool:
        answers = list(pool.map(lambda _: _on_session(two, key, sid, "tools/list", {}), range(6)))
    for answer in answers:
        assert "counter_echo" in json.dumps(_answer(answer)["result"]), answer.text


Heard = asyncio.Queue[dict[str, object]]  # what a session's stream carried


@asynccontextmanager
async def _stream(
    replica: GatewayProcess,
    key: str,
    sid: str,
    last_event_id: str | None = None,
    event_ids: list[str] | None = None,
) -> AsyncIterator[Heard]:
    """The session's GET stream on `replica` (resumed after `last_event_id`): the messages
    it carries, as they come, and their event ids in `event_ids`."""
    heard: Heard = asyncio.Queue()
    opened = asyncio.Event()
    headers = {**_session_headers(key, sid), "accept": "text/event-stream"}
    del headers["content-type"]
    if last_event_id is not None:
        headers["last-event-id"] = last_event_id

    async def read() -> None:
        async with (
            httpx.AsyncClient(timeout=httpx.Timeout(30, read=None)) as client,
            client.stream("GET", replica.url + "/mcp", headers=headers) as response,
        ):
            assert response.status_code == 200, await response.aread()
            opened.set()
            async for line in response.aiter_lines():
                if line.startswith("data:") and line[5:].strip():
                    heard.put_nowait(json.loads(line[5:]))
                elif line.startswith("id:") and event_ids is not None:
                    event_ids.append(line[3:].strip())

    reader = asyncio.create_task(read())
    try:
        await asyncio.wait_for(opened.wait(), 30)
        yield heard
    finally:
        reader.cancel()


async def _hears(heard: Heard, method: str, within: float) -> dict[str, object] | None:
    """The next message of `method` on a stream within `within` seconds, or None."""
    deadline = time.monotonic() + within
    while (left := deadline - time.monotonic()) > 0:
        try:
            message = await asyncio.wait_for(heard.get(), left)
        except TimeoutError:
            return None
        if message.get("method") == method:
            return message
    return None


def _toggle(replica: GatewayProcess) -> None:
    """Add (or remove) the counting upstream's `extra` tool on `replica`: its list changes.
    Through a 2025-11-25 session (the upstream tells the era that asked), with a key of its
    own (each key's bucket holds three calls)."""
    _, key = _key(replica)
    call = {"name": "counter_toggle_extra", "arguments": {}}
    toggled = _answer(_on_session(replica, key, _open_session(replica, key), "tools/call", call))
    assert "result" in toggled, toggled


async def _told_of_a_list_change(replica: GatewayProcess, heard: Heard) -> bool:
    """Change `replica`'s tool list until its session stream says so: bounded, 5 rounds
    (what the other replica shared may reach this one a moment after its answer)."""
    for _ in range(5):
        await asyncio.to_thread(_toggle, replica)
        if await _hears(heard, "notifications/tools/list_changed", 2.0) is not None:
            return True
    return False


@pytest.mark.parametrize("stream_first", [True, False], ids=["listed-elsewhere", "stream-opened-later"])
async def test_a_session_hears_of_list_changes_on_its_stream_wherever_it_listed(
    replicas: tuple[GatewayProcess, GatewayProcess], opened: tuple[str, str], stream_first: bool
) -> None:
    """The client lists its tools on one replica and reads its stream on the other: opened
    before the listing (that replica is told of it) or after (its new copy reads it from
    the session's record)."""
    one, two = replicas
    key, sid = opened
    lister, streamer = (two, one) if stream_first else (one, two)

    async def list_tools() -> None:
        listed = await asyncio.to_thread(_on_session, lister, key, sid, "tools/list", {})
        assert "counter_echo" in json.dumps(_answer(listed)["result"])

    if not stream_first:
        await list_tools()
    async with _stream(streamer, key, sid) as heard:
        if stream_first:
            await list_tools()
        assert await _told_of_a_list_change(streamer, heard)


def _logged_again(replica: GatewayProcess, line: str, before: int) -> bool:
    """Whether `replica`'s counting upstream logs `line` more than `before` times (10 s)."""
    for _ in range(100):
        if replica.counted().count(line) > before:
            return True
        time.sleep(0.1)
    return False


async def test_a_session_hears_of_updates_to_a_resource_it_subscribed_to_on_another_replica(
    replicas: tuple[GatewayProcess, GatewayProcess], opened: tuple[str, str]
) -> None:
    one, two = replicas
    key, sid = opened
    uri = "counter://status"
    touch = {"name": "counter_touch", "arguments": {"uri": uri}}
    async with _stream(one, key, sid) as heard:
        subscribed = one.counted().count(f"subscribe {uri}")
        done = await asyncio.to_thread(_on_session, two, key, sid, "resources/subscribe", {"uri": uri})
        assert "error" not in _answer(done), done.text
        # The replica carrying the stream subscribed its own upstream too.
        assert await asyncio.to_thread(_logged_again, one, f"subscribe {uri}", subscribed)
        touched = await asyncio.to_thread(_on_session, one, key, sid, "tools/call", touch)
        assert _answer(touched)["result"]["structuredContent"]["result"] == 1, touched.text  # type: ignore[index]
        update = await _hears(heard, "notifications/resources/updated", 10)
        assert update is not None and update["params"] == {"uri": uri}, update
        # Unsubscribing on the other replica reaches this one too.
        unsubscribed = one.counted().count(f"unsubscribe {uri}")
        done = await asyncio.to_thread(_on_session, two, key, sid, "resources/unsubscribe", {"uri": uri})
        assert "error" not in _answer(done), done.text
        assert await asyncio.to_thread(_logged_again, one, f"unsubscribe {uri}", unsubscribed)


def _messages(response: httpx.Response, method: str) -> list[dict[str, object]]:
    """The messages of `method` an SSE answer carried before its result."""
    assert response.status_code == 200, response.text
    data = [line[5:] for line in response.text.splitlines() if line.startswith("data:") and line[5:].strip()]
    return [message for message in map(json.loads, data) if message.get("method") == method]


def test_a_log_level_set_on_one_replica_brings_the_log_lines_of_calls_on_the_other(
    replicas: tuple[GatewayProcess, GatewayProcess], opened: tuple[str, str]
) -> None:
    one, two = replicas
    key, sid = opened
    asked = _answer(_on_session(two, key, sid, "logging/setLevel", {"level": "info"}))
    assert "error" not in asked, asked
    chatty = {"name": "counter_chatty", "arguments": {}}
    lines: list[dict[str, object]] = []
    for _ in range(3):  # bounded (the key's bucket holds three calls): the news may lag the answer
        lines = _messages(_on_session(one, key, sid, "tools/call", chatty), "notifications/message")
        if lines:
            break
        time.sleep(0.5)
    assert lines, "no log line relayed on the replica that did not see logging/setLevel"
    assert lines[0]["params"]["data"] == "chatty was called", lines  # type: ignore[index]


async def test_a_stream_resumed_on_another_replica_is_told_what_may_have_changed_then_goes_on_live(
    replicas: tuple[GatewayProcess, GatewayProcess], opened: tuple[str, str]
) -> None:
    """A client whose GET stream broke reconnects with `Last-Event-ID`, and the balancer
    sends it to the other replica, which never saw that event: it is first told that what
    it follows may have changed (what it missed stayed on the first replica), then gets its
    stream back live, rather than one that ends at once (on which it would reconnect
    forever)."""
    one, two = replicas
    key, sid = opened
    uri = "counter://status"
    listed = await asyncio.to_thread(_on_session, one, key, sid, "tools/list", {})
    assert "counter_echo" in json.dumps(_answer(listed)["result"])
    subscribed = await asyncio.to_thread(_on_session, one, key, sid, "resources/subscribe", {"uri": uri})
    assert "error" not in _answer(subscribed), subscribed.text
    ids: list[str] = []
    async with _stream(one, key, sid, event_ids=ids) as heard:
        assert await _told_of_a_list_change(one, heard)
    assert ids, "the first replica's stream carried no event id"
    resumed: list[str] = []
    async with _stream(two, key, sid, last_event_id=ids[-1], event_ids=resumed) as heard:
        # Without a change on this replica: its tool list and its resource, to take again.
        assert await _hears(heard, "notifications/tools/list_changed", 10) is not None
        update = await _hears(heard, "notifications/resources/updated", 10)
        assert update is not None and update["params"] == {"uri": uri}, update
        assert resumed and not set(resumed) & set(ids)  # events of this replica's own
        assert await _told_of_a_list_change(two, heard)
