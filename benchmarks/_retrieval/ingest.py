"""Ingestion throughput next to raw embedding throughput, and peak memory.

5,000 SciFact abstracts go through the `ingest` tool into a fresh collection with the
embedding cache off (every chunk is embedded), run by the server's own worker. Then,
in the same process, the same model embeds a uniform sample of the same chunk texts
directly (same batch size, same length-sorted batching): the raw rate ingestion is
compared with. Peak memory is the process's maximum resident set size, read right
after ingestion (so the raw pass cannot inflate it).
"""

from __future__ import annotations

import argparse
import random
import resource
import time
import uuid
from typing import Any

import psutil

from benchmarks._retrieval.common import bench_settings, call, load_scifact, running_server, wait_for_job
from servers.retrieval.config import RetrievalConfig
from servers.retrieval.pipeline import search_text

BATCH_DOCS = 1000


async def part_ingest(args: argparse.Namespace) -> dict[str, Any]:
    data = load_scifact(args.data, "test")
    corpus = data.corpus[: args.ingest_docs]
    docs = [{"id": d["_id"], "title": d["title"], "text": d["text"]} for d in corpus]
    settings = bench_settings("ingest")
    config = RetrievalConfig(embedding_cache=False, worker_idle_poll=0.2)
    collection = f"ingest-{uuid.uuid4().hex[:6]}"
    process = psutil.Process()
    report: dict[str, Any] = {"documents": len(docs), "embed_batch": config.embed_batch}
    async with running_server(settings, config) as (client, service):
        provider = await service.provider()
        provider.embed_documents(["warm up"])
        rss_before = process.memory_info().rss
        started = time.perf_counter()
        jobs = []
        for i in range(0, len(docs), BATCH_DOCS):
            job = await call(
                client, "ingest", {"collection": collection, "documents": docs[i : i + BATCH_DOCS]}
            )
            jobs.append(job["job_id"])
        for job_id in jobs:
            status = await wait_for_job(client, job_id, poll=0.5)
            assert status["state"] == "completed", status
        elapsed = time.perf_counter() - started
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        stats = await call(client, "collection_stats", {"collection": collection})
        chunks = int(stats["chunks"])
        report.update(
            chunks=chunks,
            ingest_seconds=round(elapsed, 1),
            ingest_chunks_per_s=round(chunks / elapsed, 2),
            peak_rss_mb=round(peak_mb, 1),
            rss_before_ingest_mb=round(rss_before / 2**20, 1),
        )
        async with service.database.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT d.title, c.context, c.text FROM retrieval.chunks c "
                "JOIN retrieval.documents d ON d.id = c.document_id "
                "JOIN retrieval.collections col ON col.id = c.collection_id WHERE col.name = %s",
                (collection,),
            )
            texts = [search_text(r[0], r[1], r[2]) for r in await cur.fetchall()]
        sample = random.Random(1).sample(texts, max(1, int(len(texts) * args.raw_fraction)))
        order = sorted(range(len(sample)), key=lambda i: len(sample[i]))
        started = time.perf_counter()
        for i in range(0, len(order), config.embed_batch):
            provider.embed_documents([sample[j] for j in order[i : i + config.embed_batch]])
        raw_elapsed = time.perf_counter() - started
        raw_cps = len(sample) / raw_elapsed
        report.update(
            raw_sample_chunks=len(sample),
            raw_embedding_chunks_per_s=round(raw_cps, 2),
            ingest_vs_raw=round(report["ingest_chunks_per_s"] / raw_cps, 3),
        )
        await call(client, "delete_collection", {"collection": collection})
    return report
