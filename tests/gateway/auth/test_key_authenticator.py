"""ApiKeyAuthenticator against the real key table, the store's pub/sub and its cache."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import anyio
import pytest

from bastion.db.database import Database
from bastion.stores import Store
from gateway.auth import (
    ApiKeyAuthenticator,
    ApiKeyStore,
    AuthFailure,
    AuthUnavailableError,
    Principal,
    StoredKey,
)


class CountingKeyStore(ApiKeyStore):
    """The real store, counting the lookups that reach the database."""

    lookups = 0

    async def lookup(self, key_id: str) -> StoredKey | None:
        self.lookups += 1
        return await super().lookup(key_id)


@pytest.fixture
def counting(gateway_db: Database, instance_key: bytes) -> CountingKeyStore:
    return CountingKeyStore(gateway_db.pool, instance_key)


def bearer(key: str) -> str:
    return f"Bearer {key}"


async def test_a_valid_key_yields_its_principal_with_roles_tenant_and_key_id(keys: ApiKeyStore) -> None:
    created = await keys.create("ci-bot", ("analyst", "viewer"), tenant="acme")
    async with ApiKeyAuthenticator(keys) as auth:
        principal = await auth.authenticate(bearer(created.key), "127.0.0.1")
    assert principal == Principal("ci-bot", "acme", ("analyst", "viewer"), (), "api_key", created.record.id)


async def test_the_bearer_scheme_is_case_insensitive(keys: ApiKeyStore) -> None:
    created = await keys.create("scheme", ("viewer",))
    async with ApiKeyAuthenticator(keys) as auth:
        assert await auth.authenticate(f"bearer {created.key}", None) is not None


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (None, "missing"),
        ("", "missing"),
        ("Basic dXNlcjpwYXNz", "malformed"),
        ("Bearer", "malformed"),
        ("Bearer eyJhbGciOiJIUzI1NiJ9.e30.x", "unsupported"),
        ("Bearer bst_nothex_" + "a" * 43, "malformed"),
        ("Bearer bst_0123456789ab_tooshort", "malformed"),
        ("Bearer bst_000000000000_" + "a" * 43, "unknown"),
    ],
)
async def test_missing_foreign_malformed_and_unknown_keys_are_refused(
    keys: ApiKeyStore, header: str | None, reason: str
) -> None:
    async with ApiKeyAuthenticator(keys) as auth:
        result = await auth.verify(header, "127.0.0.1")
        assert await auth.authenticate(header, "127.0.0.1") is None
    assert isinstance(result, AuthFailure) and result.reason == reason


async def test_a_wrong_secret_for_a_real_id_is_refused_like_an_unknown_key(keys: ApiKeyStore) -> None:
    created = await keys.create("victim", ("admin",))
    forged = created.key[: -len("x" * 43)] + "x" * 43
    async with ApiKeyAuthenticator(keys) as auth:
        assert await auth.authenticate(bearer(created.key), None) is not None  # cached now
        result = await auth.verify(bearer(forged), None)
    assert isinstance(result, AuthFailure) and result.reason == "unknown"


async def test_expired_and_revoked_keys_are_refused_only_with_their_secret(keys: ApiKeyStore) -> None:
    old = await keys.create("old", ("viewer",), expires_at=datetime.now(UTC) - timedelta(seconds=1))
    gone = await keys.create("gone", ("viewer",))
    await keys.revoke(gone.record.id)
    async with ApiKeyAuthenticator(keys) as auth:
        expired = await auth.verify(bearer(old.key), None)
        revoked = await auth.verify(bearer(gone.key), None)
        guessed = await auth.verify(bearer(gone.key[:-1] + ("A" if gone.key[-1] != "A" else "B")), None)
    assert isinstance(expired, AuthFailure) and expired.reason == "expired"
    assert isinstance(revoked, AuthFailure) and revoked.reason == "revoked"
    assert isinstance(guessed, AuthFailure) and guessed.reason == "unknown"


async def test_repeated_calls_are_served_from_the_cache(counting: CountingKeyStore) -> None:
    created = await counting.create("hot", ("viewer",))
    unknown = "Bearer bst_000000000000_" + "a" * 43
    async with ApiKeyAuthenticator(counting) as auth:
        for _ in range(50):
            assert await auth.authenticate(bearer(created.key), None) is not None
            assert await auth.authenticate(unknown, None) is None
    assert counting.lookups == 2


async def test_a_flood_of_made_up_keys_never_pushes_a_real_key_out(counting: CountingKeyStore) -> None:
    created = await counting.create("steady", ("viewer",))
    async with ApiKeyAuthenticator(counting, cache_max_entries=20) as auth:
        assert await auth.authenticate(bearer(created.key), None) is not None
        for n in range(100):  # five times the cache, each a new id
            made_up = f"Bearer bst_{n:012d}_" + "a" * 43
            assert await auth.authenticate(made_up, None) is None
        before = counting.lookups
        assert await auth.authenticate(bearer(created.key), None) is not None
        assert counting.lookups == before  # still cached
        assert len(auth.cache) == 1 + 2  # the real key, and unknown ids up to a tenth of the cache
    assert counting.lookups == 101


async def test_concurrent_first_calls_share_one_lookup(counting: CountingKeyStore) -> None:
    created = await counting.create("burst", ("viewer",))
    async with ApiKeyAuthenticator(counting) as auth:
        results = await asyncio.gather(*(auth.authenticate(bearer(created.key), None) for _ in range(20)))
    assert all(result is not None for result in results)
    assert counting.lookups == 1


async def test_an_expired_cache_entry_is_looked_up_again(counting: CountingKeyStore) -> None:
    created = await counting.create("ttl", ("viewer",))
    async with ApiKeyAuthenticator(counting, cache_ttl=0) as auth:
        await auth.authenticate(bearer(created.key), None)
        await counting.revoke(created.record.id)
        assert await auth.authenticate(bearer(created.key), None) is None
    assert counting.lookups == 2


async def test_revocation_reaches_another_authenticator_within_a_second(
    gateway_db: Database, instance_key: bytes, pubsub: Store
) -> None:
    admin = ApiKeyStore(gateway_db.pool, instance_key, publisher=pubsub)
    created = await admin.create("revoke-me", ("analyst",))
    other = ApiKeyStore(gateway_db.pool, instance_key)
    # A long TTL: only the pub/sub message can make the second instance forget the key.
    async with ApiKeyAuthenticator(other, store=pubsub, cache_ttl=3600) as remote:
        assert await remote.authenticate(bearer(created.key), None) is not None
        await admin.revoke(created.record.id)
        with anyio.fail_after(1.0):
            while await remote.authenticate(bearer(created.key), None) is not None:
                await asyncio.sleep(0.01)
        result = await remote.verify(bearer(created.key), None)
    assert isinstance(result, AuthFailure) and result.reason == "revoked"


async def test_last_used_is_recorded_in_the_background_once(keys: ApiKeyStore) -> None:
    created = await keys.create("used", ("viewer",))
    async with ApiKeyAuthenticator(keys) as auth:
        for _ in range(5):
            await auth.authenticate(bearer(created.key), None)
    # Leaving the block waits for background writes.
    record = await keys.get(created.record.id)
    assert record is not None and record.last_used_at is not None


async def test_a_database_outage_is_an_error_not_a_refusal(gateway_db: Database, instance_key: bytes) -> None:
    from psycopg_pool import AsyncConnectionPool

    pool = AsyncConnectionPool(gateway_db.dsn, min_size=0, max_size=1, open=False, timeout=2)
    await pool.open()
    await pool.close()
    auth = ApiKeyAuthenticator(ApiKeyStore(pool, instance_key))
    with pytest.raises(AuthUnavailableError, match="cannot read API keys"):
        await auth.authenticate("Bearer bst_000000000000_" + "a" * 43, None)
    await auth.aclose()
