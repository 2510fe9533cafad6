"""Ordered schema migrations, one list per component, recorded in a table.

Each component (the kernel, each server, the gateway) owns a schema and an ordered
tuple of migrations. Applied migrations are recorded in `bastion.schema_migrations`
with a checksum of their SQL; applying is idempotent and serialised across processes
by a PostgreSQL advisory lock, so two processes starting at once apply each
migration exactly once. A migration whose recorded checksum no longer matches its
source is reported, never silently re-applied.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
from psycopg import AsyncConnection, sql

from bastion.errors import ConfigError, MigrationError

__all__ = [
    "Migration",
    "MigrationSet",
    "MigrationState",
    "apply_migrations",
    "migration_status",
]

logger = logging.getLogger(__name__)

# Fixed key of the advisory lock that serialises migrations across processes.
ADVISORY_LOCK_KEY = 0x6261_7374_696F_6E00 & 0x7FFF_FFFF_FFFF_FFFF
_IDENT = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")

MigrationFn = Callable[[AsyncConnection[Any]], Awaitable[None]]


@dataclass(frozen=True)
class Migration:
    """One step: SQL text run in a transaction, or an async function given the connection."""

    id: str
    sql: str = ""
    run: MigrationFn | None = None

    def checksum(self) -> str:
        body = self.sql if self.run is None else f"{self.run.__module__}.{self.run.__qualname__}"
        return hashlib.sha256(body.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class MigrationSet:
    """The ordered migrations of one component, in the schema it owns."""

    component: str
    schema: str
    migrations: Sequence[Migration] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        for name in (self.component, self.schema):
            if not _IDENT.match(name):
                raise ConfigError(f"migration component or schema {name!r} must match {_IDENT.pattern}")
        ids = [m.id for m in self.migrations]
        if len(set(ids)) != len(ids):
            raise ConfigError(f"component {self.component!r} lists a migration id twice: {ids}")
        for m in self.migrations:
            if not m.sql and m.run is None:
                raise ConfigError(f"migration {self.component}/{m.id} has neither sql nor run")


@dataclass(frozen=True)
class MigrationState:
    component: str
    id: str
    applied_at: datetime | None
    checksum_ok: bool

    @property
    def applied(self) -> bool:
        return self.applied_at is not None


_BOOTSTRAP = """
CREATE SCHEMA IF NOT EXISTS bastion;
CREATE TABLE IF NOT EXISTS bastion.schema_migrations (
    component   text        NOT NULL,
    migration   text        NOT NULL,
    checksum    text        NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (component, migration)
);
"""


async def _recorded(conn: AsyncConnection[Any]) -> dict[tuple[str, str], tuple[str, datetime]]:
    cur = await conn.execute(
        "SELECT component, migration, checksum, applied_at FROM bastion.schema_migrations"
    )
    return {(r[0], r[1]): (r[2], r[3]) for r in await cur.fetchall()}


async def apply_migrations(conn: AsyncConnection[Any], sets: Iterable[MigrationSet]) -> list[str]:
    """Apply every pending migration in order; return the ids applied (`component/id`).

    `conn` must be in autocommit mode; each migration runs in its own transaction.
    """
    applied: list[str] = []
    await conn.execute("SELECT pg_advisory_lock(%s)", (ADVISORY_LOCK_KEY,))
    try:
        async with conn.transaction():
            await conn.execute(_BOOTSTRAP)
        done = await _recorded(conn)
        for mset in sets:
            for migration in mset.migrations:
                key = (mset.component, migration.id)
                if key in done:
                    if done[key][0] != migration.checksum():
                        logger.warning(
                            "migration %s/%s changed since it was applied; it is not re-run",
                            *key,
                        )
                    continue
                await _apply_one(conn, mset, migration)
                applied.append(f"{mset.component}/{migration.id}")
    finally:
        await conn.execute("SELECT pg_advisory_unlock(%s)", (ADVISORY_LOCK_KEY,))
    return applied


async def _apply_one(conn: AsyncConnection[Any], mset: MigrationSet, migration: Migration) -> None:
    logger.info("applying migration %s/%s", mset.component, migration.id)
    try:
        async with conn.transaction():
            await conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(mset.schema)))
            await conn.execute(
                sql.SQL("SET LOCAL search_path TO {}, public").format(sql.Identifier(mset.schema))
            )
            if migration.run is not None:
                await migration.run(conn)
            else:
                await conn.execute(migration.sql.encode())
            await conn.execute(
                "INSERT INTO bastion.schema_migrations (component, migration, checksum) VALUES (%s, %s, %s)",
                (mset.component, migration.id, migration.checksum()),
            )
    except psycopg.Error as exc:
        raise MigrationError(
            f"migration {mset.component}/{migration.id} failed: {str(exc).strip()}. "
            "Nothing from it was applied; fix the cause and run `bastion db migrate` again."
        ) from exc


async def migration_status(conn: AsyncConnection[Any], sets: Iterable[MigrationSet]) -> list[MigrationState]:
    """Every known migration with when it was applied (None if pending)."""
    cur = await conn.execute("SELECT to_regclass('bastion.schema_migrations') IS NOT NULL")
    row = await cur.fetchone()
    done = await _recorded(conn) if row and row[0] else {}
    states: list[MigrationState] = []
    for mset in sets:
        for migration in mset.migrations:
            rec = done.get((mset.component, migration.id))
            states.append(
                MigrationState(
                    component=mset.component,
                    id=migration.id,
                    applied_at=rec[1] if rec else None,
                    checksum_ok=rec is None or rec[0] == migration.checksum(),
                )
            )
    return states
