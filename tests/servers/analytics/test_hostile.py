"""The hostile corpus, on the embedded PostgreSQL 18 and on PostgreSQL 15 as an external source.

Every entry must be refused by the guard before it runs, fail inside the sandbox with a
timeout, read-only or privilege error, or run harmlessly reading only what the caller
may read. Afterwards every table, role and large object is exactly as before, and the
canary file's contents never came back.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from bastion.caller import CallerContext
from bastion.mcp import ServerRuntime
from servers.analytics import AnalyticsConfig
from servers.analytics.errors import QueryFailedError, QueryRefusedError
from servers.analytics.service import AnalyticsService, configure
from tests.servers.analytics.conftest import caller, unique
from tests.servers.analytics.hostile_corpus import CORPUS

# Timeout, read-only transaction, missing privilege, temp_file_limit, stack depth.
HARMLESS_FAILURES = {"57014", "25006", "42501", "53400", "54001"}


@pytest.fixture
def canary() -> Iterator[tuple[Path, str]]:
    secret = f"CANARY-{secrets.token_hex(8)}"
    path = Path(f"/tmp/bastion_canary_{secrets.token_hex(4)}.txt")
    path.write_text(secret)
    path.chmod(0o644)
    yield path, secret
    path.unlink()


async def _run_corpus(
    service: AnalyticsService, who: CallerContext, names: dict[str, str], source: str | None, never: list[str]
) -> dict[str, int]:
    seen = {"refused": 0, "fails": 0, "harmless": 0}
    for template, expected in CORPUS:
        text = template.format(**names)
        outcome: str
        output: Any
        try:
            output = await service.query(who, text, max_rows=50, source=source)
            outcome = "harmless"
        except QueryRefusedError as exc:
            output, outcome = exc.message, "refused"
            assert exc.reason, text
        except QueryFailedError as exc:
            output, outcome = exc.message, "fails"
            assert exc.sqlstate in HARMLESS_FAILURES, f"{text!r} failed with {exc.sqlstate}: {exc.message}"
        assert outcome == expected, (
            f"{text!r} on {source or 'embedded'}: {outcome}, expected {expected}: {output}"
        )
        for value in never:
            assert value not in str(output), f"{text!r} leaked {value!r}"
        seen[outcome] += 1
    return seen


async def _embedded_snapshot(service: AnalyticsService) -> dict[str, Any]:
    async with service.database.pool.connection() as conn:
        cur = await conn.execute(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_schema IN ('analytics', 'analytics_data') ORDER BY 1, 2"
        )
        tables = [tuple(r) for r in await cur.fetchall()]
        sums = {}
        for schema, table in tables:
            cur = await conn.execute(
                psycopg.sql.SQL(
                    "SELECT count(*), md5(coalesce(string_agg(t::text, ',' ORDER BY t::text), '')) FROM {} t"
                ).format(psycopg.sql.Identifier(schema, table))
            )
            sums[f"{schema}.{table}"] = await cur.fetchone()
        cur = await conn.execute("SELECT rolname, rolsuper, rolcanlogin FROM pg_roles ORDER BY 1")
        roles = await cur.fetchall()
        cur = await conn.execute("SELECT count(*) FROM pg_largeobject_metadata")
        large_objects = await cur.fetchone()
    return {"tables": sums, "roles": roles, "large_objects": large_objects}


def _external_snapshot(url: str, schema: str) -> dict[str, Any]:
    with psycopg.connect(url, autocommit=True) as conn:
        tables = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s ORDER BY 1", (schema,)
        ).fetchall()
        sums = {
            t: conn.execute(
                psycopg.sql.SQL(
                    "SELECT count(*), md5(string_agg(x::text, ',' ORDER BY x::text)) FROM {} x"
                ).format(psycopg.sql.Identifier(schema, t))
            ).fetchone()
            for (t,) in tables
        }
        roles = conn.execute("SELECT rolname, rolsuper FROM pg_roles ORDER BY 1").fetchall()
        large_objects = conn.execute("SELECT count(*) FROM pg_largeobject_metadata").fetchone()
        public_tables = conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchone()
    return {"tables": sums, "roles": roles, "large_objects": large_objects, "public": public_tables}


@pytest.fixture
async def embedded_targets(service: AnalyticsService) -> AsyncIterator[dict[str, str]]:
    owner = CallerContext.local_owner()
    victim, secret = unique("victim"), unique("secret")
    rows = "id,name,amount\n" + "".join(f"{i},row {i},{i * 1.5}\n" for i in range(1, 51))
    await service.load(owner, victim, content=rows, fmt="csv")
    await service.load(owner, secret, content="id,token\n1,top-secret-embedded\n", fmt="csv")
    yield {"v": victim, "s": secret}
    await service.drop(owner, victim)
    await service.drop(owner, secret)


async def test_every_hostile_query_is_refused_or_harmless_on_the_embedded_database(
    service: AnalyticsService,
    runtime: ServerRuntime,
    embedded_targets: dict[str, str],
    canary: tuple[Path, str],
) -> None:
    configure(runtime, AnalyticsConfig(statement_timeout_ms=300))
    path, secret = canary
    who = caller("mallory", datasets=[embedded_targets["v"]])
    # Warm the reader role of the victim, which is made on first use by design.
    await service.query(who, f"SELECT * FROM {embedded_targets['v']}")
    before = await _embedded_snapshot(service)
    seen = await _run_corpus(
        service, who, {**embedded_targets, "canary": str(path)}, None, [secret, "top-secret-embedded"]
    )
    after = await _embedded_snapshot(service)
    assert after == before
    assert sum(seen.values()) == len(CORPUS) >= 100
    assert seen["refused"] >= 150


@pytest.mark.pg15
async def test_every_hostile_query_is_refused_or_harmless_on_postgresql_15_as_a_source(
    service: AnalyticsService,
    runtime: ServerRuntime,
    pg15_url: str,
    pg15_scratch: dict[str, str],
    canary: tuple[Path, str],
) -> None:
    configure(runtime, AnalyticsConfig(statement_timeout_ms=300))
    path, secret = canary
    source, schema = unique("hostile"), pg15_scratch["schema"]
    registered = await service.register_source(CallerContext.local_owner(), source, pg15_scratch["dsn"])
    assert registered["warnings"] == []
    who = caller("mallory", datasets=[f"{source}.{schema}.victim"])
    names = {"v": f"{schema}.victim", "s": f"{schema}.secret", "canary": str(path)}
    before = _external_snapshot(pg15_url, schema)
    try:
        seen = await _run_corpus(
            service, who, names, source, [secret, "top-secret-", pg15_scratch["password"]]
        )
    finally:
        async with service.database.pool.connection() as conn:
            await conn.execute("DELETE FROM analytics.sources WHERE name = %s", (source,))
    assert _external_snapshot(pg15_url, schema) == before
    assert sum(seen.values()) == len(CORPUS)


@pytest.mark.pg15
async def test_on_a_source_the_dsn_role_is_the_sandbox_when_policy_allows_everything(
    service: AnalyticsService, pg15_scratch: dict[str, str]
) -> None:
    owner = CallerContext.local_owner()
    source, schema = unique("rolebox"), pg15_scratch["schema"]
    await service.register_source(owner, source, pg15_scratch["dsn"])
    try:
        with pytest.raises(QueryFailedError) as denied:
            await service.query(owner, f"SELECT * FROM {schema}.secret", source=source)
        readable = await service.query(owner, f"SELECT count(*) FROM {schema}.victim", source=source)
    finally:
        async with service.database.pool.connection() as conn:
            await conn.execute("DELETE FROM analytics.sources WHERE name = %s", (source,))
    assert denied.value.sqlstate == "42501"
    assert "permission denied" in denied.value.message
    assert readable["rows"] == [[50]]
