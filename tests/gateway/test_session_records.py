"""Handshake-era session records in the shared store (gateway/session_records.py), on
real Redis and PostgreSQL stores, and a session that outlives its gateway's restart.

Two `SessionRecords` on one store stand for two replicas."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path

import httpx
import orjson
import pytest

from bastion.stores import RedisStore, Store
from gateway.session_records import (
    CHANGED_CHANNEL,
    STORE_TIMEOUT,
    SessionChange,
    SessionRecord,
    SessionRecords,
)
from tests.bastion.stores.conftest import (  # noqa: F401 (fixtures)
    SHARED_BACKENDS,
    ns,
    postgres_store,
    redis_store,
)
from tests.gateway.conftest import counter_upstream, running_gateway
from tests.gateway.test_gateway import HANDSHAKE, HANDSHAKE_INITIALIZE

OWNER = ("api_key", "default", "alice", "k1")
INITIALIZE = json.loads(HANDSHAKE_INITIALIZE)
IDLE = 1.0  # seconds
REFRESH = 0.2


@pytest.fixture(params=SHARED_BACKENDS)
def store(request: pytest.FixtureRequest) -> Store:
    return request.getfixturevalue(f"{request.param}_store")


def _record(plain: bool = True) -> SessionRecord:
    return SessionRecord(view="", owner=OWNER, initialize=INITIALIZE, plain=plain)


def test_a_record_reads_back_as_written_and_an_unreadable_one_is_no_session() -> None:
    for record in (
        _record(),
        _record(plain=False),
        SessionRecord("sales", ("api_key", "t", "s", None), {}, True),
        SessionRecord("", OWNER, INITIALIZE, True, frozenset({"tools", "prompts"}), frozenset({"a://1"})),
    ):
        assert SessionRecord.decode(record.encode()) == record
    good = orjson.loads(_record().encode())
    # A record written before sessions shared what they set up has neither field.
    older = {k: v for k, v in good.items() if k not in ("listed", "subscriptions")}
    assert SessionRecord.decode(orjson.dumps(older)) == _record()
    for raw in (
        b"not json",
        b"[]",
        orjson.dumps({**good, "v": 99}),  # written by another version of the gateway
        orjson.dumps({**good, "owner": ["api_key", "t"]}),
        orjson.dumps({**good, "initialize": "initialize"}),
        orjson.dumps({k: v for k, v in good.items() if k != "plain"}),
    ):
        assert SessionRecord.decode(raw) is None, raw


async def test_a_session_saved_on_one_replica_is_found_by_another_until_it_idles_out(store: Store) -> None:
    ours, theirs = SessionRecords(store, IDLE, refresh=REFRESH), SessionRecords(store, IDLE, refresh=REFRESH)
    sid = uuid.uuid4().hex
    await ours.save(sid, _record())
    assert await theirs.load(sid) == _record()
    assert await theirs.load(uuid.uuid4().hex) is None
    await asyncio.sleep(IDLE + 0.5)
    assert await theirs.load(sid) is None


async def test_a_session_in_use_lives_on_and_idles_out_its_timeout_after_its_last_use(store: Store) -> None:
    ours, theirs = SessionRecords(store, IDLE, refresh=REFRESH), SessionRecords(store, IDLE, refresh=REFRESH)
    sid = uuid.uuid4().hex
    await ours.save(sid, _record())
    last_use = {sid: time.monotonic()}

    def used_since(since: float) -> list[tuple[str, float]]:
        return [(s, seen) for s, seen in last_use.items() if seen >= since]

    keeping = asyncio.create_task(ours.keep_alive(used_since))
    try:
        for _ in range(int(2.5 * IDLE / REFRESH)):  # in use for 2.5 idle timeouts
            last_use[sid] = time.monotonic()
            await asyncio.sleep(REFRESH)
        assert await theirs.load(sid) == _record()
        stopped = time.monotonic()
        await asyncio.sleep(IDLE / 2)
        assert await theirs.load(sid) == _record()  # idle for less than its timeout
        await asyncio.sleep(IDLE + 2 * REFRESH - (time.monotonic() - stopped))
        assert await theirs.load(sid) is None
        ours.drop(sid)  # a session this replica no longer holds is not refreshed
        last_use[sid] = time.monotonic()
        await asyncio.sleep(3 * REFRESH)
        assert await theirs.load(sid) is None
    finally:
        keeping.cancel()


async def test_ending_a_session_removes_its_record_and_tells_every_replica(store: Store) -> None:
    ours, theirs = SessionRecords(store, 60.0), SessionRecords(store, 60.0)
    told: dict[str, asyncio.Queue[str]] = {"ours": asyncio.Queue(), "theirs": asyncio.Queue()}
    subscribed = [asyncio.Event(), asyncio.Event()]
    following = [
        asyncio.create_task(records.follow_ends(told[name].put_nowait, on_subscribed=ready.set))
        for (name, records), ready in zip((("ours", ours), ("theirs", theirs)), subscribed, strict=True)
    ]
    try:
        for ready in subscribed:
            await asyncio.wait_for(ready.wait(), 10)
        sid = uuid.uuid4().hex
        await ours.save(sid, _record())
        await ours.end(sid)
        assert await asyncio.wait_for(told["theirs"].get(), 10) == sid
        assert await theirs.load(sid) is None
        # The replica that ended it is not told of it again: it is answering the DELETE.
        second = uuid.uuid4().hex
        await theirs.end(second)
        assert await asyncio.wait_for(told["ours"].get(), 10) == second
        assert told["ours"].empty() and told["theirs"].empty()
    finally:
        for task in following:
            task.cancel()


def test_a_session_continues_after_its_gateway_restarts(shared_home: Path, tmp_path: Path) -> None:
    """The embedded default: records in PostgreSQL, so a restarted gateway (`make up` after
    an upgrade, say) continues its clients' sessions instead of sending them a 404."""
    log = tmp_path / "counter.log"
    config = "builtin_servers = []\n" + counter_upstream(log)
    headers = {"content-type": "application/json", "accept": "application/json, text/event-stream"}
    listing = json.dumps({"jsonrpc": "2.0", "id": 2, "method": "tools/list"})
    for run in ("first", "second"):
        (tmp_path / run).mkdir()
    with running_gateway(shared_home, tmp_path / "first", config, log) as gateway:
        headers["authorization"] = f"Bearer {gateway.key('admin')}"
        opened = httpx.post(gateway.url + "/mcp", headers=headers, content=HANDSHAKE_INITIALIZE, timeout=30)
        assert opened.status_code == 200, opened.text
        headers |= {"mcp-session-id": opened.headers["mcp-session-id"], "mcp-protocol-version": HANDSHAKE}
    with running_gateway(shared_home, tmp_path / "second", config, log) as gateway:
        listed = httpx.post(gateway.url + "/mcp", headers=headers, content=listing, timeout=30)
        assert listed.status_code == 200, listed.text
        assert "counter_echo" in listed.text
        ended = httpx.delete(gateway.url + "/mcp", headers=headers, timeout=30)
        assert ended.status_code == 200, ended.text
        gone = httpx.post(gateway.url + "/mcp", headers=headers, content=listing, timeout=30)
        assert gone.status_code == 404, gone.text


