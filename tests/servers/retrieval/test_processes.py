"""The retrieval server and `bastion ingest` as real processes on the session's embedded PostgreSQL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import anyio
from mcp import Client, StdioServerParameters

from bastion.caller import CallerContext
from bastion.db.database import Database
from bastion.settings import Settings
from bastion.stores import open_store
from servers.retrieval.embeddings.onnx import MiniLMOnnxProvider
from servers.retrieval.ingest import start_ingest
from servers.retrieval.schema import MIGRATIONS
from servers.retrieval.service import RetrievalService
from tests.servers.retrieval.conftest import make_config

REPO = Path(__file__).resolve().parents[3]
START_TIMEOUT = 120


def _env(home: Path, root: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("BASTION_") and k not in {"DATABASE_URL", "REDIS_URL", "OPA_URL"}
    }
    env.update(
        BASTION_HOME=str(home),
        BASTION_RETRIEVAL_ALLOWED_ROOTS=str(root),
        BASTION_RETRIEVAL_WORKER_IDLE_POLL="0.2",
    )
    return env


async def test_bastion_serve_retrieval_over_stdio_ingests_and_searches(
    shared_home: Path, docs_root: Path
) -> None:
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "bastion.cli", "serve", "retrieval", "--transport", "stdio"],
        env=_env(shared_home, docs_root),
        cwd=str(REPO),
    )
    collection = f"stdio-{uuid.uuid4().hex[:8]}"
    (docs_root / "lighthouse.md").write_text(
        "# Lighthouses\n\nA lighthouse guides ships past the reef at night.\n"
    )
    with anyio.fail_after(START_TIMEOUT):
        async with Client(params) as client:
            tools = {tool.name for tool in (await client.list_tools()).tools}
            assert {
                "ingest",
                "ingest_status",
                "search",
                "get_document",
                "get_chunk",
                "list_collections",
                "collection_stats",
                "delete_document",
                "delete_collection",
            } <= tools
            started = await client.call_tool("ingest", {"collection": collection, "paths": [str(docs_root)]})
            assert started.structured_content is not None
            job_id = started.structured_content["job_id"]
            while True:  # the server's own worker runs the job
                status = (await client.call_tool("ingest_status", {"job_id": job_id})).structured_content
                assert status is not None
                if status["state"] == "completed":
                    break
                await anyio.sleep(0.1)
            found = await client.call_tool("search", {"query": "ships reef", "collection": collection})
    assert found.structured_content is not None
    hit = found.structured_content["results"][0]
    assert hit["title"] == "Lighthouses" and hit["source"] == str(docs_root / "lighthouse.md")


def _bastion_ingest(home: Path, root: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "bastion.cli", "ingest", *args],
        env=_env(home, root),
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=180,
        check=False,
    )


def test_bastion_ingest_reports_counts_and_fails_with_the_bad_files(
    shared_home: Path, docs_root: Path
) -> None:
    (docs_root / "ok.txt").write_text("Compost turns kitchen scraps into soil.")
    (docs_root / "empty.md").write_text("")
    collection = f"cli-{uuid.uuid4().hex[:8]}"
    done = _bastion_ingest(shared_home, docs_root, str(docs_root), "--collection", collection, "--json")
    assert done.returncode == 1, done.stderr.decode()
    status = json.loads(done.stdout)
    assert status["state"] == "completed"
    assert (status["counts"]["created"], status["counts"]["failed"]) == (1, 1)
    assert "empty" in status["errors"][0]["error"]
    (docs_root / "ok.txt").unlink()
    (docs_root / "empty.md").unlink()
    (docs_root / "new.txt").write_text("Worms help compost along.")
    pruned = _bastion_ingest(shared_home, docs_root, str(docs_root), "-c", collection, "--prune")
    assert pruned.returncode == 0, pruned.stderr.decode()
    assert "1 created, 0 replaced, 0 unchanged, 0 duplicate, 1 removed, 0 failed" in pruned.stdout.decode()
    outside = _bastion_ingest(shared_home, docs_root, "/etc/hostname", "--collection", collection)
    assert outside.returncode == 2
    assert "outside the allowed roots" in outside.stderr.decode()


async def test_a_served_retrieval_process_runs_queued_jobs_before_any_tool_call(
    settings: Settings, database: Database, provider: MiniLMOnnxProvider, shared_home: Path, docs_root: Path
) -> None:
    # A job queued while no server runs (as after a crash) is picked up by the next
    # server as soon as it starts: no client request is needed to wake its worker.
    (docs_root / "queued.md").write_text("# Queued\n\nThe job waited for a server to come back.\n")
    await database.migrate([MIGRATIONS])
    store = await open_store(settings, database)
    service = RetrievalService(
        settings=settings, database=database, store=store, config=make_config(docs_root), provider=provider
    )
    collection = f"queued-{uuid.uuid4().hex[:8]}"
    log = docs_root.parent / f"{collection}.log"
    job_id = await start_ingest(service, CallerContext.local_owner(), collection, paths=[str(docs_root)])
    with log.open("wb") as stderr:
        server = await anyio.open_process(
            [sys.executable, "-m", "bastion.cli", "serve", "retrieval", "--transport", "stdio"],
            env=_env(shared_home, docs_root),
            cwd=REPO,
            stdin=subprocess.PIPE,  # held open and silent: a client that has not spoken yet
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    try:
        with anyio.fail_after(START_TIMEOUT):
            while True:
                async with database.pool.connection() as conn:
                    cur = await conn.execute("SELECT state FROM retrieval.jobs WHERE id = %s", (job_id,))
                    row = await cur.fetchone()
                if row == ("completed",):
                    break
                if server.returncode is not None:
                    raise AssertionError(f"the server exited with {server.returncode}: {log.read_text()}")
                await anyio.sleep(0.1)
    finally:
        # End it as a stdio client does: close its stdin.
        assert server.stdin is not None
        await server.stdin.aclose()
        with anyio.move_on_after(30):
            await server.wait()
        if server.returncode is None:
            server.kill()
            await server.wait()
        await server.aclose()
    assert server.returncode == 0, log.read_text()
