"""The gateway's per-call overhead from authentication, rate limits and audit.

Parts (all by default), each side by side in one run on the embedded PostgreSQL:

  fsync      raw write+fsync of 8 KiB on the instance's disk: the floor of a durable commit.
  auth       ApiKeyAuthenticator.authenticate: cached (the hot path) and uncached (one row read).
  ratelimit  RateLimiter.check with in-process buckets, and with Redis (BASTION_TEST_REDIS_URL).
  audit      PostgresAuditWriter: N concurrent callers writing events back to back for a fixed
             time, per durability ("flush" = synchronous_commit on, "commit" = off) and linger;
             plus one commit per event (max_batch=1) as the baseline group commit is measured
             against. Reports events/s, write latency p50/p99 and the mean batch size.

State lives under $BASTION_BENCH_CACHE (default /var/tmp/bastion-bench)/gateway-auth.

    .venv/bin/python benchmarks/gateway_auth.py [--part audit] [--seconds 2] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bastion.components import kernel_migrations
from bastion.db.database import Database
from bastion.settings import Settings
from bastion.stores import RedisStore
from gateway.audit import AuditDurability, AuditEvent, PostgresAuditWriter, digest_arguments
from gateway.auth import ApiKeyAuthenticator, ApiKeyStore, Principal
from gateway.migrations import MIGRATIONS
from gateway.ratelimit import RateLimit, RateLimiter

CACHE = Path(os.environ.get("BASTION_BENCH_CACHE", "/var/tmp/bastion-bench")) / "gateway-auth"
REDIS_URL = os.environ.get("BASTION_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
PRINCIPAL = Principal("bench", "default", ("analyst",), (), "api_key", "0123456789ab")
PARTS = ("fsync", "auth", "ratelimit", "audit")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def bench_fsync(folder: Path, rounds: int = 300) -> dict[str, float]:
    """Append 8 KiB and fdatasync, as a log does (PostgreSQL's default wal_sync_method)."""
    path = folder / "fsync-probe"
    block = os.urandom(8192)
    times: list[float] = []
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o600)
    try:
        for _ in range(rounds):
            started = time.perf_counter()
            os.write(fd, block)
            os.fdatasync(fd)
            times.append(time.perf_counter() - started)
    finally:
        os.close(fd)
        path.unlink()
    return {"p50_ms": pct(times, 0.5) * 1e3, "p99_ms": pct(times, 0.99) * 1e3}


async def per_call_us(fn: Callable[[], Awaitable[Any]], n: int, repeats: int = 5) -> float:
    """Median over `repeats` of the mean microseconds per awaited call."""
    runs: list[float] = []
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(n):
            await fn()
        runs.append((time.perf_counter() - started) / n * 1e6)
    return statistics.median(runs)


async def bench_auth(db: Database) -> dict[str, float]:
    keys = ApiKeyStore(db.pool, secrets.token_bytes(32))
    created = await keys.create("bench", ("analyst",))
    header = f"Bearer {created.key}"
    async with ApiKeyAuthenticator(keys) as cached:
        assert await cached.authenticate(header, "127.0.0.1") is not None
        hot = await per_call_us(lambda: cached.authenticate(header, "127.0.0.1"), 20_000)
    async with ApiKeyAuthenticator(keys, cache_ttl=0) as uncached:
        cold = await per_call_us(lambda: uncached.authenticate(header, "127.0.0.1"), 500)
    return {"cached_us": hot, "uncached_us": cold}


async def bench_ratelimit() -> dict[str, float | None]:
    fast = RateLimit(1e9, 10**9)
    local = RateLimiter(per_principal=fast, per_tool=fast)
    local_us = await per_call_us(lambda: local.check(PRINCIPAL, "echo"), 50_000)
    out: dict[str, float | None] = {"local_us": local_us}
    try:
        store = await RedisStore.open(REDIS_URL, prefix=f"bastion-bench:{secrets.token_hex(4)}:")
    except Exception:
        out["redis_us"] = None
        return out
    try:
        shared = RateLimiter(per_principal=fast, per_tool=fast, store=store)
        out["redis_us"] = await per_call_us(lambda: shared.check(PRINCIPAL, "echo"), 2_000)
    finally:
        await store.close()
    return out


def audit_event(i: int) -> AuditEvent:
    return AuditEvent(
        action="tools/call",
        decision="allow",
        outcome="ok",
        latency_ms=1.0,
        principal=PRINCIPAL,
        upstream="bench",
        tool="bench_echo",
        argument_digest=digest_arguments({"i": i}),
        reasons=("bench",),
        request_id=f"bench-{i}",
    )


