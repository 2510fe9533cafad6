"""`PostgresStore`: the store contract on the instance database (the embedded default).

Tables live in the kernel schema `bastion` (see `MIGRATIONS`). Every operation is one
autocommit statement, so atomicity comes from row locks and `ON CONFLICT`:

- `store_kv` and `store_counters` carry `expires_at`; expired rows are invisible to
  reads, replaced by writes, and swept at most once a minute per store.
- `store_buckets` is updated by one `INSERT ... ON CONFLICT DO UPDATE ... RETURNING`;
  a bucket is swept once it would be full again (`full_at`), which is equivalent.
- `store_jobs` is the queue: `dequeue` takes the oldest visible row with
  `FOR UPDATE SKIP LOCKED` and pushes its `visible_at` to now + lease, so an expired
  lease makes it visible again without any reaper.
- Pub/sub is `LISTEN`/`NOTIFY` on one dedicated connection per store (see `_listener`).
  Channel names are hashed into safe identifiers; messages are base64 in the payload,
  and those too large for NOTIFY's 8000-byte payload are spilled to the unlogged
  `store_messages` table and fetched by id (kept five minutes).
"""

from __future__ import annotations

import base64
import contextlib
import logging
import time
from collections.abc import Generator
from contextlib import AbstractAsyncContextManager
from typing import Any, LiteralString

import psycopg
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from bastion.db.migrations import Migration
from bastion.errors import StoreError
from bastion.stores._listener import Listener
from bastion.stores.base import BucketResult, Job, Store, Subscription, retry_after

__all__ = ["MIGRATIONS", "PostgresStore"]

logger = logging.getLogger(__name__)

MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        "0001_stores",
        """
CREATE TABLE bastion.store_kv (
    key         text PRIMARY KEY,
    value       bytea NOT NULL,
    expires_at  timestamptz
);
CREATE INDEX store_kv_expires ON bastion.store_kv (expires_at) WHERE expires_at IS NOT NULL;
CREATE TABLE bastion.store_counters (
    key         text PRIMARY KEY,
    value       bigint NOT NULL,
    expires_at  timestamptz
);
CREATE INDEX store_counters_expires ON bastion.store_counters (expires_at) WHERE expires_at IS NOT NULL;
CREATE TABLE bastion.store_buckets (
    key         text PRIMARY KEY,
    tokens      double precision NOT NULL,
    allowed     boolean NOT NULL,
    updated_at  timestamptz NOT NULL,
    full_at     timestamptz NOT NULL
);
CREATE INDEX store_buckets_full ON bastion.store_buckets (full_at);
CREATE TABLE bastion.store_jobs (
    id          bigserial PRIMARY KEY,
    queue       text NOT NULL,
    payload     bytea NOT NULL,
    attempts    integer NOT NULL DEFAULT 0,
    visible_at  timestamptz NOT NULL,
    enqueued_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX store_jobs_next ON bastion.store_jobs (queue, visible_at, id);
CREATE UNLOGGED TABLE bastion.store_messages (
    id          bigserial PRIMARY KEY,
    payload     bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
""",
    ),
)

_SWEEP_INTERVAL = 60.0
# Raw bytes that still fit NOTIFY's 8000-byte payload once base64-encoded.
_INLINE_BYTES = 5000

_TTL = "now() + make_interval(secs => %(ttl)s::float8)"
_REFILL = (
    "least(%(cap)s, b.tokens + greatest(0, extract(epoch FROM now() - b.updated_at)::float8) * %(rate)s)"
)
_AFTER = f"CASE WHEN {_REFILL} >= %(cost)s THEN {_REFILL} - %(cost)s ELSE {_REFILL} END"

