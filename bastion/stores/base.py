"""The store contract: what the gateway and servers need besides plain tables.

One small ABC, `Store`, with three implementations: `RedisStore` (when `REDIS_URL` is
set), `PostgresStore` (the embedded default) and `MemoryStore` (one process only: tests
and the benchmark's in-process reference). The public methods here validate their
arguments and delegate to the backend's `_`-prefixed methods, so every backend accepts
and refuses exactly the same input.

The contract, for every backend:

- **Sharing.** Redis and PostgreSQL stores are shared by every process of an instance;
  `MemoryStore` is private to its process.
- **Namespaces.** Keys of the key-value space, counters and token buckets are three
  separate namespaces: `set("a")` never touches `incr("a")`. Queue and channel names
  are namespaces of their own too.
- **Key-value and TTL.** Values are bytes. A `ttl` (seconds, > 0) makes a key invisible
  to every read once it has elapsed, measured on the server's clock (Redis `PX`,
  PostgreSQL `now()`); expired entries are swept lazily. `set_if_absent` is atomic
  across processes: of many concurrent callers exactly one gets `True` (a lock or a
  dedupe marker).
- **Counters.** `incr` is atomic; its `ttl` applies when it creates the counter and a
  later `incr` does not extend it. A missing or expired counter reads as 0.
- **Token buckets.** `take` refills at `rate` tokens per second up to `capacity` and
  takes `cost` tokens if it can, atomically across processes: concurrent callers never
  take more than the bucket held. A bucket never seen is full.
- **Pub/sub** is live and at-most-once: nothing is stored or replayed. `subscribe` is an
  async context manager; once its `async with` body starts, the subscription is
  registered with the server, so every message published after that point (from any
  process) is delivered, in publish order per publisher. A subscriber that falls more
  than `Subscription.maxsize` messages behind loses the newest ones (logged).
- **Queue** is durable and at-least-once. `dequeue` leases the oldest visible job for
  `lease` seconds and counts the attempt; `ack` deletes it; `nack` makes it visible
  again after `delay`; a lease that expires without `ack` (a worker killed mid-job)
  makes the job visible again with `attempts + 1`. Order is by visibility time, then
  enqueue order: FIFO for jobs enqueued without delay. A job is leased to at most one
  worker at a time. `nack` from a worker whose lease has been taken over is ignored.
- **Crashes.** Key-value entries, counters and queued jobs survive the crash of any
  client process (and of the PostgreSQL server once committed; Redis per its own
  persistence settings). Token buckets survive client crashes; pub/sub messages never
  survive anything.

Errors: invalid arguments (an empty or oversized key, `ttl <= 0`, `rate <= 0`, a
message over `MAX_MESSAGE_BYTES`, a non-bytes value) raise `ValueError` or `TypeError`
naming the argument, before anything is sent; they are programming errors. Failures
while running (server unreachable, connection lost, store closed) raise
`bastion.errors.StoreError`.
"""

from __future__ import annotations

import asyncio
import logging
import math
from abc import ABC, abstractmethod
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass

from bastion.errors import StoreError

__all__ = ["MAX_KEY_BYTES", "MAX_MESSAGE_BYTES", "BucketResult", "Job", "Store", "Subscription"]

logger = logging.getLogger(__name__)

MAX_KEY_BYTES = 1024
MAX_MESSAGE_BYTES = 1024 * 1024


@dataclass(frozen=True, slots=True)
class BucketResult:
    """Outcome of `Store.take`: whether it was admitted, tokens left, and when to retry."""

    allowed: bool
    remaining: float
    retry_after: float


@dataclass(frozen=True, slots=True)
class Job:
    """A leased job. `attempts` counts deliveries, this one included (1 on the first)."""

    id: str
    queue: str
    payload: bytes
    attempts: int


