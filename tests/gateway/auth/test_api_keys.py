"""Key format, hashing and the key table."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest

from bastion.db.database import Database
from gateway.auth import ApiKeyStore, ApiKeyUsageError, KeyHasher, generate_key, parse_key


def test_a_generated_key_parses_back_into_its_id_and_secret() -> None:
    fresh = generate_key()
    key = f"bst_{fresh.id}_{fresh.secret}"
    assert len(fresh.id) == 12 and len(fresh.secret) == 43
    assert parse_key(key) == fresh


@pytest.mark.parametrize(
    "token",
    [
        "",
        "bst_",
        "bst_0123456789ab",
        "bst_0123456789ab_short",
        "bst_0123456789AB_" + "a" * 43,  # the id is lowercase hex
        "bst_0123456789ab_" + "a" * 42 + "!",
        "xyz_0123456789ab_" + "a" * 43,
        "bst_0123456789ab_" + "a" * 43 + "\n",
    ],
)
def test_malformed_keys_do_not_parse(token: str) -> None:
    assert parse_key(token) is None


def test_the_hash_is_keyed_and_bound_to_the_key_id() -> None:
    fresh = generate_key()
    hasher = KeyHasher(b"k" * 32)
    stored = hasher.hash(fresh.id, fresh.secret)
    assert hasher.matches(fresh.id, fresh.secret, stored)
    assert not hasher.matches("ffffffffffff", fresh.secret, stored)
    assert not KeyHasher(b"x" * 32).matches(fresh.id, fresh.secret, stored)
    assert stored != hashlib.sha256(fresh.secret.encode()).digest()


@pytest.mark.parametrize(
    ("name", "roles", "tenant", "fragment"),
    [
        ("", ("viewer",), "default", "key name ''"),
        ("bad\nname", ("viewer",), "default", "key name"),
        ("ok", (), "default", "at least one role"),
        ("ok", ("Admin",), "default", "role 'Admin'"),
        ("ok", ("viewer",), "Acme Corp", "tenant 'Acme Corp'"),
    ],
)
async def test_creating_a_key_with_bad_fields_names_the_field(
    keys: ApiKeyStore, name: str, roles: tuple[str, ...], tenant: str, fragment: str
) -> None:
    with pytest.raises(ApiKeyUsageError, match=fragment):
        await keys.create(name, roles, tenant=tenant)


async def test_only_a_keyed_hash_of_the_secret_is_stored(keys: ApiKeyStore, gateway_db: Database) -> None:
    created = await keys.create("hash-check", ("analyst",), tenant="acme")
    parsed = parse_key(created.key)
    assert parsed is not None and parsed.id == created.record.id
    async with gateway_db.pool.connection() as conn:
        cur = await conn.execute(
            "SELECT t::text, secret_hash FROM gateway.api_keys t WHERE id = %s", (parsed.id,)
        )
        row = await cur.fetchone()
    assert row is not None
    as_text, secret_hash = row
    assert parsed.secret not in as_text and parsed.secret.encode().hex() not in as_text
    assert bytes(secret_hash) == keys.hasher.hash(parsed.id, parsed.secret)


async def test_keys_are_listed_with_roles_tenant_and_status(keys: ApiKeyStore) -> None:
    active = await keys.create("lister", ("analyst", "viewer"), tenant="acme")
    expired = await keys.create("old", ("viewer",), expires_at=datetime.now(UTC) - timedelta(seconds=1))
    revoked = await keys.create("gone", ("viewer",))
    await keys.revoke(revoked.record.id)
    now = datetime.now(UTC)
    by_id = {record.id: record for record in await keys.list()}
    assert by_id[active.record.id].roles == ("analyst", "viewer")
    assert by_id[active.record.id].tenant == "acme"
    assert by_id[active.record.id].status(now) == "active"
    assert by_id[expired.record.id].status(now) == "expired"
    assert by_id[revoked.record.id].status(now) == "revoked"
    listed = by_id[revoked.record.id].to_json(now)
    assert listed["status"] == "revoked" and listed["revoked_at"] is not None
    assert "secret_hash" not in listed and "key" not in listed


async def test_revoking_is_idempotent_and_an_unknown_id_is_a_clear_error(keys: ApiKeyStore) -> None:
    created = await keys.create("twice", ("viewer",))
    first = await keys.revoke(created.record.id)
    second = await keys.revoke(created.record.id)
    assert first.revoked_at is not None and second.revoked_at == first.revoked_at
    with pytest.raises(ApiKeyUsageError, match="bastion keys list"):
        await keys.revoke("000000000000")


async def test_use_is_recorded_at_most_once_a_minute(keys: ApiKeyStore) -> None:
    created = await keys.create("toucher", ("viewer",))
    await keys.touch(created.record.id)
    first = await keys.get(created.record.id)
    await keys.touch(created.record.id)
    second = await keys.get(created.record.id)
    assert first is not None and second is not None
    assert first.last_used_at is not None and second.last_used_at == first.last_used_at
