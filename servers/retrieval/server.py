"""The `retrieval` server: ingest documents, search them (hybrid, vector, keyword), cite passages.

Tools are thin: each resolves the process's `RetrievalService` and the verified
caller, calls the module that does the work, and turns a deliberate error into a tool
error whose message says what to fix. Documents are also resources:
`retrieval://documents/{collection}/{document_id}` (the id URL-encoded).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Generator
from contextlib import asynccontextmanager, contextmanager
from typing import Annotated, Any, Literal, TypedDict

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ResourceError, ToolError
from mcp.types import CallToolResult, ToolAnnotations
from pydantic import Field

from bastion.errors import BastionError
from bastion.mcp import ServerRuntime, ServerSpec, current_caller, structured
from servers.retrieval.filters import SearchFilters
from servers.retrieval.ingest import InlineDocument
from servers.retrieval.schema import MIGRATIONS

__all__ = ["spec"]

logger = logging.getLogger(__name__)


@asynccontextmanager
async def _ingestion_worker(runtime: ServerRuntime) -> AsyncGenerator[None, None]:
    """Start the ingestion worker with the server, so a job a crash interrupted resumes
    at once rather than at the first tool call."""
    from servers.retrieval.service import close_service, service_for

    service_for(runtime)
    try:
        yield
    finally:
        await close_service(runtime)


spec = ServerSpec(
    name="retrieval",
    description="Ingest documents and search them with hybrid BM25 + vector retrieval, with exact citations.",
    instructions=(
        "Use `search` to find passages (it returns document_id, chunk_id, source, page, character "
        "offsets and a "
        "snippet with matched terms in <mark>); cite them. `get_chunk` gives a passage with its neighbours. "
        "`ingest` starts a background job: poll `ingest_status` with its job_id."
    ),
    migrations=MIGRATIONS,
    background=_ingestion_worker,
)

_READ_ONLY = ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False)
_DESTRUCTIVE = ToolAnnotations(read_only_hint=False, destructive_hint=True, open_world_hint=False)


class IngestStarted(TypedDict):
    job_id: str
    collection: str
    state: str


@contextmanager
def _tool_errors() -> Generator[None, None, None]:
    """Deliberate errors reach the client with their message; anything else is a crash."""
    try:
        yield
    except BastionError as exc:
        raise ToolError(exc.message) from exc


def _service(ctx: Context[ServerRuntime, Any]) -> Any:
    from servers.retrieval.service import service_for

    return service_for(ctx.request_context.lifespan_context)


@spec.tool()
async def ingest(
    collection: Annotated[str, Field(description="collection to add to (created if missing)")],
    ctx: Context[ServerRuntime, Any],
    paths: Annotated[
        list[str] | None, Field(description="absolute files or folders under the allowed roots")
    ] = None,
    documents: Annotated[
        list[InlineDocument] | None, Field(description="inline {id, title, text, metadata}")
    ] = None,
    tags: Annotated[list[str] | None, Field(description="tags given to every document of this job")] = None,
    include: Annotated[list[str] | None, Field(description="globs a file in a folder must match")] = None,
    exclude: Annotated[list[str] | None, Field(description="globs that skip files in a folder")] = None,
    prune: Annotated[
        bool, Field(description="also delete the documents whose files are gone from the folders in `paths`")
    ] = False,
) -> IngestStarted:
    """Start a background ingestion of files, folders (recursively) and inline documents.
    Returns at once with a job_id; `ingest_status` follows it. Unchanged content is skipped, changed
    files replace their old chunks, and a bad file fails alone with its reason. With `prune`, a
    folder's deleted files leave the collection too (counted as `removed`)."""
    from servers.retrieval.ingest import start_ingest

    with _tool_errors():
        job_id = await start_ingest(
            _service(ctx),
            current_caller(),
            collection,
            paths=paths or [],
            documents=documents or [],
            tags=tags or [],
            include=include or [],
            exclude=exclude or [],
            prune=prune,
        )
    return {"job_id": job_id, "collection": collection, "state": "queued"}


@spec.tool(annotations=_READ_ONLY)
async def ingest_status(job_id: str, ctx: Context[ServerRuntime, Any]) -> dict[str, Any]:
    """State (queued, running, completed, failed), counts (done, failed, created, replaced, unchanged,
    duplicate, chunks), per-file errors and progress (0..1) of an ingestion job."""
    from servers.retrieval.catalog import readable
    from servers.retrieval.jobs import job_status

    service = _service(ctx)
    with _tool_errors():
        async with service.database.pool.connection() as conn:
            status = await job_status(conn, job_id)
        readable(current_caller(), status["collection"])
    return status


