"""CallSlots: at most `limit` young calls per upstream, the rest first come first served."""

from __future__ import annotations

import asyncio

import pytest

from gateway.upstreams.call_slots import CallSlots


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_calls_over_the_limit_wait_and_start_in_arrival_order() -> None:
    slots = CallSlots(2, slow_after=None)
    first, second = await slots.acquire(), await slots.acquire()
    assert slots.counted == 2 and not slots.free()
    started: list[str] = []

    async def call(name: str) -> None:
        ticket = await slots.acquire()
        started.append(name)
        slots.release(ticket)

    waiters = [asyncio.create_task(call(name)) for name in ("c", "d", "e")]
    await _settle()
    assert started == [] and slots.waiting == 3
    slots.release(first)
    await _settle()
    # Each finished waiter hands its slot on, so all three ran, in the order they came.
    assert started == ["c", "d", "e"]
    await asyncio.gather(*waiters)
    slots.release(second)
    assert slots.counted == 0 and slots.free()


async def test_a_newcomer_never_overtakes_a_waiter() -> None:
    slots = CallSlots(1, slow_after=None)
    held = await slots.acquire()
    queued = asyncio.create_task(slots.acquire())
    await _settle()
    slots.release(held)
    # The slot was handed to the waiter before anyone else could ask.
    assert not slots.free()
    slots.release(await queued)
    assert slots.free()


async def test_a_waiter_that_gives_up_passes_its_turn_on() -> None:
    slots = CallSlots(1, slow_after=None)
    held = await slots.acquire()
    gives_up = asyncio.create_task(slots.acquire())
    stays = asyncio.create_task(slots.acquire())
    await _settle()
    gives_up.cancel()
    await _settle()
    slots.release(held)
    ticket = await asyncio.wait_for(stays, 5)
    assert gives_up.cancelled() and slots.counted == 1
    slots.release(ticket)
    assert slots.counted == 0


async def test_a_waiter_cancelled_as_it_is_admitted_hands_the_slot_back() -> None:
    slots = CallSlots(1, slow_after=None)
    held = await slots.acquire()
    admitted = asyncio.create_task(slots.acquire())
    after = asyncio.create_task(slots.acquire())
    await _settle()
    slots.release(held)  # `admitted` now owns the slot, but has not run yet
    admitted.cancel()
    ticket = await asyncio.wait_for(after, 5)
    assert admitted.cancelled() and slots.counted == 1
    slots.release(ticket)


async def test_a_call_that_turns_slow_stops_counting_and_lets_the_next_one_start() -> None:
    turned: list[int] = []
    slots = CallSlots(1, slow_after=0.05, on_slow=turned.append)
    slow = await slots.acquire()
    loop = asyncio.get_running_loop()
    asked = loop.time()
    fast = await asyncio.wait_for(slots.acquire(), 5)
    assert loop.time() - asked >= 0.04, "the waiter started before the call turned slow"
    assert turned == [1] and slots.counted == 1
    slots.release(slow)  # the slow call's end frees nothing: it no longer counts
    assert slots.counted == 1
    slots.release(fast)
    assert slots.counted == 0


async def test_calls_that_end_in_time_never_turn_slow() -> None:
    turned: list[int] = []
    slots = CallSlots(1, slow_after=0.2, on_slow=turned.append)
    first = await slots.acquire()
    waiter = asyncio.create_task(slots.acquire())
    await asyncio.sleep(0.01)
    slots.release(first)
    slots.release(await waiter)
    await asyncio.sleep(0.3)  # the armed timer fires and finds nobody waiting
    assert turned == [] and slots.counted == 0


async def test_a_hard_limit_waits_for_the_call_to_end() -> None:
    slots = CallSlots(1, slow_after=None)
    held = await slots.acquire()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(slots.acquire(), 0.2)
    slots.release(held)
    slots.release(await asyncio.wait_for(slots.acquire(), 5))


async def test_a_nested_call_into_the_same_server_cannot_deadlock() -> None:
    # The outer call holds the only slot while it waits for an inner call to the same
    # server: the inner call starts once the outer one turns slow.
    slots = CallSlots(1, slow_after=0.05)

    async def inner() -> str:
        ticket = await slots.acquire()
        slots.release(ticket)
        return "inner"

    async def outer() -> str:
        ticket = await slots.acquire()
        try:
            return await inner()
        finally:
            slots.release(ticket)

    assert await asyncio.wait_for(outer(), 5) == "inner"
    assert slots.counted == 0


def test_a_limit_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        CallSlots(0, slow_after=None)
