"""The `store` fixture: one contract, run against every backend with real servers."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from psycopg import sql

from bastion.db.database import Database
from bastion.stores import MemoryStore, PostgresStore, RedisStore, Store

BACKENDS = ["memory", pytest.param("redis", marks=pytest.mark.redis), "postgres"]
SHARED_BACKENDS = [pytest.param("redis", marks=pytest.mark.redis), "postgres"]


@pytest.fixture
def ns() -> str:
    """A unique prefix for the keys, channels and queues of one test."""
    return f"t{uuid.uuid4().hex[:12]}:"


@pytest.fixture
async def memory_store() -> AsyncIterator[Store]:
    store = MemoryStore()
    yield store
    await store.close()


@pytest.fixture
async def redis_store(redis_url: str, ns: str) -> AsyncIterator[Store]:
    prefix = f"bastion-test:{ns}"
    store = await RedisStore.open(redis_url, prefix=prefix)
    yield store
    await store.close()
    client = aioredis.Redis.from_url(redis_url)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}*", count=1000)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


@pytest.fixture
async def postgres_store(database: Database, ns: str) -> AsyncIterator[Store]:
    store = PostgresStore(database.pool, database.dsn)
    yield store
    await store.close()
    async with database.pool.connection() as conn:
        for table in ("store_kv", "store_counters", "store_buckets"):
            query = sql.SQL("DELETE FROM bastion.{} WHERE key LIKE %s").format(sql.Identifier(table))
            await conn.execute(query, (ns + "%",))
        await conn.execute("DELETE FROM bastion.store_jobs WHERE queue LIKE %s", (ns + "%",))


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest) -> Store:
    return request.getfixturevalue(f"{request.param}_store")
