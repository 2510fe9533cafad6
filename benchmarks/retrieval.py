"""Retrieval benchmarks on BEIR SciFact, through the retrieval server's own MCP tools.

Parts (run one or several; results print as JSON and go to docs/benchmarks/retrieval.md by hand):

  quality   ingest the 5,183 SciFact abstracts (`ingest` tool), then nDCG@10 and Recall@100 of
            keyword, vector and hybrid `search` on the test queries; the fusion weight and RRF k
            are tuned on the train queries first, then applied unchanged to test.
  ingest    ingestion throughput (chunks/s) of 5,000 documents with the embedding cache off,
            next to the raw embedding throughput of the same model on the same chunk texts,
            and the peak memory (RSS) of the process.
  scale     100,000 synthetic chunks (SciFact chunk vectors plus Gaussian noise, their texts
            reused): HNSW recall@10 against exact search, and search latency p50/p95 per mode,
            query embedding included. Needs `quality` to have run once (it caches the vectors).

State lives under $BASTION_BENCH_CACHE (default /var/tmp/bastion-bench), never in the repository;
a second run reuses the ingested corpus and the embedding cache.

    .venv/bin/python benchmarks/retrieval.py --part quality
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._retrieval.common import (
    DATA,
    bench_settings,
    call,
    documents_ranking,
    load_scifact,
    ndcg_at,
    recall_at,
    running_server,
    wait_for_job,
)
from servers.retrieval.config import RetrievalConfig
from servers.retrieval.fusion import rrf, weighted

logger = logging.getLogger("bench.retrieval")

COLLECTION = "scifact"
BATCH_DOCS = 1000
DEPTH = 200  # chunks fetched per query: enough for 100 distinct documents


def _documents(corpus: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"id": d["_id"], "title": d["title"], "text": d["text"], "metadata": {}} for d in corpus]


async def ensure_corpus(client: Any, corpus: list[dict[str, Any]], collection: str) -> float:
    """Ingest the corpus unless the collection already holds it; seconds spent."""
    stats = await call(client, "list_collections", {})
    have = {c["name"]: c["documents"] for c in stats["collections"]}
    if have.get(collection) == len(corpus):
        return 0.0
    started = time.perf_counter()
    docs = _documents(corpus)
    jobs = []
    for i in range(0, len(docs), BATCH_DOCS):
        started_job = await call(
            client, "ingest", {"collection": collection, "documents": docs[i : i + BATCH_DOCS]}
        )
        jobs.append(started_job["job_id"])
    for job_id in jobs:
        status = await wait_for_job(client, job_id, poll=2.0)
        logger.info("job %s: %s", job_id, status["counts"])
    return time.perf_counter() - started


async def rankings(
    client: Any, queries: dict[str, str], mode: str, k: int
) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for qid, text in queries.items():
        result = await call(client, "search", {"query": text, "collection": COLLECTION, "k": k, "mode": mode})
        out[qid] = result["results"]
    return out


def score(runs: dict[str, list[str]], qrels: dict[str, dict[str, int]]) -> dict[str, float]:
    n = len(qrels)
    return {
        "ndcg@10": round(sum(ndcg_at(runs.get(q, []), rel) for q, rel in qrels.items()) / n, 4),
        "recall@100": round(sum(recall_at(runs.get(q, []), rel) for q, rel in qrels.items()) / n, 4),
    }


def fuse_offline(
    keyword: dict[str, list[dict[str, Any]]], vector: dict[str, list[dict[str, Any]]], how: str, param: float
) -> dict[str, list[str]]:
    """The server's own fusion functions over cached per-side rankings (for tuning)."""
    runs: dict[str, list[str]] = {}
    for qid in keyword:
        kw = [(r["chunk_id"], r["score"]) for r in keyword[qid][:100]]
        vec = [(r["chunk_id"], r["score"]) for r in vector[qid][:100]]
        fused = rrf(kw, vec, k=int(param)) if how == "rrf" else weighted(kw, vec, keyword_weight=param)
        doc_of = {r["chunk_id"]: r["document_id"] for r in keyword[qid] + vector[qid]}
        runs[qid] = list(dict.fromkeys(doc_of[c] for c, _ in fused))
    return runs


