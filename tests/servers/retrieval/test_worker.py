"""Ingestion workers: a worker killed -9 mid-job is resumed by another, with nothing stored twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import anyio
import pytest

from bastion.caller import CallerContext
from bastion.db.database import Database
from bastion.settings import Settings
from servers.retrieval.embeddings.onnx import MiniLMOnnxProvider
from servers.retrieval.ingest import start_ingest
from servers.retrieval.schema import MIGRATIONS
from servers.retrieval.service import RetrievalService
from servers.retrieval.worker import IngestWorker
from tests.servers.retrieval.conftest import make_config

REPO = Path(__file__).resolve().parents[3]
FILES = 40


def _child_env(home: Path, root: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("BASTION_") and k not in {"DATABASE_URL", "REDIS_URL"}
    }
    env.update(
        BASTION_HOME=str(home),
        BASTION_RETRIEVAL_ALLOWED_ROOTS=str(root),
        BASTION_RETRIEVAL_JOB_LEASE="2",
        BASTION_RETRIEVAL_ITEMS_PER_BATCH="2",
        BASTION_RETRIEVAL_WORKER_IDLE_POLL="0.2",
        BASTION_RETRIEVAL_ONNX_THREADS="1",
    )
    return env


async def _one(database: Database, sql: str, *params: Any) -> Any:
    async with database.pool.connection() as conn:
        cur = await conn.execute(sql, params)
        row = await cur.fetchone()
    assert row is not None
    return row[0] if len(row) == 1 else row


async def _done(database: Database, job_id: str) -> int:
    return int(
        await _one(
            database, "SELECT count(*) FROM retrieval.job_items WHERE job_id = %s AND status = 'done'", job_id
        )
    )


async def test_a_worker_killed_mid_job_is_resumed_by_another_without_duplicates(
    settings: Settings, database: Database, provider: MiniLMOnnxProvider, docs_root: Path, shared_home: Path
) -> None:
    for i in range(FILES):
        paragraphs = [
            f"Report {i} section {j}: the turbine number {i} ran for {j * 7 + i} hours." for j in range(6)
        ]
        (docs_root / f"report-{i:02d}.md").write_text(
            f"# Report {i}\n\n" + "\n\n".join(paragraphs), encoding="utf-8"
        )
    await database.migrate([MIGRATIONS])
    from bastion.stores import open_store

    store = await open_store(settings, database)
    config = make_config(docs_root, job_lease=2, items_per_batch=2)
    service = RetrievalService(
        settings=settings, database=database, store=store, config=config, provider=provider
    )
    collection = f"crash-{uuid.uuid4().hex[:8]}"
    try:
        job_id = await start_ingest(service, CallerContext.local_owner(), collection, paths=[str(docs_root)])
        child = await anyio.open_process(
            [sys.executable, "-m", "servers.retrieval.worker"],
            env=_child_env(shared_home, docs_root),
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            with anyio.fail_after(120):
                while await _done(database, job_id) < 4:
                    if child.returncode is not None:
                        pytest.fail(f"the worker exited early with {child.returncode}")
                    await anyio.sleep(0.05)
            os.kill(child.pid, signal.SIGSTOP)  # freeze it mid-job, then check it really was mid-job
            done = await _done(database, job_id)
            assert 4 <= done < FILES, f"the worker finished ({done} items) before it could be killed"
        finally:
            os.kill(child.pid, signal.SIGKILL)
            with anyio.fail_after(30):
                await child.wait()
            await child.aclose()
        # Another worker takes over once the dead worker's lease and item claims expire.
        worker = IngestWorker(service)
        with anyio.fail_after(120):
            while (
                await _one(database, "SELECT state FROM retrieval.jobs WHERE id = %s", job_id) != "completed"
            ):
                if not await worker.run_once():
                    await anyio.sleep(0.2)
        documents = await _one(
            database,
            "SELECT count(*) FROM retrieval.documents d JOIN retrieval.collections c ON c.id = "
            "d.collection_id "
            "WHERE c.name = %s",
            collection,
        )
        assert documents == FILES
        duplicates = await _one(
            database,
            "SELECT count(*) FROM (SELECT document_id, ord FROM retrieval.chunks ch JOIN "
            "retrieval.collections c "
            "ON c.id = ch.collection_id WHERE c.name = %s GROUP BY 1, 2 HAVING count(*) > 1) x",
            collection,
        )
        assert duplicates == 0
        counters = await _one(
            database,
            "SELECT c.document_count, c.chunk_count, c.total_length, (SELECT count(*) FROM "
            "retrieval.chunks ch "
            "WHERE ch.collection_id = c.id), (SELECT coalesce(sum(length), 0) FROM retrieval.chunks ch "
            "WHERE ch.collection_id = c.id), (SELECT count(*) FROM retrieval.postings p WHERE "
            "p.collection_id = c.id), "
            "(SELECT count(*) FROM retrieval.chunks ch, unnest(ch.tsv) WHERE ch.collection_id = c.id) "
            "FROM retrieval.collections c WHERE c.name = %s",
            collection,
        )
        assert counters[0] == FILES
        assert counters[1] == counters[3] and counters[2] == counters[4]
        assert counters[5] == counters[6]  # one posting per lexeme per chunk, none left over
    finally:
        await service.aclose()
        await store.close()
