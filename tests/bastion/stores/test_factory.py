"""`open_store` picks the backend from settings; a wrong REDIS_URL fails in one clear line."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

import bastion.stores
from bastion.db.database import Database
from bastion.errors import ConfigError, StoreError
from bastion.settings import Settings
from bastion.stores import PostgresStore, RedisStore, open_store


def test_the_package_exports_exactly_its_public_surface() -> None:
    assert sorted(bastion.stores.__all__) == sorted(
        [
            "MAX_MESSAGE_BYTES",
            "BucketResult",
            "Job",
            "MemoryStore",
            "PostgresStore",
            "RedisStore",
            "Store",
            "Subscription",
            "open_store",
        ]
    )
    for name in bastion.stores.__all__:
        assert getattr(bastion.stores, name) is not None


async def test_an_unreachable_redis_fails_at_open_naming_the_url_without_its_password() -> None:
    with pytest.raises(StoreError) as caught:
        await RedisStore.open("redis://user:s3cret@127.0.0.1:1/0")
    assert caught.value.message == (
        "cannot reach Redis at redis://127.0.0.1:1/0 (Connection refused). Start Redis or fix REDIS_URL."
    )


async def test_open_store_fails_clearly_when_the_redis_url_is_wrong(settings: Settings) -> None:
    bad = settings.model_copy(update={"redis_url": SecretStr("redis://127.0.0.1:1/0")})
    with pytest.raises(StoreError, match=r"cannot reach Redis at redis://127\.0\.0\.1:1/0"):
        await open_store(bad, None)


@pytest.mark.redis
async def test_open_store_uses_redis_when_redis_url_is_set(settings: Settings, redis_url: str) -> None:
    with_redis = settings.model_copy(update={"redis_url": SecretStr(redis_url)})
    store = await open_store(with_redis, None)
    try:
        assert isinstance(store, RedisStore)
        await store.ping()
    finally:
        await store.close()


async def test_open_store_uses_the_database_without_redis_url(settings: Settings, database: Database) -> None:
    store = await open_store(settings, database)
    try:
        assert isinstance(store, PostgresStore)
        await store.ping()
    finally:
        await store.close()


async def test_open_store_without_redis_or_database_says_what_to_set(settings: Settings) -> None:
    with pytest.raises(ConfigError, match="Set REDIS_URL or open the instance database first"):
        await open_store(settings, None)
