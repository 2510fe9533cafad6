"""`MemoryStore`: the store contract inside one process, for tests and benchmarks.

Nothing here awaits inside a critical section, so every operation is atomic with
respect to other tasks on the event loop. Nothing is shared with other processes and
nothing survives a crash. Times are `time.monotonic()` seconds.
"""

from __future__ import annotations

import heapq
import logging
import time
from collections.abc import AsyncGenerator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import TypeVar

from bastion.stores.base import BucketResult, Job, Store, Subscription, retry_after

__all__ = ["MemoryStore"]

logger = logging.getLogger(__name__)

# Expired keys are purged by a full scan every this many writes.
_SWEEP_EVERY = 10_000

_T = TypeVar("_T")


@dataclass(slots=True)
class _JobState:
    payload: bytes
    visible_at: float
    attempts: int = 0


class MemoryStore(Store):
    """In-process store; same contract as the shared ones, minus sharing and durability."""

    def __init__(self) -> None:
        self._kv: dict[str, tuple[bytes, float | None]] = {}
        self._counters: dict[str, tuple[int, float | None]] = {}
        self._buckets: dict[str, tuple[float, float]] = {}
        self._channels: dict[str, set[Subscription]] = {}
        self._jobs: dict[str, dict[int, _JobState]] = {}
        # Per queue: (visible_at, id, attempts) entries; stale ones are skipped lazily.
        self._heaps: dict[str, list[tuple[float, int, int]]] = {}
        self._next_id = 0
        self._writes = 0

    # -- key-value -----------------------------------------------------------
    def _live(self, table: dict[str, tuple[_T, float | None]], key: str) -> _T | None:
        entry = table.get(key)
        if entry is None:
            return None
        if entry[1] is not None and entry[1] <= time.monotonic():
            del table[key]
            return None
        return entry[0]

    def _expiry(self, ttl: float | None) -> float | None:
        self._writes += 1
        if self._writes % _SWEEP_EVERY == 0:
            self._sweep()
        return None if ttl is None else time.monotonic() + ttl

    def _sweep(self) -> None:
        now = time.monotonic()
        for table in (self._kv, self._counters):
            for key in [k for k, (_, exp) in table.items() if exp is not None and exp <= now]:
                del table[key]

    async def _get(self, key: str) -> bytes | None:
        return self._live(self._kv, key)

    async def _set(self, key: str, value: bytes, ttl: float | None) -> None:
        self._kv[key] = (value, self._expiry(ttl))

    async def _set_if_absent(self, key: str, value: bytes, ttl: float | None) -> bool:
        if self._live(self._kv, key) is not None:
            return False
        self._kv[key] = (value, self._expiry(ttl))
        return True

    async def _delete(self, key: str) -> bool:
        live = self._live(self._kv, key) is not None
        self._kv.pop(key, None)
        return live

    # -- counters ------------------------------------------------------------
    async def _incr(self, key: str, amount: int, ttl: float | None) -> int:
        current = self._live(self._counters, key)
        if current is None:
            self._counters[key] = (amount, self._expiry(ttl))
            return amount
        value = current + amount
        self._counters[key] = (value, self._counters[key][1])
        return value

    async def _get_counter(self, key: str) -> int:
        return self._live(self._counters, key) or 0

    # -- token bucket --------------------------------------------------------
    async def _take(self, key: str, rate: float, capacity: float, cost: float) -> BucketResult:
        now = time.monotonic()
        tokens, at = self._buckets.get(key, (capacity, now))
        tokens = min(capacity, tokens + max(0.0, now - at) * rate)
        allowed = tokens >= cost
        if allowed:
            tokens -= cost
        self._buckets[key] = (tokens, now)
        return BucketResult(allowed, tokens, 0.0 if allowed else retry_after(tokens, cost, rate))

    # -- pub/sub -------------------------------------------------------------
    async def _publish(self, channel: str, message: bytes) -> None:
        for subscription in tuple(self._channels.get(channel, ())):
            subscription.deliver(message)

    def _subscribe(self, channel: str) -> AbstractAsyncContextManager[Subscription]:
        return self._subscription(channel)

    @asynccontextmanager
    async def _subscription(self, channel: str) -> AsyncGenerator[Subscription]:
        subscription = Subscription(channel)
        self._channels.setdefault(channel, set()).add(subscription)
        try:
            yield subscription
        finally:
            subscription.end()
            subscribers = self._channels.get(channel)
            if subscribers is not None:
                subscribers.discard(subscription)
                if not subscribers:
                    del self._channels[channel]

    # -- queue ---------------------------------------------------------------
    async def _enqueue(self, queue: str, payload: bytes, delay: float) -> str:
        self._next_id += 1
        state = _JobState(payload, time.monotonic() + delay)
        self._jobs.setdefault(queue, {})[self._next_id] = state
        heapq.heappush(self._heaps.setdefault(queue, []), (state.visible_at, self._next_id, 0))
        return str(self._next_id)

    async def _dequeue(self, queue: str, lease: float) -> Job | None:
        heap, jobs = self._heaps.get(queue, []), self._jobs.get(queue, {})
        now = time.monotonic()
        while heap:
            visible_at, job_id, attempts = heap[0]
            state = jobs.get(job_id)
            if state is None or state.attempts != attempts or state.visible_at != visible_at:
                heapq.heappop(heap)  # acked, or superseded by a newer entry
                continue
            if visible_at > now:
                return None
            state.attempts += 1
            state.visible_at = now + lease
            heapq.heapreplace(heap, (state.visible_at, job_id, state.attempts))
            return Job(str(job_id), queue, state.payload, state.attempts)
        return None

    async def _ack(self, job: Job) -> None:
        self._jobs.get(job.queue, {}).pop(int(job.id), None)

    async def _nack(self, job: Job, delay: float) -> None:
        state = self._jobs.get(job.queue, {}).get(int(job.id))
        if state is None or state.attempts != job.attempts:
            return
        state.visible_at = time.monotonic() + delay
        heapq.heappush(self._heaps[job.queue], (state.visible_at, int(job.id), state.attempts))

    async def _queue_length(self, queue: str) -> int:
        return len(self._jobs.get(queue, {}))

    # -- lifecycle -----------------------------------------------------------
    async def _ping(self) -> None:
        return None

    async def _close(self) -> None:
        for subscribers in self._channels.values():
            for subscription in subscribers:
                subscription.end()
        self._channels.clear()
