"""Ingestion jobs: durable records, their items, claims and progress.

A job is a row in `retrieval.jobs` plus one row per item (a file or an inline
document) in `retrieval.job_items`; the store's durable queue only carries the job id.
Workers claim items in small batches (`FOR UPDATE SKIP LOCKED`), so two workers never
process the same item at once, and an item claimed by a worker that died becomes
claimable again once its claim is older than the job lease. An item that was claimed
`MAX_ITEM_ATTEMPTS` times without finishing (it crashes its worker) fails alone.

Inline documents wait in their item's payload, cleared once the item is done;
finished jobs are deleted after `JOB_RETENTION_DAYS`. Progress is read from these
tables (`ingest_status`) and also published on the store channel `retrieval:job:<id>`
after every batch, for live progress bars.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

from bastion.stores.base import Store
from servers.retrieval.errors import NotFoundError

__all__ = [
    "QUEUE",
    "Item",
    "JobRow",
    "add_items",
    "add_removed",
    "channel",
    "claim_items",
    "create_job",
    "finish_item",
    "finish_items",
    "job_status",
    "load_job",
    "publish_progress",
]

logger = logging.getLogger(__name__)

QUEUE = "retrieval:ingest"
MAX_ITEM_ATTEMPTS = 3
MAX_ERRORS_SHOWN = 100
JOB_RETENTION_DAYS = 30


def channel(job_id: str) -> str:
    return f"retrieval:job:{job_id}"


@dataclass(frozen=True, slots=True)
class JobRow:
    id: str
    kind: str
    collection: str
    state: str
    subject: str
    tags: list[str]
    options: dict[str, Any]
    scanned: bool


@dataclass(frozen=True, slots=True)
class Item:
    seq: int
    ref: str
    kind: str
    payload: dict[str, Any] | None
    attempts: int


async def create_job(
    conn: AsyncConnection[Any],
    *,
    collection: str,
    subject: str,
    tags: Sequence[str],
    paths: Sequence[str],
    options: dict[str, Any],
    documents: Sequence[dict[str, Any]],
    kind: str = "ingest",
) -> str:
    """Record a job with its inline documents (paths are expanded later by a worker)."""
    job_id = uuid.uuid4().hex
    async with conn.transaction():
        # Finished jobs are kept a while for `ingest_status`, then forgotten.
        await conn.execute(
            "DELETE FROM retrieval.jobs WHERE finished_at < now() - make_interval(days => %s)",
            (JOB_RETENTION_DAYS,),
        )
        await conn.execute(
            "INSERT INTO retrieval.jobs (id, kind, collection, state, subject, tags, options, scanned) "
            "VALUES (%s, %s, %s, 'queued', %s, %s, %s, %s)",
            (
                job_id,
                kind,
                collection,
                subject,
                list(tags),
                Jsonb({**options, "paths": list(paths)}),
                not paths,
            ),
        )
        if documents:
            async with conn.cursor() as cur:
                await cur.executemany(
                    "INSERT INTO retrieval.job_items (job_id, seq, ref, kind, payload) VALUES (%s, "
                    "%s, %s, 'document', %s)",
                    [(job_id, i, f"document:{d['id']}", Jsonb(d)) for i, d in enumerate(documents)],
                )
    return job_id


async def _next_seq(conn: AsyncConnection[Any], job_id: str) -> int:
    """The sequence number after the job's last item."""
    cur = await conn.execute(
        "SELECT coalesce(max(seq) + 1, 0) FROM retrieval.job_items WHERE job_id = %s", (job_id,)
    )
    row = await cur.fetchone()
    return int(row[0]) if row else 0


async def add_items(conn: AsyncConnection[Any], job_id: str, refs: Sequence[tuple[str, str]]) -> None:
    """Add scanned items (ref, kind) after the existing ones; re-adding a ref is a no-op."""
    start = await _next_seq(conn, job_id)
    async with conn.cursor() as cur:
        await cur.executemany(
            "INSERT INTO retrieval.job_items (job_id, seq, ref, kind) VALUES (%s, %s, %s, %s) "
            "ON CONFLICT (job_id, ref) DO NOTHING",
            [(job_id, start + i, ref, kind) for i, (ref, kind) in enumerate(refs)],
        )


async def add_removed(conn: AsyncConnection[Any], job_id: str, paths: Sequence[str]) -> None:
    """Record documents the job deleted because their files are gone (items done as `removed`)."""
    start = await _next_seq(conn, job_id)
    async with conn.cursor() as cur:
        await cur.executemany(
            "INSERT INTO retrieval.job_items (job_id, seq, ref, kind, status, outcome, document_id, "
            "finished_at) VALUES (%s, %s, %s, 'file', 'done', 'removed', %s, now()) "
            "ON CONFLICT (job_id, ref) DO NOTHING",
            [(job_id, start + i, f"file:{path}", path) for i, path in enumerate(paths)],
        )


async def load_job(conn: AsyncConnection[Any], job_id: str) -> JobRow:
    cur = await conn.execute(
        "SELECT id, kind, collection, state, subject, tags, options, scanned FROM retrieval.jobs "
        "WHERE id = %s",
        (job_id,),
    )
    row = await cur.fetchone()
    if row is None:
        raise NotFoundError(f"no ingestion job {job_id!r}; `ingest` returns the id of each job it starts")
    return JobRow(*row)


