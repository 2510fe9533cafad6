"""The instance database: embedded by default, external with `DATABASE_URL`.

`Database` resolves where PostgreSQL is (starting the embedded server when there is
no `DATABASE_URL`), checks that pgvector is available, applies migrations and hands
out an async connection pool. It travels through lifespan state, never as a global.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import anyio
import psycopg
from psycopg import AsyncConnection
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import AsyncConnectionPool

from bastion.db.embedded import EmbeddedPostgres
from bastion.db.migrations import MigrationSet, MigrationState, apply_migrations, migration_status
from bastion.errors import DatabaseError, PgvectorMissingError
from bastion.home import Home
from bastion.settings import Settings

__all__ = ["Database", "describe_dsn"]

logger = logging.getLogger(__name__)


def describe_dsn(dsn: str) -> str:
    """Host, port and database of a DSN, without credentials, for messages."""
    try:
        info = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "<unparseable DSN>"
    host = info.get("host") or "localhost"
    port = info.get("port") or "5432"
    return f"{host}:{port}/{info.get('dbname', '')}"


class Database:
    """Connection pool and lifecycle of the instance database."""

    def __init__(self, settings: Settings, *, home: Home | None = None) -> None:
        self.settings = settings
        self.home = home or Home(settings.home)
        self.embedded: EmbeddedPostgres | None = (
            EmbeddedPostgres(
                self.home,
                start_timeout=settings.startup_timeout,
                shared_buffers_mb=settings.embedded_shared_buffers_mb,
            )
            if settings.embedded_database
            else None
        )
        self._dsn: str | None = None
        self._pool: AsyncConnectionPool[AsyncConnection[Any]] | None = None

    @property
    def dsn(self) -> str:
        if self._dsn is None:
            raise DatabaseError("the database is not open yet: call `await db.open()` first")
        return self._dsn

    @property
    def pool(self) -> AsyncConnectionPool[AsyncConnection[Any]]:
        if self._pool is None:
            raise DatabaseError("the database is not open yet: call `await db.open()` first")
        return self._pool

    async def resolve(self) -> str:
        """Start or find the server and check it; return its DSN (no pool yet)."""
        if self._dsn is not None:
            return self._dsn
        if self.embedded is not None:
            dsn = await anyio.to_thread.run_sync(self.embedded.acquire)
        else:
            assert self.settings.database_url is not None
            dsn = self.settings.database_url.get_secret_value()
        async with await self._connect(dsn) as conn:
            await self._ensure_pgvector(conn, dsn)
        self._dsn = dsn
        return dsn

    async def open(self, *, migrations: Sequence[MigrationSet] = ()) -> None:
        """Resolve the server, apply `migrations`, then open the pool."""
        dsn = await self.resolve()
        if migrations:
            await self.migrate(migrations)
        pool: AsyncConnectionPool[AsyncConnection[Any]] = AsyncConnectionPool(
            dsn,
            min_size=self.settings.db_pool_min,
            max_size=self.settings.db_pool_max,
            kwargs={"autocommit": True},
            open=False,
            name="bastion",
            timeout=self.settings.db_connect_timeout,
        )
        try:
            await pool.open(wait=self.settings.db_pool_min > 0, timeout=self.settings.db_connect_timeout)
        except Exception as exc:
            await pool.close()
            raise DatabaseError(f"cannot open a connection pool to {describe_dsn(dsn)}: {exc}") from exc
        self._pool = pool

    async def close(self, *, release_embedded: bool = True) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
        if self.embedded is not None and self._dsn is not None and release_embedded:
            await anyio.to_thread.run_sync(self.embedded.release)
        self._dsn = None

    async def migrate(self, sets: Sequence[MigrationSet]) -> list[str]:
        async with await self._connect(await self.resolve()) as conn:
            return await apply_migrations(conn, sets)

    async def status(self, sets: Sequence[MigrationSet]) -> list[MigrationState]:
        async with await self._connect(await self.resolve()) as conn:
            return await migration_status(conn, sets)

    async def connect(self) -> AsyncConnection[Any]:
        """A dedicated autocommit connection outside the pool (LISTEN, long work)."""
        return await self._connect(await self.resolve())

    @asynccontextmanager
    async def session(self) -> AsyncGenerator[Database]:
        await self.open()
        try:
            yield self
        finally:
            await self.close()

    async def _connect(self, dsn: str) -> AsyncConnection[Any]:
        try:
            return await AsyncConnection.connect(
                dsn, autocommit=True, connect_timeout=max(1, int(self.settings.db_connect_timeout))
            )
        except psycopg.OperationalError as exc:
            where = "the embedded PostgreSQL" if self.embedded else f"DATABASE_URL ({describe_dsn(dsn)})"
            reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
            raise DatabaseError(
                f"cannot connect to {where}: {reason}. Check that the server runs and the URL is right."
            ) from None

    async def _ensure_pgvector(self, conn: AsyncConnection[Any], dsn: str) -> None:
        cur = await conn.execute(
            "SELECT current_setting('server_version'), "
            "EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'vector')"
        )
        row = await cur.fetchone()
        assert row is not None
        version, available = row
        if not available:
            raise PgvectorMissingError(
                f"DATABASE_URL points at PostgreSQL {version} ({describe_dsn(dsn)}), which has no pgvector "
                "extension. Install pgvector on that server (Debian: apt-get install "
                f"postgresql-{str(version).split('.')[0]}-pgvector) or unset DATABASE_URL to use the "
                "embedded PostgreSQL 18 with pgvector."
            )
        try:
            await conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        except psycopg.errors.InsufficientPrivilege:
            cur = await conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'vector'")
            if await cur.fetchone() is None:
                raise PgvectorMissingError(
                    f"pgvector is available on {describe_dsn(dsn)} but not enabled, and this role may "
                    "not enable it. Run `CREATE EXTENSION vector;` there as a superuser once."
                ) from None
