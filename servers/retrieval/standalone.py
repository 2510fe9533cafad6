"""The retrieval service outside an MCP server: for the CLI, workers and benchmarks.

`open_service(settings)` opens the instance database (with the retrieval migrations
applied), the store and a `RetrievalService` on them, and closes all three on exit.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager

import anyio

from bastion.components import kernel_migrations
from bastion.db.database import Database
from bastion.settings import Settings, load_settings
from servers.retrieval.config import RetrievalConfig
from servers.retrieval.schema import MIGRATIONS
from servers.retrieval.service import RetrievalService

__all__ = ["open_service", "run_standalone_worker"]

logger = logging.getLogger(__name__)


@asynccontextmanager
async def open_service(
    settings: Settings, config: RetrievalConfig | None = None, *, database: Database | None = None
) -> AsyncGenerator[RetrievalService, None]:
    """A `RetrievalService` with its own database pool and store (no in-process worker
    unless started); pass an open `database` to share it."""
    from bastion.stores import open_store

    own = database is None
    db = database or Database(settings)
    if own:
        await db.open(migrations=[kernel_migrations(), MIGRATIONS])
    else:
        await db.migrate([kernel_migrations(), MIGRATIONS])
    try:
        store = await open_store(settings, db)
        try:
            service = RetrievalService(settings=settings, database=db, store=store, config=config)
            try:
                yield service
            finally:
                await service.aclose()
        finally:
            await store.close()
    finally:
        if own:
            await db.close()


async def _serve_worker(settings: Settings) -> None:
    from servers.retrieval.worker import IngestWorker

    async with open_service(settings) as service:
        worker = IngestWorker(service)
        async with anyio.create_task_group() as tg:

            async def on_signal() -> None:
                with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                    async for _ in signals:
                        logger.info("stopping the ingestion worker")
                        worker.stop()
                        return

            tg.start_soon(on_signal)
            await worker.run()
            tg.cancel_scope.cancel()


def run_standalone_worker() -> None:
    """Run one ingestion worker for the instance in the environment, until signalled."""
    from bastion.logs import configure_logging

    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format, component="retrieval-worker")
    anyio.run(_serve_worker, settings)
