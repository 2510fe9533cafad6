"""Fixtures of the retrieval server tests: one embedding model per session, an in-process
server per test (its worker off: tests drain jobs themselves, deterministically), a
folder of documents under the allowed root, and signed callers."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.server.mcpserver import MCPServer
from mcp_types import RequestParamsMeta

from bastion.caller import META_KEY, CallerContext, Obligations, sign_caller
from bastion.db.database import Database
from bastion.mcp import ServerRuntime, build_server
from bastion.settings import Settings
from servers.retrieval.config import RetrievalConfig
from servers.retrieval.embeddings.onnx import MiniLMOnnxProvider
from servers.retrieval.server import spec
from servers.retrieval.service import RetrievalService, close_service, install_service
from servers.retrieval.worker import IngestWorker


@pytest.fixture(scope="session")
def provider() -> MiniLMOnnxProvider:
    return MiniLMOnnxProvider(threads=2)


@pytest.fixture
def docs_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The allowed root of the test's server, with nothing in it yet."""
    return tmp_path_factory.mktemp("docs").resolve()


@dataclass
class Retrieval:
    """A test's server: the MCP server, its service, runtime and allowed root.

    Each call opens its own in-memory client: an MCP client's task group cannot span a
    fixture's setup and teardown, which pytest runs in different tasks."""

    server: MCPServer[ServerRuntime]
    service: RetrievalService
    runtime: ServerRuntime
    root: Path

    def collection(self) -> str:
        return f"c-{uuid.uuid4().hex[:10]}"

    async def call(
        self, tool: str, arguments: dict[str, Any], meta: RequestParamsMeta | None = None
    ) -> dict[str, Any]:
        async with Client(self.server) as client:
            result = await client.call_tool(tool, arguments, meta=meta)
        assert not result.is_error, result.content
        assert result.structured_content is not None
        return result.structured_content

    async def error(self, tool: str, arguments: dict[str, Any], meta: RequestParamsMeta | None = None) -> str:
        async with Client(self.server) as client:
            result = await client.call_tool(tool, arguments, meta=meta)
        assert result.is_error, f"{tool} succeeded: {result.structured_content}"
        return " ".join(getattr(part, "text", "") for part in result.content)

    async def drain(self) -> None:
        """Run every queued ingestion job to its end, in this task."""
        with anyio.fail_after(120):
            await IngestWorker(self.service).drain()

    async def ingest(self, collection: str, **arguments: Any) -> dict[str, Any]:
        started = await self.call("ingest", {"collection": collection, **arguments})
        await self.drain()
        return await self.call("ingest_status", {"job_id": started["job_id"]})

    def signed(self, allowed: tuple[str, ...] | None) -> RequestParamsMeta:
        ctx = CallerContext.expiring(
            subject="bob", tenant="acme", obligations=Obligations(allowed_collections=allowed), ttl=120
        )
        return {META_KEY: sign_caller(ctx, self.runtime.instance_key)}


def make_config(root: Path, **overrides: Any) -> RetrievalConfig:
    values: dict[str, Any] = {"allowed_roots": [root], "worker": False, "max_file_bytes": 200_000}
    values.update(overrides)
    return RetrievalConfig(**values)


@pytest.fixture
async def retrieval(
    settings: Settings, database: Database, provider: MiniLMOnnxProvider, docs_root: Path
) -> AsyncIterator[Retrieval]:
    async with ServerRuntime.open(spec, settings, transport="stdio", database=database) as runtime:
        service = RetrievalService(
            settings=settings,
            database=database,
            store=runtime.store,
            config=make_config(docs_root),
            provider=provider,
        )
        install_service(runtime, service)
        try:
            yield Retrieval(build_server(spec, runtime), service, runtime, docs_root)
        finally:
            await close_service(runtime)


@pytest.fixture
def write_files(docs_root: Path) -> Iterator[Any]:
    def write(files: dict[str, str | bytes]) -> list[Path]:
        paths: list[Path] = []
        for name, content in files.items():
            path = docs_root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                path.write_bytes(content)
            else:
                path.write_text(content, encoding="utf-8")
            paths.append(path)
        return paths

    yield write