_Q_GET = (
    "SELECT value FROM bastion.store_kv WHERE key = %(key)s AND (expires_at IS NULL OR expires_at > now())"
)
_Q_SET = f"""INSERT INTO bastion.store_kv (key, value, expires_at)
VALUES (%(key)s, %(value)s, {_TTL})
ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at"""
_Q_SET_NX = f"""INSERT INTO bastion.store_kv AS kv (key, value, expires_at)
VALUES (%(key)s, %(value)s, {_TTL})
ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at
WHERE kv.expires_at <= now() RETURNING 1"""
_Q_DELETE = """DELETE FROM bastion.store_kv WHERE key = %(key)s
RETURNING expires_at IS NULL OR expires_at > now()"""
_Q_INCR = f"""INSERT INTO bastion.store_counters AS c (key, value, expires_at)
VALUES (%(key)s, %(amount)s, {_TTL})
ON CONFLICT (key) DO UPDATE SET
    value = CASE WHEN c.expires_at <= now() THEN excluded.value ELSE c.value + excluded.value END,
    expires_at = CASE WHEN c.expires_at <= now() THEN excluded.expires_at ELSE c.expires_at END
RETURNING value"""
_Q_COUNTER = """SELECT value FROM bastion.store_counters
WHERE key = %(key)s AND (expires_at IS NULL OR expires_at > now())"""
_Q_TAKE = f"""INSERT INTO bastion.store_buckets AS b (key, tokens, allowed, updated_at, full_at)
VALUES (%(key)s, %(cap)s - %(cost)s, true, now(), now() + make_interval(secs => %(cost)s / %(rate)s))
ON CONFLICT (key) DO UPDATE SET
    allowed = {_REFILL} >= %(cost)s,
    tokens = {_AFTER},
    updated_at = greatest(b.updated_at, now()),
    full_at = greatest(b.updated_at, now()) + make_interval(secs => (%(cap)s - {_AFTER}) / %(rate)s)
RETURNING allowed, tokens"""
_Q_ENQUEUE = """INSERT INTO bastion.store_jobs (queue, payload, visible_at)
VALUES (%(queue)s, %(payload)s, now() + make_interval(secs => %(delay)s)) RETURNING id"""
_Q_DEQUEUE = """UPDATE bastion.store_jobs
SET visible_at = now() + make_interval(secs => %(lease)s), attempts = attempts + 1
WHERE id = (
    SELECT id FROM bastion.store_jobs WHERE queue = %(queue)s AND visible_at <= now()
    ORDER BY visible_at, id LIMIT 1 FOR UPDATE SKIP LOCKED
)
RETURNING id, payload, attempts"""
_Q_ACK = "DELETE FROM bastion.store_jobs WHERE id = %(id)s AND queue = %(queue)s"
_Q_NACK = """UPDATE bastion.store_jobs SET visible_at = now() + make_interval(secs => %(delay)s)
WHERE id = %(id)s AND queue = %(queue)s AND attempts = %(attempts)s"""
_Q_LENGTH = "SELECT count(*) FROM bastion.store_jobs WHERE queue = %(queue)s"
_Q_NOTIFY = "SELECT pg_notify(%(channel)s, %(payload)s)"
_Q_SPILL = """WITH m AS (INSERT INTO bastion.store_messages (payload) VALUES (%(message)s) RETURNING id)
SELECT pg_notify(%(channel)s, 'r' || m.id) FROM m"""
_Q_SPILLED = "SELECT payload FROM bastion.store_messages WHERE id = %(id)s"
_Q_SWEEP = """
DELETE FROM bastion.store_kv WHERE key IN
    (SELECT key FROM bastion.store_kv WHERE expires_at <= now() LIMIT 10000);
DELETE FROM bastion.store_counters WHERE key IN
    (SELECT key FROM bastion.store_counters WHERE expires_at <= now() LIMIT 10000);
DELETE FROM bastion.store_buckets WHERE key IN
    (SELECT key FROM bastion.store_buckets WHERE full_at <= now() LIMIT 10000);
DELETE FROM bastion.store_messages WHERE created_at < now() - interval '5 minutes';
"""