class Subscription:
    """Live messages of one channel: `async for message in subscription`.

    Iteration ends when the subscription or its store is closed, and raises
    `StoreError` if the connection behind it is lost.
    """

    maxsize = 10_000

    def __init__(self, channel: str) -> None:
        self.channel = channel
        self._items: asyncio.Queue[bytes | StoreError | None] = asyncio.Queue()
        self._ended = False

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> bytes:
        item = await self._items.get()
        if isinstance(item, bytes):
            return item
        self._items.put_nowait(item)  # keep the end marker for the next reader
        if item is None:
            raise StopAsyncIteration
        raise StoreError(item.message)

    def deliver(self, message: bytes) -> None:
        """Hand a message to the reader (backends call this)."""
        if self._ended:
            return
        if self._items.qsize() >= self.maxsize:
            logger.warning("subscriber to %r is %d messages behind; dropping one", self.channel, self.maxsize)
            return
        self._items.put_nowait(message)

    def end(self, error: StoreError | None = None) -> None:
        """Stop iteration, or make it raise `error` (backends call this)."""
        if not self._ended:
            self._ended = True
            self._items.put_nowait(error)


def check_key(key: str, what: str = "key") -> None:
    if not isinstance(key, str) or not key:  # pyright: ignore[reportUnnecessaryIsInstance]
        raise ValueError(f"{what} must be a non-empty string, got {key!r}")
    if len(key.encode()) > MAX_KEY_BYTES:
        raise ValueError(f"{what} {key[:40]!r}... is longer than {MAX_KEY_BYTES} bytes")


def check_bytes(value: bytes, what: str = "value") -> None:
    if not isinstance(value, bytes):  # pyright: ignore[reportUnnecessaryIsInstance]
        raise TypeError(f"{what} must be bytes, got {type(value).__name__}; encode it first")


def check_seconds(value: float | None, what: str, *, zero_ok: bool = False) -> None:
    if value is None:
        return
    if not math.isfinite(value) or value < 0 or (value == 0 and not zero_ok):
        bound = ">= 0" if zero_ok else "> 0"
        raise ValueError(f"{what} must be a finite number of seconds {bound}, got {value!r}")


