"""Fixtures for the auth tests: the gateway schema on the shared database, key stores."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from bastion.db.database import Database
from bastion.stores import PostgresStore, RedisStore, Store
from gateway.auth import ApiKeyStore
from gateway.migrations import MIGRATIONS


@pytest.fixture
async def gateway_db(database: Database) -> Database:
    """The shared embedded database with the gateway's migrations applied."""
    await database.migrate([MIGRATIONS])
    return database


@pytest.fixture
def instance_key() -> bytes:
    return secrets.token_bytes(32)


@pytest.fixture
async def pg_pubsub(gateway_db: Database) -> AsyncIterator[Store]:
    store = PostgresStore(gateway_db.pool, gateway_db.dsn)
    yield store
    await store.close()


@pytest.fixture
async def redis_pubsub(redis_url: str) -> AsyncIterator[Store]:
    prefix = f"bastion-test:{uuid.uuid4().hex[:12]}:"
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


@pytest.fixture(params=[pytest.param("redis", marks=pytest.mark.redis), "postgres"])
def pubsub(request: pytest.FixtureRequest) -> Store:
    """The instance store that carries revocations: Redis, or PostgreSQL by default."""
    return request.getfixturevalue("redis_pubsub" if request.param == "redis" else "pg_pubsub")


@pytest.fixture
def keys(gateway_db: Database, instance_key: bytes) -> ApiKeyStore:
    return ApiKeyStore(gateway_db.pool, instance_key)
