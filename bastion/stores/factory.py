"""`open_store`: the store an instance's settings call for.

Redis when `REDIS_URL` is set (pinged at open, so a wrong URL fails at start with one
clear line), else PostgreSQL on the instance database's pool.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from bastion.errors import ConfigError
from bastion.stores.base import Store
from bastion.stores.postgres import PostgresStore
from bastion.stores.redis import RedisStore, public_url

if TYPE_CHECKING:
    from bastion.db.database import Database
    from bastion.settings import Settings

__all__ = ["open_store"]

logger = logging.getLogger(__name__)


async def open_store(settings: Settings, database: Database | None) -> Store:
    """Open the instance's store; the caller closes it (before closing `database`).

    Raises StoreError when Redis does not answer, ConfigError when neither Redis nor an
    open database is available.
    """
    if settings.redis_url is not None:
        url = settings.redis_url.get_secret_value()
        store = await RedisStore.open(url)
        logger.info("stores on Redis at %s", public_url(url))
        return store
    if database is None:
        raise ConfigError(
            "no REDIS_URL and no database: stores need one of them. "
            "Set REDIS_URL or open the instance database first."
        )
    store = PostgresStore(database.pool, database.dsn)
    await store.ping()
    logger.info("stores on PostgreSQL")
    return store
