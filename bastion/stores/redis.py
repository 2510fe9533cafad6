"""`RedisStore`: the store contract on Redis (`REDIS_URL`), shared by every process.

Layout under `prefix` (default `bastion:`):

- `kv:<key>` strings with `PX` expiry; `ctr:<key>` integers; `tb:<key>` hashes
  (`tokens`, `ts`) that expire once the bucket would be full again.
- Queue `<q>`: `q:{<q>}:jobs` (id -> payload), `q:{<q>}:att` (id -> attempts),
  `q:{<q>}:z` (sorted set, id scored by the millisecond it becomes visible) and
  `q:{<q>}:seq`. A dequeue takes the lowest score <= now and re-scores it to
  now + lease, so an expired lease simply makes the job visible again; ids are
  zero-padded so equal scores keep enqueue order. The braces keep one queue's keys
  in one Redis Cluster slot.

Counters with TTL, buckets and the queue are Lua scripts, atomic on the server and
timed by the server's clock (`TIME`), so clients with skewed clocks agree.
Pub/sub uses one Redis connection per subscription; `subscribe` returns only after
Redis confirmed the SUBSCRIBE.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
from collections.abc import AsyncGenerator, Generator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, cast
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from redis.asyncio.client import PubSub
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from bastion.errors import StoreError
from bastion.stores.base import BucketResult, Job, Store, Subscription, retry_after

__all__ = ["RedisStore"]

logger = logging.getLogger(__name__)

_CONFIRM_TIMEOUT = 10.0

_INCR = """
local created = redis.call('EXISTS', KEYS[1]) == 0
local value = redis.call('INCRBY', KEYS[1], ARGV[1])
if created and tonumber(ARGV[2]) > 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return value
"""

_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local rate, cap, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens, ts = tonumber(state[1]), tonumber(state[2])
if tokens == nil or ts == nil then tokens = cap; ts = now end
tokens = math.min(cap, tokens + math.max(0, now - ts) * rate)
local allowed = 0
if tokens >= cost then tokens = tokens - cost; allowed = 1 end
redis.call('HSET', KEYS[1], 'tokens', string.format('%.17g', tokens), 'ts', string.format('%.6f', now))
redis.call('PEXPIRE', KEYS[1], math.ceil((cap - tokens) / rate * 1000) + 1000)
return {allowed, string.format('%.17g', tokens)}
"""

_NOW_MS = (
    "local t = redis.call('TIME'); local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
)

_ENQUEUE = (
    _NOW_MS
    + """
local id = string.format('%016d', redis.call('INCR', KEYS[4]))
redis.call('HSET', KEYS[1], id, ARGV[1])
redis.call('HSET', KEYS[2], id, 0)
redis.call('ZADD', KEYS[3], now + tonumber(ARGV[2]), id)
return id
"""
)

_DEQUEUE = (
    _NOW_MS
    + """
local ids = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'LIMIT', 0, 1)
if #ids == 0 then return false end
local id = ids[1]
redis.call('ZADD', KEYS[3], now + tonumber(ARGV[1]), id)
local attempts = redis.call('HINCRBY', KEYS[2], id, 1)
return {id, redis.call('HGET', KEYS[1], id), attempts}
"""
)

_NACK = (
    _NOW_MS
    + """
if redis.call('HGET', KEYS[2], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('ZADD', KEYS[3], now + tonumber(ARGV[3]), ARGV[1])
return 1
"""
)


def public_url(url: str) -> str:
    """`url` without user or password, for messages."""
    parts = urlsplit(url)
    host = parts.hostname or "localhost"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def _reason(exc: BaseException) -> str:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno:
            return os.strerror(seen.errno)
        seen = seen.__cause__ or seen.__context__
    return str(exc).strip().rstrip(".") or type(exc).__name__


def _ms(seconds: float) -> int:
    return max(1, math.ceil(seconds * 1000))


