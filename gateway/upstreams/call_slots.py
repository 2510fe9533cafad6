"""How many calls the gateway sends one upstream at once (`max_concurrency`).

A server that does its work on one event loop answers a crowd of concurrent calls in
bursts, and on a shared machine a burst handed between single-threaded processes leaves
cores idle; a few calls at a time keep them busy (docs/benchmarks/gateway.md). A call
that outlives `slow_after` stops counting, so a slow tool never holds up fast calls for
longer than that, and a tool that calls back through the gateway into its own server can
never deadlock on its own slot; `slow_after=None` is a hard limit instead.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from collections.abc import Callable


class CallSlots:
    """At most `limit` calls younger than `slow_after` seconds, the rest first come first served."""

    __slots__ = ("_holders", "_on_slow", "_tickets", "_timer", "_waiters", "limit", "slow_after")

    def __init__(
        self, limit: int, slow_after: float | None, on_slow: Callable[[int], None] | None = None
    ) -> None:
        if limit < 1:
            raise ValueError("a call limit must be at least 1")
        self.limit = limit
        self.slow_after = slow_after
        # ticket -> start (loop time); a dict keeps start order, so the oldest is first.
        self._holders: dict[int, float] = {}
        self._waiters: deque[asyncio.Future[int]] = deque()
        self._tickets = itertools.count()
        self._timer: asyncio.TimerHandle | None = None
        self._on_slow = on_slow  # told how many calls just stopped counting

    @property
    def counted(self) -> int:
        """Calls that count against the limit now."""
        return len(self._holders)

    @property
    def waiting(self) -> int:
        return sum(1 for waiter in self._waiters if not waiter.done())

    def free(self) -> bool:
        """Whether a call would start at once."""
        return len(self._holders) < self.limit and not self._waiters

    async def acquire(self) -> int:
        """A ticket to hand back to `release` when the call ends, however it ends."""
        loop = asyncio.get_running_loop()
        if self.free():
            return self._admit(loop.time())
        waiter: asyncio.Future[int] = loop.create_future()
        self._waiters.append(waiter)
        self._arm(loop)
        try:
            return await waiter
        except asyncio.CancelledError:
            # Admitted in the same step it was cancelled: the slot goes to the next caller.
            if waiter.done() and not waiter.cancelled():
                self.release(waiter.result())
            raise

    def release(self, ticket: int) -> None:
        # A slow call's ticket is already gone: it stopped counting when it turned slow.
        if self._holders.pop(ticket, None) is not None and self._waiters:
            self._admit_waiters(asyncio.get_running_loop().time())

    def _admit(self, now: float) -> int:
        ticket = next(self._tickets)
        self._holders[ticket] = now
        return ticket

    def _admit_waiters(self, now: float) -> None:
        while self._waiters and len(self._holders) < self.limit:
            waiter = self._waiters.popleft()
            if not waiter.done():  # skip callers that gave up waiting
                waiter.set_result(self._admit(now))

    def _arm(self, loop: asyncio.AbstractEventLoop) -> None:
        """Wake up when the oldest counted call turns slow, while anyone waits."""
        if self.slow_after is None or self._timer is not None or not self._holders:
            return
        oldest = next(iter(self._holders.values()))
        self._timer = loop.call_at(oldest + self.slow_after, self._turn_slow, loop)

    def _turn_slow(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = None
        if not self._waiters:
            return  # nobody waits: counting on costs nothing
        assert self.slow_after is not None
        now = loop.time()
        cutoff = now - self.slow_after + 0.001  # the loop may run a timer a little early
        turned = [ticket for ticket, started in self._holders.items() if started <= cutoff]
        for ticket in turned:
            del self._holders[ticket]
        if turned and self._on_slow is not None:
            self._on_slow(len(turned))
        self._admit_waiters(now)
        if self._waiters:
            self._arm(loop)
