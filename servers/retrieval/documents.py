"""Writing documents: insert, atomic replace, metadata-only update, delete.

Each document is written in one transaction that locks its row first, so two workers
writing the same document serialise, and a crash leaves either the old chunks or the
new ones, never a mix. Within a collection, content is stored once: a document whose
text equals another document's is reported as a duplicate of it and not stored again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import numpy as np
from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

from servers.retrieval.embeddings.base import Vectors
from servers.retrieval.vectors import register_vector

__all__ = [
    "PreparedChunk",
    "PreparedDocument",
    "WriteOutcome",
    "delete_document",
    "file_keys_under",
    "write_document",
]

logger = logging.getLogger(__name__)

Outcome = Literal["created", "replaced", "unchanged", "duplicate"]


@dataclass(slots=True)
class PreparedChunk:
    ord: int
    start: int
    end: int
    page: int | None
    context: str
    text: str
    text_hash: str
    search_text: str


@dataclass(slots=True)
class PreparedDocument:
    """A document ready to store: its text, chunks and (once embedded) their vectors."""

    doc_key: str
    title: str
    source: str | None
    type: str
    tags: list[str]
    metadata: dict[str, Any]
    text: str
    content_hash: str
    size_bytes: int
    modified_at: datetime | None
    page_starts: list[int] | None = None
    chunks: list[PreparedChunk] = field(default_factory=list[PreparedChunk])
    vectors: Vectors | None = None


@dataclass(frozen=True, slots=True)
class WriteOutcome:
    outcome: Outcome
    document_id: str
    chunks: int


async def write_document(
    conn: AsyncConnection[Any], collection_id: int, doc: PreparedDocument, *, model: str, dim: int
) -> WriteOutcome:
    """Store `doc` in the collection: created, replaced atomically, unchanged or duplicate."""
    await register_vector(conn)
    async with conn.transaction():
        cur = await conn.execute(
            "SELECT id, content_hash FROM retrieval.documents WHERE collection_id = %s AND doc_key = %s "
            "FOR UPDATE",
            (collection_id, doc.doc_key),
        )
        existing = await cur.fetchone()
        if existing is not None and existing[1] == doc.content_hash:
            await _update_metadata(conn, existing[0], doc)
            return WriteOutcome("unchanged", doc.doc_key, 0)
        cur = await conn.execute(
            "SELECT doc_key FROM retrieval.documents WHERE collection_id = %s AND content_hash = %s "
            "AND doc_key <> %s LIMIT 1",
            (collection_id, doc.content_hash, doc.doc_key),
        )
        twin = await cur.fetchone()
        if twin is not None:
            return WriteOutcome("duplicate", str(twin[0]), 0)
        old_chunks = old_length = 0
        if existing is not None:
            document_pk = int(existing[0])
            old_chunks, old_length = await _drop_chunks(conn, document_pk)
            await conn.execute(
                "UPDATE retrieval.documents SET title = %s, source = %s, type = %s, tags = %s, "
                "metadata = %s, "
                "content_hash = %s, text = %s, pages = %s, size_bytes = %s, "
                "modified_at = coalesce(%s, now()), updated_at = now() WHERE id = %s",
                (*_document_values(doc), document_pk),
            )
        else:
            cur = await conn.execute(
                "INSERT INTO retrieval.documents (collection_id, doc_key, title, source, type, tags, "
                "metadata, "
                "content_hash, text, pages, size_bytes, modified_at) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, coalesce(%s, now())) RETURNING id",
                (collection_id, doc.doc_key, *_document_values(doc)),
            )
            row = await cur.fetchone()
            assert row is not None
            document_pk = int(row[0])
        new_length = await _insert_chunks(conn, collection_id, document_pk, doc, model=model, dim=dim)
        await conn.execute(
            "UPDATE retrieval.collections SET document_count = document_count + %s, "
            "chunk_count = chunk_count + %s, total_length = total_length + %s, version = version + 1, "
            "updated_at = now() WHERE id = %s",
            (
                0 if existing is not None else 1,
                len(doc.chunks) - old_chunks,
                new_length - old_length,
                collection_id,
            ),
        )
    return WriteOutcome("replaced" if existing is not None else "created", doc.doc_key, len(doc.chunks))


def _document_values(doc: PreparedDocument) -> tuple[Any, ...]:
    return (
        doc.title,
        doc.source,
        doc.type,
        doc.tags,
        Jsonb(doc.metadata),
        doc.content_hash,
        doc.text,
        doc.page_starts,
        doc.size_bytes,
        doc.modified_at,
    )


async def _update_metadata(conn: AsyncConnection[Any], document_pk: int, doc: PreparedDocument) -> None:
    values = (doc.title, doc.source, doc.tags, Jsonb(doc.metadata))
    await conn.execute(
        "UPDATE retrieval.documents SET title = %s, source = %s, tags = %s, metadata = %s, "
        "updated_at = now() "
        "WHERE id = %s AND (title, source, tags, metadata) IS DISTINCT FROM (%s, %s, %s, %s)",
        (*values, document_pk, *values),
    )


async def _drop_chunks(conn: AsyncConnection[Any], document_pk: int) -> tuple[int, int]:
    cur = await conn.execute(
        "WITH gone AS (DELETE FROM retrieval.chunks WHERE document_id = %s RETURNING length) "
        "SELECT count(*), coalesce(sum(length), 0) FROM gone",
        (document_pk,),
    )
    row = await cur.fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


async def _insert_chunks(
    conn: AsyncConnection[Any],
    collection_id: int,
    document_pk: int,
    doc: PreparedDocument,
    *,
    model: str,
    dim: int,
) -> int:
    """Insert the chunks with their vectors, lengths and BM25 postings; return their total length."""
    if not doc.chunks:
        return 0
    assert doc.vectors is not None and len(doc.vectors) == len(doc.chunks)
    async with conn.cursor() as cur:
        await cur.executemany(
            "INSERT INTO retrieval.chunks (document_id, collection_id, ord, start_offset, end_offset, page, "
            "context, text, text_hash, model, dim, embedding, tsv) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, to_tsvector('english', %s))",
            [
                (
                    document_pk,
                    collection_id,
                    c.ord,
                    c.start,
                    c.end,
                    c.page,
                    c.context,
                    c.text,
                    c.text_hash,
                    model,
                    dim,
                    np.asarray(vector, dtype=np.float32),
                    c.search_text,
                )
                for c, vector in zip(doc.chunks, doc.vectors, strict=True)
            ],
        )
    cur = await conn.execute(
        "WITH lengths AS ("
        "  UPDATE retrieval.chunks c SET length = ("
        "    SELECT coalesce(sum(coalesce(array_length(u.positions, 1), 1)), 0) FROM unnest(c.tsv) u)"
        "  WHERE c.document_id = %s RETURNING c.length) "
        "SELECT coalesce(sum(length), 0) FROM lengths",
        (document_pk,),
    )
    row = await cur.fetchone()
    await conn.execute(
        "INSERT INTO retrieval.postings (collection_id, lexeme, chunk_id, tf, dl) "
        "SELECT c.collection_id, u.lexeme, c.id, coalesce(array_length(u.positions, 1), 1), c.length "
        "FROM retrieval.chunks c, unnest(c.tsv) u WHERE c.document_id = %s",
        (document_pk,),
    )
    return int(row[0]) if row else 0


async def delete_document(conn: AsyncConnection[Any], collection_id: int, doc_key: str) -> int:
    """Delete one document and its chunks; return the number of chunks removed (-1: no such document)."""
    async with conn.transaction():
        cur = await conn.execute(
            "SELECT id FROM retrieval.documents WHERE collection_id = %s AND doc_key = %s FOR UPDATE",
            (collection_id, doc_key),
        )
        row = await cur.fetchone()
        if row is None:
            return -1
        chunks, length = await _drop_chunks(conn, int(row[0]))
        await conn.execute("DELETE FROM retrieval.documents WHERE id = %s", (row[0],))
        await conn.execute(
            "UPDATE retrieval.collections SET document_count = document_count - 1, "
            "chunk_count = chunk_count - %s, total_length = total_length - %s, version = version + 1, "
            "updated_at = now() WHERE id = %s",
            (chunks, length, collection_id),
        )
    return chunks


async def file_keys_under(conn: AsyncConnection[Any], collection_id: int, folder: str) -> list[str]:
    """The keys (paths) of the collection's file documents under `folder`, recursively."""
    prefix = folder if folder.endswith("/") else folder + "/"
    cur = await conn.execute(
        "SELECT doc_key FROM retrieval.documents WHERE collection_id = %s AND type <> 'inline' "
        "AND starts_with(doc_key, %s) ORDER BY doc_key",
        (collection_id, prefix),
    )
    return [str(row[0]) for row in await cur.fetchall()]