@spec.tool(annotations=_READ_ONLY)
async def search(
    query: Annotated[str, Field(description="words or a question")],
    ctx: Context[ServerRuntime, Any],
    collection: Annotated[str | None, Field(description="one collection to search")] = None,
    collections: Annotated[
        list[str] | None, Field(description="several collections; default: all you can read")
    ] = None,
    k: Annotated[int, Field(description="number of results")] = 10,
    mode: Annotated[Literal["hybrid", "vector", "keyword"], Field(description="ranking")] = "hybrid",
    filters: SearchFilters | None = None,
) -> Annotated[CallToolResult, dict[str, Any]]:
    """Search passages. Each result cites document_id, chunk_id, title, source, page, section (the
    headings above the passage), start/end character offsets into the document's text, score, a snippet
    (HTML-escaped, matches in <mark>) and metadata."""
    from servers.retrieval.search import search as run_search

    with _tool_errors():
        return structured(
            await run_search(
                _service(ctx),
                current_caller(),
                query,
                collection=collection,
                collections=collections,
                k=k,
                mode=mode,
                filters=filters,
            )
        )


@spec.tool(annotations=_READ_ONLY)
async def get_document(
    collection: str,
    document_id: str,
    ctx: Context[ServerRuntime, Any],
    include_text: bool = True,
    start: Annotated[int, Field(description="character offset to read the text from")] = 0,
    end: Annotated[
        int | None, Field(description="character offset to stop at (exclusive); default: the end")
    ] = None,
) -> dict[str, Any]:
    """A document's metadata and extracted text (the text that search offsets point into), from
    `start` to `end`, at most 1,000,000 characters per call: `truncated` says there is more
    after the returned `end`, to read with `start` set to it."""
    from servers.retrieval.library import get_document as read

    with _tool_errors():
        return await read(
            _service(ctx),
            current_caller(),
            collection,
            document_id,
            include_text=include_text,
            start=start,
            end=end,
        )


@spec.tool(annotations=_READ_ONLY)
async def get_chunk(chunk_id: int, ctx: Context[ServerRuntime, Any], neighbours: int = 1) -> dict[str, Any]:
    """A chunk with up to `neighbours` chunks before and after it, for context around a citation."""
    from servers.retrieval.library import get_chunk as read

    with _tool_errors():
        return await read(_service(ctx), current_caller(), chunk_id, neighbours=neighbours)


@spec.tool(annotations=_READ_ONLY)
async def list_collections(ctx: Context[ServerRuntime, Any]) -> dict[str, Any]:
    """The collections you may read, with their model, counts and version."""
    from servers.retrieval.library import list_collections as read

    with _tool_errors():
        return {"collections": await read(_service(ctx), current_caller())}


@spec.tool(annotations=_READ_ONLY)
async def collection_stats(collection: str, ctx: Context[ServerRuntime, Any]) -> dict[str, Any]:
    """Counts of a collection: documents and bytes per type, chunks, average chunk length (in indexed
    words, as keyword ranking counts them), chunks awaiting re-embedding."""
    from servers.retrieval.library import collection_stats as read

    with _tool_errors():
        return await read(_service(ctx), current_caller(), collection)


@spec.tool(annotations=_DESTRUCTIVE)
async def delete_document(
    collection: str, document_id: str, ctx: Context[ServerRuntime, Any]
) -> dict[str, Any]:
    """Delete one document and its chunks from a collection."""
    from servers.retrieval.library import delete_document as remove

    with _tool_errors():
        return await remove(_service(ctx), current_caller(), collection, document_id)


@spec.tool(annotations=_DESTRUCTIVE)
async def delete_collection(collection: str, ctx: Context[ServerRuntime, Any]) -> dict[str, Any]:
    """Delete a collection with all its documents and chunks."""
    from servers.retrieval.library import delete_collection as remove

    with _tool_errors():
        return await remove(_service(ctx), current_caller(), collection)


@spec.resource(
    "retrieval://documents/{collection}/{document_id}",
    name="document",
    description="The extracted text of a document (document_id URL-encoded).",
    mime_type="text/plain",
    opaque={"document_id"},  # a file's document id is its absolute path
)
async def document_resource(collection: str, document_id: str, ctx: Context[ServerRuntime, Any]) -> str:
    from servers.retrieval.library import get_document as read

    try:  # the SDK has decoded both parameters
        doc = await read(_service(ctx), current_caller(), collection, document_id)
    except BastionError as exc:
        raise ResourceError(exc.message) from exc
    return str(doc["text"])
