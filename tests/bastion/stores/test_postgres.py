"""PostgreSQL specifics: expired rows leave the tables, channel names are safe."""

from __future__ import annotations

import anyio

from bastion.db.database import Database
from bastion.stores import PostgresStore
from bastion.stores._listener import Listener


async def test_expired_rows_are_swept_from_the_tables(database: Database, ns: str) -> None:
    store = PostgresStore(database.pool, database.dsn)
    try:
        await store.set(ns + "k", b"v", ttl=0.05)
        await store.incr(ns + "c", ttl=0.05)
        await anyio.sleep(0.1)  # past the TTL; the sweep itself is what is tested
        store._swept_at = 0.0  # pyright: ignore[reportPrivateUsage]
        await store.set(ns + "other", b"v")
        async with database.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT (SELECT count(*) FROM bastion.store_kv WHERE key = %(k)s)"
                " + (SELECT count(*) FROM bastion.store_counters WHERE key = %(c)s)",
                {"k": ns + "k", "c": ns + "c"},
            )
            assert await cur.fetchone() == (0,)
            await conn.execute("DELETE FROM bastion.store_kv WHERE key = %s", (ns + "other",))
    finally:
        await store.close()


def test_channel_names_become_fixed_length_identifiers() -> None:
    long_name = Listener.channel_name("x" * 500 + '"; DROP TABLE t; --')
    assert long_name.startswith("bastion_")
    assert len(long_name) == 48
    assert long_name.replace("_", "").isalnum()
    assert Listener.channel_name("a") != Listener.channel_name("b")
