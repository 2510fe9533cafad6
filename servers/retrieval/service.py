"""`RetrievalService`: what the retrieval tools share within one process.

It holds the runtime's database and store, the server's `RetrievalConfig`, the
embedding provider (loaded on first use, off the event loop) and the in-process
ingestion worker. The scaffold's `ServerSpec` has no start hook, so the worker starts
with the first tool call a server process handles; jobs left by a crashed process are
resumed then, or by any other worker (`python -m servers.retrieval.worker`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from bastion.db.database import Database
from bastion.settings import Settings
from bastion.stores.base import Store
from servers.retrieval.config import RetrievalConfig
from servers.retrieval.jobs import QUEUE
from servers.retrieval.postings import PostingLists
from servers.retrieval.ranking import DocumentFrequencies

if TYPE_CHECKING:
    from bastion.mcp.runtime import ServerRuntime
    from servers.retrieval.embeddings.base import EmbeddingProvider
    from servers.retrieval.worker import IngestWorker

__all__ = ["RetrievalService", "close_service", "service_for"]

logger = logging.getLogger(__name__)


class RetrievalService:
    """Database, store, config, embedding provider and worker of one retrieval process."""

    def __init__(
        self,
        *,
        settings: Settings,
        database: Database,
        store: Store,
        config: RetrievalConfig | None = None,
        provider: EmbeddingProvider | None = None,
    ) -> None:
        self.settings = settings
        self.database = database
        self.store = store
        self.config = config or RetrievalConfig.load()
        self.roots: list[Path] = self.config.roots(settings)
        self._provider = provider
        self._provider_lock = anyio.Lock()
        self._worker: IngestWorker | None = None
        self._worker_task: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()
        self.frequencies = DocumentFrequencies()
        self.postings = self.new_posting_lists()
        self.wakeup = anyio.Event()

    def new_posting_lists(self) -> PostingLists | None:
        """An empty in-memory posting-list store sized by the config, or None when it is off."""
        budget = self.config.postings_cache_mb
        return PostingLists(budget * 1024 * 1024) if budget else None

    async def provider(self) -> EmbeddingProvider:
        """The embedding provider, loaded once (in a thread: loading a model blocks)."""
        if self._provider is None:
            async with self._provider_lock:
                if self._provider is None:
                    from servers.retrieval.embeddings.factory import make_provider

                    self._provider = await anyio.to_thread.run_sync(make_provider, self.config)
        return self._provider

    async def enqueue(self, job_id: str, *, delay: float = 0) -> None:
        await self.store.enqueue(QUEUE, job_id.encode(), delay=delay)
        self.wake()

    def wake(self) -> None:
        """Tell the in-process worker that work arrived (other processes poll)."""
        self.wakeup.set()

    def start_worker(self) -> None:
        """Run an ingestion worker in this process, once, if the config allows it."""
        if not self.config.worker or self._worker_task is not None:
            return
        from servers.retrieval.worker import IngestWorker

        self._worker = IngestWorker(self)
        self._worker_task = asyncio.get_running_loop().create_task(
            self._worker.run(), name="retrieval-worker"
        )

    def after_response(self, work: Coroutine[Any, Any, None], what: str) -> None:
        """Run `work` without making the caller wait for it (a result-cache write: the
        answer is ready, and a lost write only costs the next identical search)."""

        async def logged() -> None:
            try:
                await work
            except Exception:
                logger.warning("%s failed", what, exc_info=True)

        task = asyncio.get_running_loop().create_task(logged(), name=what)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def aclose(self) -> None:
        """Stop the worker and release the provider; the database and store stay open."""
        if self._background:
            # Let pending cache writes land while the store is still open.
            await asyncio.wait(set(self._background), timeout=5)
        if self._worker is not None:
            self._worker.stop()
        if self._worker_task is not None:
            self._worker_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker_task
            self._worker_task = None
        if self._provider is not None:
            self._provider.close()


# One service per runtime. ServerRuntime is an unhashable dataclass: key by identity.
_services: dict[int, tuple[ServerRuntime, RetrievalService]] = {}


def service_for(runtime: ServerRuntime) -> RetrievalService:
    """The service of `runtime`, created (and its worker started) on first use."""
    entry = _services.get(id(runtime))
    if entry is None or entry[0] is not runtime:
        service = RetrievalService(settings=runtime.settings, database=runtime.database, store=runtime.store)
        _services[id(runtime)] = (runtime, service)
    else:
        service = entry[1]
    service.start_worker()
    return service


def install_service(runtime: ServerRuntime, service: RetrievalService) -> None:
    """Use `service` for `runtime` (an in-process host or a test choosing its config)."""
    _services[id(runtime)] = (runtime, service)


async def close_service(runtime: ServerRuntime) -> None:
    entry = _services.pop(id(runtime), None)
    if entry is not None:
        await entry[1].aclose()
