"""External sources: registration by admins, the DSN kept secret, tables listed and described."""

from __future__ import annotations

import logging

import pytest

from servers.analytics.service import AnalyticsService
from tests.servers.analytics.conftest import ClientFactory, unique

pytestmark = pytest.mark.pg15


async def _forget(service: AnalyticsService, name: str) -> None:
    async with service.database.pool.connection() as conn:
        await conn.execute("DELETE FROM analytics.sources WHERE name = %s", (name,))


async def test_a_registered_source_is_listed_described_and_queried_and_its_dsn_stays_secret(
    tools: ClientFactory,
    service: AnalyticsService,
    pg15_scratch: dict[str, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    name, schema, password = unique("src"), pg15_scratch["schema"], pg15_scratch["password"]
    try:
        async with tools(None) as c:
            registered = await c.call("register_source", name=name, dsn=pg15_scratch["dsn"])
            listed = await c.ok("list_datasets")
            described = await c.ok("describe", dataset=f"{name}.{schema}.victim")
            profiled = await c.ok("profile", dataset=f"{name}.{schema}.victim", columns=["amount"])
            rows = await c.ok(
                "query",
                sql=f"SELECT id, amount FROM {schema}.victim WHERE id <= $1 ORDER BY id",
                params=[2],
                source=name,
            )
            chart = await c.ok("chart", sql=f"SELECT name, amount FROM {schema}.victim LIMIT 3", source=name)
            unqualified = await c.error("query", sql="SELECT id FROM victim", source=name)
        async with service.database.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT dsn_ciphertext, display FROM analytics.sources WHERE name = %s", (name,)
            )
            stored = await cur.fetchone()
    finally:
        await _forget(service, name)
    assert not registered.is_error
    info = registered.structured_content
    assert info is not None
    assert info["role"] == pg15_scratch["role"]
    assert info["schemas"] == [schema]
    assert password not in str(info) and "dsn" not in info
    source = next(s for s in listed["sources"] if s["name"] == name)
    assert source["schemas"] == [
        {
            "name": schema,
            "tables": [{"name": "victim", "dataset": f"{name}.{schema}.victim", "kind": "table"}],
        }
    ]
    assert password not in str(listed)
    assert described["row_count"] == 50
    assert [c["name"] for c in described["columns"]] == ["id", "name", "amount"]
    assert profiled["columns"][0]["max"] == 75.0
    assert rows["rows"] == [[1, 1.5], [2, 3]]
    assert len(chart["data"]["values"]) == 3
    assert 'relation "victim" does not exist' in unqualified
    assert "with its schema (schema.table)" in unqualified
    assert stored is not None
    assert password.encode() not in bytes(stored[0])
    assert password not in stored[1]
    assert password not in caplog.text


async def test_registration_refuses_bad_dsns_without_echoing_them(tools: ClientFactory) -> None:
    async with tools(None) as c:
        garbage = await c.error("register_source", name=unique("bad"), dsn="not a dsn at all ===")
        no_db = await c.error("register_source", name=unique("bad"), dsn="postgresql://u:sekrit@127.0.0.1:1")
        down = await c.error("register_source", name=unique("bad"), dsn="postgresql://u:sekrit@127.0.0.1:1/x")
        bad_name = await c.error("register_source", name="Bad Name", dsn="postgresql://u@127.0.0.1/x")
    assert "does not parse" in garbage
    assert "names no database" in no_db
    assert "cannot connect to source" in down and "127.0.0.1:1/x" in down
    for message in (garbage, no_db, down):
        assert "sekrit" not in message
    assert "source name 'Bad Name' is not allowed" in bad_name


async def test_a_superuser_dsn_is_registered_with_a_warning(
    tools: ClientFactory, service: AnalyticsService, pg15_url: str
) -> None:
    name = unique("su")
    try:
        async with tools(None) as c:
            info = await c.ok("register_source", name=name, dsn=pg15_url)
    finally:
        await _forget(service, name)
    assert any("superuser" in w for w in info["warnings"])


async def test_a_query_on_an_unknown_source_names_it(tools: ClientFactory) -> None:
    async with tools(None) as c:
        message = await c.error("query", sql="SELECT 1", source="nowhere")
    assert "no source named 'nowhere'" in message
