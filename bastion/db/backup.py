"""`bastion db backup` and `bastion db restore`.

A backup is a tar archive (mode 0600) holding:

    manifest.json     format version, Bastion version, server version, time
    database.dump     `pg_dump --format=custom` of the instance database
    instance.key      the instance key: stored secrets are encrypted with it

The PostgreSQL tools are the wheel's (PostgreSQL 18), which dump and restore older
servers too. Restore refuses a non-empty database, or a home whose key differs from
the backup's, unless `force` is given; it never runs under a live supervisor.
"""

from __future__ import annotations

import functools
import io
import json
import logging
import os
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from bastion import __version__
from bastion.db.database import Database, describe_dsn
from bastion.db.embedded import DATABASE, pg_tool
from bastion.errors import BackupError, ConfigError
from bastion.home import Home

__all__ = ["backup", "restore"]

logger = logging.getLogger(__name__)

FORMAT = 1
_SYSTEM_SCHEMAS = ("pg_catalog", "information_schema", "pg_toast")


def _run(argv: list[str], what: str, timeout: float = 3600) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env, check=False)
    except subprocess.TimeoutExpired:
        raise BackupError(f"{what} did not finish within {timeout:.0f} s") from None
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines()
        raise BackupError(f"{what} failed: {' | '.join(lines[-3:]) or f'exit {done.returncode}'}")


async def backup(database: Database, target: Path) -> dict[str, Any]:
    """Write a backup archive of the instance to `target`; return its manifest."""
    dsn = await database.resolve()
    key = database.home.instance_key(create=True)
    return await anyio.to_thread.run_sync(functools.partial(_backup, dsn, key, target))


def _backup(dsn: str, key: bytes, target: Path) -> dict[str, Any]:
    target = target.expanduser().absolute()
    if target.is_dir():
        raise ConfigError(f"{target} is a folder; give a file name such as {target / 'bastion.backup'}")
    if not target.parent.is_dir():
        raise ConfigError(f"{target.parent} does not exist; create it or choose another place for the backup")
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute("SELECT current_setting('server_version')").fetchone()
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "bastion_version": __version__,
        "server_version": row[0] if row else "unknown",
        "database": describe_dsn(dsn),
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    with tempfile.TemporaryDirectory(prefix="bastion-backup-") as tmp:
        dump = Path(tmp) / "database.dump"
        pg_dump = [pg_tool("pg_dump"), "--format=custom", "--no-owner", "--no-privileges", "-f", str(dump)]
        _run([*pg_dump, "-d", dsn], "pg_dump")
        partial = target.with_name(f".{target.name}.partial")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w") as archive:
            _add_bytes(archive, "manifest.json", json.dumps(manifest, indent=2).encode())
            archive.add(dump, arcname="database.dump")
            _add_bytes(archive, "instance.key", key)
        partial.replace(target)  # a crash never leaves a truncated file under the real name
    manifest["size_bytes"] = target.stat().st_size
    return manifest


def _add_bytes(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o600
    info.mtime = int(time.time())
    archive.addfile(info, io.BytesIO(data))


def _read_archive(source: Path, into: Path) -> tuple[dict[str, Any], bytes]:
    try:
        with tarfile.open(source, mode="r") as archive:
            names = set(archive.getnames())
            missing = {"manifest.json", "database.dump", "instance.key"} - names
            if missing:
                raise BackupError(f"{source} is not a Bastion backup: it lacks {', '.join(sorted(missing))}")
            wanted = [archive.getmember(n) for n in ("manifest.json", "database.dump", "instance.key")]
            archive.extractall(into, members=wanted, filter="data")
    except (tarfile.TarError, OSError) as exc:
        raise BackupError(f"cannot read {source} as a Bastion backup ({exc})") from None
    manifest = json.loads((into / "manifest.json").read_text())
    if manifest.get("format") != FORMAT:
        raise BackupError(
            f"{source} has backup format {manifest.get('format')}; this Bastion reads format {FORMAT}"
        )
    return manifest, (into / "instance.key").read_bytes()


def _user_objects(dsn: str) -> int:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relkind IN ('r','p','v','m','S') AND n.nspname <> ALL(%s) "
            "AND n.nspname NOT LIKE 'pg_temp%%'",
            (list(_SYSTEM_SCHEMAS),),
        ).fetchone()
    return int(row[0]) if row else 0


def _recreate_database(dsn: str) -> None:
    info = conninfo_to_dict(dsn)
    name = str(info.get("dbname") or DATABASE)
    info["dbname"] = "postgres"
    maintenance = make_conninfo(**{k: str(v) for k, v in info.items() if v is not None})
    try:
        with psycopg.connect(maintenance, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    except psycopg.Error as exc:
        raise BackupError(
            f"cannot recreate database {name!r} for a forced restore ({str(exc).strip()}). "
            "Drop and recreate it yourself, then restore without --force."
        ) from None


async def restore(database: Database, source: Path, *, force: bool = False) -> dict[str, Any]:
    """Restore a backup archive into this instance; return the backup's manifest."""
    from bastion.supervisor import read_state

    home: Home = database.home
    running = read_state(home)
    if running is not None:
        raise BackupError(
            f"Bastion is running for {home.path} (supervisor pid {running['pid']}). Stop it, then restore."
        )
    source = Path(await (await anyio.Path(source).expanduser()).absolute())
    if not await anyio.Path(source).is_file():
        raise ConfigError(f"{source}: no such backup file")
    dsn = await database.resolve()
    return await anyio.to_thread.run_sync(functools.partial(_restore, home, dsn, source, force))


def _restore(home: Home, dsn: str, source: Path, force: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bastion-restore-") as tmp:
        manifest, key = _read_archive(source, Path(tmp))
        objects = _user_objects(dsn)
        if objects and not force:
            raise BackupError(
                f"the database {describe_dsn(dsn)} is not empty ({objects} tables, views or sequences). "
                "Restoring would mix two instances: use --force to replace everything in it."
            )
        try:
            current = home.instance_key()
        except ConfigError:
            current = None
        if current is not None and current != key and not force:
            raise BackupError(
                f"{home.key_file} differs from the backup's instance key; secrets in the backup would not "
                "decrypt with it. Use --force to replace the key with the backup's."
            )
        if objects:
            _recreate_database(dsn)
        pg_restore = [pg_tool("pg_restore"), "--no-owner", "--no-privileges", "--exit-on-error"]
        _run([*pg_restore, "--single-transaction", "-d", dsn, str(Path(tmp) / "database.dump")], "pg_restore")
        _write_key(home, key)
    logger.info(
        "restored %s (made %s by Bastion %s)", source, manifest["created_at"], manifest["bastion_version"]
    )
    return manifest


def _write_key(home: Home, key: bytes) -> None:
    home.ensure()
    tmp = home.key_file.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key)
        handle.flush()
        os.fsync(handle.fileno())
    tmp.replace(home.key_file)
