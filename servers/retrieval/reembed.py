"""Re-embedding a collection after the embedding model changed.

Every chunk records the model that embedded it, and vector search only reads chunks of
the current model, so a collection stays searchable (by keywords at once, by vectors
as chunks are redone) while a background `reembed` job works through it. When no
chunk of another model is left, the collection records the new model and dimension.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from servers.retrieval import jobs
from servers.retrieval.schema import hnsw_index_sql
from servers.retrieval.vectors import register_vector

if TYPE_CHECKING:
    from servers.retrieval.service import RetrievalService

__all__ = ["reembed_slice", "request_reembed"]

logger = logging.getLogger(__name__)

BATCH = 256
MARKER_TTL = 24 * 3600


def _marker(collection: str) -> str:
    return f"retrieval:reembed:{collection}"


async def request_reembed(service: RetrievalService, collection: str, model: str) -> str | None:
    """Queue a re-embedding of `collection` unless one is already queued; its job id."""
    if not await service.store.set_if_absent(_marker(collection), model.encode(), ttl=MARKER_TTL):
        return None
    async with service.database.pool.connection() as conn:
        job_id = await jobs.create_job(
            conn,
            collection=collection,
            subject="system",
            tags=(),
            paths=(),
            options={"model": model},
            documents=(),
            kind="reembed",
        )
    await service.enqueue(job_id)
    logger.info(
        "collection %s: embedding model changed to %s; re-embedding in job %s", collection, model, job_id
    )
    return job_id


async def reembed_slice(service: RetrievalService, job: jobs.JobRow) -> bool | None:
    """Re-embed chunks of another model for one slice; True when the collection is done."""
    from servers.retrieval.pipeline import embed_cached, search_text, text_hash

    provider = await service.provider()
    deadline = time.monotonic() + service.config.job_slice
    async with service.database.pool.connection() as conn:
        cur = await conn.execute("SELECT id FROM retrieval.collections WHERE name = %s", (job.collection,))
        row = await cur.fetchone()
        if row is None:
            await jobs.set_state(conn, job.id, "failed", "the collection was deleted")
            return True
        collection_id = int(row[0])
        await conn.execute(hnsw_index_sql(provider.dimension))
    while time.monotonic() < deadline:
        async with service.database.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT c.id, d.title, c.context, c.text FROM retrieval.chunks c "
                "JOIN retrieval.documents d ON d.id = c.document_id "
                "WHERE c.collection_id = %s AND c.model <> %s ORDER BY c.id LIMIT %s",
                (collection_id, provider.model_id, BATCH),
            )
            rows = await cur.fetchall()
        if not rows:
            async with service.database.pool.connection() as conn:
                await conn.execute(
                    "UPDATE retrieval.collections SET model = %s, dimension = %s, version = version + 1, "
                    "updated_at = now() WHERE id = %s",
                    (provider.model_id, provider.dimension, collection_id),
                )
                await jobs.set_state(conn, job.id, "completed")
            await service.store.delete(_marker(job.collection))
            return True
        texts = [search_text(r[1], r[2], r[3]) for r in rows]
        hashes = [text_hash(t) for t in texts]
        vectors = await embed_cached(service, provider, texts, hashes)
        async with service.database.pool.connection() as conn:
            await register_vector(conn)
            async with conn.transaction(), conn.cursor() as cur:
                await cur.executemany(
                    "UPDATE retrieval.chunks SET embedding = %s, model = %s, dim = %s, text_hash = "
                    "%s WHERE id = %s",
                    [
                        (vector, provider.model_id, provider.dimension, h, r[0])
                        for vector, h, r in zip(vectors, hashes, rows, strict=True)
                    ],
                )
                await conn.execute(
                    "UPDATE retrieval.collections SET version = version + 1 WHERE id = %s", (collection_id,)
                )
    return None
