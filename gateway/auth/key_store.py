"""`ApiKeyStore`: API keys in the gateway's `gateway.api_keys` table.

Creating, listing and revoking keys (the CLI) and looking them up (the
authenticator) go through here. Revoking publishes the key id on
`REVOCATION_CHANNEL` of the instance store, so every gateway process drops the key
from its cache at once instead of when the cache entry expires.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from bastion.errors import StoreError
from bastion.stores import Store
from gateway.auth.api_keys import (
    KEY_PREFIX,
    ApiKeyRecord,
    KeyHasher,
    NewApiKey,
    generate_key,
    validate_key_fields,
)
from gateway.auth.errors import ApiKeyUsageError, AuthUnavailableError

__all__ = ["REVOCATION_CHANNEL", "ApiKeyStore", "StoredKey"]

logger = logging.getLogger(__name__)

REVOCATION_CHANNEL = "gateway.api_keys.revoked"
# last_used_at is advisory: one write per key per minute is plenty.
TOUCH_INTERVAL_S = 60

_COLUMNS = "id, name, tenant, roles, created_at, expires_at, last_used_at, revoked_at"


@dataclass(frozen=True, slots=True)
class StoredKey:
    record: ApiKeyRecord
    secret_hash: bytes


def _record(row: tuple[Any, ...]) -> ApiKeyRecord:
    return ApiKeyRecord(row[0], row[1], row[2], tuple(row[3]), row[4], row[5], row[6], row[7])


class ApiKeyStore:
    """Key rows on the instance database; `publisher` announces revocations."""

    def __init__(
        self,
        pool: AsyncConnectionPool[AsyncConnection[Any]],
        instance_key: bytes,
        *,
        publisher: Store | None = None,
    ) -> None:
        self.pool = pool
        self.hasher = KeyHasher(instance_key)
        self.publisher = publisher

    async def create(
        self,
        name: str,
        roles: tuple[str, ...],
        *,
        tenant: str = "default",
        expires_at: datetime | None = None,
    ) -> NewApiKey:
        """Store a new key and return it with its secret, which is not kept."""
        validate_key_fields(name, roles, tenant)
        for _ in range(3):  # a 48-bit id collision is rare; retry instead of failing
            fresh = generate_key()
            secret_hash = self.hasher.hash(fresh.id, fresh.secret)
            try:
                async with self.pool.connection() as conn:
                    cur = await conn.execute(
                        f"INSERT INTO gateway.api_keys (id, name, tenant, roles, secret_hash, expires_at) "
                        f"VALUES (%s, %s, %s, %s, %s, %s) RETURNING {_COLUMNS}",
                        (fresh.id, name, tenant, list(roles), secret_hash, expires_at),
                    )
                    row = await cur.fetchone()
            except psycopg.errors.UniqueViolation:
                continue
            assert row is not None
            logger.info("API key %s created for %r with roles %s", fresh.id, name, ",".join(roles))
            return NewApiKey(_record(row), f"{KEY_PREFIX}{fresh.id}_{fresh.secret}")
        raise AuthUnavailableError("could not pick an unused API key id after 3 tries; try again")

    async def list(self) -> list[ApiKeyRecord]:
        async with self.pool.connection() as conn:
            cur = await conn.execute(f"SELECT {_COLUMNS} FROM gateway.api_keys ORDER BY created_at, id")
            return [_record(row) for row in await cur.fetchall()]

    async def get(self, key_id: str) -> ApiKeyRecord | None:
        found = await self.lookup(key_id)
        return None if found is None else found.record

    async def lookup(self, key_id: str) -> StoredKey | None:
        """The row and hash of one key; AuthUnavailableError when the database fails."""
        try:
            async with self.pool.connection() as conn:
                cur = await conn.execute(
                    f"SELECT {_COLUMNS}, secret_hash FROM gateway.api_keys WHERE id = %s", (key_id,)
                )
                row = await cur.fetchone()
        except (psycopg.Error, OSError) as exc:
            raise AuthUnavailableError(f"cannot read API keys from the database: {exc}") from exc
        return None if row is None else StoredKey(_record(row), bytes(row[8]))

    async def revoke(self, key_id: str) -> ApiKeyRecord:
        """Revoke a key (idempotent) and tell every gateway process to drop it."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                f"UPDATE gateway.api_keys SET revoked_at = coalesce(revoked_at, now()) "
                f"WHERE id = %s RETURNING {_COLUMNS}",
                (key_id,),
            )
            row = await cur.fetchone()
        if row is None:
            raise ApiKeyUsageError(f"no API key has id {key_id!r}; `bastion keys list` shows the ids")
        logger.info("API key %s revoked", key_id)
        await self.announce_revocation(key_id)
        return _record(row)

    async def announce_revocation(self, key_id: str) -> None:
        """Publish a revocation; a failure is logged, as cache expiry still applies it."""
        if self.publisher is None:
            return
        try:
            await self.publisher.publish(REVOCATION_CHANNEL, key_id.encode())
        except StoreError as exc:
            logger.warning(
                "revoked key %s but could not announce it (%s); gateways drop it when their cache expires",
                key_id,
                exc,
            )

    async def touch(self, key_id: str) -> None:
        """Record a use, at most once a minute per key across processes."""
        async with self.pool.connection() as conn:
            await conn.execute(
                "UPDATE gateway.api_keys SET last_used_at = now() WHERE id = %s "
                "AND (last_used_at IS NULL OR last_used_at < now() - make_interval(secs => %s))",
                (key_id, TOUCH_INTERVAL_S),
            )