class RedisStore(Store):
    """The store contract on Redis via `redis.asyncio`; see the module docstring."""

    def __init__(self, url: str, *, prefix: str = "bastion:") -> None:
        self.url = url
        self.prefix = prefix
        self._client: aioredis.Redis = aioredis.Redis.from_url(url, socket_connect_timeout=5)
        self._scripts = {
            name: self._client.register_script(body)
            for name, body in (
                ("incr", _INCR),
                ("take", _TAKE),
                ("enqueue", _ENQUEUE),
                ("dequeue", _DEQUEUE),
                ("nack", _NACK),
            )
        }
        self._subscriptions: set[Subscription] = set()

    @classmethod
    async def open(cls, url: str, *, prefix: str = "bastion:") -> RedisStore:
        """A store that has answered a PING; StoreError with one clear line otherwise."""
        store = cls(url, prefix=prefix)
        try:
            await store.ping()
        except BaseException:
            await store.close()
            raise
        return store

    @contextlib.contextmanager
    def _errors(self) -> Generator[None]:
        try:
            yield
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            where = public_url(self.url)
            raise StoreError(
                f"cannot reach Redis at {where} ({_reason(exc)}). Start Redis or fix REDIS_URL."
            ) from exc
        except RedisError as exc:
            raise StoreError(f"Redis at {public_url(self.url)} failed: {exc}") from exc

    async def _script(self, name: str, keys: list[str], args: list[Any]) -> Any:
        with self._errors():
            return await self._scripts[name](keys=keys, args=args)

    def _queue_keys(self, queue: str) -> list[str]:
        base = f"{self.prefix}q:{{{queue}}}:"
        return [base + "jobs", base + "att", base + "z", base + "seq"]

    # -- key-value -----------------------------------------------------------
    async def _get(self, key: str) -> bytes | None:
        with self._errors():
            return cast(bytes | None, await self._client.get(f"{self.prefix}kv:{key}"))

    async def _set(self, key: str, value: bytes, ttl: float | None) -> None:
        with self._errors():
            await self._client.set(f"{self.prefix}kv:{key}", value, px=None if ttl is None else _ms(ttl))

    async def _set_if_absent(self, key: str, value: bytes, ttl: float | None) -> bool:
        px = None if ttl is None else _ms(ttl)
        with self._errors():
            return bool(await self._client.set(f"{self.prefix}kv:{key}", value, px=px, nx=True))

    async def _delete(self, key: str) -> bool:
        with self._errors():
            return bool(await self._client.delete(f"{self.prefix}kv:{key}"))

    # -- counters ------------------------------------------------------------
    async def _incr(self, key: str, amount: int, ttl: float | None) -> int:
        return int(
            await self._script("incr", [f"{self.prefix}ctr:{key}"], [amount, 0 if ttl is None else _ms(ttl)])
        )

    async def _get_counter(self, key: str) -> int:
        with self._errors():
            value = await self._client.get(f"{self.prefix}ctr:{key}")
        return 0 if value is None else int(value)

    # -- token bucket --------------------------------------------------------
    async def _take(self, key: str, rate: float, capacity: float, cost: float) -> BucketResult:
        allowed, tokens = await self._script("take", [f"{self.prefix}tb:{key}"], [rate, capacity, cost])
        remaining = float(tokens)
        return BucketResult(bool(allowed), remaining, 0.0 if allowed else retry_after(remaining, cost, rate))

    # -- pub/sub -------------------------------------------------------------
    async def _publish(self, channel: str, message: bytes) -> None:
        with self._errors():
            await self._client.publish(f"{self.prefix}ch:{channel}", message)

    def _subscribe(self, channel: str) -> AbstractAsyncContextManager[Subscription]:
        return self._subscription(channel)

    @asynccontextmanager
    async def _subscription(self, channel: str) -> AsyncGenerator[Subscription]:
        pubsub = self._client.pubsub()
        subscription = Subscription(channel)
        reader: asyncio.Task[None] | None = None
        try:
            with self._errors():
                await pubsub.subscribe(f"{self.prefix}ch:{channel}")
                # Ready means Redis confirmed the SUBSCRIBE: wait for its reply.
                if await pubsub.get_message(timeout=_CONFIRM_TIMEOUT) is None:
                    raise StoreError(f"Redis at {public_url(self.url)} did not confirm SUBSCRIBE {channel!r}")
            reader = asyncio.create_task(self._read(pubsub, subscription))
            self._subscriptions.add(subscription)
            yield subscription
        finally:
            self._subscriptions.discard(subscription)
            subscription.end()
            if reader is not None:
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reader
            await pubsub.aclose()

    async def _read(self, pubsub: PubSub, subscription: Subscription) -> None:
        try:
            while True:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=None)
                if message is not None and message["type"] == "message":
                    subscription.deliver(cast(bytes, message["data"]))
        except RedisError as exc:
            logger.warning("Redis subscription to %r lost: %s", subscription.channel, exc)
            subscription.end(StoreError(f"subscription to {subscription.channel!r} lost: {_reason(exc)}"))

    # -- queue ---------------------------------------------------------------
    async def _enqueue(self, queue: str, payload: bytes, delay: float) -> str:
        job_id = await self._script("enqueue", self._queue_keys(queue), [payload, math.ceil(delay * 1000)])
        return job_id.decode()

    async def _dequeue(self, queue: str, lease: float) -> Job | None:
        row = await self._script("dequeue", self._queue_keys(queue), [_ms(lease)])
        if not row:
            return None
        job_id, payload, attempts = row
        return Job(job_id.decode(), queue, payload, int(attempts))

    async def _ack(self, job: Job) -> None:
        jobs, att, zset, _ = self._queue_keys(job.queue)
        with self._errors():
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.zrem(zset, job.id)
                pipe.hdel(jobs, job.id)
                pipe.hdel(att, job.id)
                await pipe.execute()

    async def _nack(self, job: Job, delay: float) -> None:
        await self._script(
            "nack", self._queue_keys(job.queue), [job.id, job.attempts, math.ceil(delay * 1000)]
        )

    async def _queue_length(self, queue: str) -> int:
        with self._errors():
            return int(await self._client.hlen(self._queue_keys(queue)[0]))

    # -- lifecycle -----------------------------------------------------------
    async def _ping(self) -> None:
        with self._errors():
            await self._client.ping()

    async def _close(self) -> None:
        for subscription in tuple(self._subscriptions):
            subscription.end()
        await self._client.aclose()
