"""The ingestion worker: takes job ids from the store's durable queue and runs them.

A job is worked on for at most `job_slice` seconds per delivery, then re-queued, so a
lease (`job_lease`) never has to outlive a long job. A worker killed mid-job leaves
its delivery un-acked: the store hands it to another worker when the lease expires,
and that worker claims the items that were pending or whose claim went stale. Each
document is written atomically and unchanged content is skipped, so a resumed job
stores nothing twice.

Run standalone (same BASTION_HOME and settings as the server):

    python -m servers.retrieval.worker
"""

from __future__ import annotations

import logging
import os
import time
from typing import TYPE_CHECKING, Any

import anyio
from psycopg import AsyncConnection

from bastion.errors import BastionError
from bastion.stores.base import Job
from servers.retrieval import jobs
from servers.retrieval.catalog import CollectionRow, ensure_collection
from servers.retrieval.documents import delete_document, file_keys_under
from servers.retrieval.jobs import MAX_ITEM_ATTEMPTS, QUEUE, Item
from servers.retrieval.paths import resolve_allowed, walk_folder
from servers.retrieval.pipeline import file_ref, process_items

if TYPE_CHECKING:
    from servers.retrieval.service import RetrievalService

__all__ = ["IngestWorker"]

logger = logging.getLogger(__name__)

MAX_DELIVERIES = 5
RETRY_DELAY = 5.0


