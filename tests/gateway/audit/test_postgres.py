"""PostgresAuditWriter: committed before `write` returns, group commit, append-only table."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from typing import Any

import psycopg
import pytest
from anyio import fail_after as anyio_fail_after
from psycopg_pool import AsyncConnectionPool

from bastion.db.database import Database
from gateway.audit import (
    AuditEvent,
    AuditWriteError,
    MemoryAuditWriter,
    PostgresAuditWriter,
    digest_arguments,
)
from gateway.audit import postgres as postgres_module
from gateway.audit.postgres import AUDIT_BATCH_SIZE
from gateway.audit.pq_channel import PqChannel
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


async def test_text_fields_keep_every_character_and_an_odd_time_zone(
    writer: PostgresAuditWriter, gateway_db: Database, run_id: str
) -> None:
    # Events go to PostgreSQL as text parameters: array quoting, JSON and time zones must survive.
    roles = ('quo"te', "back\\slash", "com,ma", "{brace}", "", "NULL")
    odd = Principal('o"dd', "ténant", roles, (), "api_key")
    when = datetime(2026, 12, 3, 17, 4, 5, 678901, tzinfo=timezone(timedelta(hours=5, minutes=30)))
    sent = event(
        run_id + "odd",
        principal=odd,
        time=when,
        reasons=('say "no"', "line\nbreak", "ünïcødé ✓"),
        tool="tool with 'quotes' and \\",
        latency_ms=0.1 + 0.2,
    )
    await writer.write(sent)
    [row] = await rows(gateway_db, run_id)
    assert row[1:4] == ('o"dd', "ténant", ['quo"te', "back\\slash", "com,ma", "{brace}", "", "NULL"])
    assert row[8] == "tool with 'quotes' and \\"
    assert row[11] == ['say "no"', "line\nbreak", "ünïcødé ✓"]
    assert row[12] == 0.1 + 0.2
    assert row[15] == when


async def test_characters_postgresql_cannot_store_are_stored_marked_and_spoil_no_batch(
    writer: PostgresAuditWriter, gateway_db: Database, run_id: str
) -> None:
    """A client chooses tool names and URIs, and reasons quote its arguments: a NUL (libpq
    would cut the value at it, jsonb refuses it) or a lone surrogate (not UTF-8) must
    keep neither its own event nor the others committed with it out of the table."""
    await asyncio.gather(
        writer.write(event(run_id + "1", tool="resource\x00uri")),
        writer.write(event(run_id + "2", reasons=("argument 'x': 'a\x00b' is not a number",))),
        writer.write(event(run_id + "3", tool="half \ud800 pair", reasons=("lone \udfff",))),
        writer.write(event(run_id + "4")),
    )
    stored = {row[0]: (row[8], row[11]) for row in await rows(gateway_db, run_id)}
    assert stored[run_id + "1"][0] == "resource\u2400uri"
    assert stored[run_id + "2"][1] == ["argument 'x': 'a\u2400b' is not a number"]
    assert stored[run_id + "3"] == ("half \ufffd pair", ["lone \ufffd"])
    assert stored[run_id + "4"][0] == "analytics_query"


async def test_a_stalled_database_fails_the_batch_closed_instead_of_holding_it(
    gateway_db: Database, run_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("gateway.audit.postgres.WRITE_TIMEOUT", 0.5)
    audit = PostgresAuditWriter(gateway_db.pool)
    try:
        await audit.write(event(run_id + "before"))
        async with await gateway_db.connect() as locker:
            await locker.execute("BEGIN")
            await locker.execute("LOCK TABLE gateway.audit_events IN ACCESS EXCLUSIVE MODE")
            with anyio_fail_after(10), pytest.raises(AuditWriteError):
                await audit.write(event(run_id + "stalled"))
            await locker.execute("ROLLBACK")
        await audit.write(event(run_id + "after"))
    finally:
        await audit.close()
    assert [row[0] for row in await rows(gateway_db, run_id)] == [run_id + "before", run_id + "after"]


async def test_after_a_database_restart_the_first_batch_is_written(gateway_db: Database, run_id: str) -> None:
    """A restart leaves every idle pooled connection dead: the batch must not fail on them."""
    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
        gateway_db.dsn, min_size=4, max_size=4, kwargs={"application_name": "audit-restart-test"}, open=False
    )
    await pool.open(wait=True)
    audit = PostgresAuditWriter(pool)
    try:
        await audit.write(event(run_id + "before"))
        async with await gateway_db.connect() as admin:
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = 'audit-restart-test'"
            )
        await asyncio.sleep(0.2)
        await audit.write(event(run_id + "after"))
    finally:
        await audit.close()
        await pool.close()
    assert [row[0] for row in await rows(gateway_db, run_id)] == [run_id + "before", run_id + "after"]


async def test_a_batch_larger_than_the_socket_buffer_is_sent_whole(gateway_db: Database, run_id: str) -> None:
    audit = PostgresAuditWriter(gateway_db.pool, max_batch=200, linger=0.005)
    reasons = ("x" * 20_000,)  # 200 events of 20 kB: a 4 MB statement, sent in many writes
    try:
        await asyncio.gather(*(audit.write(event(f"{run_id}{i:03}", reasons=reasons)) for i in range(200)))
    finally:
        await audit.close()
    found = await rows(gateway_db, run_id)
    assert [row[0] for row in found] == [f"{run_id}{i:03}" for i in range(200)]
    assert all(row[11] == list(reasons) for row in found)


async def test_a_connection_killed_between_batches_is_replaced_without_losing_an_event(
    writer: PostgresAuditWriter, gateway_db: Database, run_id: str
) -> None:
    await writer.write(event(run_id + "before"))
    async with await gateway_db.connect() as admin:
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE pid <> pg_backend_pid() AND query LIKE 'INSERT INTO gateway.audit_events%%'"
        )
    await asyncio.sleep(0.2)  # the server closes the socket; the channel sees it and gives up
    await writer.write(event(run_id + "after"))  # on a fresh connection
    await writer.write(event(run_id + "later"))
    found = [row[0] for row in await rows(gateway_db, run_id)]
    assert found == [run_id + "before", run_id + "after", run_id + "later"]


async def test_a_channel_reports_the_server_error_and_drops_its_statements_on_close(
    gateway_db: Database,
) -> None:
    async with await gateway_db.connect() as conn:
        channel = PqChannel(conn)
        await channel.execute(b"SELECT $1::int + 1", [b"41"])
        await channel.execute(b"SELECT $1::int + 1", [b"1"])
        with pytest.raises(psycopg.DatabaseError, match="invalid input syntax for type integer"):
            await channel.execute(b"SELECT $1::int", [b"not a number"])
        await channel.execute(b"SELECT $1::int + 1", [b"2"])  # still usable after a failed statement
        await channel.aclose()
        cur = await conn.execute("SELECT count(*) FROM pg_prepared_statements WHERE name LIKE 'bastion_pq_%'")
        assert await cur.fetchone() == (0,)
        with pytest.raises(psycopg.InterfaceError, match="closed"):
            await channel.execute(b"SELECT 1", [])


async def test_a_channel_whose_connection_dies_or_whose_caller_leaves_mid_statement_is_broken(
    gateway_db: Database,
) -> None:
    async with await gateway_db.connect() as conn, await gateway_db.connect() as admin:
        channel = PqChannel(conn)
        pid = conn.info.backend_pid
        running = asyncio.create_task(channel.execute(b"SELECT pg_sleep($1::float8)", [b"30"]))
        await asyncio.sleep(0.3)
        await admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        with pytest.raises(psycopg.OperationalError):
            await asyncio.wait_for(running, 10)
        assert channel.broken
        channel.close()
    async with await gateway_db.connect() as conn:
        channel = PqChannel(conn)
        running = asyncio.create_task(channel.execute(b"SELECT pg_sleep($1::float8)", [b"30"]))
        await asyncio.sleep(0.3)
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running
        assert channel.broken  # its answer may still come: the connection is not reused
        channel.close()
        await conn.close()  # what the audit writer does with a broken channel's connection


async def test_close_hands_the_connection_back_to_the_pool_in_good_order(
    gateway_db: Database, run_id: str
) -> None:
    bad_before = gateway_db.pool.get_stats().get("returns_bad", 0)
    audit = PostgresAuditWriter(gateway_db.pool)
    await audit.write(event(run_id + "one"))
    await asyncio.gather(*(audit.write(event(f"{run_id}{i}")) for i in range(5)))  # a second statement
    await audit.close()
    assert gateway_db.pool.get_stats().get("returns_bad", 0) == bad_before
    async with gateway_db.pool.connection() as conn:
        cur = await conn.execute("SELECT count(*) FROM pg_prepared_statements WHERE name LIKE 'bastion_pq_%'")
        assert await cur.fetchone() == (0,)


async def test_events_are_stored_right_from_a_connection_with_another_encoding(
    gateway_db: Database, run_id: str
) -> None:
    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
        gateway_db.dsn,
        min_size=1,
        max_size=1,
        kwargs={"autocommit": True, "options": "-c client_encoding=LATIN1"},
        open=False,
    )
    await pool.open()
    try:
        audit = PostgresAuditWriter(pool)
        await audit.write(
            event(run_id + "latin", principal=Principal("zoë", "ténant", ("rôle",), (), "api_key"))
        )
        await audit.close()
        async with pool.connection() as conn:  # handed back with its own encoding
            cur = await conn.execute("SHOW client_encoding")
            assert await cur.fetchone() == ("LATIN1",)
    finally:
        await pool.close()
    [row] = await rows(gateway_db, run_id)
    assert row[1:4] == ("zoë", "ténant", ["rôle"])


async def test_a_channel_sends_a_prepared_statement_and_tells_its_answer_from_the_reader(
    gateway_db: Database,
) -> None:
    async with await gateway_db.connect() as conn:
        channel = PqChannel(conn)
        answers: asyncio.Queue[BaseException | None] = asyncio.Queue()
        add = b"SELECT $1::int + 1"
        assert not channel.send_prepared(add, [b"1"], answers.put_nowait)  # not prepared yet
        await channel.execute(add, [b"1"])
        assert channel.send_prepared(add, [b"2"], answers.put_nowait)
        assert channel.busy and not channel.send_prepared(add, [b"3"], answers.put_nowait)
        with pytest.raises(psycopg.InterfaceError, match="already running"):
            await channel.execute(add, [b"3"])
        assert await asyncio.wait_for(answers.get(), 10) is None and not channel.busy
        assert channel.send_prepared(add, [b"not a number"], answers.put_nowait)
        error = await asyncio.wait_for(answers.get(), 10)
        assert isinstance(error, psycopg.DatabaseError) and "invalid input syntax" in str(error)
        assert not channel.broken and channel.send_prepared(add, [b"4"], answers.put_nowait)
        assert await asyncio.wait_for(answers.get(), 10) is None
        sleep = b"SELECT pg_sleep($1::float8)"
        await channel.execute(sleep, [b"0"])
        assert channel.send_prepared(sleep, [b"30"], answers.put_nowait)
        channel.abandon("no answer in time")
        error = await asyncio.wait_for(answers.get(), 1)
        assert isinstance(error, psycopg.OperationalError) and "no answer in time" in str(error)
        assert channel.broken and not channel.send_prepared(add, [b"5"], answers.put_nowait)
        channel.close()
        await conn.close()  # mid-statement: what the audit writer does with it


async def test_writes_alternating_new_and_known_batch_sizes_each_commit_once(
    writer: PostgresAuditWriter, gateway_db: Database, run_id: str
) -> None:
    """Known batch sizes go out from `write` itself, new ones through the background task:
    both at once never lose, repeat or reorder an event."""
    ids: list[str] = []
    for wave, size in enumerate((1, 3, 1, 7, 3, 1, 12, 1)):
        batch = [f"{run_id}{wave:02}-{i:02}" for i in range(size)]
        ids += batch
        await asyncio.gather(*(writer.write(event(rid)) for rid in batch))
    assert sorted(row[0] for row in await rows(gateway_db, run_id)) == sorted(ids)


async def test_close_waits_for_the_batch_in_flight(gateway_db: Database, run_id: str) -> None:
    audit = PostgresAuditWriter(gateway_db.pool)
    await audit.write(event(run_id + "first"))  # connects and prepares: the next write sends itself
    in_flight = asyncio.create_task(audit.write(event(run_id + "second")))
    await asyncio.sleep(0)  # the write has sent its batch and waits for the answer
    await audit.close()
    await asyncio.wait_for(in_flight, 10)
    assert [row[0] for row in await rows(gateway_db, run_id)] == [run_id + "first", run_id + "second"]


async def test_a_database_that_stops_answering_fails_the_write_and_the_next_reconnects(
    gateway_db: Database, run_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server process that is alive but silent (stopped) never trips its own statement
    timeout: the writer gives up after the grace, fails the call closed and reconnects."""
    monkeypatch.setattr("gateway.audit.postgres.WRITE_TIMEOUT", 0.3)
    monkeypatch.setattr("gateway.audit.postgres._UNANSWERED_GRACE", 0.3)
    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
        gateway_db.dsn, min_size=0, max_size=2, kwargs={"application_name": "audit-silent-test"}, open=False
    )
    await pool.open()
    audit = PostgresAuditWriter(pool)
    try:
        await audit.write(event(run_id + "before"))
        async with await gateway_db.connect() as admin:
            cur = await admin.execute(
                "SELECT pid FROM pg_stat_activity WHERE application_name = 'audit-silent-test'"
            )
            (pid,) = await cur.fetchone() or (None,)
        assert pid is not None
        os.kill(pid, signal.SIGSTOP)
        try:
            with anyio_fail_after(10), pytest.raises(AuditWriteError, match=r"did not answer within 0\.6 s"):
                await audit.write(event(run_id + "unanswered"))
        finally:
            os.kill(pid, signal.SIGCONT)
        await audit.write(event(run_id + "after"))
    finally:
        await audit.close()
        await pool.close()
    found = [row[0] for row in await rows(gateway_db, run_id)]
    assert found[0] == run_id + "before" and found[-1] == run_id + "after"


