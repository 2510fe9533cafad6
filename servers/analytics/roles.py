"""Reader roles on the embedded database: one NOLOGIN role per set of datasets read.

A query runs as a role granted SELECT on exactly the dataset tables it names and
nothing else: no catalog table of ours, no other dataset, no file-reading or
server-level privilege. Roles are made on first use and recorded in
`analytics.reader_roles`, so a reloaded dataset's new table is granted to every role
that reads it, and a dropped dataset takes its roles with it.

Roles are cluster-wide objects, so a name hashes the database and the dataset set.
A database restored into another cluster arrives without them (a dump holds no roles
or grants): each is made again on its first use there, the base reader included, and
the catalog's rows for roles that are gone are passed over.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from typing import Any

from psycopg import AsyncConnection, sql

from servers.analytics.migrations import BASE_READER, CATALOG_SCHEMA, DATA_SCHEMA

__all__ = ["ReaderRoles", "drop_roles_reading", "grant_to_roles_reading"]

logger = logging.getLogger(__name__)


def _role_name(database: str, datasets: tuple[str, ...]) -> str:
    digest = hashlib.sha256("\x1f".join((database, *datasets)).encode()).hexdigest()[:24]
    return f"bastion_ar_{digest}"


class ReaderRoles:
    """The role of a query that reads `datasets`; creates it on first use."""

    def __init__(self) -> None:
        self._known: set[str] = set()

    def cached(self, database: str, datasets: Iterable[str]) -> str | None:
        """The role for `datasets` if this process made or checked it already."""
        names = tuple(sorted(set(datasets)))
        role = _role_name(database, names) if names else BASE_READER
        return role if role in self._known else None

    def forget(self, role: str) -> None:
        self._known.discard(role)

    async def role_for(self, conn: AsyncConnection[Any], datasets: Iterable[str]) -> str:
        names = tuple(sorted(set(datasets)))
        role = _role_name(conn.info.dbname, names) if names else BASE_READER
        if role not in self._known:
            await self._ensure(conn, role, names)
            self._known.add(role)
        return role

    async def _ensure(self, conn: AsyncConnection[Any], role: str, names: tuple[str, ...]) -> None:
        ident = sql.Identifier(role)
        async with conn.transaction():
            # Two processes may meet here for the same set: the lock makes one wait.
            await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (role,))
            cur = await conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,))
            if await cur.fetchone() is None:
                # The lock is this database's; the base reader is shared with the cluster's others.
                await conn.execute(
                    sql.SQL(
                        "DO $$ BEGIN CREATE ROLE {} NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT "
                        "NOREPLICATION; EXCEPTION WHEN duplicate_object THEN NULL; END $$"
                    ).format(ident)
                )
                logger.info("created reader role %s for %s", role, ", ".join(names) or "no dataset")
            await conn.execute(
                sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(sql.Identifier(DATA_SCHEMA), ident)
            )
            if not names:
                return  # the base reader reads no table
            tables = sql.SQL(", ").join(sql.Identifier(DATA_SCHEMA, n) for n in names)
            await conn.execute(sql.SQL("GRANT SELECT ON {} TO {}").format(tables, ident))
            await conn.execute(
                sql.SQL(
                    "INSERT INTO {}.reader_roles (role, datasets) VALUES (%s, %s) "
                    "ON CONFLICT (role) DO NOTHING"
                ).format(sql.Identifier(CATALOG_SCHEMA)),
                (role, list(names)),
            )


async def _roles_reading(conn: AsyncConnection[Any], dataset: str) -> list[str]:
    """The roles that read `dataset` and exist in this cluster."""
    cur = await conn.execute(
        sql.SQL(
            "SELECT r.role FROM {}.reader_roles r JOIN pg_roles p ON p.rolname = r.role "
            "WHERE r.datasets @> ARRAY[%s]::text[]"
        ).format(sql.Identifier(CATALOG_SCHEMA)),
        (dataset,),
    )
    return [str(r[0]) for r in await cur.fetchall()]


async def grant_to_roles_reading(conn: AsyncConnection[Any], dataset: str) -> None:
    """Grant a (re)created dataset table to every role that reads it; inside the caller's transaction."""
    for role in await _roles_reading(conn, dataset):
        await conn.execute(
            sql.SQL("GRANT SELECT ON {} TO {}").format(
                sql.Identifier(DATA_SCHEMA, dataset), sql.Identifier(role)
            )
        )


async def drop_roles_reading(conn: AsyncConnection[Any], dataset: str) -> list[str]:
    """Drop every role that reads `dataset`; inside the caller's transaction, after its table is gone."""
    roles = await _roles_reading(conn, dataset)
    for role in roles:
        ident = sql.Identifier(role)
        await conn.execute(sql.SQL("DROP OWNED BY {}").format(ident))
        await conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(ident))
    await conn.execute(
        sql.SQL("DELETE FROM {}.reader_roles WHERE datasets @> ARRAY[%s]::text[]").format(
            sql.Identifier(CATALOG_SCHEMA)
        ),
        (dataset,),
    )
    return roles
