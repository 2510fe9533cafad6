"""`ServerRuntime`: what a running server holds, handed to tools as lifespan state.

One runtime per process: the settings, the open `Database` (kernel migrations plus
the server's own applied first), the store, the instance key that verifies caller
contexts, the transport and the start time. Tools reach it through the MCP context:

    async def my_tool(ctx: Context[ServerRuntime, Any]) -> ...:
        runtime = ctx.request_context.lifespan_context
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import AsyncGenerator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from bastion.db.database import Database
from bastion.db.migrations import MigrationSet
from bastion.home import Home
from bastion.mcp.spec import ServerSpec
from bastion.settings import Settings

if TYPE_CHECKING:
    from bastion.stores.base import Store

__all__ = ["ServerRuntime", "Transport"]

logger = logging.getLogger(__name__)

Transport = Literal["stdio", "http"]


@dataclass(kw_only=True)
class ServerRuntime:
    """Lifespan state of one server process."""

    spec: ServerSpec
    settings: Settings
    database: Database
    store: Store
    instance_key: bytes = field(repr=False)
    transport: Transport
    started_at: float = field(default_factory=time.time)
    pid: int = field(default_factory=os.getpid)
    _started_monotonic: float = field(default_factory=time.monotonic, repr=False)

    @property
    def uptime_seconds(self) -> float:
        return time.monotonic() - self._started_monotonic

    @property
    def store_backend(self) -> str:
        """`postgres`, `redis` or `memory`: the store class name without its role suffix."""
        return type(self.store).__name__.removesuffix("Store").lower()

    def migration_sets(self) -> list[MigrationSet]:
        return _migration_sets(self.spec)

    @classmethod
    @asynccontextmanager
    async def open(
        cls,
        spec: ServerSpec,
        settings: Settings,
        *,
        transport: Transport,
        database: Database | None = None,
    ) -> AsyncGenerator[ServerRuntime, None]:
        """Open the database (migrated) and the store for `spec`; close them on exit.

        Pass an open `database` to share it (an in-process host, tests): it is migrated
        for `spec` but left open, since its owner decides when it closes.
        """
        # Imported here: the stores package depends on the database, not on the scaffold.
        from bastion.stores import open_store

        key = Home(settings.home).instance_key(create=True)
        async with AsyncExitStack() as stack:
            if database is None:
                database = Database(settings)
                await database.open(migrations=_migration_sets(spec))
                stack.push_async_callback(database.close)
            else:
                await database.migrate(_migration_sets(spec))
            store = await open_store(settings, database)
            stack.push_async_callback(store.close)
            runtime = cls(
                spec=spec,
                settings=settings,
                database=database,
                store=store,
                instance_key=key,
                transport=transport,
            )
            logger.info(
                "server %s ready (transport %s, store %s)", spec.name, transport, runtime.store_backend
            )
            yield runtime


def _migration_sets(spec: ServerSpec) -> list[MigrationSet]:
    from bastion.components import kernel_migrations

    sets = [kernel_migrations()]
    if spec.migrations is not None:
        sets.append(spec.migrations)
    return sets