async def claim_items(conn: AsyncConnection[Any], job_id: str, count: int, lease: float) -> list[Item]:
    """Claim up to `count` items: pending ones, or ones whose worker died (claim older than `lease`)."""
    async with conn.transaction():
        cur = await conn.execute(
            "UPDATE retrieval.job_items i SET status = 'running', claimed_at = now(), attempts = "
            "i.attempts + 1 "
            "WHERE (i.job_id, i.seq) IN ("
            "  SELECT job_id, seq FROM retrieval.job_items WHERE job_id = %s AND (status = 'pending' OR "
            "    (status = 'running' AND claimed_at < now() - make_interval(secs => %s))) "
            "  ORDER BY seq LIMIT %s FOR UPDATE SKIP LOCKED) "
            "RETURNING i.seq, i.ref, i.kind, i.payload, i.attempts",
            (job_id, lease, count),
        )
        rows = await cur.fetchall()
    return sorted((Item(*row) for row in rows), key=lambda item: item.seq)


async def finish_item(
    conn: AsyncConnection[Any],
    job_id: str,
    seq: int,
    *,
    status: str,
    outcome: str | None = None,
    error: str | None = None,
    document_id: str | None = None,
    chunks: int = 0,
) -> None:
    await conn.execute(
        "UPDATE retrieval.job_items SET status = %s, outcome = %s, error = %s, document_id = %s, "
        "chunks = %s, finished_at = now(), payload = NULL WHERE job_id = %s AND seq = %s",
        (status, outcome, error, document_id, chunks, job_id, seq),
    )


async def finish_items(
    conn: AsyncConnection[Any],
    job_id: str,
    outcomes: Sequence[tuple[int, str, str | None, str | None, str | None, int]],
) -> None:
    """Record many items' ends in one round trip: (seq, status, outcome, error, document_id, chunks)."""
    async with conn.cursor() as cur:
        await cur.executemany(
            "UPDATE retrieval.job_items SET status = %s, outcome = %s, error = %s, document_id = %s, "
            "chunks = %s, finished_at = now(), payload = NULL WHERE job_id = %s AND seq = %s",
            [
                (status, outcome, error, doc, chunks, job_id, seq)
                for seq, status, outcome, error, doc, chunks in outcomes
            ],
        )


async def pending_count(conn: AsyncConnection[Any], job_id: str) -> int:
    cur = await conn.execute(
        "SELECT count(*) FROM retrieval.job_items WHERE job_id = %s AND status IN ('pending', 'running')",
        (job_id,),
    )
    row = await cur.fetchone()
    return int(row[0]) if row else 0


async def set_state(conn: AsyncConnection[Any], job_id: str, state: str, error: str | None = None) -> None:
    await conn.execute(
        "UPDATE retrieval.jobs SET state = %s, error = coalesce(%s, error), updated_at = now(), "
        "started_at = CASE WHEN %s = 'running' THEN coalesce(started_at, now()) ELSE started_at END, "
        "finished_at = CASE WHEN %s IN ('completed', 'failed') THEN now() ELSE finished_at END, "
        "attempts = attempts + CASE WHEN %s = 'running' THEN 1 ELSE 0 END WHERE id = %s",
        (state, error, state, state, state, job_id),
    )


async def job_status(conn: AsyncConnection[Any], job_id: str) -> dict[str, Any]:
    """State, counts, errors and progress of a job."""
    job = await load_job(conn, job_id)
    cur = await conn.execute(
        "SELECT status, coalesce(outcome, ''), count(*), coalesce(sum(chunks), 0) FROM retrieval.job_items "
        "WHERE job_id = %s GROUP BY 1, 2",
        (job_id,),
    )
    counts = {"total": 0, "pending": 0, "running": 0, "done": 0, "failed": 0, "skipped": 0}
    outcomes: dict[str, int] = {"created": 0, "replaced": 0, "unchanged": 0, "duplicate": 0, "removed": 0}
    chunks = 0
    for status, outcome, n, item_chunks in await cur.fetchall():
        counts["total"] += n
        counts[status] = counts.get(status, 0) + n
        if outcome:
            outcomes[outcome] = outcomes.get(outcome, 0) + n
        chunks += int(item_chunks)
    cur = await conn.execute(
        "SELECT ref, error FROM retrieval.job_items WHERE job_id = %s AND status IN ('failed', 'skipped') "
        "ORDER BY seq LIMIT %s",
        (job_id, MAX_ERRORS_SHOWN),
    )
    errors = [{"item": _display(ref), "status": "failed", "error": err} for ref, err in await cur.fetchall()]
    cur = await conn.execute(
        "SELECT error, created_at, started_at, finished_at, updated_at FROM retrieval.jobs WHERE id = %s",
        (job_id,),
    )
    meta = await cur.fetchone()
    assert meta is not None
    finished = counts["done"] + counts["failed"] + counts["skipped"]
    return {
        "job_id": job.id,
        "kind": job.kind,
        "collection": job.collection,
        "state": job.state,
        "scanned": job.scanned,
        "counts": {**counts, **outcomes, "chunks": chunks},
        "progress": round(finished / counts["total"], 4) if counts["total"] and job.scanned else 0.0,
        "errors": errors,
        "error": meta[0],
        "created_at": meta[1].isoformat(),
        "started_at": meta[2].isoformat() if meta[2] else None,
        "finished_at": meta[3].isoformat() if meta[3] else None,
        "updated_at": meta[4].isoformat(),
    }


def _display(ref: str) -> str:
    return ref.split(":", 1)[1] if ref.startswith(("file:", "document:")) else ref


async def publish_progress(store: Store, status: dict[str, Any]) -> None:
    """Tell live listeners (progress bars) where a job stands; never fails the job."""
    message = {key: status[key] for key in ("job_id", "state", "counts", "progress")}
    try:
        await store.publish(channel(status["job_id"]), json.dumps(message).encode())
    except Exception as exc:  # pub/sub is best effort: the status stays readable in the database
        logger.warning("could not publish progress of job %s: %s", status["job_id"], exc)
