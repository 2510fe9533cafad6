"""Ordered, recorded, idempotent migrations that two processes can run at once."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import anyio
import pytest
from psycopg import AsyncConnection

from bastion.db.database import Database
from bastion.db.migrations import Migration, MigrationSet, apply_migrations, migration_status
from bastion.errors import ConfigError, MigrationError


def _component() -> str:
    return "t_" + uuid.uuid4().hex[:10]


async def test_migrations_apply_in_order_once_and_are_recorded(database: Database) -> None:
    name = _component()
    mset = MigrationSet(
        name,
        name,
        (
            Migration("0001_table", f"CREATE TABLE {name}.items (id int PRIMARY KEY)"),
            Migration("0002_column", f"ALTER TABLE {name}.items ADD COLUMN label text"),
        ),
    )
    async with await database.connect() as conn:
        assert await apply_migrations(conn, [mset]) == [f"{name}/0001_table", f"{name}/0002_column"]
        assert await apply_migrations(conn, [mset]) == []
        states = await migration_status(conn, [mset])
        assert [s.id for s in states] == ["0001_table", "0002_column"]
        assert all(s.applied and s.checksum_ok for s in states)
        await conn.execute(f"INSERT INTO {name}.items VALUES (1, 'x')")


async def test_a_failing_migration_applies_nothing_of_itself_and_stops_the_rest(database: Database) -> None:
    name = _component()
    mset = MigrationSet(
        name,
        name,
        (
            Migration("0001_ok", f"CREATE TABLE {name}.a (id int)"),
            Migration("0002_bad", f"CREATE TABLE {name}.b (id int); SELECT * FROM {name}.missing"),
            Migration("0003_after", f"CREATE TABLE {name}.c (id int)"),
        ),
    )
    async with await database.connect() as conn:
        with pytest.raises(MigrationError, match=f"{name}/0002_bad failed"):
            await apply_migrations(conn, [mset])
        states = {s.id: s.applied for s in await migration_status(conn, [mset])}
        assert states == {"0001_ok": True, "0002_bad": False, "0003_after": False}
        cur = await conn.execute("SELECT to_regclass(%s)", (f"{name}.b",))
        assert await cur.fetchone() == (None,)


async def test_python_migrations_get_the_connection(database: Database) -> None:
    name = _component()

    async def seed(conn: AsyncConnection) -> None:  # type: ignore[type-arg]
        await conn.execute(f"CREATE TABLE {name}.seeded AS SELECT 42 AS answer")

    async with await database.connect() as conn:
        await apply_migrations(conn, [MigrationSet(name, name, (Migration("0001_seed", run=seed),))])
        cur = await conn.execute(f"SELECT answer FROM {name}.seeded")
        assert await cur.fetchone() == (42,)


async def test_concurrent_migrators_in_one_process_apply_each_migration_once(database: Database) -> None:
    name = _component()
    mset = MigrationSet(name, name, (Migration("0001", f"CREATE TABLE {name}.once (id int)"),))
    results: list[list[str]] = []

    async def run() -> None:
        async with await database.connect() as conn:
            results.append(await apply_migrations(conn, [mset]))

    async with anyio.create_task_group() as tg:
        for _ in range(5):
            tg.start_soon(run)
    assert sorted(len(r) for r in results) == [0, 0, 0, 0, 1]


def test_two_processes_starting_at_once_apply_each_migration_once(shared_home: Path) -> None:
    name = _component()
    script = textwrap.dedent(
        f"""
        import anyio
        from bastion.db.database import Database
        from bastion.db.migrations import Migration, MigrationSet
        from bastion.settings import Settings
        mset = MigrationSet({name!r}, {name!r}, tuple(
            Migration(f"{{i:04d}}", f"CREATE TABLE {name}.t{{i}} (id int); SELECT pg_sleep(0.02)")
            for i in range(10)))
        async def main():
            db = Database(Settings(home={str(shared_home)!r}, database_url=None, redis_url=None))
            print(len(await db.migrate([mset])), flush=True)
            await db.close(release_embedded=False)
        anyio.run(main)
        """
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True) for _ in range(2)
    ]
    outputs = [p.communicate(timeout=120)[0].strip() for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    assert sorted(int(o) for o in outputs) == [0, 10]


def test_a_migration_set_rejects_unsafe_names_and_duplicates() -> None:
    with pytest.raises(ConfigError, match="must match"):
        MigrationSet("bad-name", "x")
    with pytest.raises(ConfigError, match="twice"):
        MigrationSet("ok", "ok", (Migration("1", "SELECT 1"), Migration("1", "SELECT 2")))
