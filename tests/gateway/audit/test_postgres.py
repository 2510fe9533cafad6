"""PostgresAuditWriter: committed before `write` returns, group commit, append-only table."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from bastion.db.database import Database
from gateway.audit import (
    AuditEvent,
    AuditWriteError,
    MemoryAuditWriter,
    PostgresAuditWriter,
    digest_arguments,
)
from gateway.auth import Principal

ALICE = Principal("alice", "acme", ("analyst", "viewer"), (), "api_key", "0123456789ab")


def event(request_id: str, **changes: Any) -> AuditEvent:
    fields: dict[str, Any] = {
        "action": "tools/call",
        "decision": "allow",
        "outcome": "ok",
        "latency_ms": 1.25,
        "principal": ALICE,
        "upstream": "analytics",
        "tool": "analytics_query",
        "argument_digest": digest_arguments({"sql": "select 1"}),
        "reasons": ("analyst may query granted datasets",),
        "request_id": request_id,
        "client_address": "127.0.0.1",
    }
    return AuditEvent(**{**fields, **changes})


@pytest.fixture
async def writer(gateway_db: Database) -> AsyncIterator[PostgresAuditWriter]:
    audit = PostgresAuditWriter(gateway_db.pool)
    yield audit
    await audit.close()


async def rows(db: Database, run_id: str) -> list[tuple[Any, ...]]:
    # A separate connection from the writer's: sees only what was committed.
    async with await db.connect() as conn:
        cur = await conn.execute(
            "SELECT request_id, subject, tenant, roles, auth_method, key_id, action, upstream, tool, "
            "argument_digest, decision, reasons, latency_ms, outcome, client_address, time, xmin::text "
            "FROM gateway.audit_events WHERE request_id LIKE %s ORDER BY id",
            (run_id + "%",),
        )
        return await cur.fetchall()


async def test_an_event_is_committed_with_every_field_before_write_returns(
    writer: PostgresAuditWriter, gateway_db: Database, run_id: str
) -> None:
    sent = event(run_id + "1")
    await writer.write(sent)
    [row] = await rows(gateway_db, run_id)
    assert row[:15] == (
        run_id + "1",
        "alice",
        "acme",
        ["analyst", "viewer"],
        "api_key",
        "0123456789ab",
        "tools/call",
        "analytics",
        "analytics_query",
        sent.argument_digest,
        "allow",
        ["analyst may query granted datasets"],
        1.25,
        "ok",
        "127.0.0.1",
    )
    assert row[15] == sent.time


async def test_an_event_without_a_principal_is_recorded(
    writer: PostgresAuditWriter, gateway_db: Database, run_id: str
) -> None:
    await writer.write(event(run_id + "anon", principal=None, decision="deny", outcome="unauthenticated"))
    [row] = await rows(gateway_db, run_id)
    assert row[1] is None and row[3] == [] and row[13] == "unauthenticated"


@pytest.mark.parametrize("durability", ["flush", "commit"])
async def test_concurrent_writes_are_committed_together(
    gateway_db: Database, run_id: str, durability: Any
) -> None:
    audit = PostgresAuditWriter(gateway_db.pool, durability=durability)
    try:
        await audit.write(event(run_id + "warm"))
        await asyncio.gather(*(audit.write(event(f"{run_id}{i}")) for i in range(64)))
    finally:
        await audit.close()
    found = await rows(gateway_db, run_id)
    assert len(found) == 65
    per_transaction: dict[str, int] = {}
    for row in found:
        per_transaction[row[16]] = per_transaction.get(row[16], 0) + 1
    assert max(per_transaction.values()) > 1
    assert len(per_transaction) < 65


async def test_a_batch_is_bounded_by_max_batch(gateway_db: Database, run_id: str) -> None:
    audit = PostgresAuditWriter(gateway_db.pool, max_batch=8, linger=0.002)
    try:
        await asyncio.gather(*(audit.write(event(f"{run_id}{i}")) for i in range(40)))
    finally:
        await audit.close()
    per_transaction: dict[str, int] = {}
    for row in await rows(gateway_db, run_id):
        per_transaction[row[16]] = per_transaction.get(row[16], 0) + 1
    assert sum(per_transaction.values()) == 40
    assert max(per_transaction.values()) == 8


@pytest.mark.parametrize(
    ("statement", "operation"),
    [
        ("UPDATE gateway.audit_events SET outcome = 'ok' WHERE request_id = %s", "UPDATE"),
        ("DELETE FROM gateway.audit_events WHERE request_id = %s", "DELETE"),
        ("DELETE FROM gateway.audit_events WHERE request_id = %s AND false", "DELETE"),
        ("TRUNCATE gateway.audit_events", "TRUNCATE"),
    ],
)
async def test_the_table_refuses_update_delete_and_truncate(
    writer: PostgresAuditWriter, gateway_db: Database, run_id: str, statement: str, operation: str
) -> None:
    await writer.write(event(run_id + "x"))
    async with await gateway_db.connect() as conn:
        params = (run_id + "x",) if "%s" in statement else None
        with pytest.raises(
            psycopg.errors.InsufficientPrivilege, match=f"append-only: {operation} is refused"
        ):
            await conn.execute(statement, params)  # type: ignore[arg-type]
    assert len(await rows(gateway_db, run_id)) == 1


async def test_a_failed_batch_fails_every_waiter_and_the_next_batch_works(
    writer: PostgresAuditWriter, gateway_db: Database, run_id: str
) -> None:
    # One event the table refuses (its digest is not a SHA-256) poisons its whole batch.
    bad = event(run_id + "bad", argument_digest="not-a-digest")
    results = await asyncio.gather(
        *(writer.write(event(f"{run_id}{i}")) for i in range(10)), writer.write(bad), return_exceptions=True
    )
    assert len(results) == 11
    assert all(isinstance(r, AuditWriteError) for r in results)
    assert len({id(r) for r in results}) == 11
    assert "could not be written" in str(results[0]) and "argument_digest" in str(results[0])
    assert await rows(gateway_db, run_id) == []
    await writer.write(event(run_id + "after"))
    assert [row[0] for row in await rows(gateway_db, run_id)] == [run_id + "after"]


async def test_a_write_on_a_closed_pool_fails_every_waiter(gateway_db: Database, run_id: str) -> None:
    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(gateway_db.dsn, min_size=0, max_size=1, open=False)
    await pool.open()
    await pool.close()
    audit = PostgresAuditWriter(pool)
    try:
        outcomes = await asyncio.gather(
            *(audit.write(event(run_id)) for _ in range(3)), return_exceptions=True
        )
    finally:
        await audit.close()
    assert all(isinstance(o, AuditWriteError) for o in outcomes)


async def test_close_commits_what_is_queued_then_refuses_writes(gateway_db: Database, run_id: str) -> None:
    audit = PostgresAuditWriter(gateway_db.pool)
    pending = [asyncio.create_task(audit.write(event(f"{run_id}{i}"))) for i in range(5)]
    await asyncio.sleep(0)  # let the writes queue
    await audit.close()
    await asyncio.gather(*pending)
    assert len(await rows(gateway_db, run_id)) == 5
    with pytest.raises(AuditWriteError, match="closed"):
        await audit.write(event(run_id + "late"))


async def test_a_cancelled_caller_does_not_disturb_the_others(gateway_db: Database, run_id: str) -> None:
    audit = PostgresAuditWriter(gateway_db.pool)
    try:
        tasks = [asyncio.create_task(audit.write(event(f"{run_id}{i}"))) for i in range(6)]
        await asyncio.sleep(0)
        tasks[0].cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        await audit.close()
    assert isinstance(results[0], asyncio.CancelledError)
    assert results[1:] == [None] * 5


def test_bad_writer_settings_are_refused() -> None:
    pool: Any = object()
    with pytest.raises(ValueError, match="durability"):
        PostgresAuditWriter(pool, durability="never")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_batch"):
        PostgresAuditWriter(pool, max_batch=0)


async def test_the_memory_writer_keeps_events_in_order_until_closed() -> None:
    memory = MemoryAuditWriter()
    first, second = event("a"), event("b")
    await memory.write(first)
    await memory.write(second)
    assert memory.events == [first, second]
    await memory.close()
    with pytest.raises(AuditWriteError):
        await memory.write(first)
