"""Reading and removing what is stored: documents, chunks with context, collection stats.

Every function checks the caller's `allowed_collections` before it touches a row, and
answers "not found" for a chunk in a collection the caller may not read, so ids
cannot be used to probe other collections.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from psycopg import AsyncConnection

from bastion.caller import CallerContext
from servers.retrieval.catalog import (
    check_name,
    get_collection,
    list_collection_rows,
    missing_collections,
    readable,
)
from servers.retrieval.documents import delete_document as delete_document_rows
from servers.retrieval.errors import InputError, NotFoundError

if TYPE_CHECKING:
    from servers.retrieval.service import RetrievalService

__all__ = [
    "collection_stats",
    "delete_collection",
    "delete_document",
    "get_chunk",
    "get_document",
    "list_collections",
]

logger = logging.getLogger(__name__)

MAX_NEIGHBOURS = 10
MAX_TEXT_CHARS = 1_000_000


async def list_collections(service: RetrievalService, caller: CallerContext) -> list[dict[str, Any]]:
    async with service.database.pool.connection() as conn:
        rows = await list_collection_rows(conn)
    return [row.public() for row in rows if caller.may_read_collection(row.name)]


async def collection_stats(
    service: RetrievalService, caller: CallerContext, collection: str
) -> dict[str, Any]:
    check_name(collection)
    readable(caller, collection)
    async with service.database.pool.connection() as conn:
        row = await get_collection(conn, collection, caller)
        cur = await conn.execute(
            "SELECT type, count(*), coalesce(sum(size_bytes), 0) FROM retrieval.documents "
            "WHERE collection_id = %s GROUP BY type ORDER BY type",
            (row.id,),
        )
        types = {t: {"documents": int(n), "bytes": int(b)} for t, n, b in await cur.fetchall()}
        cur = await conn.execute(
            "SELECT count(*) FROM retrieval.chunks WHERE collection_id = %s AND model <> %s",
            (row.id, row.model),
        )
        stale = await cur.fetchone()
    return {
        **row.public(),
        "types": types,
        "average_chunk_length": round(row.total_length / row.chunk_count, 2) if row.chunk_count else 0.0,
        "chunks_awaiting_reembedding": int(stale[0]) if stale else 0,
    }


async def get_document(
    service: RetrievalService,
    caller: CallerContext,
    collection: str,
    document_id: str,
    *,
    include_text: bool = True,
    start: int = 0,
    end: int | None = None,
) -> dict[str, Any]:
    """A document's metadata and counts, and its text from `start` to `end` (character
    offsets, as search cites them), at most MAX_TEXT_CHARS of it per call."""
    check_name(collection)
    readable(caller, collection)
    if start < 0 or (end is not None and end < start):
        raise InputError(
            f"start={start}, end={end} is not a range of the text: give 0 <= start <= end "
            "(character offsets, as search results cite them)"
        )
    stop = start + MAX_TEXT_CHARS if end is None else min(end, start + MAX_TEXT_CHARS)
    async with service.database.pool.connection() as conn:
        row = await get_collection(conn, collection, caller)
        # Only the asked range leaves the database: a document may hold millions of characters.
        cur = await conn.execute(
            "SELECT d.id, d.doc_key, d.title, d.source, d.type, d.tags, d.metadata, d.content_hash, "
            "CASE WHEN %s THEN substr(d.text, %s, %s) END, d.pages, d.size_bytes, d.modified_at, "
            "d.created_at, d.updated_at, "
            "(SELECT count(*) FROM retrieval.chunks c WHERE c.document_id = d.id), length(d.text) "
            "FROM retrieval.documents d WHERE d.collection_id = %s AND d.doc_key = %s",
            (include_text, start + 1, stop - start, row.id, document_id),
        )
        doc = await cur.fetchone()
        if doc is None:
            raise await _missing_document(conn, row.id, collection, document_id)
    characters = int(doc[15])
    result: dict[str, Any] = {
        "collection": collection,
        "document_id": doc[1],
        "title": doc[2],
        "source": doc[3],
        "type": doc[4],
        "tags": list(doc[5]),
        "metadata": doc[6],
        "content_hash": doc[7],
        "pages": len(doc[9]) if doc[9] else None,
        "size_bytes": doc[10],
        "modified_at": doc[11].isoformat(),
        "created_at": doc[12].isoformat(),
        "updated_at": doc[13].isoformat(),
        "chunks": int(doc[14]),
        "characters": characters,
    }
    if include_text:
        if start > characters:
            raise InputError(
                f"start={start} is past the end of the text, which has {characters:,} characters"
            )
        text: str = doc[8]
        result["text"] = text
        result["start"] = start
        result["end"] = start + len(text)
        # The text stops short of what was asked for (one call returns at most MAX_TEXT_CHARS).
        wanted = characters if end is None else min(end, characters)
        result["truncated"] = result["end"] < wanted
    return result


async def get_chunk(
    service: RetrievalService, caller: CallerContext, chunk_id: int, *, neighbours: int = 1
) -> dict[str, Any]:
    """A chunk with up to `neighbours` chunks before and after it in its document."""
    if not 0 <= neighbours <= MAX_NEIGHBOURS:
        raise InputError(f"neighbours={neighbours} is out of range: use 0 to {MAX_NEIGHBOURS}")
    async with service.database.pool.connection() as conn:
        cur = await conn.execute(
            "SELECT c.document_id, c.ord, col.name FROM retrieval.chunks c "
            "JOIN retrieval.collections col ON col.id = c.collection_id WHERE c.id = %s",
            (chunk_id,),
        )
        found = await cur.fetchone()
        if found is None or not caller.may_read_collection(found[2]):
            raise NotFoundError(f"no chunk {chunk_id} in the collections you can read")
        cur = await conn.execute(
            "SELECT c.id, c.ord, c.start_offset, c.end_offset, c.page, c.context, c.text, "
            "d.doc_key, d.title, d.source, d.type, d.metadata "
            "FROM retrieval.chunks c JOIN retrieval.documents d ON d.id = c.document_id "
            "WHERE c.document_id = %s AND c.ord BETWEEN %s AND %s ORDER BY c.ord",
            (found[0], found[1] - neighbours, found[1] + neighbours),
        )
        rows = await cur.fetchall()

    def view(r: Any) -> dict[str, Any]:
        return {
            "chunk_id": r[0],
            "ord": r[1],
            "start": r[2],
            "end": r[3],
            "page": r[4],
            "section": r[5],
            "text": r[6],
        }

    target = next(r for r in rows if r[0] == chunk_id)
    return {
        "collection": found[2],
        "document_id": target[7],
        "title": target[8],
        "source": target[9],
        "type": target[10],
        "metadata": target[11],
        "chunk": view(target),
        "before": [view(r) for r in rows if r[1] < target[1]],
        "after": [view(r) for r in rows if r[1] > target[1]],
    }


async def delete_document(
    service: RetrievalService, caller: CallerContext, collection: str, document_id: str
) -> dict[str, Any]:
    check_name(collection)
    readable(caller, collection)
    async with service.database.pool.connection() as conn:
        row = await get_collection(conn, collection, caller)
        removed = await delete_document_rows(conn, row.id, document_id)
        if removed < 0:
            raise await _missing_document(conn, row.id, collection, document_id)
    logger.info(
        "deleted document %s from %s (%d chunks) for %s", document_id, collection, removed, caller.subject
    )
    return {"deleted": True, "collection": collection, "document_id": document_id, "chunks": removed}


async def delete_collection(
    service: RetrievalService, caller: CallerContext, collection: str
) -> dict[str, Any]:
    check_name(collection)
    readable(caller, collection)
    async with service.database.pool.connection() as conn:
        cur = await conn.execute(
            "DELETE FROM retrieval.collections WHERE name = %s RETURNING document_count, chunk_count",
            (collection,),
        )
        row = await cur.fetchone()
        if row is None:
            raise await missing_collections(conn, [collection], caller)
    logger.info("deleted collection %s for %s", collection, caller.subject)
    return {"deleted": True, "collection": collection, "documents": int(row[0]), "chunks": int(row[1])}


async def _missing_document(
    conn: AsyncConnection[Any], collection_id: int, collection: str, document_id: str
) -> NotFoundError:
    """The error for a document id the collection lacks, naming the ids that end with it:
    a file's name where its id is the whole path it was ingested from."""
    pattern = "%" + document_id.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    cur = await conn.execute(
        "SELECT doc_key FROM retrieval.documents WHERE collection_id = %s AND doc_key LIKE %s "
        "ORDER BY length(doc_key), doc_key LIMIT 3",
        (collection_id, pattern),
    )
    ids = [str(r[0]) for r in await cur.fetchall()]
    quoted = [repr(i) for i in ids]
    choices = " or ".join([", ".join(quoted[:-1]), quoted[-1]] if len(quoted) > 1 else quoted)
    hint = f"; did you mean {choices}?" if ids else "."
    return NotFoundError(
        f"no document {document_id!r} in collection {collection!r}{hint} Document ids are the "
        "`document_id` that search results cite."
    )