class IngestWorker:
    """Runs queued ingestion jobs until stopped."""

    def __init__(self, service: RetrievalService) -> None:
        self.service = service
        self.items_per_batch = service.config.items_per_batch
        self._stopped = False

    def stop(self) -> None:
        self._stopped = True
        self.service.wake()

    async def run(self) -> None:
        """Work until `stop()`; wait on the in-process wake-up or poll when idle."""
        service = self.service
        while not self._stopped:
            try:
                ran = await self.run_once()
            except Exception as exc:  # the database or store is down or closing: back off, keep going
                logger.warning("ingestion worker: %s; retrying in %.0fs", exc, RETRY_DELAY)
                ran = False
            if not ran and not self._stopped:
                with anyio.move_on_after(service.config.worker_idle_poll):
                    await service.wakeup.wait()
                service.wakeup = anyio.Event()

    async def run_once(self) -> bool:
        """Run one delivery of one job if any is waiting; False when the queue was empty."""
        delivery = await self.service.store.dequeue(QUEUE, lease=self.service.config.job_lease)
        if delivery is None:
            return False
        await self._run(delivery)
        return True

    async def drain(self) -> None:
        """Run queued jobs until the queue is empty (a CLI or a benchmark without a server)."""
        while await self.run_once():
            pass

    async def _run(self, delivery: Job) -> None:
        service = self.service
        job_id = delivery.payload.decode()
        try:
            finished = await self._work(job_id)
        except Exception as exc:
            logger.exception("ingestion job %s failed on delivery %d", job_id, delivery.attempts)
            if delivery.attempts >= MAX_DELIVERIES:
                async with service.database.pool.connection() as conn:
                    await jobs.set_state(
                        conn, job_id, "failed", f"gave up after {delivery.attempts} attempts: {exc}"
                    )
                    status = await jobs.job_status(conn, job_id)
                await jobs.publish_progress(service.store, status)
                await service.store.ack(delivery)
            else:
                await service.store.nack(delivery, delay=RETRY_DELAY)
            return
        if finished is False:
            # Items are still claimed by a worker that may have died: look again later.
            await service.store.enqueue(
                QUEUE, job_id.encode(), delay=min(RETRY_DELAY, service.config.job_lease)
            )
        elif finished is None:
            await service.store.enqueue(QUEUE, job_id.encode())
        await service.store.ack(delivery)

    async def _work(self, job_id: str) -> bool | None:
        """Work on a job for one slice: True when done, None to continue now, False to retry later."""
        service = self.service
        async with service.database.pool.connection() as conn:
            try:
                job = await jobs.load_job(conn, job_id)
            except BastionError:
                logger.warning("ingestion job %s no longer exists; dropping it", job_id)
                return True
            if job.state in ("completed", "failed"):
                return True
            await jobs.set_state(conn, job_id, "running")
        if job.kind == "reembed":
            from servers.retrieval.reembed import reembed_slice

            return await reembed_slice(service, job)
        provider = await service.provider()
        async with service.database.pool.connection() as conn:
            collection = await ensure_collection(conn, job.collection, provider.model_id, provider.dimension)
        if collection.model != provider.model_id:
            from servers.retrieval.reembed import request_reembed

            await request_reembed(service, collection.name, provider.model_id)
        async with service.database.pool.connection() as conn:
            if not job.scanned:
                await self._scan(conn, job, collection)
        deadline = time.monotonic() + service.config.job_slice
        progressed = False
        while time.monotonic() < deadline and not self._stopped:
            async with service.database.pool.connection() as conn:
                items = await jobs.claim_items(conn, job_id, self.items_per_batch, service.config.job_lease)
            if not items:
                break
            progressed = True
            await self._process(job, collection, items)
        async with service.database.pool.connection() as conn:
            left = await jobs.pending_count(conn, job_id)
            if left == 0:
                await jobs.set_state(conn, job_id, "completed")
            status = await jobs.job_status(conn, job_id)
        await jobs.publish_progress(service.store, status)
        if left == 0:
            logger.info("ingestion job %s completed: %s", job_id, status["counts"])
            return True
        return None if progressed else False

    async def _process(self, job: jobs.JobRow, collection: CollectionRow, items: list[Item]) -> None:
        service = self.service
        fresh: list[Item] = []
        async with service.database.pool.connection() as conn:
            for item in items:
                if item.attempts > MAX_ITEM_ATTEMPTS:
                    await jobs.finish_item(
                        conn,
                        job.id,
                        item.seq,
                        status="failed",
                        error=f"its worker stopped {item.attempts - 1} times while processing it (crash or "
                        "out of memory); it was given up",
                    )
                else:
                    fresh.append(item)
        results = await process_items(service, collection, fresh, job.tags) if fresh else []
        async with service.database.pool.connection() as conn:
            await jobs.finish_items(
                conn,
                job.id,
                [(r.seq, r.status, r.outcome, r.error, r.document_id, r.chunks) for r in results],
            )
            status = await jobs.job_status(conn, job.id)
        await jobs.publish_progress(service.store, status)

    async def _scan(self, conn: AsyncConnection[Any], job: jobs.JobRow, collection: CollectionRow) -> None:
        """Expand the job's paths into file items (idempotent: re-scanning adds nothing twice);
        with `prune`, delete the documents whose files under its folders are gone, in the same
        transaction that records the items."""
        service = self.service
        options = job.options
        include = list(options.get("include") or [])
        exclude = list(options.get("exclude") or [])
        limit = service.config.max_files_per_job
        refs: list[tuple[str, str]] = []
        folders: list[str] = []
        for raw in options.get("paths") or []:
            try:
                path = resolve_allowed(str(raw), service.roots)
            except BastionError as exc:
                refs.append((f"file:{raw}", "file"))
                logger.info("ingestion job %s: %s", job.id, exc.message)
                continue
            if path.is_dir():
                folders.append(str(path))
                found = await anyio.to_thread.run_sync(
                    lambda p=path: list(walk_folder(p, service.roots, include, exclude))
                )
                refs.extend((file_ref(f), "file") for f in found)
            else:
                refs.append((file_ref(path), "file"))
        if len(refs) > limit:
            await jobs.set_state(
                conn, job.id, "running", f"{len(refs):,} files found; only the first {limit:,} are ingested"
            )
            refs = refs[:limit]
        gone: list[str] = []
        if options.get("prune"):
            for folder in folders:
                keys = await file_keys_under(conn, collection.id, folder)
                gone.extend(await anyio.to_thread.run_sync(_gone_of, keys))
        gone = list(dict.fromkeys(gone))  # nested folders name a file twice
        async with conn.transaction():
            for path in gone:
                await delete_document(conn, collection.id, path)
            await jobs.add_removed(conn, job.id, gone)
            await jobs.add_items(conn, job.id, refs)
            await conn.execute("UPDATE retrieval.jobs SET scanned = true WHERE id = %s", (job.id,))
        if gone:
            logger.info("ingestion job %s: removed %d document(s) whose files are gone", job.id, len(gone))


def _gone_of(paths: list[str]) -> list[str]:
    return [path for path in paths if _is_gone(path)]


def _is_gone(path: str) -> bool:
    """Whether a document's file no longer exists: a file that cannot be looked at (a folder
    made unreadable) is not gone, so its document stays."""
    try:
        os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return True
    except OSError:
        return False
    return False


def main() -> None:
    """`python -m servers.retrieval.worker`: run a standalone worker until SIGTERM or Ctrl+C."""
    from servers.retrieval.standalone import run_standalone_worker

    run_standalone_worker()


if __name__ == "__main__":
    main()
