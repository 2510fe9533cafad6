"""Shared pieces of the retrieval benchmarks: data loading, metrics, an in-process server.

Nothing here is imported by Bastion itself. Benchmark state (an instance home with its
embedded PostgreSQL, cached vectors) lives under BENCH_CACHE, outside the repository.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import AsyncGenerator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
from mcp import Client

from bastion.mcp import ServerRuntime, build_server
from bastion.settings import Settings
from servers.retrieval.config import RetrievalConfig
from servers.retrieval.server import spec
from servers.retrieval.service import RetrievalService, close_service, install_service

REPO = Path(__file__).resolve().parents[2]
DATA = REPO.parent / "shared" / "data" / "beir_scifact"
BENCH_CACHE = Path(os.environ.get("BASTION_BENCH_CACHE", "/var/tmp/bastion-bench"))


@dataclass
class SciFact:
    corpus: list[dict[str, Any]]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]


def load_scifact(data: Path, split: str) -> SciFact:
    corpus = [json.loads(line) for line in (data / "corpus.jsonl").open()]
    queries = {q["_id"]: q["text"] for q in map(json.loads, (data / "queries.jsonl").open())}
    qrels: dict[str, dict[str, int]] = {}
    with (data / "qrels" / f"{split}.tsv").open() as handle:
        for row in csv.DictReader(handle, delimiter="\t"):
            qrels.setdefault(row["query-id"], {})[row["corpus-id"]] = int(row["score"])
    return SciFact(corpus, {q: queries[q] for q in qrels}, qrels)


def documents_ranking(results: Sequence[dict[str, Any]]) -> list[str]:
    """Chunk hits -> document ids in first-hit order (a document ranks by its best chunk)."""
    return list(dict.fromkeys(str(r["document_id"]) for r in results))


def ndcg_at(ranking: Sequence[str], relevant: dict[str, int], k: int = 10) -> float:
    dcg = sum(relevant.get(doc, 0) / math.log2(i + 2) for i, doc in enumerate(ranking[:k]))
    ideal = sorted(relevant.values(), reverse=True)[:k]
    idcg = sum(rel / math.log2(i + 2) for i, rel in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


def recall_at(ranking: Sequence[str], relevant: dict[str, int], k: int = 100) -> float:
    hits = sum(1 for doc in ranking[:k] if relevant.get(doc, 0) > 0)
    positives = sum(1 for v in relevant.values() if v > 0)
    return hits / positives if positives else 0.0


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    index = min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[index]


def bench_settings(name: str) -> Settings:
    home = BENCH_CACHE / name
    home.mkdir(parents=True, exist_ok=True)
    return Settings(home=home, database_url=None, redis_url=None, opa_url=None)


@asynccontextmanager
async def running_server(
    settings: Settings, config: RetrievalConfig
) -> AsyncGenerator[tuple[Client, RetrievalService], None]:
    """The retrieval server in-process, with an MCP client connected to it."""
    async with ServerRuntime.open(spec, settings, transport="stdio") as runtime:
        service = RetrievalService(
            settings=settings, database=runtime.database, store=runtime.store, config=config
        )
        install_service(runtime, service)
        try:
            async with Client(build_server(spec, runtime)) as client:
                yield client, service
        finally:
            await close_service(runtime)


async def call(client: Client, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    result = await client.call_tool(tool, arguments)
    if result.is_error:
        raise RuntimeError(f"{tool} failed: {result.content}")
    assert result.structured_content is not None
    return result.structured_content


async def wait_for_job(
    client: Client, job_id: str, *, poll: float = 1.0, limit: float = 7200
) -> dict[str, Any]:
    with anyio.fail_after(limit):
        while True:
            status = await call(client, "ingest_status", {"job_id": job_id})
            if status["state"] in ("completed", "failed"):
                return status
            await anyio.sleep(poll)
