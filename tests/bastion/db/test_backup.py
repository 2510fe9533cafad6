"""Backup and restore with the wheel's PostgreSQL tools."""

from __future__ import annotations

import stat
from pathlib import Path

import psycopg
import pytest

from bastion.db.backup import backup, restore
from bastion.db.database import Database
from bastion.errors import BackupError, ConfigError
from bastion.home import Home
from bastion.settings import Settings


def _db(home: Path) -> Database:
    return Database(Settings(home=home, database_url=None, redis_url=None))  # type: ignore[arg-type]


async def _seeded_backup(home: Path, target: Path) -> bytes:
    db = _db(home)
    dsn = await db.resolve()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA demo; CREATE TABLE demo.notes (id int, body text, v vector(2))")
        conn.execute("INSERT INTO demo.notes VALUES (1, 'kept', '[1,2]'), (2, 'also', '[3,4]')")
    manifest = await backup(db, target)
    await db.close()
    assert manifest["server_version"].startswith("18")
    return Home(home).instance_key()


async def test_a_backup_restores_into_an_empty_home_with_its_data_and_key(
    home_path: Path, other_home: Path, tmp_path: Path
) -> None:
    archive = tmp_path / "instance.backup"
    key = await _seeded_backup(home_path, archive)
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600

    target = _db(other_home)
    await restore(target, archive)
    with psycopg.connect(await target.resolve(), autocommit=True) as conn:
        rows = conn.execute("SELECT id, body, v::text FROM demo.notes ORDER BY id").fetchall()
    await target.close()
    assert rows == [(1, "kept", "[1,2]"), (2, "also", "[3,4]")]
    assert Home(other_home).instance_key() == key


async def test_restore_over_a_non_empty_database_refuses_without_force_and_loses_nothing(
    home_path: Path, other_home: Path, tmp_path: Path
) -> None:
    archive = tmp_path / "instance.backup"
    await _seeded_backup(home_path, archive)
    target = _db(other_home)
    dsn = await target.resolve()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE precious (x int); INSERT INTO precious VALUES (7)")

    with pytest.raises(BackupError, match=r"not empty.*--force"):
        await restore(target, archive)
    with psycopg.connect(dsn, autocommit=True) as conn:
        assert conn.execute("SELECT x FROM precious").fetchall() == [(7,)]

    await restore(target, archive, force=True)
    with psycopg.connect(dsn, autocommit=True) as conn:
        assert conn.execute("SELECT to_regclass('precious')").fetchone() == (None,)
        assert conn.execute("SELECT count(*) FROM demo.notes").fetchone() == (2,)
    await target.close()


async def test_restore_refuses_a_file_that_is_not_a_backup(home_path: Path, tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.backup"
    bogus.write_text("not a tar archive")
    db = _db(home_path)
    with pytest.raises(BackupError, match=r"cannot read .* as a Bastion backup"):
        await restore(db, bogus)
    with pytest.raises(ConfigError, match="no such backup file"):
        await restore(db, tmp_path / "missing.backup")
    await db.close()


async def test_backup_to_a_folder_is_refused(home_path: Path, tmp_path: Path) -> None:
    db = _db(home_path)
    with pytest.raises(ConfigError, match="is a folder"):
        await backup(db, tmp_path)
    await db.close()