async def test_a_failing_store_leaves_sessions_to_the_replica_that_holds_them(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    records = SessionRecords(store, IDLE)
    await store.close()  # every call now fails with StoreError
    sid = uuid.uuid4().hex
    await records.save(sid, _record())  # the session still opens here
    assert await records.load(sid) is None  # elsewhere it is unknown: 404, and the client opens another
    assert await records.change(sid, SessionChange("listed", "tools"))  # taken here, not shared
    await records.end(sid)
    said = " ".join(record.getMessage() for record in caplog.records)
    assert "is not saved for other replicas" in said
    assert "listed tools is not shared with the other replicas" in said
    assert "could not say whether session" in said
    assert "could not be ended on the other replicas" in said


async def test_a_stalled_store_holds_a_request_up_for_its_timeout_at_most(
    stalled_redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    store = RedisStore(stalled_redis_url)
    records = SessionRecords(store, IDLE)
    sid = uuid.uuid4().hex
    try:
        steps = (
            records.save(sid, _record()),
            records.load(sid),
            records.change(sid, SessionChange("subscribe", "a://1")),
            records.end(sid),
        )
        for step in steps:
            started = time.monotonic()
            await step
            assert time.monotonic() - started < STORE_TIMEOUT + 2
    finally:
        await store.close()
    said = [record.getMessage() for record in caplog.records if record.name == "gateway.session_records"]
    assert len(said) == 4, said
    assert all(f"no answer within {STORE_TIMEOUT:g} s" in line for line in said), said


def test_a_record_takes_on_what_its_session_sets_up() -> None:
    record = _record()
    listed = record.with_change(SessionChange("listed", "tools"))
    subscribed = listed.with_change(SessionChange("subscribe", "a://1"))
    assert subscribed.listed == {"tools"} and subscribed.subscriptions == {"a://1"}
    assert subscribed.with_change(SessionChange("listed", "tools")) == subscribed  # once is enough
    assert subscribed.with_change(SessionChange("unsubscribe", "a://1")).subscriptions == frozenset()
    assert subscribed.changes() == [SessionChange("listed", "tools"), SessionChange("subscribe", "a://1")]
    # A session that asked for log lines has its calls relayed on every copy opened later.
    assert subscribed.plain and not subscribed.with_change(SessionChange("log_level", "debug")).plain
    change = SessionChange("subscribe", "a://1")
    assert SessionChange.decode(change.encode("sid", "origin")) == ("sid", "origin", change)
    for raw in (b"{", b"[]", orjson.dumps({"sid": "s", "origin": "o", "what": "delete", "value": "x"})):
        assert SessionChange.decode(raw) is None, raw


async def test_what_a_session_sets_up_is_kept_in_its_record_and_told_to_the_other_replicas(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    ours, theirs, bystander = (SessionRecords(store, 60.0) for _ in range(3))
    sid = uuid.uuid4().hex
    await ours.save(sid, _record())
    theirs.hold(sid, _record())  # a copy of the session; `bystander` holds none
    told: dict[str, asyncio.Queue[tuple[str, SessionChange]]] = {
        name: asyncio.Queue() for name in ("ours", "theirs", "bystander")
    }
    subscribed = [asyncio.Event() for _ in range(3)]
    following = [
        asyncio.create_task(
            records.follow_changes(lambda s, c, q=told[name]: q.put_nowait((s, c)), on_subscribed=ready.set)
        )
        for (name, records), ready in zip(
            (("ours", ours), ("theirs", theirs), ("bystander", bystander)), subscribed, strict=True
        )
    ]
    try:
        for ready in subscribed:
            await asyncio.wait_for(ready.wait(), 10)
        listed, watched = SessionChange("listed", "tools"), SessionChange("subscribe", "a://1")
        assert await ours.change(sid, listed)
        assert await ours.change(sid, watched)
        assert not await ours.change(sid, listed)  # the record has it: nothing saved or sent
        assert not await ours.change(uuid.uuid4().hex, listed)  # not a session held here
        assert await asyncio.wait_for(told["theirs"].get(), 10) == (sid, listed)
        assert await asyncio.wait_for(told["theirs"].get(), 10) == (sid, watched)
        # A replica that opens a copy later finds both in the record.
        found = await bystander.load(sid)
        assert found is not None and found.changes() == [listed, watched]
        # The copy that was told took both on (its refreshes of the record keep them), and
        # its own change of the session reaches the replica that opened it.
        assert not await theirs.change(sid, listed) and not await theirs.change(sid, watched)
        dropped = SessionChange("unsubscribe", "a://1")
        assert await theirs.change(sid, dropped)
        assert await asyncio.wait_for(told["ours"].get(), 10) == (sid, dropped)
        assert (await bystander.load(sid) or _record()).subscriptions == frozenset()
        await store.publish(CHANGED_CHANNEL, b"not a change")  # ignored, and said so
        await asyncio.sleep(0.3)
        assert told["ours"].empty() and told["theirs"].empty() and told["bystander"].empty()
        assert "an unreadable session change was ignored" in caplog.text
    finally:
        for task in following:
            task.cancel()
