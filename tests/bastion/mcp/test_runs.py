"""`record_run`: one row per tool run in a server's own schema, never failing the tool."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest

from bastion.caller import CallerContext
from bastion.db.database import Database
from bastion.mcp import caller_middleware
from bastion.mcp.runs import record_run


@dataclass
class Run:
    tool: str
    items: int
    duration_ms: float
    error: str | None = None


@pytest.fixture
async def runs_table(database: Database) -> AsyncIterator[Database]:
    async with database.pool.connection() as conn:
        await conn.execute("DROP SCHEMA IF EXISTS runs_test CASCADE")
        await conn.execute("CREATE SCHEMA runs_test")
        await conn.execute(
            "CREATE TABLE runs_test.runs (tool text, subject text, tenant text, items bigint, "
            "duration_ms double precision, error text)"
        )
    yield database
    async with database.pool.connection() as conn:
        await conn.execute("DROP SCHEMA runs_test CASCADE")


@pytest.fixture
def caller() -> Iterator[CallerContext]:
    context = CallerContext.expiring(subject="ana", tenant="acme", roles=("analyst",), ttl=60)
    token = caller_middleware._current.set(context)  # pyright: ignore[reportPrivateUsage]
    yield context
    caller_middleware._current.reset(token)  # pyright: ignore[reportPrivateUsage]


async def test_a_run_is_recorded_with_its_caller(runs_table: Database, caller: CallerContext) -> None:
    await record_run(runs_table, "runs_test", Run("score", 42, 3.5))
    await record_run(runs_table, "runs_test", Run("score", 0, 0.1, error="empty series"))
    async with runs_table.pool.connection() as conn:
        cur = await conn.execute(
            "SELECT tool, subject, tenant, items, duration_ms, error FROM runs_test.runs"
        )
        rows = await cur.fetchall()
    assert rows == [("score", "ana", "acme", 42, 3.5, None), ("score", "ana", "acme", 0, 0.1, "empty series")]


async def test_a_failed_recording_is_logged_and_never_raises(
    database: Database, caller: CallerContext, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="bastion.mcp.runs"):
        await record_run(database, "no_such_schema", Run("score", 1, 1.0))
    assert "could not record a score run" in caplog.text
