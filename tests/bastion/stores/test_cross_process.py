"""Redis and PostgreSQL stores are shared by every process and survive a worker's crash."""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest
from anyio.abc import Process

from bastion.db.database import Database
from bastion.stores import Store

from .conftest import SHARED_BACKENDS

ROOT = Path(__file__).resolve().parents[3]

# A child process opening the same backend as the test. `lease NAME`: lease a job,
# report it and hang without acking; `publish NAME`: publish one message;
# `count NAME`: increment a counter 100 times.
CHILD = """
import asyncio, sys
from psycopg_pool import AsyncConnectionPool
from bastion.stores import PostgresStore, RedisStore

async def main(backend, target, prefix, action, name):
    pool = None
    if backend == "redis":
        store = RedisStore(target, prefix=prefix)
    else:
        pool = AsyncConnectionPool(target, kwargs={"autocommit": True}, min_size=1, max_size=2, open=False)
        await pool.open()
        store = PostgresStore(pool, target)
    try:
        if action == "lease":
            job = await store.dequeue(name, lease=1.0)
            print(job.id, job.attempts, flush=True)
            await asyncio.sleep(3600)
        elif action == "publish":
            await store.publish(name, b"hello from a child")
        else:
            for _ in range(100):
                await store.incr(name)
    finally:
        await store.close()
        if pool is not None:
            await pool.close()

asyncio.run(main(*sys.argv[1:]))
"""

Child = Callable[[str, str], list[str]]


@pytest.fixture(params=SHARED_BACKENDS)
def shared(request: pytest.FixtureRequest, ns: str) -> tuple[Store, Child]:
    """A store of the test process, and the argv of a child opening the same one."""
    backend = request.param
    store: Store = request.getfixturevalue(f"{backend}_store")
    if backend == "redis":
        target, prefix = request.getfixturevalue("redis_url"), f"bastion-test:{ns}"
    else:
        database: Database = request.getfixturevalue("database")
        target, prefix = database.dsn, ""
    return store, lambda action, name: [sys.executable, "-c", CHILD, backend, target, prefix, action, name]


async def _read_line(process: Process) -> str:
    assert process.stdout is not None
    data = b""
    with anyio.fail_after(30):
        while not data.endswith(b"\n"):
            data += await process.stdout.receive()
    return data.decode().strip()


async def test_a_job_leased_by_a_killed_worker_is_redelivered_after_its_lease(
    shared: tuple[Store, Child], ns: str
) -> None:
    store, child = shared
    job_id = await store.enqueue(ns + "q", b"precious")
    async with await anyio.open_process(child("lease", ns + "q"), cwd=ROOT) as process:
        assert await _read_line(process) == f"{job_id} 1"
        process.send_signal(signal.SIGKILL)
        with anyio.fail_after(10):
            assert await process.wait() == -signal.SIGKILL
    assert await store.dequeue(ns + "q", lease=30) is None  # still leased to the dead worker
    with anyio.fail_after(10):
        while (job := await store.dequeue(ns + "q", lease=30)) is None:
            await anyio.sleep(0.05)
    assert (job.id, job.payload, job.attempts) == (job_id, b"precious", 2)
    await store.ack(job)
    assert await store.queue_length(ns + "q") == 0


async def test_increments_from_two_processes_and_this_one_sum_exactly(
    shared: tuple[Store, Child], ns: str
) -> None:
    store, child = shared
    async with (
        await anyio.open_process(child("count", ns + "hits"), cwd=ROOT) as first,
        await anyio.open_process(child("count", ns + "hits"), cwd=ROOT) as second,
    ):
        for _ in range(100):
            await store.incr(ns + "hits")
        with anyio.fail_after(60):
            codes = [await first.wait(), await second.wait()]
    assert codes == [0, 0]
    assert await store.get_counter(ns + "hits") == 300


async def test_a_message_published_by_another_process_reaches_a_subscriber_here(
    shared: tuple[Store, Child], ns: str
) -> None:
    store, child = shared
    async with (
        store.subscribe(ns + "ch") as sub,
        await anyio.open_process(child("publish", ns + "ch"), cwd=ROOT) as process,
    ):
        with anyio.fail_after(30):
            assert await anext(sub) == b"hello from a child"
            assert await process.wait() == 0