async def bench_audit_one(
    db: Database, durability: AuditDurability, clients: int, linger: float, max_batch: int, seconds: float
) -> dict[str, Any]:
    writer = PostgresAuditWriter(db.pool, durability=durability, linger=linger, max_batch=max_batch)
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def client(n: int) -> None:
        i = 0
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            await writer.write(audit_event(n * 1_000_000 + i))
            latencies.append(time.perf_counter() - started)
            i += 1

    async with db.pool.connection() as conn:
        cur = await conn.execute("SELECT count(DISTINCT xmin::text), count(*) FROM gateway.audit_events")
        before = await cur.fetchone()
    started = time.perf_counter()
    try:
        await asyncio.gather(*(client(n) for n in range(clients)))
    finally:
        await writer.close()
    elapsed = time.perf_counter() - started
    async with db.pool.connection() as conn:
        cur = await conn.execute("SELECT count(DISTINCT xmin::text), count(*) FROM gateway.audit_events")
        after = await cur.fetchone()
    assert before is not None and after is not None
    commits, events = after[0] - before[0], after[1] - before[1]
    return {
        "durability": durability,
        "clients": clients,
        "linger_ms": linger * 1e3,
        "max_batch": max_batch,
        "events_per_s": events / elapsed,
        "p50_ms": pct(latencies, 0.5) * 1e3,
        "p99_ms": pct(latencies, 0.99) * 1e3,
        "mean_batch": events / max(1, commits),
    }


async def bench_audit(db: Database, seconds: float) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for durability in ("flush", "commit"):
        rows.append(await bench_audit_one(db, durability, 16, 0.0, 1, seconds))  # no group commit
        for clients in (1, 16, 64):
            for linger in (0.0, 0.001):
                rows.append(await bench_audit_one(db, durability, clients, linger, 256, seconds))
    return rows


def report(results: dict[str, Any]) -> str:
    lines = ["# gateway auth / rate limit / audit", ""]
    if "fsync" in results:
        f = results["fsync"]
        lines.append(f"fsync of 8 KiB: p50 {f['p50_ms']:.2f} ms, p99 {f['p99_ms']:.2f} ms")
    if "auth" in results:
        a = results["auth"]
        lines.append(
            f"authenticate: cached {a['cached_us']:.1f} µs/call, uncached {a['uncached_us']:.0f} µs/call"
        )
    if "ratelimit" in results:
        r = results["ratelimit"]
        redis = "n/a" if r["redis_us"] is None else f"{r['redis_us']:.0f} µs"
        lines.append(f"rate limit check: local {r['local_us']:.1f} µs/call, Redis {redis}/call")
    if "audit" in results:
        lines += [
            "",
            "| durability | clients | linger ms | max batch | events/s | p50 ms | p99 ms | mean batch |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for row in results["audit"]:
            lines.append(
                f"| {row['durability']} | {row['clients']} | {row['linger_ms']:g} | {row['max_batch']} | "
                f"{row['events_per_s']:.0f} | {row['p50_ms']:.2f} | {row['p99_ms']:.2f} | "
                f"{row['mean_batch']:.1f} |"
            )
    return "\n".join(lines)


async def main(parts: list[str], seconds: float) -> dict[str, Any]:
    CACHE.mkdir(parents=True, exist_ok=True)
    settings = Settings(home=CACHE, database_url=None, redis_url=None, opa_url=None, db_pool_max=4)
    db = Database(settings)
    await db.open(migrations=[kernel_migrations(), MIGRATIONS])
    results: dict[str, Any] = {}
    try:
        if "fsync" in parts:
            results["fsync"] = bench_fsync(CACHE)
        if "auth" in parts:
            results["auth"] = await bench_auth(db)
        if "ratelimit" in parts:
            results["ratelimit"] = await bench_ratelimit()
        if "audit" in parts:
            results["audit"] = await bench_audit(db, seconds)
    finally:
        await db.close()
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--part", action="append", choices=PARTS, help="run only this part (repeatable)")
    parser.add_argument("--seconds", type=float, default=2.0, help="duration of each audit configuration")
    parser.add_argument("--json", type=Path, help="also write the results here as JSON")
    args = parser.parse_args()
    found = asyncio.run(main(args.part or list(PARTS), args.seconds))
    print(report(found))
    if args.json:
        args.json.write_text(json.dumps(found, indent=2))
