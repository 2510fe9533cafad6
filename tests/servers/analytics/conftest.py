"""Fixtures of the analytics tests: a runtime on the shared embedded database, clients
acting as given callers, and dataset names no other test uses."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import psycopg
import pytest
from mcp import Client
from mcp.types import CallToolResult
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from bastion.caller import META_KEY, CallerContext, Obligations, sign_caller
from bastion.db.database import Database
from bastion.mcp import ServerRuntime, build_server
from bastion.settings import Settings
from servers.analytics import spec
from servers.analytics.service import AnalyticsService, service_for


@pytest.fixture
async def runtime(settings: Settings, database: Database) -> AsyncIterator[ServerRuntime]:
    async with ServerRuntime.open(spec, settings, transport="stdio", database=database) as rt:
        yield rt


@pytest.fixture
def service(runtime: ServerRuntime) -> AnalyticsService:
    return service_for(runtime)


def unique(prefix: str) -> str:
    """A dataset name no other test (or earlier run) uses."""
    return f"{prefix}_{secrets.token_hex(4)}"


def caller(
    subject: str = "alice",
    *,
    roles: tuple[str, ...] = ("analyst",),
    datasets: list[str] | None = None,
    row_limit: int | None = None,
) -> CallerContext:
    return CallerContext.expiring(
        subject=subject,
        tenant="acme",
        roles=roles,
        obligations=Obligations(
            allowed_datasets=None if datasets is None else tuple(datasets), row_limit=row_limit
        ),
        ttl=600,
    )


class ToolClient:
    """Calls tools in process, as the local owner or as a signed caller."""

    def __init__(self, client: Client, key: bytes, who: CallerContext | None) -> None:
        self._client = client
        self._key = key
        self._who = who

    async def call(self, tool: str, **arguments: Any) -> CallToolResult:
        meta = None if self._who is None else {META_KEY: sign_caller(self._who, self._key)}
        return await self._client.call_tool(tool, arguments, meta=meta)

    async def ok(self, tool: str, **arguments: Any) -> dict[str, Any]:
        result = await self.call(tool, **arguments)
        assert not result.is_error, _text(result)
        assert result.structured_content is not None
        return result.structured_content

    async def error(self, tool: str, **arguments: Any) -> str:
        result = await self.call(tool, **arguments)
        assert result.is_error, f"{tool} succeeded: {result.structured_content}"
        return _text(result)


def _text(result: CallToolResult) -> str:
    return " ".join(getattr(block, "text", "") for block in result.content)


ClientFactory = Callable[[CallerContext | None], AbstractAsyncContextManager[ToolClient]]


@pytest.fixture
def tools(runtime: ServerRuntime) -> ClientFactory:
    """`async with tools(caller) as c:` a client acting as `caller` (None: the local owner)."""

    @asynccontextmanager
    async def open_client(who: CallerContext | None = None) -> AsyncIterator[ToolClient]:
        async with Client(build_server(spec, runtime)) as client:
            yield ToolClient(client, runtime.instance_key, who)

    return open_client


Loader = Callable[..., Awaitable[dict[str, Any]]]


@pytest.fixture
async def load_csv(tools: ClientFactory) -> AsyncIterator[Loader]:
    """Load CSV text as a fresh dataset (as the local owner); dropped after the test."""
    names: list[str] = []

    async def load(text: str, prefix: str = "ds", **arguments: Any) -> dict[str, Any]:
        name = unique(prefix)
        async with tools(None) as c:
            result = await c.ok("load_dataset", name=name, content=text, format="csv", **arguments)
        names.append(name)
        return result

    yield load
    async with tools(None) as c:
        for name in names:
            await c.call("drop_dataset", name=name)


@pytest.fixture
def pg15_scratch(pg15_url: str) -> Iterator[dict[str, str]]:
    """A scratch schema in the PG15 `test` database with `victim` (readable) and `secret`
    (not granted) tables, and a read-only LOGIN role; dropped afterwards."""
    tag = secrets.token_hex(4)
    schema, role, password = f"bastion_scratch_{tag}", f"bastion_ro_{tag}", f"pw-{secrets.token_hex(8)}"
    with psycopg.connect(pg15_url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
        conn.execute(f"CREATE TABLE {schema}.victim (id int PRIMARY KEY, name text, amount numeric)")
        conn.execute(
            f"INSERT INTO {schema}.victim SELECT g, 'row ' || g, g * 1.5 FROM generate_series(1, 50) g"
        )
        conn.execute(f"CREATE TABLE {schema}.secret (id int, token text)")
        conn.execute(f"INSERT INTO {schema}.secret VALUES (1, 'top-secret-{tag}')")
        conn.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{password}' NOSUPERUSER NOCREATEDB NOCREATEROLE")
        conn.execute(f"GRANT USAGE ON SCHEMA {schema} TO {role}")
        conn.execute(f"GRANT SELECT ON {schema}.victim TO {role}")
    info = conninfo_to_dict(pg15_url)
    dsn = make_conninfo(pg15_url, user=role, password=password)
    try:
        yield {
            "dsn": dsn,
            "schema": schema,
            "role": role,
            "password": password,
            "db": str(info.get("dbname")),
        }
    finally:
        with psycopg.connect(pg15_url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
            conn.execute(f"DROP OWNED BY {role}")
            conn.execute(f"DROP ROLE IF EXISTS {role}")
