"""The 100,000-chunk scale benchmark: HNSW recall@10 against exact search, and latency.

The corpus is synthetic but reproducible: SciFact's real chunk vectors (exported by the
quality part) each copied with Gaussian noise (fixed seed), re-normalised, and carrying
the text of the chunk they came from, so BM25 has realistic postings too. The chunks
are written straight into the retrieval schema (the rows `ingest` would write, minus
the embedding time an hour of real text would cost), then searched through the
`search` tool.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks._retrieval.common import (
    BENCH_CACHE,
    bench_settings,
    call,
    load_scifact,
    percentile,
    running_server,
)
from servers.retrieval.config import RetrievalConfig
from servers.retrieval.ranking import DocumentFrequencies, vector_ranking

logger = logging.getLogger("bench.scale")

VECTORS_FILE = BENCH_CACHE / "scifact_chunks.npz"
COLLECTION = "synthetic"
CHUNKS_PER_DOC = 10


async def export_collection(service: Any, collection: str, target: Path) -> None:
    """Write a collection's chunk texts, contexts and vectors to an .npz file."""
    async with service.database.pool.connection() as conn:
        from servers.retrieval.vectors import as_array, register_vector

        await register_vector(conn)
        cur = await conn.execute(
            "SELECT c.text, d.title, c.embedding FROM retrieval.chunks c "
            "JOIN retrieval.documents d ON d.id = c.document_id "
            "JOIN retrieval.collections col ON col.id = c.collection_id WHERE col.name = %s ORDER BY c.id",
            (collection,),
        )
        rows = await cur.fetchall()
    texts = np.array([r[0] for r in rows], dtype=object)
    titles = np.array([r[1] for r in rows], dtype=object)
    vectors = np.stack([as_array(r[2]) for r in rows])
    target.parent.mkdir(parents=True, exist_ok=True)
    np.savez(target, texts=texts, titles=titles, vectors=vectors)
    logger.info("exported %d chunk vectors to %s", len(rows), target)


def synthetic(n: int, noise: float, seed: int = 7) -> tuple[np.ndarray, list[str], list[str]]:
    data = np.load(VECTORS_FILE, allow_pickle=True)
    base = data["vectors"]
    rng = np.random.default_rng(seed)
    index = np.arange(n) % len(base)
    vectors = base[index] + rng.normal(0, noise, size=(n, base.shape[1])).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    texts, titles = data["texts"], data["titles"]  # each NpzFile access decodes the array again
    return vectors.astype(np.float32), [str(texts[i]) for i in index], [str(titles[i]) for i in index]


def _vector_text(v: np.ndarray) -> str:
    return "[" + ",".join(f"{x:.6f}" for x in v.tolist()) + "]"


