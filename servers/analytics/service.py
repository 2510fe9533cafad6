"""`AnalyticsService`: the operations behind the tools, for one running server.

It holds what outlives a request: the limits, the reader-role cache and the DSN
vault. Tools get it with `service_for(runtime)`; the CLI builds one over its own
`Database`. Every method takes the verified caller and applies its obligations.
"""

from __future__ import annotations

import difflib
import logging
import weakref
from collections.abc import AsyncGenerator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import AsyncConnection, sql

from bastion.caller import CallerContext
from bastion.db.database import Database
from servers.analytics import access
from servers.analytics.catalog import (
    DatasetRecord,
    SourceRecord,
    delete_dataset,
    get_dataset,
    get_source,
    save_source,
)
from servers.analytics.column_hints import UNDEFINED_COLUMN, with_known_columns
from servers.analytics.config import AnalyticsConfig
from servers.analytics.errors import (
    AccessDeniedError,
    LoadError,
    NotFoundError,
    QueryFailedError,
    QueryRefusedError,
    UnknownDatasetError,
    unknown_dataset,
)
from servers.analytics.guard import CheckedQuery, check_sql
from servers.analytics.loader import file_input, load_dataset
from servers.analytics.migrations import DATA_SCHEMA
from servers.analytics.names import check_name
from servers.analytics.readers import Input, Progress, ReadOptions, named_format
from servers.analytics.roles import ReaderRoles, drop_roles_reading
from servers.analytics.sandbox import Limits, QueryResult, execute
from servers.analytics.sources import connect_source, parse_dsn, probe_source, source_tables
from servers.analytics.vault import DsnVault

if TYPE_CHECKING:
    from bastion.mcp import ServerRuntime

__all__ = ["AnalyticsService", "configure", "service_for"]

logger = logging.getLogger(__name__)

# SQLSTATEs of SET ROLE naming a role another process has dropped since we cached it.
_ROLE_GONE = frozenset({"22023", "42704"})