class PostgresStore(Store):
    """The store contract on PostgreSQL; `pool` must hand out autocommit connections."""

    def __init__(self, pool: AsyncConnectionPool[AsyncConnection[Any]], dsn: str) -> None:
        self._pool = pool
        self._listener = Listener(dsn, notify=self._notify, fetch_spilled=self._fetch_spilled)
        self._swept_at = time.monotonic()

    @contextlib.contextmanager
    def _errors(self) -> Generator[None]:
        try:
            yield
        except PoolTimeout as exc:
            raise StoreError(f"no PostgreSQL connection free for the store: {exc}") from exc
        except psycopg.Error as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise StoreError(f"PostgreSQL store failed: {reason}") from exc

    async def _row(self, query: LiteralString, params: dict[str, Any]) -> tuple[Any, ...] | None:
        with self._errors():
            async with self._pool.connection() as conn:
                # No parameters means the simple protocol, which allows several statements.
                cursor = await conn.execute(query, params or None)
                return await cursor.fetchone() if cursor.description else None

    async def _write(self, query: LiteralString, params: dict[str, Any]) -> tuple[Any, ...] | None:
        if time.monotonic() - self._swept_at > _SWEEP_INTERVAL:
            self._swept_at = time.monotonic()
            await self._row(_Q_SWEEP, {})
        return await self._row(query, params)

    # -- key-value -----------------------------------------------------------
    async def _get(self, key: str) -> bytes | None:
        row = await self._row(_Q_GET, {"key": key})
        return None if row is None else bytes(row[0])

    async def _set(self, key: str, value: bytes, ttl: float | None) -> None:
        await self._write(_Q_SET, {"key": key, "value": value, "ttl": ttl})

    async def _set_if_absent(self, key: str, value: bytes, ttl: float | None) -> bool:
        return await self._write(_Q_SET_NX, {"key": key, "value": value, "ttl": ttl}) is not None

    async def _delete(self, key: str) -> bool:
        row = await self._row(_Q_DELETE, {"key": key})
        return bool(row and row[0])

    # -- counters ------------------------------------------------------------
    async def _incr(self, key: str, amount: int, ttl: float | None) -> int:
        row = await self._write(_Q_INCR, {"key": key, "amount": amount, "ttl": ttl})
        assert row is not None
        return int(row[0])

    async def _get_counter(self, key: str) -> int:
        row = await self._row(_Q_COUNTER, {"key": key})
        return 0 if row is None else int(row[0])

    # -- token bucket --------------------------------------------------------
    async def _take(self, key: str, rate: float, capacity: float, cost: float) -> BucketResult:
        params = {"key": key, "rate": rate, "cap": capacity, "cost": cost}
        row = await self._write(_Q_TAKE, params)
        assert row is not None
        allowed, tokens = bool(row[0]), float(row[1])
        return BucketResult(allowed, tokens, 0.0 if allowed else retry_after(tokens, cost, rate))

    # -- pub/sub -------------------------------------------------------------
    async def _publish(self, channel: str, message: bytes) -> None:
        name = self._listener.channel_name(channel)
        if len(message) <= _INLINE_BYTES:
            payload = "i" + base64.b64encode(message).decode()
            await self._notify(name, payload)
        else:
            await self._write(_Q_SPILL, {"channel": name, "message": message})

    async def _notify(self, name: str, payload: str) -> None:
        await self._row(_Q_NOTIFY, {"channel": name, "payload": payload})

    async def _fetch_spilled(self, message_id: int) -> bytes | None:
        row = await self._row(
            "SELECT payload FROM bastion.store_messages WHERE id = %(id)s", {"id": message_id}
        )
        return None if row is None else bytes(row[0])

    def _subscribe(self, channel: str) -> AbstractAsyncContextManager[Subscription]:
        return self._listener.subscribe(channel)

    # -- queue ---------------------------------------------------------------
    async def _enqueue(self, queue: str, payload: bytes, delay: float) -> str:
        row = await self._row(_Q_ENQUEUE, {"queue": queue, "payload": payload, "delay": delay})
        assert row is not None
        return str(row[0])

    async def _dequeue(self, queue: str, lease: float) -> Job | None:
        row = await self._row(_Q_DEQUEUE, {"queue": queue, "lease": lease})
        return None if row is None else Job(str(row[0]), queue, bytes(row[1]), int(row[2]))

    async def _ack(self, job: Job) -> None:
        await self._row(_Q_ACK, {"id": _job_id(job), "queue": job.queue})

    async def _nack(self, job: Job, delay: float) -> None:
        params = {"id": _job_id(job), "queue": job.queue, "attempts": job.attempts, "delay": delay}
        await self._row(_Q_NACK, params)

    async def _queue_length(self, queue: str) -> int:
        row = await self._row(_Q_LENGTH, {"queue": queue})
        return 0 if row is None else int(row[0])

    # -- lifecycle -----------------------------------------------------------
    async def _ping(self) -> None:
        await self._row("SELECT 1", {})

    async def _close(self) -> None:
        # The pool belongs to the Database; only the LISTEN connection is ours.
        await self._listener.close()


def _job_id(job: Job) -> int:
    try:
        return int(job.id)
    except ValueError:
        raise ValueError(f"job id {job.id!r} did not come from a PostgresStore") from None