async def build(service: Any, vectors: np.ndarray, texts: list[str], titles: list[str], model: str) -> None:
    """Write the synthetic chunks (documents, chunks, lengths, postings, counters) with COPY."""
    n = len(vectors)
    async with service.database.pool.connection() as conn:
        cur = await conn.execute(
            "INSERT INTO retrieval.collections (name, model, dimension) VALUES (%s, %s, 384) "
            "ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name RETURNING id",
            (COLLECTION, model),
        )
        row = await cur.fetchone()
        assert row is not None
        cid = int(row[0])
        cur = await conn.execute("SELECT count(*) FROM retrieval.chunks WHERE collection_id = %s", (cid,))
        have = await cur.fetchone()
        if have is not None and int(have[0]) == n:
            return
        await conn.execute("DELETE FROM retrieval.documents WHERE collection_id = %s", (cid,))
        started = time.perf_counter()
        async with (
            conn.cursor() as c2,
            c2.copy(
                "COPY retrieval.documents (collection_id, doc_key, title, type, content_hash, text) "
                "FROM STDIN"
            ) as copy,
        ):
            for d in range(0, n, CHUNKS_PER_DOC):
                await copy.write_row(
                    (cid, f"syn-{d // CHUNKS_PER_DOC}", titles[d], "inline", f"h{d}", texts[d])
                )
        cur = await conn.execute(
            "SELECT doc_key, id FROM retrieval.documents WHERE collection_id = %s", (cid,)
        )
        doc_ids = {str(k): int(v) for k, v in await cur.fetchall()}
        await conn.execute(
            "CREATE TEMP TABLE syn (document_id bigint, ord int, text text, title text, embedding vector) "
            "ON COMMIT PRESERVE ROWS"
        )
        async with conn.cursor() as c2, c2.copy("COPY syn FROM STDIN") as copy:
            for i in range(n):
                await copy.write_row(
                    (
                        doc_ids[f"syn-{i // CHUNKS_PER_DOC}"],
                        i % CHUNKS_PER_DOC,
                        texts[i],
                        titles[i],
                        _vector_text(vectors[i]),
                    )
                )
        logger.info(
            "copied %d rows in %.0fs; inserting chunks (HNSW and GIN updates)",
            n,
            time.perf_counter() - started,
        )
        await conn.execute(
            "INSERT INTO retrieval.chunks (document_id, collection_id, ord, start_offset, "
            "end_offset, context, text, "
            "text_hash, model, dim, embedding, tsv) "
            "SELECT document_id, %s, ord, 0, length(text), '', text, md5(text), %s, 384, embedding, "
            "to_tsvector('english', title || E'\\n' || text) FROM syn",
            (cid, model),
        )
        await conn.execute(
            "UPDATE retrieval.chunks c SET length = (SELECT "
            "coalesce(sum(coalesce(array_length(u.positions, 1), 1)), 0) "
            "FROM unnest(c.tsv) u) WHERE collection_id = %s",
            (cid,),
        )
        await conn.execute(
            "INSERT INTO retrieval.postings (collection_id, lexeme, chunk_id, tf, dl) "
            "SELECT c.collection_id, u.lexeme, c.id, coalesce(array_length(u.positions, 1), 1), c.length "
            "FROM retrieval.chunks c, unnest(c.tsv) u WHERE c.collection_id = %s",
            (cid,),
        )
        await conn.execute(
            "UPDATE retrieval.collections SET chunk_count = s.n, total_length = s.len, document_count = %s, "
            "version = version + 1 FROM (SELECT count(*) n, sum(length) len FROM retrieval.chunks "
            "WHERE collection_id = %s) s WHERE id = %s",
            (len(doc_ids), cid, cid),
        )
        await conn.execute("DROP TABLE syn")
        await conn.execute("ANALYZE retrieval.chunks")
        await conn.execute("ANALYZE retrieval.postings")
        logger.info("built %d synthetic chunks in %.0fs", n, time.perf_counter() - started)