class Store(ABC):
    """Key-value with TTL, counters, token buckets, pub/sub and a durable queue.

    The module docstring is the contract. Subclasses implement the `_`-methods; the
    public methods validate arguments and refuse calls after `close()`.
    """

    _closed: bool = False

    # -- key-value -----------------------------------------------------------
    async def get(self, key: str) -> bytes | None:
        self._ready(key)
        return await self._get(key)

    async def set(self, key: str, value: bytes, *, ttl: float | None = None) -> None:
        self._ready(key)
        check_bytes(value)
        check_seconds(ttl, "ttl")
        await self._set(key, value, ttl)

    async def set_if_absent(self, key: str, value: bytes, *, ttl: float | None = None) -> bool:
        """Set `key` only if it holds no live value; True if this call set it."""
        self._ready(key)
        check_bytes(value)
        check_seconds(ttl, "ttl")
        return await self._set_if_absent(key, value, ttl)

    async def delete(self, key: str) -> bool:
        """Remove `key`; True if it held a live value."""
        self._ready(key)
        return await self._delete(key)

    # -- counters ------------------------------------------------------------
    async def incr(self, key: str, amount: int = 1, *, ttl: float | None = None) -> int:
        """Add `amount` (may be negative) and return the new value."""
        self._ready(key)
        check_seconds(ttl, "ttl")
        return await self._incr(key, int(amount), ttl)

    async def get_counter(self, key: str) -> int:
        self._ready(key)
        return await self._get_counter(key)

    # -- token bucket --------------------------------------------------------
    async def take(self, key: str, *, rate: float, capacity: float, cost: float = 1) -> BucketResult:
        """Take `cost` tokens from the bucket `key` if it holds them."""
        self._ready(key)
        for name, value in (("rate", rate), ("capacity", capacity), ("cost", cost)):
            if not math.isfinite(value) or value <= 0:
                raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
        if cost > capacity:
            raise ValueError(f"cost {cost} exceeds capacity {capacity}: it could never be admitted")
        return await self._take(key, float(rate), float(capacity), float(cost))

    # -- pub/sub -------------------------------------------------------------
    async def publish(self, channel: str, message: bytes) -> None:
        self._ready(channel, "channel")
        check_bytes(message, "message")
        if len(message) > MAX_MESSAGE_BYTES:
            raise ValueError(
                f"message of {len(message)} bytes exceeds the {MAX_MESSAGE_BYTES}-byte pub/sub limit; "
                "store large data under a key and publish the key"
            )
        await self._publish(channel, message)

    def subscribe(self, channel: str) -> AbstractAsyncContextManager[Subscription]:
        """`async with store.subscribe(ch) as sub:` registered on entry; see the contract."""
        self._ready(channel, "channel")
        return self._subscribe(channel)

    # -- queue ---------------------------------------------------------------
    async def enqueue(self, queue: str, payload: bytes, *, delay: float = 0) -> str:
        """Add a job, visible after `delay` seconds; return its id."""
        self._ready(queue, "queue")
        check_bytes(payload, "payload")
        check_seconds(delay, "delay", zero_ok=True)
        return await self._enqueue(queue, payload, float(delay))

    async def dequeue(self, queue: str, *, lease: float) -> Job | None:
        """Lease the next visible job for `lease` seconds, or None if there is none."""
        self._ready(queue, "queue")
        check_seconds(lease, "lease")
        return await self._dequeue(queue, float(lease))

    async def ack(self, job: Job) -> None:
        """The job is done: delete it."""
        self._ready(job.queue, "queue")
        await self._ack(job)

    async def nack(self, job: Job, *, delay: float = 0) -> None:
        """Release the job for another attempt after `delay` seconds."""
        self._ready(job.queue, "queue")
        check_seconds(delay, "delay", zero_ok=True)
        await self._nack(job, float(delay))

    async def queue_length(self, queue: str) -> int:
        """Jobs not yet acked: waiting, delayed or leased."""
        self._ready(queue, "queue")
        return await self._queue_length(queue)

    # -- lifecycle -----------------------------------------------------------
    async def ping(self) -> None:
        """Raise StoreError unless the backend answers."""
        self._ready()
        await self._ping()

    async def close(self) -> None:
        """Release connections and end every subscription; idempotent."""
        if not self._closed:
            self._closed = True
            await self._close()

    def _ready(self, name: str | None = None, what: str = "key") -> None:
        if self._closed:
            raise StoreError(f"{type(self).__name__} is closed; open a new store")
        if name is not None:
            check_key(name, what)

    @abstractmethod
    async def _get(self, key: str) -> bytes | None: ...
    @abstractmethod
    async def _set(self, key: str, value: bytes, ttl: float | None) -> None: ...
    @abstractmethod
    async def _set_if_absent(self, key: str, value: bytes, ttl: float | None) -> bool: ...
    @abstractmethod
    async def _delete(self, key: str) -> bool: ...
    @abstractmethod
    async def _incr(self, key: str, amount: int, ttl: float | None) -> int: ...
    @abstractmethod
    async def _get_counter(self, key: str) -> int: ...
    @abstractmethod
    async def _take(self, key: str, rate: float, capacity: float, cost: float) -> BucketResult: ...
    @abstractmethod
    async def _publish(self, channel: str, message: bytes) -> None: ...
    @abstractmethod
    def _subscribe(self, channel: str) -> AbstractAsyncContextManager[Subscription]: ...
    @abstractmethod
    async def _enqueue(self, queue: str, payload: bytes, delay: float) -> str: ...
    @abstractmethod
    async def _dequeue(self, queue: str, lease: float) -> Job | None: ...
    @abstractmethod
    async def _ack(self, job: Job) -> None: ...
    @abstractmethod
    async def _nack(self, job: Job, delay: float) -> None: ...
    @abstractmethod
    async def _queue_length(self, queue: str) -> int: ...
    @abstractmethod
    async def _ping(self) -> None: ...
    @abstractmethod
    async def _close(self) -> None: ...


def retry_after(tokens: float, cost: float, rate: float) -> float:
    """Seconds until `cost` tokens are available, given `tokens` now."""
    return 0.0 if tokens >= cost else (cost - tokens) / rate
