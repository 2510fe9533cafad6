"""Startup and store latency, measured the way a user meets them.

1. `bastion up` to a healthy `/healthz`, median of several runs each:
   - cold: a fresh BASTION_HOME (initdb, first migrations, instance key);
   - warm: the same home again after a clean stop (database stopped, data kept).
2. Store operation latency, side by side in one run: the in-process MemoryStore, the
   PostgreSQL store on the embedded server, and the Redis store (BASTION_TEST_REDIS_URL).

Usage: python benchmarks/startup.py [--runs 5] [--ops 2000] [--json FILE]
Prints a Markdown report; docs/performance.md quotes it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

REDIS_URL = os.environ.get("BASTION_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
TIMEOUT = 120.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _up_to_healthy(home: Path) -> float:
    """Seconds from launching `bastion up` until /healthz answers 200; then a clean stop."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BASTION_", "DATABASE_URL", "REDIS_URL"))}
    env.update({"BASTION_HOME": str(home), "BASTION_PORT": str(port), "BASTION_LOG_FORMAT": "json"})
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bastion.cli", "up"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
    )
    try:
        with httpx.Client(timeout=1.0) as client:
            while time.perf_counter() - started < TIMEOUT:
                if proc.poll() is not None:
                    raise RuntimeError(f"bastion up exited with {proc.returncode}; see {home}/logs")
                try:
                    if client.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                        return time.perf_counter() - started
                except httpx.HTTPError:
                    pass
                time.sleep(0.02)
        raise RuntimeError(f"not healthy within {TIMEOUT:.0f} s")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def measure_startup(runs: int) -> dict[str, list[float]]:
    cold: list[float] = []
    warm: list[float] = []
    for _ in range(runs):
        home = Path(tempfile.mkdtemp(prefix="bb-", dir="/tmp"))
        try:
            cold.append(_up_to_healthy(home))
            warm.append(_up_to_healthy(home))
        finally:
            shutil.rmtree(home, ignore_errors=True)
    return {"cold": cold, "warm": warm}


async def _time_op(op: Callable[[int], Awaitable[Any]], ops: int) -> list[float]:
    for i in range(min(50, ops)):  # warm connections and caches
        await op(i)
    samples: list[float] = []
    for i in range(ops):
        started = time.perf_counter()
        await op(i)
        samples.append(time.perf_counter() - started)
    return samples


async def _store_ops(store: Any, ops: int) -> dict[str, list[float]]:
    prefix = f"bench:{os.getpid()}:{time.time_ns()}"
    await store.set(f"{prefix}:k", b"x" * 64)
    results: dict[str, list[float]] = {}
    results["get"] = await _time_op(lambda i: store.get(f"{prefix}:k"), ops)
    results["set (ttl 60 s)"] = await _time_op(
        lambda i: store.set(f"{prefix}:k{i % 100}", b"v" * 64, ttl=60), ops
    )
    results["incr"] = await _time_op(lambda i: store.incr(f"{prefix}:c"), ops)
    results["take (token bucket)"] = await _time_op(
        lambda i: store.take(f"{prefix}:b", rate=1e9, capacity=1e9), ops
    )

    async def job_round_trip(i: int) -> None:
        await store.enqueue(f"{prefix}:q", b"job")
        job = await store.dequeue(f"{prefix}:q", lease=30)
        assert job is not None
        await store.ack(job)

    results["enqueue+dequeue+ack"] = await _time_op(job_round_trip, max(ops // 4, 10))

    async with store.subscribe(f"{prefix}:ch") as sub:
        iterator = sub.__aiter__()

        async def publish_receive(i: int) -> None:
            await store.publish(f"{prefix}:ch", b"m")
            await asyncio.wait_for(iterator.__anext__(), 5)

        results["publish→receive"] = await _time_op(publish_receive, max(ops // 4, 10))
    return results


async def measure_stores(ops: int) -> dict[str, dict[str, list[float]]]:
    from bastion.components import kernel_migrations
    from bastion.db.database import Database
    from bastion.settings import Settings
    from bastion.stores import MemoryStore, PostgresStore, RedisStore

    results: dict[str, dict[str, list[float]]] = {}
    memory = MemoryStore()
    results["memory (in-process)"] = await _store_ops(memory, ops)
    await memory.close()

    home = Path(tempfile.mkdtemp(prefix="bs-", dir="/tmp"))
    db = Database(Settings(home=home, database_url=None, redis_url=None))  # type: ignore[arg-type]
    try:
        await db.open(migrations=[kernel_migrations()])
        postgres = PostgresStore(db.pool, db.dsn)
        results["postgres (embedded, unix socket)"] = await _store_ops(postgres, ops)
        await postgres.close()
    finally:
        await db.close()
        shutil.rmtree(home, ignore_errors=True)

    redis_store = RedisStore(REDIS_URL, prefix=f"bench{os.getpid()}:")
    results["redis (127.0.0.1 TCP)"] = await _store_ops(redis_store, ops)
    await redis_store.close()
    return results


def _ms(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def report(
    startup: dict[str, list[float]], stores: dict[str, dict[str, list[float]]], runs: int, ops: int
) -> str:
    lines = [
        f"Machine: {os.cpu_count()} cores, Python {platform.python_version()}, {platform.platform()}",
        "",
        f"### `bastion up` to healthy ({runs} runs each)",
        "",
        "| start | median s | min s | max s |",
        "|---|---:|---:|---:|",
    ]
    for name, values in startup.items():
        lines.append(f"| {name} | {statistics.median(values):.2f} | {min(values):.2f} | {max(values):.2f} |")
    backends = list(stores)
    lines += [
        "",
        f"### Store operation latency, median (p99) in ms, {ops} operations each",
        "",
        "| operation | " + " | ".join(backends) + " |",
        "|---|" + "---:|" * len(backends),
    ]
    for op in stores[backends[0]]:
        cells = [f"{_ms(stores[b][op], 0.5):.3f} ({_ms(stores[b][op], 0.99):.3f})" for b in backends]
        lines.append(f"| {op} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=5, help="startups per kind (default 5)")
    parser.add_argument("--ops", type=int, default=2000, help="store operations per kind (default 2000)")
    parser.add_argument("--json", type=Path, help="also write raw samples here")
    args = parser.parse_args()
    startup = measure_startup(args.runs)
    stores = asyncio.run(measure_stores(args.ops))
    print(report(startup, stores, args.runs, args.ops))
    if args.json:
        args.json.write_text(json.dumps({"startup": startup, "stores": stores}))


if __name__ == "__main__":
    main()