class AnalyticsService:
    def __init__(self, database: Database, instance_key: bytes, home: Path, config: AnalyticsConfig) -> None:
        self.database = database
        self.home = home
        self.config = config
        self.roles = ReaderRoles()
        self.vault = DsnVault(instance_key)

    def limits(self, caller: CallerContext, max_rows: int | None) -> Limits:
        requested = self.config.max_rows if max_rows is None else max(0, min(max_rows, self.config.max_rows))
        cap = caller.row_limit(requested)
        return Limits(
            max_rows=requested if cap is None else cap,
            max_bytes=self.config.max_result_bytes,
            statement_timeout_ms=self.config.statement_timeout_ms,
            lock_timeout_ms=self.config.lock_timeout_ms,
            fetch_batch=self.config.fetch_batch,
        )

    # -- queries ------------------------------------------------------------------

    async def query(
        self,
        caller: CallerContext,
        text: str,
        params: Sequence[Any] | None = None,
        max_rows: int | None = 1000,
        source: str | None = None,
    ) -> QueryResult:
        checked = check_sql(text)
        return await self.run_checked(caller, checked, params, self.limits(caller, max_rows), source)

    async def run_checked(
        self,
        caller: CallerContext,
        checked: CheckedQuery,
        params: Sequence[Any] | None,
        limits: Limits,
        source: str | None,
    ) -> QueryResult:
        if source is not None:
            access.authorize_source(caller, source, checked.relations)
            async with self.source_connection(source) as conn:
                return await execute(conn, checked, params, limits, role=None)
        async with self.database.pool.connection() as conn:
            try:
                datasets = access.authorize_embedded(caller, checked.relations, None)
                # A cached role proves its datasets existed, and a drop takes their roles
                # along: only a cache miss (or a role gone since) costs a catalog lookup.
                role = self.roles.cached(conn.info.dbname, datasets)
                if role is None:
                    role = await self._role(conn, caller, checked, datasets)
            except UnknownDatasetError as exc:
                raise QueryRefusedError(await self._unknown(conn, caller, exc.name)) from None
            try:
                return await self._execute_as(conn, role, caller, checked, params, limits, datasets)
            except QueryFailedError as exc:
                if exc.sqlstate != UNDEFINED_COLUMN or not datasets:
                    raise
                raise await with_known_columns(conn, exc, datasets) from None

    async def _execute_as(
        self,
        conn: AsyncConnection[Any],
        role: str,
        caller: CallerContext,
        checked: CheckedQuery,
        params: Sequence[Any] | None,
        limits: Limits,
        datasets: list[str],
    ) -> QueryResult:
        try:
            return await execute(conn, checked, params, limits, role=role)
        except QueryFailedError as exc:
            if exc.sqlstate not in _ROLE_GONE or "role" not in exc.message:
                raise
            self.roles.forget(role)
            role = await self._role(conn, caller, checked, datasets)
            return await execute(conn, checked, params, limits, role=role)

    async def _role(
        self, conn: AsyncConnection[Any], caller: CallerContext, checked: CheckedQuery, datasets: list[str]
    ) -> str:
        if datasets:
            cur = await conn.execute("SELECT name FROM analytics.datasets WHERE name = ANY(%s)", (datasets,))
            access.authorize_embedded(caller, checked.relations, {str(r[0]) for r in await cur.fetchall()})
        return await self.roles.role_for(conn, datasets)

    # -- sources ------------------------------------------------------------------

    async def source_record(self, name: str) -> SourceRecord:
        async with self.database.pool.connection() as conn:
            record = await get_source(conn, name)
        if record is None:
            raise NotFoundError(f"no source named {name!r}; an admin registers one with register_source")
        return record

    @asynccontextmanager
    async def source_connection(self, name: str) -> AsyncGenerator[AsyncConnection[Any]]:
        record = await self.source_record(name)
        dsn = self.vault.open(name, record.sealed_dsn)
        conn = await connect_source(name, dsn, timeout_s=self.config.connect_timeout_s)
        try:
            yield conn
        finally:
            await conn.close()

    async def register_source(self, caller: CallerContext, name: str, dsn: str) -> dict[str, Any]:
        access.require_admin(caller, "register_source")
        check_name(name, "source")
        display = parse_dsn(dsn)
        conn = await connect_source(name, dsn, timeout_s=self.config.connect_timeout_s)
        try:
            probe = await probe_source(conn)
            tables = await source_tables(conn)
        finally:
            await conn.close()
        async with self.database.pool.connection() as conn:
            await save_source(conn, SourceRecord(name, self.vault.seal(name, dsn), display, caller.subject))
        for warning in probe["warnings"]:
            logger.warning("source %s (%s): %s", name, display, warning)
        logger.info("registered source %s (%s) as %s", name, display, probe["role"])
        return {
            "name": name,
            "server": display,
            "role": probe["role"],
            "server_version": probe["server_version"],
            "schemas": sorted({schema for schema, _, _ in tables}),
            "tables": len(tables),
            "warnings": probe["warnings"],
        }

    # -- datasets -----------------------------------------------------------------

    async def load(
        self,
        caller: CallerContext,
        name: str,
        *,
        path: str | None = None,
        content: str | None = None,
        fmt: str | None = None,
        column_types: dict[str, str] | None = None,
        read_options: ReadOptions | None = None,
        description: str | None = None,
        progress: Progress | None = None,
    ) -> DatasetRecord:
        check_name(name)
        if path is None and content is None:
            raise LoadError(
                "nothing to load: give `path` (a file on the server) or `content` (the data "
                "itself); an empty `content` counts as none"
            )
        if path is not None and content is not None:
            raise LoadError(
                "give exactly one of `path` (a file on the server) or `content` (the data itself)"
            )
        if path is not None:
            file = access.upload_path(path, self.home)
            # Access first: a refused caller learns nothing about which files exist.
            access.check_path(caller, file, self.home)
            source = file_input(file)
        else:
            assert content is not None
            source = Input.from_content(content, None if fmt is None else named_format(fmt))

        def may_replace(existing: DatasetRecord) -> None:
            if existing.owner != caller.subject and not access.is_admin(caller):
                raise AccessDeniedError(
                    f"dataset {name!r} belongs to {existing.owner!r}: "
                    "only its owner or an admin may replace it"
                )

        return await load_dataset(
            self.database,
            name,
            source,
            owner=caller.subject,
            fmt=fmt,
            column_types=column_types,
            read_options=read_options,
            description=description,
            config=self.config,
            progress=progress,
            may_replace=may_replace,
        )

    async def readable_dataset(self, caller: CallerContext, name: str) -> DatasetRecord:
        async with self.database.pool.connection() as conn:
            record = await get_dataset(conn, name)
            if record is None or not caller.may_read_dataset(name):
                raise NotFoundError(await self._unknown(conn, caller, name))
        return record

    async def _unknown(self, conn: AsyncConnection[Any], caller: CallerContext, name: str) -> str:
        """The refusal for dataset `name`, naming the nearest one the caller may read: chosen
        among those alone, it says nothing of datasets the caller cannot see."""
        cur = await conn.execute("SELECT name FROM analytics.datasets")
        readable = caller.readable_datasets(str(r[0]) for r in await cur.fetchall())
        nearest = difflib.get_close_matches(name, readable, n=1, cutoff=0.6)
        return unknown_dataset(name, nearest[0] if nearest else None)

    async def drop(self, caller: CallerContext, name: str) -> dict[str, Any]:
        record = await self.readable_dataset(caller, name)
        if record.owner != caller.subject and not access.is_admin(caller):
            raise AccessDeniedError(
                f"dataset {name!r} belongs to {record.owner!r}: only its owner or an admin may drop it"
            )
        conn = await self.database.connect()
        try:
            async with conn.transaction():
                await conn.execute(
                    "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (f"analytics:{name}",)
                )
                await conn.execute(
                    sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(DATA_SCHEMA, name))
                )
                roles = await drop_roles_reading(conn, name)
                await delete_dataset(conn, name)
        except psycopg.Error as exc:
            raise QueryFailedError(
                f"could not drop dataset {name!r}: {exc.diag.message_primary or exc}"
            ) from None
        finally:
            await conn.close()
        for role in roles:
            self.roles.forget(role)
        logger.info("dropped dataset %s (%d rows)", name, record.row_count)
        return {"name": name, "dropped": True, "row_count": record.row_count}


_services: dict[int, AnalyticsService] = {}


def service_for(runtime: ServerRuntime) -> AnalyticsService:
    """The service of a running server, made on first use."""
    key = id(runtime)
    service = _services.get(key)
    if service is None:
        service = AnalyticsService(
            runtime.database, runtime.instance_key, runtime.settings.home, AnalyticsConfig.from_environ()
        )
        _services[key] = service
        weakref.finalize(runtime, _services.pop, key, None)
    return service


def configure(runtime: ServerRuntime, config: AnalyticsConfig) -> AnalyticsService:
    """Run `runtime`'s analytics tools under `config` (embedding hosts, tests)."""
    service = service_for(runtime)
    service.config = config
    return service