async def part_scale(args: argparse.Namespace) -> dict[str, Any]:
    if not VECTORS_FILE.exists():
        raise SystemExit(f"{VECTORS_FILE} is missing: run `--part quality` once first")
    vectors, texts, titles = synthetic(args.scale_chunks, args.noise)
    test = load_scifact(args.data, "test")
    queries = list(test.queries.values())[: args.scale_queries]
    settings = bench_settings("scale")
    report: dict[str, Any] = {"chunks": len(vectors), "noise": args.noise, "queries": len(queries)}
    config = RetrievalConfig(worker=False, cache_ttl=0.001)
    async with running_server(settings, config) as (client, service):
        provider = await service.provider()
        started = time.perf_counter()
        await build(service, vectors, texts, titles, provider.model_id)
        report["build_seconds"] = round(time.perf_counter() - started, 1)
        async with service.database.pool.connection() as conn:
            cur = await conn.execute("SELECT id FROM retrieval.collections WHERE name = %s", (COLLECTION,))
            row = await cur.fetchone()
            assert row is not None
            cid = int(row[0])
        query_vectors = np.stack([provider.embed_query(q) for q in queries])
        exact = np.argsort(-(query_vectors @ vectors.T), axis=1)[:, :10]
        async with service.database.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT id FROM retrieval.chunks WHERE collection_id = %s ORDER BY document_id, ord", (cid,)
            )
            chunk_ids = np.array([int(r[0]) for r in await cur.fetchall()])
        recalls: dict[str, float] = {}
        for ef in (40, 100, 200):
            hits = 0
            for qv, truth in zip(query_vectors, exact, strict=True):
                async with service.database.pool.connection() as conn:
                    found = await vector_ranking(
                        conn, qv, [cid], None, model=provider.model_id, limit=10, ef_search=ef
                    )
                hits += len({c for c, _ in found} & set(chunk_ids[truth].tolist()))
            recalls[f"ef_search={ef}"] = round(hits / (10 * len(queries)), 4)
        report["hnsw_recall@10"] = recalls
        latency: dict[str, Any] = {}

        async def timed(
            mode: str, suffix: str, memory: dict[str, Any] | None = None
        ) -> dict[str, list[float]]:
            """Per-query ms of `search` through the tool; with `memory`, queries alternate
            between BM25 kept in this process and BM25 summed in PostgreSQL."""
            times: dict[str, list[float]] = {}
            for i, q in enumerate(queries):
                for tab, bm25 in enumerate(memory or {"": None}):
                    if memory is not None:
                        service.frequencies, service.postings = memory[bm25]
                    started = time.perf_counter()
                    # A distinct query text each time (whitespace, which the ranking ignores):
                    # the result cache never answers.
                    text = f"{q}{suffix}{chr(9) * tab}"
                    arguments = {"query": text, "collection": COLLECTION, "k": 10, "mode": mode}
                    await call(client, "search", arguments)
                    if i >= 5:  # warm-up excluded
                        times.setdefault(bm25, []).append((time.perf_counter() - started) * 1000)
            return times

        def summary(times: list[float]) -> dict[str, float]:
            return {"p50_ms": round(percentile(times, 50), 1), "p95_ms": round(percentile(times, 95), 1)}

        latency["vector"] = summary((await timed("vector", " "))[""])
        for mode in ("keyword", "hybrid"):
            # Both rankers start with nothing remembered (no document frequencies, no posting
            # lists), as on a freshly written collection; the second pass is the steady state.
            memory = {
                "in_process": (DocumentFrequencies(), service.new_posting_lists()),
                "sql": (DocumentFrequencies(), None),
            }
            for label, suffix in (("first", " "), ("steady", "   ")):
                for bm25, times in (await timed(mode, suffix, memory)).items():
                    latency.setdefault(bm25, {})[f"{mode}_{label}_pass"] = summary(times)
        kept = memory["in_process"][1]
        latency["in_process"]["posting_lists_kept_mb"] = round(kept.bytes / 2**20, 1) if kept else 0
        service.frequencies, service.postings = memory["in_process"]
        report["latency"] = latency
        # The same searches without the MCP layer (JSON-RPC and schema validation in memory).
        from bastion.caller import CallerContext
        from servers.retrieval.search import search

        owner = CallerContext.local_owner()
        direct: dict[str, Any] = {}
        for mode in ("vector", "keyword", "hybrid"):
            times_direct: list[float] = []
            for i, q in enumerate(queries):
                started = time.perf_counter()
                await search(service, owner, f"{q}  ", collection=COLLECTION, k=10, mode=mode)
                if i >= 5:
                    times_direct.append((time.perf_counter() - started) * 1000)
            direct[mode] = summary(times_direct)
        report["latency_without_mcp"] = direct
        embed_times: list[float] = []
        for q in queries:
            started = time.perf_counter()
            provider.embed_query(q)
            embed_times.append((time.perf_counter() - started) * 1000)
        report["query_embedding"] = {
            "p50_ms": round(percentile(embed_times, 50), 1),
            "p95_ms": round(percentile(embed_times, 95), 1),
        }
    return report