async def part_quality(args: argparse.Namespace) -> dict[str, Any]:
    train = load_scifact(args.data, "train")
    test = load_scifact(args.data, "test")
    settings = bench_settings("quality")
    report: dict[str, Any] = {"corpus_documents": len(test.corpus)}
    async with running_server(settings, RetrievalConfig(worker_idle_poll=0.5)) as (client, service):
        report["ingest_seconds"] = round(await ensure_corpus(client, test.corpus, COLLECTION), 1)
        stats = await call(client, "collection_stats", {"collection": COLLECTION})
        report["chunks"] = stats["chunks"]
        await export_vectors(service)
        # Tune on train: per-side rankings once, then every fusion setting offline.
        train_q = dict(list(train.queries.items())[: args.train_queries])
        train_qrels = {q: train.qrels[q] for q in train_q}
        kw_train = await rankings(client, train_q, "keyword", 100)
        vec_train = await rankings(client, train_q, "vector", 100)
        grid: list[dict[str, Any]] = []
        for weight in [round(0.05 * i, 2) for i in range(2, 19)]:
            grid.append(
                {
                    "fusion": "weighted",
                    "param": weight,
                    **score(fuse_offline(kw_train, vec_train, "weighted", weight), train_qrels),
                }
            )
        for k in (10, 20, 40, 60, 100):
            grid.append(
                {
                    "fusion": "rrf",
                    "param": k,
                    **score(fuse_offline(kw_train, vec_train, "rrf", k), train_qrels),
                }
            )
        best = max(grid, key=lambda row: row["ndcg@10"])
        best_rrf = max((g for g in grid if g["fusion"] == "rrf"), key=lambda row: row["ndcg@10"])
        report["train"] = {
            "queries": len(train_q),
            "keyword": score({q: documents_ranking(r) for q, r in kw_train.items()}, train_qrels),
            "vector": score({q: documents_ranking(r) for q, r in vec_train.items()}, train_qrels),
            "best": best,
            "best_rrf": best_rrf,
            "grid": grid,
        }
    # Test, through the tools, with the tuned settings in the server's config.
    tuned = (
        RetrievalConfig(worker_idle_poll=0.5, fusion="weighted", keyword_weight=best["param"])
        if best["fusion"] == "weighted"
        else RetrievalConfig(worker_idle_poll=0.5, fusion="rrf", rrf_k=int(best["param"]))
    )
    rrf_config = RetrievalConfig(worker_idle_poll=0.5, fusion="rrf", rrf_k=int(best_rrf["param"]))
    test_report: dict[str, Any] = {"queries": len(test.queries)}
    async with running_server(settings, tuned) as (client, _):
        for mode in ("keyword", "vector", "hybrid"):
            started = time.perf_counter()
            runs = await rankings(client, test.queries, mode, DEPTH)
            elapsed = time.perf_counter() - started
            test_report[mode] = {
                **score({q: documents_ranking(r) for q, r in runs.items()}, test.qrels),
                "ms_per_query": round(elapsed * 1000 / len(runs), 1),
            }
        test_report["hybrid"]["fusion"] = {"method": best["fusion"], "param": best["param"]}
    async with running_server(settings, rrf_config) as (client, _):
        runs = await rankings(client, test.queries, "hybrid", DEPTH)
        test_report["hybrid_rrf"] = {
            **score({q: documents_ranking(r) for q, r in runs.items()}, test.qrels),
            "fusion": {"method": "rrf", "param": best_rrf["param"]},
        }
    report["test"] = test_report
    return report


async def export_vectors(service: Any) -> None:
    """Cache the corpus's chunk texts and vectors for the scale part (outside the repository)."""
    from benchmarks._retrieval.scale import VECTORS_FILE, export_collection

    if not VECTORS_FILE.exists():
        await export_collection(service, COLLECTION, VECTORS_FILE)


async def main(args: argparse.Namespace) -> None:
    results: dict[str, Any] = {}
    parts = ["quality", "ingest", "scale"] if args.part == "all" else [args.part]
    for part in parts:
        started = time.perf_counter()
        if part == "quality":
            results[part] = await part_quality(args)
        elif part == "ingest":
            from benchmarks._retrieval.ingest import part_ingest

            results[part] = await part_ingest(args)
        else:
            from benchmarks._retrieval.scale import part_scale

            results[part] = await part_scale(args)
        results[part]["wall_seconds"] = round(time.perf_counter() - started, 1)
        print(json.dumps({part: results[part]}, indent=2), flush=True)
    if args.output:
        args.output.write_text(json.dumps(results, indent=2))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--part", choices=["quality", "ingest", "scale", "all"], default="quality")
    parser.add_argument(
        "--data", type=Path, default=DATA, help="BEIR SciFact folder (default ../shared/data)"
    )
    parser.add_argument("--train-queries", type=int, default=809, help="train queries used for tuning")
    parser.add_argument("--scale-chunks", type=int, default=100_000)
    parser.add_argument("--scale-queries", type=int, default=200)
    parser.add_argument("--noise", type=float, default=0.02, help="per-dimension noise of synthetic vectors")
    parser.add_argument("--ingest-docs", type=int, default=5000)
    parser.add_argument("--raw-fraction", type=float, default=0.25, help="share of chunks embedded raw")
    parser.add_argument("--output", type=Path, help="also write the JSON results here")
    return parser.parse_args()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("mcp").setLevel(logging.WARNING)
    anyio.run(main, parse_args())
