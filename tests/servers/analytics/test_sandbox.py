"""The sandbox on its own: even a statement the guard would refuse cannot write or escape.

These tests hand the sandbox statements directly, as if the guard had a hole, to show
the second line of defence: the reader role, the READ ONLY transaction and the limits.
"""

from __future__ import annotations

import pytest

from bastion.caller import CallerContext
from servers.analytics.errors import QueryFailedError
from servers.analytics.guard import CheckedQuery, Relation
from servers.analytics.sandbox import Limits, execute
from servers.analytics.service import AnalyticsService
from tests.servers.analytics.conftest import unique

LIMITS = Limits(
    max_rows=100, max_bytes=1 << 20, statement_timeout_ms=2000, lock_timeout_ms=1000, fetch_batch=10
)


@pytest.fixture
async def two_datasets(service: AnalyticsService):
    owner = CallerContext.local_owner()
    mine, other = unique("mine"), unique("other")
    await service.load(owner, mine, content="id\n1\n2\n", fmt="csv")
    await service.load(owner, other, content="token\nhidden\n", fmt="csv")
    yield mine, other
    await service.drop(owner, mine)
    await service.drop(owner, other)


async def _as_reader_of(service: AnalyticsService, dataset: str, text: str) -> str:
    async with service.database.pool.connection() as conn:
        role = await service.roles.role_for(conn, [dataset])
        with pytest.raises(QueryFailedError) as info:
            await execute(conn, CheckedQuery(text=text, kind="select", relations=[]), None, LIMITS, role=role)
        # The connection goes back to the pool clean: no transaction, no role left set.
        cur = await conn.execute("SELECT current_user, current_setting('transaction_read_only')")
        assert await cur.fetchone() == ("postgres", "off")
    return str(info.value.sqlstate)


@pytest.mark.parametrize(
    ("text", "sqlstate"),
    [
        ("SELECT * FROM {other}", "42501"),
        ("SELECT * FROM analytics.sources", "42501"),
        ("SELECT pg_read_file('/etc/hostname')", "42501"),
        ("SELECT * FROM pg_ls_dir('/')", "42501"),
        ("SELECT lo_import('/etc/hostname')", "42501"),
        ("SELECT lo_create(0)", "25006"),
        ("SELECT nextval('analytics.x')", "42501"),
        ("SELECT set_config('transaction_read_only', 'off', true)", "25001"),
        ("WITH d AS (DELETE FROM {mine} RETURNING *) SELECT * FROM d", "0A000"),
        ("SELECT pg_sleep(5)", "57014"),
    ],
)
async def test_the_reader_role_and_read_only_transaction_stop_what_the_guard_would_refuse(
    service: AnalyticsService, two_datasets: tuple[str, str], text: str, sqlstate: str
) -> None:
    mine, other = two_datasets
    got = await _as_reader_of(service, mine, text.format(mine=mine, other=other))
    assert got == sqlstate


async def test_a_query_reads_its_own_datasets_as_a_role_without_other_grants(
    service: AnalyticsService, two_datasets: tuple[str, str]
) -> None:
    mine, _ = two_datasets
    async with service.database.pool.connection() as conn:
        role = await service.roles.role_for(conn, [mine])
        result = await execute(
            conn,
            CheckedQuery(
                text=f"SELECT current_user, count(*) FROM {mine}",
                kind="select",
                relations=[Relation(None, mine)],
            ),
            None,
            LIMITS,
            role=role,
        )
        cur = await conn.execute("SELECT rolsuper, rolcanlogin FROM pg_roles WHERE rolname = %s", (role,))
        assert await cur.fetchone() == (False, False)
    assert result["rows"] == [[role, 2]]


async def test_values_come_back_as_json_in_every_column_type(service: AnalyticsService) -> None:
    text = (
        "SELECT 12::numeric, 10.50::numeric, -0.5::numeric(4,2), 'NaN'::numeric, 'Infinity'::numeric, "
        "NULL::numeric, ARRAY[1.5, 2]::numeric[], 7::int2, 8::int4, 9::int8, true, 'x'::varchar, "
        "'y'::char(2), 1.25::float8, 'Infinity'::float8, DATE '2024-01-02', INTERVAL '1 minute', "
        "'\\x01ff'::bytea, 'infinity'::date, '-infinity'::timestamptz, 'infinity'::timestamp, "
        "TIMESTAMP '2024-01-02 03:04', 123456789012345678901234567890::numeric, '-Infinity'::float8"
    )
    async with service.database.pool.connection() as conn:
        result = await execute(
            conn, CheckedQuery(text=text, kind="select", relations=[]), None, LIMITS, role=None
        )
    assert result["rows"] == [
        [12, 10.5, -0.5, "NaN", "Infinity", None, [1.5, 2], 7, 8, 9, True, "x", "y ", 1.25, "Infinity",
         "2024-01-02", 60.0, "\\x01ff", "infinity", "-infinity", "infinity", "2024-01-02T03:04:00",
         "123456789012345678901234567890", "-Infinity"]
    ]  # fmt: skip