async def test_writers_that_write_again_at_once_commit_together_and_encode_each_event_once(
    writer: PostgresAuditWriter, run_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sixteen callers writing back to back: commits carry all of them (never the first one
    alone), and no event is encoded twice on the way (a writer that re-encoded the queue on
    every write did sixteen times the work at sixteen callers)."""
    encoded: list[str | None] = []

    def counting(event: AuditEvent) -> tuple[bytes | None, ...]:
        encoded.append(event.request_id)
        return params_of(event)

    params_of = postgres_module._params
    monkeypatch.setattr(postgres_module, "_params", counting)

    def batches() -> tuple[float, float]:
        samples = {s.name: s.value for m in AUDIT_BATCH_SIZE.collect() for s in m.samples}
        return samples["bastion_audit_batch_size_count"], samples["bastion_audit_batch_size_sum"]

    async def caller(index: int) -> None:
        for turn in range(10):
            await writer.write(event(f"{run_id}{index:02}-{turn}"))

    await asyncio.gather(*(writer.write(event(f"{run_id}warm-{i:02}")) for i in range(16)))
    encoded.clear()
    count_before, events_before = batches()
    await asyncio.gather(*(caller(i) for i in range(16)))
    count, events = batches()
    assert events - events_before == 160
    assert (events - events_before) / (count - count_before) >= 12  # 16 but for the odd straggler
    assert len(encoded) == len(set(encoded)) == 160
