"""The store contract, run against MemoryStore, RedisStore and PostgresStore."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import anyio
import pytest

from bastion.errors import StoreError
from bastion.stores import MAX_MESSAGE_BYTES, Job, Store

POLL = 0.02


async def eventually(check: Callable[[], Awaitable[bool]], within: float = 5.0) -> None:
    """Poll `check` until it holds, failing after `within` seconds.

    Expiry happens on the server's clock with no event to wait on, so this polls.
    """
    with anyio.fail_after(within):
        while not await check():
            await anyio.sleep(POLL)


async def wait_for_job(store: Store, queue: str, within: float = 5.0) -> Job:
    with anyio.fail_after(within):
        while (job := await store.dequeue(queue, lease=30)) is None:
            await anyio.sleep(POLL)
    return job


# -- key-value -------------------------------------------------------------------


async def test_a_value_is_read_back_until_it_is_deleted(store: Store, ns: str) -> None:
    assert await store.get(ns + "k") is None
    await store.set(ns + "k", b"v1")
    await store.set(ns + "k", b"v2")
    assert await store.get(ns + "k") == b"v2"
    assert await store.delete(ns + "k") is True
    assert await store.delete(ns + "k") is False
    assert await store.get(ns + "k") is None


async def test_a_value_with_a_ttl_disappears_once_it_elapsed(store: Store, ns: str) -> None:
    await store.set(ns + "short", b"v", ttl=0.2)
    await store.set(ns + "long", b"v", ttl=60)
    assert await store.get(ns + "short") == b"v"

    async def gone() -> bool:
        return await store.get(ns + "short") is None

    await eventually(gone)
    assert await store.get(ns + "long") == b"v"
    assert await store.delete(ns + "short") is False


async def test_set_if_absent_lets_exactly_one_of_many_concurrent_callers_win(store: Store, ns: str) -> None:
    wins: list[int] = []

    async def contend(i: int) -> None:
        if await store.set_if_absent(ns + "lock", str(i).encode(), ttl=30):
            wins.append(i)

    async with anyio.create_task_group() as tg:
        for i in range(50):
            tg.start_soon(contend, i)
    assert len(wins) == 1
    assert await store.get(ns + "lock") == str(wins[0]).encode()


async def test_set_if_absent_succeeds_again_once_the_previous_value_expired(store: Store, ns: str) -> None:
    assert await store.set_if_absent(ns + "lock", b"a", ttl=0.2)
    assert not await store.set_if_absent(ns + "lock", b"b")

    async def taken() -> bool:
        return await store.set_if_absent(ns + "lock", b"c")

    await eventually(taken)
    assert await store.get(ns + "lock") == b"c"


# -- counters --------------------------------------------------------------------


async def test_a_hundred_concurrent_increments_sum_exactly(store: Store, ns: str) -> None:
    async with anyio.create_task_group() as tg:
        for _ in range(100):
            tg.start_soon(store.incr, ns + "hits")
    assert await store.get_counter(ns + "hits") == 100
    assert await store.incr(ns + "hits", -40) == 60


async def test_a_counter_ttl_starts_at_creation_and_is_not_extended(store: Store, ns: str) -> None:
    assert await store.get_counter(ns + "c") == 0
    assert await store.incr(ns + "c", 5, ttl=0.3) == 5
    assert await store.incr(ns + "c", 1, ttl=60) == 6

    async def reset() -> bool:
        return await store.get_counter(ns + "c") == 0

    await eventually(reset)
    assert await store.incr(ns + "c") == 1


async def test_values_and_counters_are_separate_namespaces(store: Store, ns: str) -> None:
    await store.set(ns + "x", b"not a number")
    assert await store.incr(ns + "x") == 1
    assert await store.get(ns + "x") == b"not a number"


# -- token bucket ----------------------------------------------------------------


async def test_a_bucket_admits_its_capacity_then_refuses_with_a_sensible_retry_after(
    store: Store, ns: str
) -> None:
    results = [await store.take(ns + "b", rate=0.01, capacity=3) for _ in range(4)]
    assert [r.allowed for r in results] == [True, True, True, False]
    assert results[2].remaining == pytest.approx(0, abs=0.01)
    assert results[2].retry_after == 0
    # One token at 0.01/s: about 100 s, less whatever trickled in meanwhile.
    assert 90 < results[3].retry_after <= 100


async def test_a_bucket_refills_at_its_rate(store: Store, ns: str) -> None:
    # A token every half second: the second take comes well within it even on a busy host
    # (at 20/s a take that waited 50 ms for the database found the token back).
    assert (await store.take(ns + "b", rate=2, capacity=1)).allowed
    refused = await store.take(ns + "b", rate=2, capacity=1)
    assert not refused.allowed
    assert 0 < refused.retry_after <= 0.5 + 1e-9

    async def admitted() -> bool:
        return (await store.take(ns + "b", rate=2, capacity=1)).allowed

    await eventually(admitted, within=3)


async def test_concurrent_takes_never_admit_more_than_the_capacity(store: Store, ns: str) -> None:
    admitted: list[bool] = []

    async def take() -> None:
        admitted.append((await store.take(ns + "b", rate=0.001, capacity=10, cost=1)).allowed)

    async with anyio.create_task_group() as tg:
        for _ in range(40):
            tg.start_soon(take)
    assert admitted.count(True) == 10


# -- pub/sub ---------------------------------------------------------------------


async def test_a_subscriber_receives_every_message_published_after_subscribing(store: Store, ns: str) -> None:
    await store.publish(ns + "ch", b"before")
    async with store.subscribe(ns + "ch") as sub:
        for i in range(5):
            await store.publish(ns + "ch", f"m{i}".encode())
        with anyio.fail_after(5):
            received = [await anext(sub) for _ in range(5)]
    assert received == [b"m0", b"m1", b"m2", b"m3", b"m4"]


async def test_channels_are_isolated_and_every_subscriber_gets_a_copy(store: Store, ns: str) -> None:
    async with (
        store.subscribe(ns + "a") as a1,
        store.subscribe(ns + "a") as a2,
        store.subscribe(ns + "b") as b,
    ):
        await store.publish(ns + "b", b"for b")
        await store.publish(ns + "a", b"for a")
        with anyio.fail_after(5):
            assert await anext(a1) == b"for a"
            assert await anext(a2) == b"for a"
            assert await anext(b) == b"for b"


async def test_a_large_binary_message_arrives_whole(store: Store, ns: str) -> None:
    message = bytes(range(256)) * 400  # 100 KiB, NULs included: beyond NOTIFY's payload limit
    async with store.subscribe(ns + "big") as sub:
        await store.publish(ns + "big", message)
        await store.publish(ns + "big", b"small")
        with anyio.fail_after(5):
            assert await anext(sub) == message
            assert await anext(sub) == b"small"


async def test_a_subscription_ends_when_its_store_closes(store: Store, ns: str) -> None:
    async with store.subscribe(ns + "ch") as sub:
        await store.close()
        with anyio.fail_after(5):
            assert [m async for m in sub] == []


# -- queue -----------------------------------------------------------------------


async def test_jobs_are_dequeued_in_enqueue_order(store: Store, ns: str) -> None:
    ids = [await store.enqueue(ns + "q", f"j{i}".encode()) for i in range(5)]
    assert len(set(ids)) == 5
    assert await store.queue_length(ns + "q") == 5
    jobs = [await store.dequeue(ns + "q", lease=30) for _ in range(5)]
    assert [j.payload for j in jobs if j] == [b"j0", b"j1", b"j2", b"j3", b"j4"]
    assert [j.id for j in jobs if j] == ids
    assert all(j is not None and j.attempts == 1 and j.queue == ns + "q" for j in jobs)
    assert await store.dequeue(ns + "q", lease=30) is None


async def test_two_concurrent_consumers_never_get_the_same_job(store: Store, ns: str) -> None:
    for i in range(40):
        await store.enqueue(ns + "q", str(i).encode())
    seen: list[str] = []

    async def consume() -> None:
        for _ in range(100):
            job = await store.dequeue(ns + "q", lease=30)
            if job is None:
                return
            seen.append(job.id)
            await store.ack(job)

    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            tg.start_soon(consume)
            tg.start_soon(consume)
    assert len(seen) == 40
    assert len(set(seen)) == 40
    assert await store.queue_length(ns + "q") == 0


async def test_an_expired_lease_redelivers_the_job_with_one_more_attempt(store: Store, ns: str) -> None:
    job_id = await store.enqueue(ns + "q", b"work")
    first = await store.dequeue(ns + "q", lease=0.2)
    assert first is not None and first.attempts == 1
    assert await store.dequeue(ns + "q", lease=30) is None
    again = await wait_for_job(store, ns + "q")
    assert (again.id, again.payload, again.attempts) == (job_id, b"work", 2)


async def test_ack_removes_the_job_for_good(store: Store, ns: str) -> None:
    await store.enqueue(ns + "q", b"work")
    job = await store.dequeue(ns + "q", lease=0.2)
    assert job is not None
    await store.ack(job)
    await store.ack(job)  # idempotent
    assert await store.queue_length(ns + "q") == 0
    await anyio.sleep(0.3)  # past the lease: nothing may come back
    assert await store.dequeue(ns + "q", lease=30) is None


async def test_nack_releases_the_job_after_its_delay(store: Store, ns: str) -> None:
    await store.enqueue(ns + "q", b"work")
    job = await store.dequeue(ns + "q", lease=30)
    assert job is not None
    await store.nack(job, delay=0.3)
    assert await store.dequeue(ns + "q", lease=30) is None
    again = await wait_for_job(store, ns + "q")
    assert (again.id, again.attempts) == (job.id, 2)
    await store.nack(again)
    third = await store.dequeue(ns + "q", lease=30)
    assert third is not None and third.attempts == 3


async def test_a_stale_nack_after_redelivery_is_ignored(store: Store, ns: str) -> None:
    await store.enqueue(ns + "q", b"work")
    stale = await store.dequeue(ns + "q", lease=0.1)
    assert stale is not None
    current = await wait_for_job(store, ns + "q")
    await store.nack(stale)
    assert await store.dequeue(ns + "q", lease=30) is None
    await store.ack(current)


async def test_a_delayed_job_stays_invisible_until_its_delay_passed(store: Store, ns: str) -> None:
    await store.enqueue(ns + "q", b"later", delay=0.3)
    await store.enqueue(ns + "q", b"now")
    first = await store.dequeue(ns + "q", lease=30)
    assert first is not None and first.payload == b"now"
    assert await store.dequeue(ns + "q", lease=30) is None
    assert (await wait_for_job(store, ns + "q")).payload == b"later"
    assert await store.queue_length(ns + "q") == 2


async def test_queues_are_isolated(store: Store, ns: str) -> None:
    await store.enqueue(ns + "a", b"a")
    assert await store.dequeue(ns + "b", lease=30) is None
    assert await store.queue_length(ns + "b") == 0


# -- bad input and lifecycle ----------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda s: s.get(""), "key must be a non-empty string"),
        (lambda s: s.set("k", b"v", ttl=0), "ttl must be a finite number of seconds > 0"),
        (lambda s: s.set("k", b"v", ttl=-1), "ttl must be"),
        (lambda s: s.set_if_absent("k", b"v", ttl=float("nan")), "ttl must be"),
        (lambda s: s.incr("k", ttl=0), "ttl must be"),
        (lambda s: s.take("k", rate=0, capacity=1), "rate must be a finite number > 0"),
        (lambda s: s.take("k", rate=1, capacity=-1), "capacity must be"),
        (lambda s: s.take("k", rate=1, capacity=1, cost=2), "cost 2 exceeds capacity 1"),
        (lambda s: s.publish("", b"m"), "channel must be a non-empty string"),
        (lambda s: s.enqueue("q", b"p", delay=-1), "delay must be a finite number of seconds >= 0"),
        (lambda s: s.dequeue("q", lease=0), "lease must be"),
        (lambda s: s.get("k" * 2000), "longer than 1024 bytes"),
    ],
)
async def test_bad_arguments_are_refused_with_a_message_naming_them(
    store: Store, call: Callable[[Store], Awaitable[object]], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        await call(store)


async def test_a_message_over_the_limit_is_refused_naming_the_limit(store: Store, ns: str) -> None:
    with pytest.raises(ValueError, match=f"exceeds the {MAX_MESSAGE_BYTES}-byte pub/sub limit"):
        await store.publish(ns + "ch", b"x" * (MAX_MESSAGE_BYTES + 1))


async def test_a_value_that_is_not_bytes_is_refused(store: Store, ns: str) -> None:
    with pytest.raises(TypeError, match="value must be bytes, got str"):
        await store.set(ns + "k", "text")  # type: ignore[arg-type]


async def test_a_closed_store_refuses_calls_with_a_store_error(store: Store, ns: str) -> None:
    await store.ping()
    await store.close()
    await store.close()
    with pytest.raises(StoreError, match="is closed"):
        await store.get(ns + "k")
